"""Training and sampling speed of the DDPM U-Net, as a fraction of this machine's matmul peak.

One command prints the table and records it:

    python benchmarks/benchmark_speed.py            # ~5 minutes on 2 idle CPU cores
    python benchmarks/benchmark_speed.py --onednn off --skip-bfloat16   # TensorFlow's default kernels
    python benchmarks/benchmark_speed.py --model digits --pytorch /path/to/venv/bin/python

`--model digits` measures `UNet.from_preset("digits")` (8x8x1, batch 128) and `--model quickstart`
the smaller U-Net of `examples/train_digits.py` (701k parameters, batch 128): where users start.
`--pytorch PYTHON` runs `benchmark_pytorch_reference.py` on the same model under an interpreter
that has torch and diffusers, alternating with the float32 training phase for `--rounds` rounds
(medians reported), then its sampling after the `sample` phase, and prints keras_ddpm's speed
over PyTorch's for both.

Every phase runs with TensorFlow's oneDNN kernels on (`--onednn on`, the default: what importing
keras_ddpm before TensorFlow gives on x86) or off (TensorFlow's own default on x86 CPUs without
AVX-512). `benchmark_pytorch_reference.py` measures the same network in PyTorch (diffusers).

What it measures (issue 8), each phase in its own process so that peak memory is per phase:

1. `peak`: the machine's yardstick, the best 2048 x 2048 float32 matmul of TensorFlow, XLA and
   NumPy's BLAS, measured before and after the figures inside every phase (the machine may be
   shared; every ratio uses its own process's peak).
2. `train float32` and `train mixed_bfloat16`: the DDPM U-Net at base width 64,
   channel multipliers (1, 2, 2, 2), attention at 16x16, 32x32x3 images, batch 32, Adam,
   EMA on, Keras' default compilation (no XLA on a CPU-only machine; `--train-jit` forces it);
   `--epochs` short epochs after a warm-up step (the bfloat16 run: 2 epochs of 1 step), resident
   memory recorded at the end of every epoch (growth = last minus first); tf.data autotuning off
   as in `keras_ddpm.data` (see `keras_ddpm.data.disable_autotune`).
3. `sample`: 64 images with 20 DPM-Solver++(2M) steps through `DDPM.generate`, with XLA as
   `jit_compile="auto"` resolves it for a loop run many times (`auto_jit` without a call
   length: XLA on a CPU only for small steps; a single 20-step call runs without it, see
   `benchmark_first_call.py`; `--sample-jit true|false` forces it), alternating with as many
   bare network calls on the same batch, compiled the same way, back to back; the per-step
   overhead is the step time beyond a call.

Every figure is also given per CPU-second ("% peak (CPU)"): FLOPs over the process's CPU time,
against the matmul's FLOPs per CPU-second. On a shared machine the wall-clock ratio moves with
the other processes' load; the CPU-time ratio moves much less.

How FLOPs are counted: 2 per multiply-add of every convolution, dense layer (1x1 shortcuts,
q/k/v/proj, the timestep MLP) and the two attention matmuls (q k^T and weights v), read off one
forward pass; normalisation, activations, softmax and additions are not counted. A training step
counts 3x the forward FLOPs (backward = 2x forward); a sampling step counts one forward.

The JSON goes to `benchmarks/results/speed_<date>.json`; the table compares every figure with
the newest earlier `speed_*.json` there and flags a drop of more than `--tolerance`.
"""

import argparse
import datetime
import glob
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def write_results(result, name, output=None):
    """Writes `result` as JSON to `output`, or to `results/<name>_<date>_<time>.json`; the path."""
    import datetime
    import json

    output = output or os.path.join(
        RESULTS_DIR, f"{name}_{datetime.datetime.now():%Y%m%d_%H%M%S}.json")
    with open(output, "w") as f:
        json.dump(result, f, indent=1)
    print(f"written {output}")
    return output


def machine():
    """`(description, flags)`: "<cpu>, N cores, CPU flags ..." and the speed-relevant CPU flags."""
    from keras_ddpm.backend import hardware

    flags = sorted((hardware.cpu_flags() or set()) & {"avx2", "avx512f", "avx512_bf16", "amx_bf16"})
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores, CPU flags {' '.join(flags)}", flags


NETWORK = dict(
    image_shape=(32, 32, 3),
    base_channels=64,
    channel_multipliers=(1, 2, 2, 2),
    num_res_blocks=2,
    attention_resolutions=(16,),
    dropout=0.1,
    norm_groups=32,
)
# `--model`: the U-Net and its default batch. digits is `UNet.from_preset("digits")` (3.99M
# parameters, 8x8x1), where users start; the same names in `benchmark_pytorch_reference.py`.
MODELS = {
    "cifar10": (NETWORK, 32),
    "digits": (dict(image_shape=(8, 8, 1), base_channels=64, channel_multipliers=(1, 2),
                    num_res_blocks=2, attention_resolutions=(4,), dropout=0.0, norm_groups=32), 128),
    # examples/train_digits.py, the quick start: the digits U-Net at width 32 with one residual
    # block a level, 701k parameters.
    "quickstart": (dict(image_shape=(8, 8, 1), base_channels=32, channel_multipliers=(1, 2),
                        num_res_blocks=1, attention_resolutions=(4,), dropout=0.0, norm_groups=32), 128),
}


# ===== Helpers (run inside a phase process) =====


def rss_mb():
    """Current resident set size in MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def status_mb(*names):
    """`{name: MiB}` for the named fields of `/proc/self/status` (`{}` where it cannot be read)."""
    values = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name in names:
                    values[name] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return values


def peak_rss_mb():
    """Peak resident set size of this process so far, in MiB.

    The kernel's `VmHWM`, which starts afresh at `exec`. Not `ru_maxrss`: Linux carries it
    over from the process that forked this one, so a child of a driver that imported
    TensorFlow (580 MB) never reported less than 580 MB.
    """
    peak = status_mb("VmHWM").get("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class AnonPeak:
    """Polls anonymous resident memory from a daemon thread; `peak` is the highest seen (MiB)."""

    def __init__(self, interval=0.005):
        self.peak = 0.0
        self.interval = interval
        threading.Thread(target=self._poll, daemon=True).start()

    def _poll(self):
        while True:
            self.peak = max(self.peak, status_mb("RssAnon").get("RssAnon", 0.0))
            time.sleep(self.interval)


def load_average():
    return round(os.getloadavg()[0], 2)


def cpu_seconds():
    """User + system CPU time of this process (all threads)."""
    times = os.times()
    return times.user + times.system


def matmul_peak(size=2048, repeats=6):
    """The float32 matmul yardstick: `(wall GFLOP/s, GFLOP per CPU-second)`.

    2 n^3 FLOPs per product; the best of `repeats` products with TensorFlow's kernel, XLA's
    and NumPy's BLAS, whichever is fastest. The CPU-time rate is robust to other processes
    sharing the cores.
    """
    import numpy as np
    import tensorflow as tf

    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    a_np, b_np = a.numpy(), b.numpy()
    flops = 2 * size**3
    best_wall, best_cpu = float("inf"), float("inf")
    products = (
        tf.function(tf.matmul, jit_compile=False),
        tf.function(tf.matmul, jit_compile=True),
        lambda a, b: np.matmul(a_np, b_np),
    )
    for product in products:
        np.asarray(product(a, b))
        for _ in range(repeats):
            start, start_cpu = time.perf_counter(), cpu_seconds()
            np.asarray(product(a, b))
            best_wall = min(best_wall, time.perf_counter() - start)
            best_cpu = min(best_cpu, cpu_seconds() - start_cpu)
    return flops / best_wall / 1e9, flops / best_cpu / 1e9


def forward_flops(network):
    """FLOPs of one forward pass for one image: 2 x multiply-adds of convs, denses, attention."""
    import keras
    import numpy as np

    from keras_ddpm.layers import AttentionBlock

    total = [0]
    originals = {}

    def counting(cls, count):
        original = cls.call
        originals[cls] = original

        def call(self, inputs, *args, **kwargs):
            outputs = original(self, inputs, *args, **kwargs)
            total[0] += count(self, inputs, outputs)
            return outputs

        cls.call = call

    def conv(layer, inputs, outputs):
        kh, kw, cin, cout = layer.kernel.shape
        return 2 * int(np.prod(outputs.shape[:-1])) * kh * kw * cin * cout

    def dense(layer, inputs, outputs):
        cin, cout = layer.kernel.shape
        return 2 * int(np.prod(outputs.shape[:-1])) * cin * cout

    def attention(layer, inputs, outputs):
        batch, height, width, channels = inputs.shape
        positions = height * width
        return 2 * 2 * batch * positions * positions * channels  # q k^T and weights v

    counting(keras.layers.Conv2D, conv)
    counting(keras.layers.Dense, dense)
    counting(AttentionBlock, attention)
    try:
        x = np.zeros((1,) + tuple(network.inputs[0].shape[1:]), "float32")
        inputs = [x, np.zeros((1,), "int32")]
        if getattr(network, "num_classes", None) is not None:
            inputs.append(np.zeros((1,), "int32"))
        network(inputs, training=False)
    finally:
        for cls, original in originals.items():
            cls.call = original
    return total[0]


def build_model(dtype, jit_compile, model="cifar10"):
    import keras

    import keras_ddpm

    keras.config.set_dtype_policy(dtype)
    network = keras_ddpm.UNet(**MODELS[model][0])
    model = keras_ddpm.DDPM(network, ema_decay=0.9999, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(2e-4), jit_compile=jit_compile)
    return network, model


# ===== Phases =====


def phase_train(args):
    import numpy as np
    import tensorflow as tf
    import keras

    import keras_ddpm

    rss_imported = rss_mb()
    network, model = build_model(args.dtype, True if args.train_jit else "auto", args.model)
    rss_built = rss_mb()
    flops_per_image = 3 * forward_flops(network)
    batch = args.batch_size
    shape = MODELS[args.model][0]["image_shape"]
    images = np.random.default_rng(0).uniform(-1, 1, (batch * args.steps_per_epoch, *shape))
    # Autotuning off, as in keras_ddpm.data's loaders: with it, an epoch's iterator is only
    # released at the autotuner's next wake-up (short epochs here took up to 10.24 s).
    data = keras_ddpm.data.disable_autotune(
        tf.data.Dataset.from_tensor_slices(images.astype("float32"))
        .batch(batch, drop_remainder=True)
        .cache()
        .prefetch(tf.data.AUTOTUNE)
    )

    class EpochClock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            float(logs["loss"])  # wait for the step
            epoch_times.append(time.perf_counter() - self.start)
            epoch_rss.append(rss_mb())

    epoch_times, epoch_rss = [], []
    start = time.perf_counter()
    model.fit(data.take(1), epochs=1, verbose=0)
    first_step = time.perf_counter() - start
    rss_first_step = rss_mb()
    peak, peak_cpu = matmul_peak()
    load_before = load_average()
    start_cpu = cpu_seconds()
    model.fit(data, epochs=args.epochs, verbose=0, callbacks=[EpochClock()])
    cpu_step_s = (cpu_seconds() - start_cpu) / (args.epochs * args.steps_per_epoch)
    # The first timed epoch can still include one-off costs; the median epoch is reported.
    step_s = float(np.median(epoch_times)) / args.steps_per_epoch
    peak, peak_cpu = (max(a, b) for a, b in zip((peak, peak_cpu), matmul_peak()))
    achieved = flops_per_image * batch / step_s / 1e9
    return {
        "onednn": keras_ddpm.convolution.onednn_enabled(),
        "dtype": args.dtype,
        "jit_compile": bool(model.jit_compile),
        "batch_size": batch,
        "first_step_s": round(first_step, 1),
        "step_s": round(step_s, 3),
        "epoch_s": [round(t, 2) for t in epoch_times],
        "images_per_s": round(batch / step_s, 2),
        "train_gflop_per_image": round(flops_per_image / 1e9, 3),
        "gflops": round(achieved, 1),
        "peak_gflops": round(peak, 1),
        "fraction_of_peak": round(achieved / peak, 3),
        "cpu_s_per_step": round(cpu_step_s, 2),
        "cpu_fraction_of_peak": round(flops_per_image * batch / cpu_step_s / 1e9 / peak_cpu, 3),
        "epoch_rss_mb": [round(r) for r in epoch_rss],
        # Where the memory goes: the libraries, the model (weights, EMA, Adam), the first step
        # (traced graph, buffers), then the peak of the timed epochs.
        "rss_breakdown_mb": {"imported": round(rss_imported), "model_built": round(rss_built),
                             "after_first_step": round(rss_first_step), "peak": round(peak_rss_mb())},
        "rss_growth_mb": round(epoch_rss[-1] - epoch_rss[0]),
        "rss_range_mb": round(max(epoch_rss) - min(epoch_rss)),
        "peak_rss_mb": round(peak_rss_mb()),
        "load_average": [load_before, load_average()],
        "parameters": int(network.count_params()),
    }


def phase_sample(args):
    import tensorflow as tf

    import keras_ddpm

    network, model = build_model("float32", "auto", args.model)
    flops_per_image = forward_flops(network)
    num_images, steps = args.num_images, args.sample_steps

    jit_compile = {"auto": "auto", "true": True, "false": False}[args.sample_jit]
    jit_compile = model.reverse_process().auto_jit(jit_compile, num_images)

    def generate():
        return model.generate(
            num_images, sampler="dpm_solver", steps=steps, seed=0, verbose=0,
            jit_compile=jit_compile,
        )

    # The bare network call the sampler makes every step, compiled the same way.
    ema = model.ema_network
    x = tf.random.normal((num_images, *MODELS[args.model][0]["image_shape"]))
    t = tf.fill((num_images,), 500)
    call = tf.function(lambda x, t: ema([x, t], training=False), jit_compile=jit_compile)

    def calls_in_a_row():  # as many calls as the sampler makes, back to back
        for _ in range(steps):
            y = call(x, t)
        return y.numpy()

    start = time.perf_counter()
    generate()
    first_call = time.perf_counter() - start
    call(x, t).numpy()
    peak, peak_cpu = matmul_peak()
    load_before = load_average()
    # Sampling and the bare calls alternate, the same number of network calls each, so that
    # the machine's load weighs on both alike; the fastest round of each is kept.
    totals, cpu_totals, calls, cpu_calls = [], [], [], []
    for _ in range(args.sample_repeats):
        for function, wall, cpu in ((generate, totals, cpu_totals), (calls_in_a_row, calls, cpu_calls)):
            start, start_cpu = time.perf_counter(), cpu_seconds()
            function()
            wall.append(time.perf_counter() - start)
            cpu.append(cpu_seconds() - start_cpu)
    step_s = min(totals) / steps
    cpu_step_s = min(cpu_totals) / steps
    call_s, cpu_call_s = min(calls) / steps, min(cpu_calls) / steps
    peak, peak_cpu = (max(a, b) for a, b in zip((peak, peak_cpu), matmul_peak()))
    achieved = flops_per_image * num_images / step_s / 1e9
    return {
        "onednn": keras_ddpm.convolution.onednn_enabled(),
        "num_images": num_images,
        "steps": steps,
        "jit_compile": bool(jit_compile),
        "first_call_s": round(first_call, 1),
        "total_s": round(min(totals), 2),
        "step_s": round(step_s, 4),
        "network_call_s": round(call_s, 4),
        "overhead_fraction": round((step_s - call_s) / step_s, 3),
        "cpu_step_s": round(cpu_step_s, 4),
        "cpu_network_call_s": round(cpu_call_s, 4),
        "cpu_overhead_fraction": round((cpu_step_s - cpu_call_s) / cpu_step_s, 3),
        "images_per_s": round(num_images / step_s, 2),
        "forward_gflop_per_image": round(flops_per_image / 1e9, 3),
        "gflops": round(achieved, 1),
        "peak_gflops": round(peak, 1),
        "fraction_of_peak": round(achieved / peak, 3),
        "cpu_fraction_of_peak": round(flops_per_image * num_images / cpu_step_s / 1e9 / peak_cpu, 3),
        "peak_rss_mb": round(peak_rss_mb()),
        "load_average": [load_before, load_average()],
    }


PHASES = {"train": phase_train, "sample": phase_sample}


# ===== Driver: one process per phase, a table, a JSON, a comparison =====


def run_phase(name, extra, onednn):
    command = [sys.executable, os.path.abspath(__file__), "--phase", name] + extra
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="1" if onednn == "on" else "0")
    output = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(output.strip().splitlines()[-1])


def run_pytorch(python, args, sample=False):
    """One run of `benchmark_pytorch_reference.py` under another interpreter (with torch).

    Training by default; with `sample`, the sampling of the `sample` phase (its `--sample`).
    """
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchmark_pytorch_reference.py")
    command = [python, script, "--model", args.model, "--batch-size", str(args.batch_size),
               "--steps", str(args.epochs * args.steps_per_epoch)]
    if sample:
        command += ["--sample", str(args.num_images), "--sample-steps", str(args.sample_steps),
                    "--sample-repeats", str(args.sample_repeats)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def median_run(runs):
    """The run with the median step time (the lower middle one of an even count)."""
    return sorted(runs, key=lambda run: run["step_s"])[(len(runs) - 1) // 2]


def previous_results(exclude, onednn, model="cifar10"):
    """The newest earlier results of `model` with the same oneDNN setting (older files: off, cifar10)."""
    paths = sorted(p for p in glob.glob(os.path.join(RESULTS_DIR, "speed_*.json")) if p != exclude)
    for path in reversed(paths):
        with open(path) as f:
            results = json.load(f)
        if results.get("onednn", "off") == onednn and results.get("model", "cifar10") == model:
            return path, results
    return None, None


def table(results, previous, tolerance):
    rows = []
    for key in ("train_float32", "train_mixed_bfloat16", "sample"):
        result = results.get(key)
        if result is None:
            continue
        step = result["step_s"]
        extra = (
            f"overhead {100 * result['overhead_fraction']:.1f} % of the step"
            if key == "sample"
            else f"RSS at the ends of {len(result['epoch_rss_mb'])} epochs: last - first "
            f"{result['rss_growth_mb']:+d} MB, max - min {result.get('rss_range_mb', 0)} MB"
        )
        rows.append(
            [
                key,
                f"{result['images_per_s']:.1f}",
                f"{step:.3f}",
                f"{result['gflops']:.0f}",
                f"{result['peak_gflops']:.0f}",
                f"{100 * result['fraction_of_peak']:.0f} %",
                f"{100 * result['cpu_fraction_of_peak']:.0f} %",
                f"{result['peak_rss_mb'] / 1024:.2f} GB",
                "/".join(str(a) for a in result["load_average"]),
                extra,
            ]
        )
        if previous and key in previous:
            old = previous[key]
            # Flagged only when both ratios drop: one alone is often the machine's load.
            change = result["fraction_of_peak"] / old["fraction_of_peak"]
            cpu_change = result["cpu_fraction_of_peak"] / old["cpu_fraction_of_peak"]
            regressed = max(change, cpu_change) < 1 - tolerance
            flag = "REGRESSION" if regressed else "ok"
            rows.append(
                [
                    "  previous",
                    f"{old['images_per_s']:.1f}",
                    f"{old['step_s']:.3f}",
                    f"{old['gflops']:.0f}",
                    f"{old['peak_gflops']:.0f}",
                    f"{100 * old['fraction_of_peak']:.0f} %",
                    f"{100 * old['cpu_fraction_of_peak']:.0f} %",
                    f"{old['peak_rss_mb'] / 1024:.2f} GB",
                    "/".join(str(a) for a in old["load_average"]),
                    f"% of peak now x{change:.2f} (CPU x{cpu_change:.2f}): {flag}",
                ]
            )
    header = [
        "run", "img/s", "step s", "GFLOP/s", "peak GFLOP/s", "% peak", "% peak (CPU)",
        "peak RSS", "load avg", "notes",
    ]
    widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=sorted(MODELS), default="cifar10",
                        help="cifar10: the 32x32x3 U-Net at width 64 (default); digits: "
                        "UNet.from_preset('digits'), 8x8x1, where users start")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="defaults to 32 for cifar10 and 128 for digits")
    parser.add_argument("--pytorch", metavar="PYTHON", default=None,
                        help="an interpreter with torch and diffusers: runs "
                        "benchmark_pytorch_reference.py on the same model, alternating with "
                        "the float32 training phase, and prints the ratio")
    parser.add_argument("--rounds", type=int, default=2,
                        help="float32 training rounds (each side with --pytorch); the median "
                        "is reported. Defaults to 2.")
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs. Defaults to 5.")
    parser.add_argument("--steps-per-epoch", type=int, default=2)
    parser.add_argument("--num-images", type=int, default=64)
    parser.add_argument("--sample-steps", type=int, default=20)
    parser.add_argument("--sample-repeats", type=int, default=2)
    parser.add_argument("--train-jit", action="store_true",
                        help="train with XLA (slower on CPU; for comparison)")
    parser.add_argument("--sample-jit", choices=("auto", "true", "false"), default="auto",
                        help="generate's jit_compile: auto (as resolved for repeated calls), or "
                        "XLA forced on or off (for comparison)")
    parser.add_argument("--onednn", choices=("on", "off"), default="on",
                        help="TensorFlow's oneDNN kernels: on (what importing keras_ddpm first "
                        "gives on x86) or off (TensorFlow's default on CPUs without AVX-512). "
                        "Defaults to on.")
    parser.add_argument("--skip-bfloat16", action="store_true")
    parser.add_argument("--skip-sampling", action="store_true")
    parser.add_argument("--tolerance", type=float, default=0.1,
                        help="relative drop in %% of peak flagged as a regression. Defaults to 0.1.")
    parser.add_argument("--output", default=None, help="JSON path; defaults to results/speed_<now>.json")
    args = parser.parse_args()
    if args.batch_size is None:
        args.batch_size = MODELS[args.model][1]

    if args.phase:
        print(json.dumps(PHASES[args.phase](args)))
        return

    common = [
        "--model", args.model, "--batch-size", str(args.batch_size), "--epochs", str(args.epochs),
        "--steps-per-epoch", str(args.steps_per_epoch), "--num-images", str(args.num_images),
        "--sample-steps", str(args.sample_steps), "--sample-repeats", str(args.sample_repeats),
    ] + (["--train-jit"] if args.train_jit else []) + ["--sample-jit", args.sample_jit]
    import tensorflow as tf
    import keras

    results = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {_cpu_name()}, {os.cpu_count()} cores, "
        f"{'bf16' if _has_bf16() else 'no native bf16'}; TF {tf.__version__}, Keras {keras.__version__}",
        "model": args.model,
        "network": {k: list(v) if isinstance(v, tuple) else v for k, v in MODELS[args.model][0].items()},
        "onednn": args.onednn,
    }
    ours, theirs = [], []
    for round_ in range(args.rounds):  # alternating sides: PyTorch first in odd rounds
        if args.pytorch and round_ % 2:
            theirs.append(run_pytorch(args.pytorch, args))
        ours.append(run_phase("train", common + ["--dtype", "float32"], args.onednn))
        if args.pytorch and not round_ % 2:
            theirs.append(run_pytorch(args.pytorch, args))
    results["train_float32"] = median_run(ours)
    results["train_float32_rounds_img_s"] = [run["images_per_s"] for run in ours]
    if theirs:
        results["pytorch_train_float32"] = median_run(theirs)
        results["pytorch_rounds_img_s"] = [run["images_per_s"] for run in theirs]
        results["speed_vs_pytorch"] = round(
            results["train_float32"]["images_per_s"] / results["pytorch_train_float32"]["images_per_s"], 2
        )
    if not args.skip_bfloat16:
        # Without native bfloat16 a step can take several times longer: two 1-step epochs.
        bf16 = common + ["--dtype", "mixed_bfloat16"] + (
            [] if _has_bf16() else ["--epochs", "2", "--steps-per-epoch", "1"])
        results["train_mixed_bfloat16"] = run_phase("train", bf16, args.onednn)
        results["bfloat16_speedup"] = round(
            results["train_float32"]["step_s"] / results["train_mixed_bfloat16"]["step_s"], 2
        )
    if not args.skip_sampling:
        results["sample"] = run_phase("sample", common, args.onednn)
        if args.pytorch:
            results["pytorch_sample"] = run_pytorch(args.pytorch, args, sample=True)
            results["sampling_speed_vs_pytorch"] = round(
                results["pytorch_sample"]["total_s"] / results["sample"]["total_s"], 2)

    output = args.output or os.path.join(
        RESULTS_DIR, f"speed_{datetime.datetime.now():%Y%m%d_%H%M%S}.json"
    )
    previous_path, previous = previous_results(os.path.abspath(output), args.onednn, args.model)
    print(f"{results['machine']}; oneDNN {args.onednn}")
    print(table(results, previous, args.tolerance))
    print(f"float32 training, {args.rounds} rounds: {results['train_float32_rounds_img_s']} img/s")
    if "speed_vs_pytorch" in results:
        print(f"PyTorch {results['pytorch_train_float32']['torch']} (diffusers), same model and "
              f"batch, alternated: {results['pytorch_rounds_img_s']} img/s; keras_ddpm / PyTorch: "
              f"x{results['speed_vs_pytorch']} (median rounds)")
    if "sampling_speed_vs_pytorch" in results:
        theirs = results["pytorch_sample"]
        print(f"sampling {theirs['num_images']} images, {theirs['steps']} DPM-Solver++ steps: "
              f"PyTorch {theirs['total_s']} s, peak {theirs['peak_rss_mb'] / 1024:.2f} GB; "
              f"keras_ddpm / PyTorch speed: x{results['sampling_speed_vs_pytorch']}")
    if "bfloat16_speedup" in results:
        print(f"mixed_bfloat16 / float32 training speed: x{results['bfloat16_speedup']}")
    if previous_path:
        print(f"compared with {os.path.relpath(previous_path)}")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {os.path.relpath(output)}")


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _has_bf16():
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


if __name__ == "__main__":
    main()
