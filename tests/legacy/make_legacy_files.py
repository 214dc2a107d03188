"""Writes the saved files that tests/test_legacy_files.py loads with today's code.

Run with the keras_ddpm of the commit named in tests/legacy/README.md:

    python tests/legacy/make_legacy_files.py tests/legacy

It trains a tiny U-Net DDPM for a few steps (so that the EMA weights differ
from the raw ones), saves it as `.keras`, exports it as a SavedModel, and
records the images both produce for fixed seeds.
"""

import os
import sys

import keras
import numpy as np
import tensorflow as tf

import keras_ddpm


def main(folder):
    keras.utils.set_random_seed(0)
    network = keras_ddpm.UNet(
        (8, 8, 1), base_channels=8, channel_multipliers=(1, 2), num_res_blocks=1,
        attention_resolutions=(4,), dropout=0.0, norm_groups=4,
    )
    model = keras_ddpm.DDPM(
        network, schedule=keras_ddpm.NoiseSchedule("linear", timesteps=50),
        ema_decay=0.9, seed=0,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    images, _ = keras_ddpm.data.load_digits_arrays()
    model.fit(images[:64], batch_size=32, epochs=2, verbose=0)
    model.save(os.path.join(folder, "unconditional.keras"))

    outputs = {}
    for sampler in ("ddpm", "ddim", "dpm_solver"):
        generated = model.generate(4, sampler=sampler, seed=3, jit_compile=False, verbose=0)
        outputs[f"generate_{sampler}"] = generated
        outputs[f"generate_{sampler}_raw"] = model.generate(
            4, sampler=sampler, seed=3, use_ema=False, jit_compile=False, verbose=0
        )
    x_t = np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype("float32")
    t = np.array([0, 10, 30, 49], "int32")
    outputs["denoise_x_t"], outputs["denoise_t"] = x_t, t
    outputs["denoise_ema"] = model.ema_network([x_t, t]).numpy()

    export_dir = os.path.join(folder, "unconditional_savedmodel")
    model.export(export_dir, sampler="ddim", verbose=False)
    loaded = tf.saved_model.load(export_dir)
    outputs["savedmodel_generate"] = loaded.generate(
        num_images=tf.constant(4), steps=tf.constant(10), seed=tf.constant(3)
    ).numpy()
    outputs["savedmodel_ddpm"] = loaded.generate_with_sampler(
        num_images=tf.constant(4), steps=tf.constant(0), seed=tf.constant(3),
        sampler=tf.constant("ddpm"), eta=tf.constant(0.0),
    ).numpy()
    outputs["savedmodel_denoise"] = loaded.denoise(x_t=x_t, t=t).numpy()
    np.savez(os.path.join(folder, "unconditional_outputs.npz"), **outputs)


if __name__ == "__main__":
    main(sys.argv[1])
