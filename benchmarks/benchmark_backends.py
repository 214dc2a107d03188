"""The same DDPM on TensorFlow, JAX and PyTorch (Keras 3 backends), and PyTorch's diffusers.

Issue 37's speed question on the CPU: what does a Keras user gain or lose by picking another
backend, and how does each compare with the PyTorch reference (`benchmark_pytorch_reference.py`,
diffusers' `UNet2DModel` of the same architecture)? Run from the repository root:

    python benchmarks/benchmark_backends.py                      # digits and cifar10, ~25 min
    python benchmarks/benchmark_backends.py --model digits --pytorch /path/to/venv/bin/python

Each (model, backend) runs in its own process (`KERAS_BACKEND` set before Keras loads), the
backends one after the other in every round (`--rounds`, medians reported), so that a change of
the machine's load spreads over all of them. In each process:

1. training: `DDPM.fit` on a NumPy array (what runs on every backend), batch `--batch-size`
   (the model's default of `benchmark_speed.MODELS`), Adam with EMA, Keras' default
   compilation of each backend (TensorFlow: a `tf.function`, XLA left off on a CPU; JAX: its
   trainer's `jax.jit`; PyTorch: eager). One untimed epoch of one step first (it compiles,
   reported as `first_step_s`), then `--steps` steps, each timed to its loss (the loss read back
   as a float, so that JAX's asynchronous dispatch is inside the time); the median step.
2. sampling: `--num-images` images by `DDPM.generate(sampler="dpm_solver", steps=20)` (the
   compiled loop: a `tf.function` with XLA as `jit_compile="auto"` picks it, one `jax.jit`, or
   PyTorch's eager loop), one untimed call (compiling), then `--sample-repeats` timed; the best.

`--pytorch PYTHON` adds diffusers in PyTorch (an interpreter with torch and diffusers; it needs
neither TensorFlow nor keras_ddpm) for the same steps and images, in the same rounds.

The table gives images per second, sampling seconds, and each against TensorFlow's figure of
the same round set and against the PyTorch reference, with the CPU and its flags. The JSON goes
to `benchmarks/results/backends_<date>_<time>.json`.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchmark_speed import MODELS  # noqa: E402 - the U-Nets and their batches, stdlib only
from benchmark_speed import machine  # noqa: E402
from benchmark_speed import peak_rss_mb  # noqa: E402
from benchmark_speed import write_results  # noqa: E402

BACKENDS = ("tensorflow", "jax", "torch")
SAMPLER, SAMPLE_STEPS = "dpm_solver", 20
# Sampling batches: small enough for three backends and a reference in minutes on 2 cores.
NUM_IMAGES = {"digits": 64, "quickstart": 64, "cifar10": 8}
REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchmark_pytorch_reference.py")


def worker(args):
    """One (model, backend) in this process: the training and sampling figures, as a dict."""
    import keras
    import numpy as np

    import keras_ddpm

    network_config, _ = MODELS[args.model]
    model = keras_ddpm.DDPM(keras_ddpm.UNet(**network_config), ema_decay=0.9999, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(2e-4))
    shape = network_config["image_shape"]
    images = np.random.default_rng(0).uniform(-1, 1, (args.batch_size * args.steps, *shape))
    images = images.astype("float32")
    fit = dict(batch_size=args.batch_size, shuffle=False, verbose=0)

    class StepClock(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            float(logs["loss"])  # the step is done once its loss is on the host
            step_times.append(time.perf_counter() - self.start)

    step_times = []
    start = time.perf_counter()
    model.fit(images[: args.batch_size], epochs=1, **fit)
    first_step_s = time.perf_counter() - start
    model.fit(images, epochs=1, callbacks=[StepClock()], **fit)
    step_s = statistics.median(step_times)

    def generate():
        start = time.perf_counter()
        samples = model.generate(
            args.num_images, sampler=SAMPLER, steps=SAMPLE_STEPS, seed=0, verbose=0
        )
        keras.ops.convert_to_numpy(samples)
        return time.perf_counter() - start

    first_sample_s = generate()
    sample_s = min(generate() for _ in range(args.sample_repeats))
    return {
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "parameters": int(model.network.count_params()),
        "batch_size": args.batch_size,
        "first_step_s": round(first_step_s, 2),
        "step_s": round(step_s, 4),
        "images_per_s": round(args.batch_size / step_s, 2),
        "num_images": args.num_images,
        "first_sample_s": round(first_sample_s, 2),
        "sample_s": round(sample_s, 3),
        "peak_rss_mb": round(peak_rss_mb()),
    }


def run_backend(backend, args):
    """`worker` under `backend`, in a fresh process; its dict."""
    command = [
        sys.executable, os.path.abspath(__file__), "--worker", "--model", args.model,
        "--batch-size", str(args.batch_size), "--steps", str(args.steps),
        "--num-images", str(args.num_images), "--sample-repeats", str(args.sample_repeats),
    ]
    env = dict(os.environ, KERAS_BACKEND=backend)
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"{backend} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_reference(python, args):
    """diffusers in PyTorch under `python`: `{"images_per_s", "sample_s", ...}`."""
    common = [python, REFERENCE, "--model", args.model, "--batch-size", str(args.batch_size)]
    train = subprocess.run(common + ["--steps", str(args.steps)], capture_output=True,
                           text=True, check=True).stdout
    sample = subprocess.run(
        common + ["--sample", str(args.num_images), "--sample-steps", str(SAMPLE_STEPS),
                  "--sample-repeats", str(args.sample_repeats)],
        capture_output=True, text=True, check=True,
    ).stdout
    train, sample = (json.loads(out.strip().splitlines()[-1]) for out in (train, sample))
    return {
        "backend": "diffusers (PyTorch)",
        "torch": train["torch"],
        "diffusers": train["diffusers"],
        "parameters": train["parameters"],
        "step_s": train["step_s"],
        "images_per_s": train["images_per_s"],
        "first_sample_s": sample["first_call_s"],
        "sample_s": sample["total_s"],
    }


def summary(runs):
    """The median of every round's figures, per backend."""
    keys = ("step_s", "images_per_s", "sample_s", "first_step_s", "first_sample_s")
    out = dict(runs[0])
    for key in keys:
        if key in out:
            out[key] = round(statistics.median(run[key] for run in runs), 4)
    out["rounds"] = len(runs)
    return out


def table(model, results):
    base = results["tensorflow"] if "tensorflow" in results else None
    reference = results.get("reference")
    lines = [
        f"{model}: training img/s (batch {next(iter(results.values())).get('batch_size', '')}), "
        f"{SAMPLE_STEPS}-step DPM-Solver++ sampling",
        f"{'':22}{'img/s':>9}{'vs TF':>8}{'vs PyTorch':>12}{'sample s':>10}{'vs TF':>8}"
        f"{'vs PyTorch':>12}{'compile s':>11}",
    ]
    for name, result in results.items():
        row = f"{result['backend']:22}{result['images_per_s']:9.1f}"
        row += f"{result['images_per_s'] / base['images_per_s']:8.2f}" if base else " " * 8
        row += (f"{result['images_per_s'] / reference['images_per_s']:12.2f}" if reference
                else " " * 12)
        row += f"{result['sample_s']:10.2f}"
        # Sampling: how many times faster than TensorFlow / the reference (time ratio inverted).
        row += f"{base['sample_s'] / result['sample_s']:8.2f}" if base else " " * 8
        row += f"{reference['sample_s'] / result['sample_s']:12.2f}" if reference else " " * 12
        row += f"{result.get('first_step_s', float('nan')):11.1f}"
        lines.append(row)
    return "\n".join(lines)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", choices=sorted(MODELS),
                        help="a U-Net of benchmark_speed.MODELS; repeat for several. "
                             "Defaults to digits and cifar10.")
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help=f"comma-separated Keras backends. Defaults to {','.join(BACKENDS)}.")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="images per training step. Defaults to the model's batch.")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps. Default 5.")
    parser.add_argument("--num-images", type=int, default=None,
                        help=f"images sampled. Defaults to {NUM_IMAGES}.")
    parser.add_argument("--sample-repeats", type=int, default=2,
                        help="timed sampling calls. Defaults to 2.")
    parser.add_argument("--rounds", type=int, default=1, help="rounds (medians). Default 1.")
    parser.add_argument("--pytorch", metavar="PYTHON", default=None,
                        help="an interpreter with torch and diffusers: adds the reference.")
    parser.add_argument("--output", default=None, help="where the JSON goes.")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def main():
    args = parse_args()
    if args.worker:
        args.model = args.model[0]
        print(json.dumps(worker(args)))
        return
    description, flags = machine()
    print(description)
    everything = {"machine": description, "cpu_flags": flags, "models": {}}
    batch_size, num_images = args.batch_size, args.num_images
    for model in args.model or ["digits", "cifar10"]:
        args.model = model
        args.batch_size = batch_size or MODELS[model][1]
        args.num_images = num_images or NUM_IMAGES[model]
        runs = {}
        for _ in range(args.rounds):
            for backend in args.backends.split(","):
                runs.setdefault(backend, []).append(run_backend(backend, args))
            if args.pytorch:
                runs.setdefault("reference", []).append(run_reference(args.pytorch, args))
        results = {name: summary(values) for name, values in runs.items()}
        print(table(model, results), flush=True)
        everything["models"][model] = results
    write_results(everything, "backends", args.output)


if __name__ == "__main__":
    main()
