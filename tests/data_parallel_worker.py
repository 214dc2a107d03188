"""Run by `tests/test_backends.py` on JAX with two host devices: one step, one device or two.

Usage: `XLA_FLAGS=--xla_force_host_platform_device_count=2 KERAS_BACKEND=jax
python tests/data_parallel_worker.py OUT.npz`

The same tiny model (same weights, same seed) takes one SGD step (learning rate 1, so the
update is minus the gradient) on the same global batch of 8 images, first on one device, then
under `keras.distribution.DataParallel` over both. OUT gets each run's update of every weight
(`one_0`, `two_0`, ...), its loss, how many devices held the weights (`one_devices`,
`two_devices`) and the number of devices seen (`devices`).
"""

import sys

import numpy as np


def one_step(images, distribution):
    """`(loss, updates, devices)` of one SGD step from the seeded weights, under `distribution`;
    `devices`: how many devices hold a weight."""
    import keras
    import keras_ddpm
    from networks import tiny_unet

    keras.distribution.set_distribution(distribution)
    try:
        keras.utils.set_random_seed(0)
        model = keras_ddpm.DDPM(tiny_unet(), keras_ddpm.NoiseSchedule("linear", 50), seed=0)
        model.compile(optimizer=keras.optimizers.SGD(1.0))
        before = [keras.ops.convert_to_numpy(w) for w in model.network.trainable_weights]
        history = model.fit(images, batch_size=len(images), epochs=1, shuffle=False, verbose=0)
        after = [keras.ops.convert_to_numpy(w) for w in model.network.trainable_weights]
        placed = len(model.network.trainable_weights[0].value.sharding.device_set)
    finally:
        keras.distribution.set_distribution(None)
    return history.history["loss"][0], [a - b for a, b in zip(after, before)], placed


def main(out_path):
    import keras

    devices = keras.distribution.list_devices("cpu")
    ramp = np.linspace(-1, 1, 64, dtype="float32").reshape(1, 8, 8, 1)
    images = ramp * np.array([1, -1, 1, 1, -1, 1, -1, -1], "float32").reshape(8, 1, 1, 1)
    out = {"devices": np.array(len(devices))}
    runs = {"one": None, "two": keras.distribution.DataParallel(devices=devices)}
    for name, distribution in runs.items():
        loss, updates, placed = one_step(images, distribution)
        out[f"{name}_loss"] = np.array(loss)
        out[f"{name}_devices"] = np.array(placed)
        for i, update in enumerate(updates):
            out[f"{name}_{i}"] = update
    np.savez(out_path, **out)


if __name__ == "__main__":
    main(sys.argv[1])
