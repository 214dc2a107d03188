"""Training throughput, sampling time and peak memory of one DDPM configuration.

Prints one table row per measurement. Run from the repository root:

    python benchmarks/benchmark_core.py                       # the quick-start digits model
    python benchmarks/benchmark_core.py --preset ddpm_cifar10 --batch-size 32 --sample-steps 20

Figures are wall-clock on whatever machine runs them; the first (tracing) step is
excluded from the throughput and reported separately.
"""

import argparse
import json
import os
import platform
import resource
import time

import keras
import numpy as np
import tensorflow as tf

import keras_ddpm

QUICKSTART = dict(
    image_shape=(8, 8, 1),
    base_channels=32,
    channel_multipliers=(1, 2),
    num_res_blocks=1,
    attention_resolutions=(4,),
    dropout=0.0,
)


def peak_memory_mb():
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_network(args):
    if args.preset:
        return keras_ddpm.UNet.from_preset(args.preset)
    return keras_ddpm.UNet(**QUICKSTART)


def time_training(model, image_shape, batch_size, steps):
    images = np.random.default_rng(0).uniform(-1, 1, (batch_size,) + image_shape).astype("float32")
    data = tf.data.Dataset.from_tensors(images).repeat(steps + 1)
    start = time.perf_counter()
    model.fit(data.take(1), epochs=1, verbose=0)
    first = time.perf_counter() - start
    start = time.perf_counter()
    model.fit(data.take(steps), epochs=1, verbose=0)
    elapsed = time.perf_counter() - start
    return first, steps * batch_size / elapsed, elapsed / steps


def time_sampling(model, num_images, steps):
    run = model.reverse_process().loop("ddpm", jit_compile=True)
    x = tf.random.normal((num_images,) + model.image_shape)
    seed, total = tf.constant([0, 0]), tf.constant(steps)
    start = time.perf_counter()
    run(x, seed, tf.constant(0), tf.constant(1), total).numpy()
    first = time.perf_counter() - start
    start = time.perf_counter()
    run(x, seed, tf.constant(0), total, total).numpy()
    per_step = (time.perf_counter() - start) / steps
    return first, per_step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None, help="a UNet preset; default: the quick-start digits model")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--num-images", type=int, default=64)
    parser.add_argument("--sample-steps", type=int, default=50, help="reverse steps timed (of the 1000)")
    parser.add_argument("--jit-compile", action="store_true")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()

    network = build_network(args)
    image_shape = tuple(network.inputs[0].shape[1:])
    model = keras_ddpm.DDPM(network, ema_decay=0.9999)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), jit_compile=args.jit_compile)

    first_train, images_per_s, step_s = time_training(model, image_shape, args.batch_size, args.train_steps)
    train_memory = peak_memory_mb()
    first_sample, sample_step_s = time_sampling(model, args.num_images, args.sample_steps)
    timesteps = model.schedule.timesteps

    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, TF {tf.__version__}, Keras {keras.__version__}",
        "model": args.preset or "quickstart digits UNet",
        "parameters": int(network.count_params()),
        "image_shape": list(image_shape),
        "jit_compile": bool(args.jit_compile),
        "train_batch_size": args.batch_size,
        "train_first_step_s": round(first_train, 2),
        "train_step_s": round(step_s, 4),
        "train_images_per_s": round(images_per_s, 1),
        "train_peak_rss_mb": round(train_memory, 0),
        "sample_batch": args.num_images,
        "sample_step_s": round(sample_step_s, 4),
        "sample_s_per_image_1000_steps": round(sample_step_s * timesteps / args.num_images, 3),
        "sample_first_call_s": round(first_sample, 2),
        "peak_rss_mb": round(peak_memory_mb(), 0),
    }
    width = max(map(len, results))
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
