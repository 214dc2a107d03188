"""Run by `tests/test_backends.py` as on a machine without TensorFlow (the GPU machines).

Usage: `KERAS_BACKEND=jax python tests/no_tensorflow_worker.py OUT_DIR [PART]`

TensorFlow is made unimportable first (`refuse_tensorflow`, as a missing package would be),
then the package is imported. PART `package` (the default): a tiny model fits NumPy arrays,
samples, inpaints, is saved and loaded back, and its bits/dim are evaluated. PART
`command_line`: the command line trains a class-conditional model on the digits (their labels
read by `load_digits_batches`), samples and evaluates, trains on a folder of images
(`load_image_folder_batches`) and refuses a TFDS dataset in one line; it runs with
`--jit-compile auto` (compiled on JAX, where an eager step of the tiny model took 2 s).
OUT_DIR gets `outputs.npz` (and, from `package`, `model.keras`): the losses, the images before
and after the round trip, the errors of what needs TensorFlow (export, a `tf.data` loader, a
TensorBoard grid), what the command line did, and whether TensorFlow got loaded at all
(`tensorflow_loaded`).
"""

import os
import sys

import numpy as np


def refuse_tensorflow():
    """Makes `import tensorflow` fail and `importlib.util.find_spec` answer `None`, as for a
    package that is not installed (`None` in `sys.modules` does both)."""
    sys.modules["tensorflow"] = None


def tensorflow_loaded():
    return sys.modules.get("tensorflow") is not None


def main(out_dir, part="package"):
    refuse_tensorflow()
    out = {"package": package, "command_line": command_line}[part](out_dir)
    out["tensorflow_loaded"] = np.array(tensorflow_loaded())
    np.savez(os.path.join(out_dir, "outputs.npz"), **out)


def package(out_dir):
    """The Python API: fit, generate, inpaint, save, load, bits/dim, TensorFlow's refusals."""
    import keras
    import keras_ddpm
    from networks import tiny_unet

    model = keras_ddpm.DDPM(tiny_unet(), keras_ddpm.NoiseSchedule("cosine", 50), seed=0,
                            ema_decay=0.9)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    ramp = np.linspace(-1, 1, 64, dtype="float32").reshape(1, 8, 8, 1)
    images = ramp * np.array([1.0, -1.0] * 8, "float32").reshape(16, 1, 1, 1)
    history = model.fit(images, batch_size=4, epochs=3, verbose=0).history
    out = {"loss": np.array(history["loss"])}
    common = dict(steps=5, seed=0, verbose=0)
    out["generate"] = model.generate(2, sampler="dpm_solver", **common)
    mask = np.zeros((2, 8, 8, 1), "float32")
    mask[:, :, :4] = 1.0
    out["inpaint"] = model.inpaint(images[:2], mask, **common)
    path = os.path.join(out_dir, "model.keras")
    model.save(path)
    loaded = keras_ddpm.load_model(path)
    out["generate_loaded"] = loaded.generate(2, sampler="dpm_solver", **common)
    out["bits_per_dim"] = np.array(keras_ddpm.metrics.bits_per_dim(loaded, images[:4], verbose=0))
    # What needs TensorFlow says so in one line.
    attempts = {
        "export_error": lambda: loaded.export(os.path.join(out_dir, "exported")),
        "loader_error": lambda: keras_ddpm.data.load_digits(batch_size=4),
        "tensorboard_error": lambda: keras_ddpm.callbacks.SampleGrid(
            os.path.join(out_dir, "grids"), tensorboard_dir=os.path.join(out_dir, "logs")
        ),
    }
    for name, attempt in attempts.items():
        try:
            attempt()
        except ValueError as error:
            out[name] = np.array(str(error))
    return out


# A tiny network for the command line's runs (as `tests/test_cli.py`'s TINY).
TINY = ["--base-channels", "8", "--channel-multipliers", "1", "--num-res-blocks", "1",
        "--attention-resolutions", "", "--norm-groups", "4", "--timesteps", "20",
        "--batch-size", "256", "--num-samples", "4", "--verbose", "0"]


def command_line(out_dir):
    """`train` of a class-conditional model on the digits, `sample` and `evaluate` through
    `keras_ddpm.cli.main`; `train` on
    a folder of PNGs (`cli_folder_exit`, its run's files); `edit --resize` of one of them
    (`cli_edit_exit`, `cli_edited_size`); a TFDS dataset's one-line refusal
    (`cli_tfds_exit`, its stderr in `cli_tfds_error`), and the export's (`cli_export_*`)."""
    import contextlib
    import io
    import json

    from keras_ddpm import cli

    run = os.path.join(out_dir, "run")
    out = {"cli_train_exit": np.array(cli.main(  # conditional: the digits' labels as well
        ["train", "--output", run, "--epochs", "2", "--conditional", *TINY]
    ))}
    out["cli_run_files"] = np.array(sorted(os.listdir(run)))
    out["cli_grids"] = np.array(sorted(os.listdir(os.path.join(run, "samples"))))
    sampled = os.path.join(out_dir, "sampled.npy")
    out["cli_sample_exit"] = np.array(cli.main(
        ["sample", run, "--num", "3", "--out", sampled, "--steps", "4"]
    ))
    out["cli_sampled"] = np.load(sampled)
    results = os.path.join(out_dir, "results.json")
    out["cli_evaluate_exit"] = np.array(cli.main(
        ["evaluate", run, "--feature-extractor", "pixels", "--num", "40", "--kid-subsets", "5",
         "--kid-subset-size", "20", "--bpd-images", "8", "--out", results]
    ))
    out["cli_bits_per_dim"] = np.array(json.load(open(results))["bits_per_dim"])
    from PIL import Image

    photos = os.path.join(out_dir, "photos")
    os.makedirs(photos)
    for i in range(12):  # 16x12 colour pictures, cropped and resized to 8x8 gray
        pixels = np.random.default_rng(i).integers(0, 256, (12, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(os.path.join(photos, f"{i}.png"))
    folder_run = os.path.join(out_dir, "folder_run")
    out["cli_folder_exit"] = np.array(cli.main(
        ["train", "--output", folder_run, "--dataset", f"folder:{photos}", "--image-size", "8",
         "--channels", "1", "--epochs", "1", "--sample-every", "1", *TINY]
    ))
    out["cli_folder_files"] = np.array(sorted(os.listdir(folder_run)))
    edited = os.path.join(out_dir, "edited.png")  # a 16x12 picture, cropped and resized
    out["cli_edit_exit"] = np.array(cli.main(
        ["edit", run, "--image", os.path.join(photos, "0.png"), "--resize", "--strength", "0.5",
         "--steps", "4", "--out", edited]
    ))
    out["cli_edited_size"] = np.array(Image.open(edited).size)
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        out["cli_tfds_exit"] = np.array(cli.main(
            ["train", "--output", os.path.join(out_dir, "tfds_run"), "--dataset", "tfds:mnist",
             *TINY]
        ))
    out["cli_tfds_error"] = np.array(stderr.getvalue())
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        out["cli_export_exit"] = np.array(cli.main(
            ["export", run, os.path.join(out_dir, "cli_exported")]
        ))
    out["cli_export_error"] = np.array(stderr.getvalue())
    return out


if __name__ == "__main__":
    main(*sys.argv[1:])
