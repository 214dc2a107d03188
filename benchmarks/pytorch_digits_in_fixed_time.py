"""PyTorch side of `benchmark_fixed_time.py`: a recipe, trained for a fixed time.

diffusers' `UNet2DModel` built as the U-Net of `examples/train_digits.py` (the `quickstart`
network of `benchmark_pytorch_reference.py`, 701,345 parameters) trains on the digits the
driver wrote as a `.npy` file: batches in a fresh random order every epoch (the last, smaller
batch kept, as `keras_ddpm.data.load_digits` does), t uniform, the linear schedule and the
epsilon MSE, with one of two recipes (`--recipe`, `RECIPES`):

- `quickstart`: ours (`examples/train_digits.py`): batches of 128, Adam at 2e-3, an EMA of
  decay 0.999 with the warm-up `min(0.999, (1 + n) / (10 + n))` of `keras_ddpm.DDPM`;
- `diffusers`: the defaults of diffusers' `examples/unconditional_image_generation/
  train_unconditional.py`: batches of 16; AdamW at 1e-4, betas (0.95, 0.999), weight decay
  1e-6, eps 1e-8; a linear warm-up over 500 steps then a cosine decay to 0 at the end of
  training; gradients clipped to norm 1; an EMA whose decay at update n is
  `min(0.9999, 1 - n^(-3/4))` (inv_gamma 1, power 3/4; 0 at the first update, a copy), as
  diffusers' `EMAModel.get_decay` gives it. The script plans its cosine over its epochs; here the
  length of training is a wall-clock budget, so the cosine runs over the time left when the
  warm-up ends. Its random horizontal flip is left out: a mirrored digit is not a digit.

Training stops at the first step that ends after `--seconds`, counted from before the
network is built (as the Keras side counts from before its model is built). Then `--num`
images are drawn with the EMA weights by diffusers' DPM-Solver++(2M) in 20 steps and saved
channels-last in [-1, 1].

It imports neither TensorFlow nor keras_ddpm. Prints one JSON line.
"""

import argparse
import json
import math
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np
import torch
import torch.nn.functional as F

from benchmark_pytorch_reference import NUM_TIMESTEPS, alphas_cumprod, build_network, sample

# The two recipes (see the module's docstring).
RECIPES = {
    "quickstart": dict(batch_size=128, learning_rate=2e-3, betas=(0.9, 0.999), weight_decay=0.0,
                       eps=1e-8, warmup_steps=0, cosine=False, clip_norm=None),
    "diffusers": dict(batch_size=16, learning_rate=1e-4, betas=(0.95, 0.999), weight_decay=1e-6,
                      eps=1e-8, warmup_steps=500, cosine=True, clip_norm=1.0),
}


def ema_decay(recipe, n):
    """The EMA decay of update n (1-based) under `recipe`."""
    if recipe == "diffusers":
        return 0.0 if n <= 1 else min(0.9999, 1.0 - n ** -0.75)
    return min(0.999, (1 + n) / (10 + n))


def learning_rate(settings, step, elapsed, warmup_end, seconds):
    """The rate of optimizer step `step` (0-based): warm-up by steps, cosine by time left."""
    rate = settings["learning_rate"]
    if step < settings["warmup_steps"]:
        return rate * step / settings["warmup_steps"]
    if not settings["cosine"]:
        return rate
    progress = min(1.0, (elapsed - warmup_end) / max(seconds - warmup_end, 1e-9))
    return rate * 0.5 * (1.0 + math.cos(math.pi * progress))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("digits", help=".npy of the training images, (N, 8, 8, 1) in [-1, 1]")
    parser.add_argument("out", help=".npy for the generated images")
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--num", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recipe", choices=list(RECIPES), default="quickstart")
    args = parser.parse_args()
    settings = RECIPES[args.recipe]

    torch.manual_seed(args.seed)
    torch.set_num_threads(os.cpu_count())
    images = torch.from_numpy(np.load(args.digits).transpose(0, 3, 1, 2).copy())
    start = time.perf_counter()
    network = build_network("quickstart")
    # torch's AdamW with weight decay 0 is its Adam (the quick-start recipe).
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=settings["learning_rate"], betas=settings["betas"],
        weight_decay=settings["weight_decay"], eps=settings["eps"],
    )
    params = [p for p in network.parameters() if p.requires_grad]
    ema = [p.detach().clone() for p in params]
    abar = alphas_cumprod()
    generator = torch.Generator().manual_seed(args.seed)
    steps = epochs = seen = 0
    warmup_end = None  # seconds into training when the warm-up ended
    losses = []
    while time.perf_counter() - start < args.seconds:
        order = torch.randperm(len(images), generator=generator)
        for batch in order.split(settings["batch_size"]):
            x0 = images[batch]
            t = torch.randint(0, NUM_TIMESTEPS, (len(x0),), generator=generator)
            eps = torch.randn(x0.shape, generator=generator)
            a = abar[t].view(-1, 1, 1, 1)
            loss = F.mse_loss(network(a.sqrt() * x0 + (1 - a).sqrt() * eps, t).sample, eps)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if settings["clip_norm"] is not None:
                torch.nn.utils.clip_grad_norm_(network.parameters(), settings["clip_norm"])
            elapsed = time.perf_counter() - start
            if warmup_end is None and steps >= settings["warmup_steps"]:
                warmup_end = elapsed
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(settings, steps, elapsed, warmup_end, args.seconds)
            optimizer.step()
            steps += 1
            seen += len(x0)
            decay = ema_decay(args.recipe, steps)
            with torch.no_grad():
                torch._foreach_mul_(ema, decay)
                torch._foreach_add_(ema, params, alpha=1 - decay)
            losses.append(loss.item())
            if time.perf_counter() - start >= args.seconds:
                break
        epochs += 1
    train_s = time.perf_counter() - start

    with torch.no_grad():
        for p, e in zip(params, ema):
            p.copy_(e)
    network.eval()
    start = time.perf_counter()
    generated = sample(network, args.num, 20, torch.Generator().manual_seed(args.seed))
    sample_s = time.perf_counter() - start
    np.save(args.out, generated.clamp(-1, 1).numpy().transpose(0, 2, 3, 1))
    print(json.dumps({
        "framework": "pytorch", "recipe": args.recipe, "torch": torch.__version__, "train_s": round(train_s, 1),
        "steps": steps, "epochs_started": epochs, "images_per_s": round(seen / train_s, 1),
        "last_100_loss": round(float(np.mean(losses[-100:])), 4), "sample_s": round(sample_s, 2),
        "parameters": sum(p.numel() for p in network.parameters()),
    }))


if __name__ == "__main__":
    main()
