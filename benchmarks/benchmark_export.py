"""SavedModel export: size on disk, export time, and load + generate time without keras_ddpm.

For each network (untrained weights: the figures do not depend on them) this
exports a DDPM with `model.export`, then, in a fresh Python process that
imports only TensorFlow, times `tf.saved_model.load` and two calls of
`generate(num_images=16, ...)` (the first includes TensorFlow's one-off graph
set-up). Prints one JSON object per network.

    python benchmarks/benchmark_export.py                         # quick-start digits + CIFAR-10
    python benchmarks/benchmark_export.py --networks digits --steps 50
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import keras

import keras_ddpm

NETWORKS = {
    # The quick-start network of examples/train_digits.py (701k parameters).
    "quickstart": lambda: keras_ddpm.UNet(
        (8, 8, 1), base_channels=32, channel_multipliers=(1, 2), num_res_blocks=1,
        attention_resolutions=(4,), dropout=0.0,
    ),
    "digits": lambda: keras_ddpm.UNet.from_preset("digits"),
    "ddpm_cifar10": lambda: keras_ddpm.UNet.from_preset("ddpm_cifar10"),
}

# Runs in a process that never imports keras_ddpm (checked).
LOAD_AND_GENERATE = """
import json, sys, time
start = time.perf_counter()
import tensorflow as tf
imported = time.perf_counter()
loaded = tf.saved_model.load(sys.argv[1])
load = time.perf_counter()
images = loaded.generate_with_sampler(num_images=16, steps=int(sys.argv[2]), seed=0,
                                      sampler=sys.argv[3], eta=0.0)
first = time.perf_counter()
images = loaded.generate_with_sampler(num_images=16, steps=int(sys.argv[2]), seed=1,
                                      sampler=sys.argv[3], eta=0.0)
second = time.perf_counter()
assert "keras_ddpm" not in sys.modules and images.shape[0] == 16
print(json.dumps({"import_tf_s": imported - start, "load_s": load - imported,
                  "first_generate_s": first - load, "second_generate_s": second - first}))
"""


def directory_size(path):
    return sum(
        os.path.getsize(os.path.join(folder, name))
        for folder, _, names in os.walk(path)
        for name in names
    )


def measure(name, steps, sampler, folder):
    network = NETWORKS[name]()
    model = keras_ddpm.DDPM(network, schedule=keras_ddpm.NoiseSchedule("linear", 1000))
    path = os.path.join(folder, name)
    start = time.perf_counter()
    model.export(path, verbose=False)
    export_s = time.perf_counter() - start
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", LOAD_AND_GENERATE, path, str(steps), sampler],
        capture_output=True, text=True, env=env, check=True,
    )
    timings = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "network": name,
        "parameters": network.count_params(),
        "savedmodel_mb": round(directory_size(path) / 1e6, 1),
        "variables_mb": round(directory_size(os.path.join(path, "variables")) / 1e6, 1),
        "export_s": round(export_s, 1),
        "sampler": sampler,
        "steps": steps,
        **{key: round(value, 2) for key, value in timings.items()},
        "second_generate_s_per_step": round(timings["second_generate_s"] / steps, 3),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default="quickstart,ddpm_cifar10",
                        help=f"comma-separated subset of {','.join(NETWORKS)}")
    parser.add_argument("--steps", type=int, default=50, help="sampling steps of the 8x8 networks")
    parser.add_argument("--cifar-steps", type=int, default=5,
                        help="sampling steps of the CIFAR-10 network (seconds per step on a CPU)")
    parser.add_argument("--sampler", default="ddim")
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        for name in args.networks.split(","):
            steps = args.cifar_steps if name == "ddpm_cifar10" else args.steps
            print(json.dumps(measure(name, steps, args.sampler, folder)), flush=True)


if __name__ == "__main__":
    main()
