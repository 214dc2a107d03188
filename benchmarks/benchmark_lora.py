"""LoRA fine-tuning against full fine-tuning of the same network, in the same run.

For each way of training (every weight; LoRA on every kernel; LoRA on the attention layers
only) a fresh DDPM of the same seeded network is compiled with Adam and fitted: prints the
trainable weights, the optimizer's state, the training throughput after the traced first
call, and the size of the saved `.keras` file (EMA copy included). Run from the repository
root:

    python benchmarks/benchmark_lora.py                          # the CIFAR-10 U-Net, batch 8
    python benchmarks/benchmark_lora.py --preset digits --batch-size 64 --steps 20

Figures are wall-clock on whatever machine runs them, with its CPU flags printed beside them.
"""

import argparse
import os
import tempfile
import time

import keras
import numpy as np

import keras_ddpm

ATTENTION = ["q", "k", "v", "proj_out"]
MODES = {
    "full fine-tuning": None,
    "LoRA, every kernel": {},
    "LoRA, attention only": {"target_names": ATTENTION},
}


def cpu_flags():
    """The CPU's vector flags that decide these figures (Linux)."""
    try:
        with open("/proc/cpuinfo") as info:
            flags = next(line for line in info if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    return ", ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags)


def measure(args, lora_arguments, images):
    keras.utils.set_random_seed(0)
    network = keras_ddpm.UNet.from_preset(args.preset, dropout=0.0)
    model = keras_ddpm.DDPM(network, seed=0)
    if lora_arguments is not None:
        model.enable_lora(args.rank, **lora_arguments)
    model.compile(optimizer=keras.optimizers.Adam(1e-4))
    model.fit(images[: args.batch_size], batch_size=args.batch_size, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(images, batch_size=args.batch_size, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    trainable = sum(int(np.prod(w.shape)) for w in model.network.trainable_weights)
    state = sum(int(np.prod(v.shape)) * 4 for v in model.optimizer.variables)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.keras")
        model.save(path)
        size = os.path.getsize(path)
    return trainable, state, len(images) / seconds, size


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="ddpm_cifar10")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6, help="timed steps after the first call")
    parser.add_argument("--rank", type=int, default=8)
    args = parser.parse_args()
    shape = keras_ddpm.unet.PRESETS[args.preset]["image_shape"]
    images = np.random.default_rng(0).uniform(
        -1, 1, (args.batch_size * args.steps, *shape)
    ).astype("float32")
    print(f"{args.preset}, batch {args.batch_size}, rank {args.rank}, Keras backend "
          f"{keras.backend.backend()}, CPU flags: {cpu_flags()}, {os.cpu_count()} cores")
    print("| training | trainable weights | optimizer state | train img/s | .keras file |")
    print("| --- | --- | --- | --- | --- |")
    for name, lora_arguments in MODES.items():
        trainable, state, speed, size = measure(args, lora_arguments, images)
        print(f"| {name} | {trainable:,} | {state / 2**20:.1f} MiB | {speed:.2f} | "
              f"{size / 2**20:.0f} MB |", flush=True)


if __name__ == "__main__":
    main()
