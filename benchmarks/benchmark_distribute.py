"""Training throughput on one device and under a MirroredStrategy over logical CPU devices.

The CPU is split into N logical devices (`tf.config.set_logical_device_configuration`),
which must happen before TensorFlow starts, so each configuration runs in a fresh
process of this script. Run from the repository root:

    python benchmarks/benchmark_distribute.py                  # 1 device vs 2 replicas
    python benchmarks/benchmark_distribute.py --jit-compile    # XLA (one device only:
                                                               # TensorFlow cannot compile
                                                               # a step over several devices)

Logical devices share the same cores, so this measures the cost of the
strategy's machinery (splitting batches, all-reducing gradients, mirrored
updates), not a speed-up: on real GPUs or hosts each replica brings its own
compute. The global batch is the same in every row; the first (tracing) step
is excluded and reported separately.
"""

import argparse
import json
import os
import subprocess
import sys
import time

QUICKSTART = dict(
    image_shape=(8, 8, 1),
    base_channels=32,
    channel_multipliers=(1, 2),
    num_res_blocks=1,
    attention_resolutions=(4,),
    dropout=0.0,
)


def measure(devices, batch_size, steps, jit_compile):
    """Images per second of `steps` training steps with `devices` logical CPU devices."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(devices)]
    )
    import keras
    import numpy as np

    import keras_ddpm

    strategy = (
        tf.distribute.MirroredStrategy([f"CPU:{i}" for i in range(devices)])
        if devices > 1
        else tf.distribute.get_strategy()
    )
    with strategy.scope():
        model = keras_ddpm.DDPM(keras_ddpm.UNet(**QUICKSTART), ema_decay=0.999, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit_compile)
    images = np.random.default_rng(0).uniform(-1, 1, (batch_size, 8, 8, 1)).astype("float32")
    data = tf.data.Dataset.from_tensors(images).repeat(steps + 1)
    start = time.perf_counter()
    model.fit(data.take(1), epochs=1, verbose=0)
    first = time.perf_counter() - start
    start = time.perf_counter()
    model.fit(data.take(steps), epochs=1, verbose=0)
    elapsed = time.perf_counter() - start
    return {
        "devices": devices,
        "replicas": strategy.num_replicas_in_sync,
        "jit_compile": jit_compile,
        "global_batch": batch_size,
        "first_step_s": round(first, 2),
        "images_per_s": round(steps * batch_size / elapsed, 1),
        "ms_per_step": round(1000 * elapsed / steps, 1),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2],
                        help="logical CPU devices per run (default: 1 2)")
    parser.add_argument("--batch-size", type=int, default=128, help="global batch (default: 128)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (default: 20)")
    parser.add_argument("--jit-compile", action="store_true", help="compile the step with XLA")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.devices[0], args.batch_size, args.steps, args.jit_compile)))
        return
    print(f"{'devices':>7} {'replicas':>8} {'XLA':>5} {'batch':>5} {'first step s':>12} "
          f"{'img/s':>8} {'ms/step':>8}")
    for devices in args.devices:
        command = [sys.executable, __file__, "--child", "--devices", str(devices),
                   "--batch-size", str(args.batch_size), "--steps", str(args.steps)]
        if args.jit_compile:
            command.append("--jit-compile")
        run = subprocess.run(command, capture_output=True, text=True)
        if run.returncode != 0:
            # XLA with several devices fails in TensorFlow: one compiled step
            # cannot reach the variables of the other replicas' devices.
            error = [line for line in run.stderr.splitlines() if line.strip()][-2:]
            print(f"{devices:>7} failed: {' '.join(error)[:300]}", flush=True)
            continue
        row = json.loads(run.stdout.strip().splitlines()[-1])
        print(f"{row['devices']:>7} {row['replicas']:>8} {str(row['jit_compile']):>5} "
              f"{row['global_batch']:>5} {row['first_step_s']:>12} {row['images_per_s']:>8} "
              f"{row['ms_per_step']:>8}", flush=True)


if __name__ == "__main__":
    main()
