"""PyTorch reference for `benchmark_speed.py`: the same DDPM U-Net training step, in PyTorch.

It answers "how do the PyTorch favourites do on this machine?" for the `train float32` row of
`benchmark_speed.py`. It imports neither `keras_ddpm` nor TensorFlow: from `benchmark_speed.py`
only its memory helpers, which need nothing beyond the standard library.

What it measures: float32 training on the CPU of diffusers' `UNet2DModel` built to the
architecture of our U-Net (base width 64, channel multipliers (1, 2, 2, 2), 2 residual blocks
per level, single-head self-attention at 16x16 on the down and up paths and in the middle
block, 32 normalisation groups, dropout 0.1, 32x32x3 images). One step: a batch of uniform
random images in [-1, 1], `t` uniform in [0, 1000), `x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t)
eps` with the linear beta schedule 1e-4 .. 0.02, the MSE between the predicted and the true
`eps`, an Adam step (learning rate 2e-4), and an EMA of the weights (decay 0.9999). After
`--warmup` untimed steps, `--steps` steps are timed one by one; the median is reported.

How FLOPs are counted, as in `benchmark_speed.py`: 2 per multiply-add of every `nn.Conv2d`
(output elements x in_channels / groups x kh x kw) and `nn.Linear` (output elements x
in_features: q/k/v/out projections and the timestep MLP), plus the two attention matmuls
(q k^T and weights v: 2 x 2 x batch x positions^2 x width per attention layer), read off one
forward pass of one image with forward hooks; normalisation, activations, softmax and additions
are not counted. A training step counts 3x the forward FLOPs (backward = 2x forward).

The yardstick ("peak"): the best of several 2048 x 2048 float32 products of `torch.matmul` and
NumPy's `matmul`, measured before and after the timed steps (the higher is used). As in
`benchmark_speed.py`, every ratio is also given per CPU-second ("cpu_fraction_of_peak").

Install (a separate environment; the CPU-only wheel is enough):

    pip install --index-url https://download.pytorch.org/whl/cpu torch
    pip install diffusers numpy

Run (about the time of the `train float32` phase of `benchmark_speed.py`):

    python benchmarks/benchmark_pytorch_reference.py                  # batch 32, 10 timed steps
    python benchmarks/benchmark_pytorch_reference.py --channels-last  # NHWC memory format
    python benchmarks/benchmark_pytorch_reference.py --sample 64      # sampling, not training

`--sample N` measures generation instead of training, as the `sample` phase of
`benchmark_speed.py` does: N images with diffusers' `DPMSolverMultistepScheduler`
(DPM-Solver++(2M), the linear schedule above, `--sample-steps` steps, 20 by default) under
`torch.inference_mode`, the network in eval mode and untrained. One untimed run, then
`--sample-repeats` timed ones (the fastest reported), the bare network call on the same batch,
and the process's peak resident memory.
"""

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here needs the hub
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark_speed import AnonPeak, peak_rss_mb, status_mb  # noqa: E402

NUM_TIMESTEPS = 1000
# The U-Nets of `benchmark_speed.py --model`, as diffusers' `UNet2DModel` arguments. Down blocks
# run from the full size down, so an attention block at 16x16 of 32 (cifar10) is the second down
# block and the third up block, and at 4x4 of 8 (digits) the second down and the first up block.
# The middle block (`UNetMidBlock2D`) has attention too.
MODELS = {
    "cifar10": dict(  # the DDPM CIFAR-10 U-Net at width 64: 32x32x3, 4 levels, dropout 0.1
        sample_size=32, in_channels=3, out_channels=3, layers_per_block=2,
        block_out_channels=(64, 128, 128, 128),
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=32, dropout=0.1,
    ),
    "digits": dict(  # keras_ddpm.UNet.from_preset("digits"): 8x8x1, 2 levels, 3.99M parameters
        sample_size=8, in_channels=1, out_channels=1, layers_per_block=2,
        block_out_channels=(64, 128),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=32, dropout=0.0,
    ),
    "quickstart": dict(  # examples/train_digits.py: the digits U-Net at width 32, one block a level
        sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=32, dropout=0.0,
    ),
}


# ===== Model and schedule =====


def build_network(model="cifar10", attention_head_dim=None):
    """diffusers' `UNet2DModel` with the architecture of `keras_ddpm.UNet` at a benchmark config.

    `attention_head_dim=None` gives one head as wide as the feature map, as ours; diffusers'
    own default is heads of width 8.
    """
    from diffusers import UNet2DModel

    return UNet2DModel(**MODELS[model], attention_head_dim=attention_head_dim)


def image_shape(network):
    """(channels, height, width) of the network's images."""
    return (network.config.in_channels, network.config.sample_size, network.config.sample_size)


def alphas_cumprod():
    """abar_t for the linear beta schedule 1e-4 .. 0.02 over 1000 steps."""
    betas = torch.linspace(1e-4, 0.02, NUM_TIMESTEPS, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0).float()


# ===== FLOP count =====


def forward_flops(network, memory_format=torch.contiguous_format):
    """FLOPs of one forward pass for one image: 2 x multiply-adds of convs, linears, attention."""
    from diffusers.models.attention_processor import Attention

    total = [0]

    def conv(module, inputs, output):
        kh, kw = module.kernel_size
        total[0] += 2 * output.numel() * module.in_channels // module.groups * kh * kw

    def linear(module, inputs, output):
        total[0] += 2 * output.numel() * module.in_features

    def attention(module, args, kwargs, output):
        x = args[0] if args else kwargs["hidden_states"]
        if x.ndim == 4:  # [B, C, H, W]
            batch, positions = x.shape[0], x.shape[2] * x.shape[3]
        else:  # [B, N, C]
            batch, positions = x.shape[0], x.shape[1]
        width = module.inner_dim  # heads x head width = the q/k/v width
        total[0] += 2 * 2 * batch * positions * positions * width  # q k^T and weights v

    handles = []
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear))
        elif isinstance(module, Attention):
            handles.append(module.register_forward_hook(attention, with_kwargs=True))
    try:
        x = torch.zeros(1, *image_shape(network))
        x = x.contiguous(memory_format=memory_format)
        with torch.no_grad():
            network(x, torch.zeros(1, dtype=torch.long))
    finally:
        for handle in handles:
            handle.remove()
    return total[0]


def count_attention_layers(network):
    from diffusers.models.attention_processor import Attention

    return sum(isinstance(module, Attention) for module in network.modules())


# ===== Training step =====


class Trainer:
    """One DDPM training step: noise, epsilon-prediction MSE, Adam, EMA of the weights."""

    def __init__(self, network, batch_size, memory_format, compile_network=False,
                 learning_rate=2e-4, ema_decay=0.9999):
        self.network = network
        self.forward = torch.compile(network) if compile_network else network
        self.batch_size = batch_size
        self.memory_format = memory_format
        self.alphas_cumprod = alphas_cumprod()
        self.optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
        self.params = [p for p in network.parameters() if p.requires_grad]
        self.ema_params = [p.detach().clone() for p in self.params]
        self.ema_decay = ema_decay
        self.generator = torch.Generator().manual_seed(0)

    def random_images(self):
        shape = (self.batch_size, *image_shape(self.network))
        x0 = torch.rand(shape, generator=self.generator) * 2.0 - 1.0
        return x0.contiguous(memory_format=self.memory_format)

    def step(self):
        x0 = self.random_images()
        t = torch.randint(0, NUM_TIMESTEPS, (self.batch_size,), generator=self.generator)
        eps = torch.randn(x0.shape, generator=self.generator)
        eps = eps.contiguous(memory_format=self.memory_format)
        abar = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        x_t = abar.sqrt() * x0 + (1.0 - abar).sqrt() * eps
        prediction = self.forward(x_t, t).sample
        loss = F.mse_loss(prediction, eps)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.update_ema()
        return loss.item()

    @torch.no_grad()
    def update_ema(self):
        """ema <- d ema + (1 - d) w."""
        torch._foreach_mul_(self.ema_params, self.ema_decay)
        torch._foreach_add_(self.ema_params, self.params, alpha=1.0 - self.ema_decay)


# ===== Sampling =====


def sample(network, num_images, steps, generator):
    """`num_images` images from pure noise with diffusers' DPM-Solver++(2M) scheduler."""
    from diffusers import DPMSolverMultistepScheduler

    scheduler = DPMSolverMultistepScheduler(
        num_train_timesteps=NUM_TIMESTEPS, beta_start=1e-4, beta_end=0.02,
        beta_schedule="linear", solver_order=2, algorithm_type="dpmsolver++")
    scheduler.set_timesteps(steps)
    x = torch.randn((num_images, *image_shape(network)), generator=generator)
    with torch.inference_mode():
        for t in scheduler.timesteps:
            x = scheduler.step(network(x, t).sample, t, x).prev_sample
    return x


def run_sampling(args):
    """Times `sample` and the bare network call; records peak resident and anonymous memory."""
    rss_imported, anon_imported = peak_rss_mb(), status_mb("RssAnon").get("RssAnon")
    anon_peak = AnonPeak()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    network = build_network(args.model, args.attention_head_dim).eval()
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    sample(network, args.sample, args.sample_steps, generator)
    first_s = time.perf_counter() - start
    totals = []
    for _ in range(args.sample_repeats):
        start = time.perf_counter()
        sample(network, args.sample, args.sample_steps, generator)
        totals.append(time.perf_counter() - start)
    x = torch.randn((args.sample, *image_shape(network)), generator=generator)
    t = torch.full((args.sample,), 500)
    calls = []
    with torch.inference_mode():
        network(x, t)
        for _ in range(3):
            start = time.perf_counter()
            network(x, t)
            calls.append(time.perf_counter() - start)
    step_s = min(totals) / args.sample_steps
    return {
        "framework": "pytorch",
        "torch": torch.__version__,
        "diffusers": _version("diffusers"),
        "threads": torch.get_num_threads(),
        "model": args.model,
        "num_images": args.sample,
        "steps": args.sample_steps,
        "first_call_s": round(first_s, 1),
        "total_s": round(min(totals), 2),
        "step_s": round(step_s, 4),
        "network_call_s": round(min(calls), 4),
        "overhead_fraction": round((step_s - min(calls)) / step_s, 3),
        "images_per_s": round(args.sample / step_s, 2),
        "peak_rss_mb": round(peak_rss_mb()),
        "peak_rss_at_start_mb": round(rss_imported),
        "peak_anon_mb": round(anon_peak.peak),
        "anon_at_start_mb": anon_imported and round(anon_imported),
        "load_average": round(os.getloadavg()[0], 2),
        "parameters": sum(p.numel() for p in network.parameters()),
    }


# ===== Machine =====


def cpu_seconds():
    """User + system CPU time of this process (all threads)."""
    times = os.times()
    return times.user + times.system


def matmul_peak(size=2048, repeats=6):
    """The float32 matmul yardstick: `(wall GFLOP/s, GFLOP per CPU-second)`.

    2 n^3 FLOPs per product; the best of `repeats` products of `torch.matmul` and NumPy's
    `matmul`, whichever is fastest.
    """
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    a_np, b_np = a.numpy(), b.numpy()
    flops = 2 * size**3
    best_wall, best_cpu = float("inf"), float("inf")
    for product in (lambda: torch.matmul(a, b), lambda: np.matmul(a_np, b_np)):
        product()
        for _ in range(repeats):
            start, start_cpu = time.perf_counter(), cpu_seconds()
            product()
            best_wall = min(best_wall, time.perf_counter() - start)
            best_cpu = min(best_cpu, cpu_seconds() - start_cpu)
    return flops / best_wall / 1e9, flops / max(best_cpu, 1e-9) / 1e9


# ===== Benchmark =====


def run(args):
    rss_imported = peak_rss_mb()  # torch and numpy imported; diffusers on first use
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    network = build_network(args.model, args.attention_head_dim).to(memory_format=memory_format)
    network.train()
    train_flops_per_image = 3 * forward_flops(network, memory_format)
    trainer = Trainer(network, args.batch_size, memory_format, compile_network=args.compile)

    start = time.perf_counter()
    for _ in range(args.warmup):
        trainer.step()
    warmup_s = time.perf_counter() - start

    peak, peak_cpu = matmul_peak()
    step_times, step_cpu = [], []
    for _ in range(args.steps):
        start, start_cpu = time.perf_counter(), cpu_seconds()
        loss = trainer.step()
        step_times.append(time.perf_counter() - start)
        step_cpu.append(cpu_seconds() - start_cpu)
    peak, peak_cpu = (max(a, b) for a, b in zip((peak, peak_cpu), matmul_peak()))

    step_s = statistics.median(step_times)
    cpu_step_s = statistics.median(step_cpu)
    step_flops = train_flops_per_image * args.batch_size
    achieved = step_flops / step_s / 1e9
    return {
        "framework": "pytorch",
        "torch": torch.__version__,
        "diffusers": _version("diffusers"),
        "numpy": np.__version__,
        "threads": torch.get_num_threads(),
        "channels_last": bool(args.channels_last),
        "compile": bool(args.compile),
        "attention_head_dim": args.attention_head_dim,
        "model": args.model,
        "batch_size": args.batch_size,
        "warmup_s": round(warmup_s, 2),
        "step_s": round(step_s, 3),
        "step_times_s": [round(t, 3) for t in step_times],
        "images_per_s": round(args.batch_size / step_s, 2),
        "forward_gflop_per_image": round(train_flops_per_image / 3 / 1e9, 3),
        "train_gflop_per_image": round(train_flops_per_image / 1e9, 3),
        "gflops": round(achieved, 1),
        "peak_gflops": round(peak, 1),
        "fraction_of_peak": round(achieved / peak, 3),
        "cpu_s_per_step": round(cpu_step_s, 2),
        "cpu_fraction_of_peak": round(step_flops / cpu_step_s / 1e9 / peak_cpu, 3),
        "peak_rss_mb": round(peak_rss_mb()),
        "peak_rss_at_start_mb": round(rss_imported),
        "load_average": round(os.getloadavg()[0], 2),
        "parameters": sum(p.numel() for p in network.parameters()),
        "attention_layers": count_attention_layers(network),
        "last_loss": round(loss, 4) if args.steps else None,
    }


def _version(package):
    from importlib.metadata import version

    return version(package)


def table(result):
    rows = [
        ("torch", result["torch"]),
        ("diffusers", result["diffusers"]),
        ("threads", result["threads"]),
        ("channels_last", result["channels_last"]),
        ("torch.compile", result["compile"]),
        ("batch size", result["batch_size"]),
        ("step s (median)", f"{result['step_s']:.3f}"),
        ("img/s", f"{result['images_per_s']:.2f}"),
        ("forward GFLOP/image", f"{result['forward_gflop_per_image']:.3f}"),
        ("GFLOP/s", f"{result['gflops']:.1f}"),
        ("peak GFLOP/s", f"{result['peak_gflops']:.1f}"),
        ("% peak", f"{100 * result['fraction_of_peak']:.1f} %"),
        ("% peak (CPU)", f"{100 * result['cpu_fraction_of_peak']:.1f} %"),
        ("peak RSS", f"{result['peak_rss_mb']} MB"),
        ("parameters", f"{result['parameters']:,}"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="cifar10",
                        help="the U-Net: cifar10 (32x32x3, width 64; default) or digits "
                             "(8x8x1, the digits preset; batch 128 in benchmark_speed.py).")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="images per training step. Defaults to 32.")
    parser.add_argument("--steps", type=int, default=10,
                        help="timed training steps. Defaults to 10.")
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed training steps first. Defaults to 2.")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="torch.set_num_threads. Defaults to os.cpu_count().")
    parser.add_argument("--channels-last", action="store_true",
                        help="model and inputs in torch.channels_last memory format.")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the network (the warm-up then includes compiling).")
    parser.add_argument("--attention-head-dim", type=int, default=None,
                        help="attention head width; default: one head as wide as the feature "
                             "map, as keras_ddpm's. diffusers' own default is 8.")
    parser.add_argument("--sample", type=int, default=0, metavar="N",
                        help="measure sampling N images instead of training.")
    parser.add_argument("--sample-steps", type=int, default=20,
                        help="DPM-Solver++ steps with --sample. Defaults to 20.")
    parser.add_argument("--sample-repeats", type=int, default=2,
                        help="timed sampling runs with --sample. Defaults to 2.")
    return parser.parse_args()


def main():
    args = parse_args()
    if args.sample:
        result = run_sampling(args)
        print(", ".join(f"{key} {result[key]}" for key in
                        ("total_s", "network_call_s", "images_per_s", "peak_rss_mb")))
    else:
        result = run(args)
        print(table(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
