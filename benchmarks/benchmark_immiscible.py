"""The cost of immiscible noise assignment per training step (issue 38, done-when 5).

Times `DDPM.train_on_batch` of the quick-start U-Net (`benchmark_speed.MODELS["quickstart"]`,
batch 128 of the embedded digits) with `noise_assignment="independent"` and `"immiscible"`,
the two alternating in rounds so that drift of the machine hits both alike, and the greedy
assignment alone (`training_noise.greedy_assignment`, compiled) at that batch.
Medians of `--rounds` rounds of `--steps` steps each, after a warm-up round.

    python benchmarks/benchmark_immiscible.py [--batch 128 --steps 20 --rounds 5]
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_ddpm  # noqa: E402
from keras_ddpm import training_noise  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from benchmark_few_steps import cpu_flags  # noqa: E402
from benchmark_speed import MODELS  # noqa: E402


def make_model(assignment):
    keras.utils.set_random_seed(0)
    network = keras_ddpm.UNet(**MODELS["quickstart"][0])
    model = keras_ddpm.DDPM(network, ema_decay=0.999, seed=0, noise_assignment=assignment)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    return model


def seconds_per_call(function, calls):
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    images, _ = keras_ddpm.data.load_digits_arrays()
    batch = images[: args.batch]
    models = {name: make_model(name) for name in training_noise.NOISE_ASSIGNMENTS}
    for model in models.values():  # warm-up: tracing and the first steps
        seconds_per_call(lambda model=model: model.train_on_batch(batch), 3)
    times = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            times[name].append(
                seconds_per_call(lambda model=model: model.train_on_batch(batch), args.steps)
            )
    noise = np.random.default_rng(0).standard_normal(batch.shape).astype("float32")
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        greedy = tf.function(training_noise.greedy_assignment, jit_compile=False)
    else:
        greedy = training_noise.greedy_assignment
    greedy(batch, noise)
    alone = [seconds_per_call(lambda: keras.ops.convert_to_numpy(greedy(batch, noise)), 20)
             for _ in range(args.rounds)]
    print(f"{keras.backend.backend()}, {os.cpu_count()} cores ({cpu_flags()}); quick-start "
          f"U-Net, batch {args.batch}; median of {args.rounds} rounds of {args.steps} steps")
    base = np.median(times["independent"])
    for name, values in times.items():
        median = np.median(values)
        print(f"  {name:12} {1e3 * median:7.1f} ms/step ({100 * (median / base - 1):+.1f} %)")
    print(f"  greedy assignment alone: {1e3 * np.median(alone):.2f} ms")


if __name__ == "__main__":
    main()
