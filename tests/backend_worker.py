"""Run under another Keras backend by `tests/test_backends.py`: load a model, sample, count traces.

Usage: `KERAS_BACKEND=jax python tests/backend_worker.py MODEL.keras INPUTS.npz OUT.npz [PARTS]`
(`seeded` for INPUTS: the images of `tests/legacy/counter_rng_outputs.npz` instead; PARTS a
comma-separated choice of `PARTS`, all by default).
INPUTS holds `initial_noise`, `images` and `train_images` and, for a conditional model,
`labels` and `train_labels`. OUT gets every array
the test compares, plus `backend`, `traces` (how often the loop's Python function ran while
the steps, η and guidance scale changed), `tensorflow_loaded`, the error of `export`
(`export_error`), which runs on TensorFlow only, `training_outputs`, `divergence_outputs` and
`mixed_precision_outputs`.
"""

import sys

import numpy as np


def outputs(model, inputs):
    """Everything the backends must agree on, for `inputs` (see the module docstring)."""
    noise, images = inputs["initial_noise"], inputs["images"]
    count = len(noise)
    conditional = {}
    if "labels" in inputs:
        conditional = {"labels": inputs["labels"], "guidance_scale": 2.0}
    common = dict(steps=8, seed=3, verbose=0, **conditional)
    out = {}
    for sampler in ("ddim", "dpm_solver", "ddpm"):
        out[sampler] = model.generate(count, sampler=sampler, initial_noise=noise, **common)
        out[sampler + "_seeded"] = model.generate(count, sampler=sampler, **common)
    out["sdedit"] = model.generate(
        count, sampler="ddpm", initial_images=images, strength=0.5, **common
    )
    mask = np.zeros(images.shape, "float32")
    mask[:, :, :4] = 1.0
    out["inpaint"] = model.inpaint(
        images, mask, sampler="ddpm", resample_steps=2, jump_length=2, **common
    )
    out["encode"] = model.encode(images, steps=8, verbose=0, **conditional)
    pair = {name: value[:1] if name == "labels" else value for name, value in conditional.items()}
    out["interpolate"] = model.interpolate(images[0], images[1], num=3, steps=8, verbose=0, **pair)
    return out


def training_outputs(model_path, inputs):
    """Two epochs of `fit` from the saved weights (fixed order), then `evaluate`.

    Returns the loss history, the evaluation loss and the trained and EMA weights.
    """
    import keras
    import keras_ddpm

    model = keras_ddpm.load_model(model_path)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    images = inputs["train_images"]
    fit = dict(batch_size=4, shuffle=False, verbose=0)
    if "train_labels" in inputs:
        fit["y"] = inputs["train_labels"]
    history = model.fit(images, epochs=2, **fit).history
    out = {
        "fit_loss": np.array(history["loss"]),
        "fit_skipped": np.array(history["skipped_steps"]),
        "evaluate_loss": np.array(model.evaluate(images, y=fit.get("y"), batch_size=4, verbose=0)),
        "fit_iterations": keras.ops.convert_to_numpy(model.optimizer.iterations),
    }
    for i, weight in enumerate(model.network.weights + model.ema_weights):
        out[f"weight_{i}"] = keras.ops.convert_to_numpy(weight)
    return out


def divergence_outputs(model_path, inputs):
    """The `TrainingDiverged` message of a fit at a learning rate of 1e30 (`diverged`)."""
    import keras
    import keras_ddpm

    out = {}
    fit = dict(batch_size=4, shuffle=False, verbose=0)
    if "train_labels" in inputs:
        fit["y"] = inputs["train_labels"]
    images = inputs["train_images"]
    diverging = keras_ddpm.load_model(model_path)
    diverging.max_skipped_steps = 2
    diverging.compile(optimizer=keras.optimizers.SGD(1e30))
    try:
        diverging.fit(images, epochs=3, **fit)
    except keras_ddpm.divergence.TrainingDiverged as error:
        out["diverged"] = np.array(str(error))
    return out


def mixed_precision_outputs(inputs):
    """Two epochs of a fresh tiny U-Net under each mixed policy: the losses, and whether
    `compile` wrapped the optimizer for loss scaling."""
    import keras
    import keras_ddpm
    from networks import tiny_unet

    out = {}
    for policy in ("mixed_float16", "mixed_bfloat16"):
        keras.mixed_precision.set_global_policy(policy)
        try:
            model = keras_ddpm.DDPM(tiny_unet(), keras_ddpm.NoiseSchedule("cosine", 50), seed=0)
            model.compile(optimizer=keras.optimizers.Adam(3e-3))
            history = model.fit(inputs["train_images"], batch_size=4, epochs=2, verbose=0)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        out[f"{policy}_loss"] = np.array(history.history["loss"])
        scaled = isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        out[f"{policy}_loss_scaled"] = np.array(scaled)
    return out


def seeded_outputs(model):
    """`tests/legacy/counter_rng_outputs.npz`'s images: seed 3, every sampler, EMA and raw."""
    out = {}
    for sampler in ("ddpm", "ddim", "dpm_solver"):
        for use_ema, suffix in ((True, ""), (False, "_raw")):
            out[f"generate_{sampler}{suffix}"] = model.generate(
                4, sampler=sampler, seed=3, use_ema=use_ema, verbose=0
            )
    return out


# What `main` can run: `sampling` (every sampler and editing method, trace counts, export's
# refusal), `training` (fit and evaluate from the saved weights), `robustness` (divergence
# and the mixed-precision policies).
PARTS = ("sampling", "training", "robustness")


def main(model_path, inputs_path, out_path, parts=",".join(PARTS)):
    import keras
    import keras_ddpm
    from keras_ddpm import generation

    traces = []
    denoiser = generation.ReverseProcess.denoiser

    def counting(self, *args, **kwargs):  # called once per trace of a loop
        traces.append(1)
        return denoiser(self, *args, **kwargs)

    generation.ReverseProcess.denoiser = counting
    model = keras_ddpm.load_model(model_path)
    if inputs_path == "seeded":
        np.savez(out_path, **seeded_outputs(model))
        return
    inputs = dict(np.load(inputs_path))
    parts = parts.split(",")
    out = {"backend": np.array(keras.backend.backend())}
    if "sampling" in parts:
        out.update(outputs(model, inputs))
        before = len(traces)
        conditional = {"labels": inputs["labels"]} if "labels" in inputs else {}
        for steps, eta in ((5, 0.0), (9, 0.5), (12, 1.0)):
            if conditional:
                conditional["guidance_scale"] = steps / 4
            model.generate(len(inputs["initial_noise"]), sampler="ddim", steps=steps, eta=eta,
                           initial_noise=inputs["initial_noise"], seed=3, verbose=0, **conditional)
        out["traces"] = np.array(len(traces) - before)
        # Not ported: a one-line error naming the backend and what to do.
        try:
            model.export(out_path + ".savedmodel")
        except ValueError as error:
            out["export_error"] = np.array(str(error))
    if "training" in parts:
        out.update(training_outputs(model_path, inputs))
    if "robustness" in parts:
        out.update(divergence_outputs(model_path, inputs))
        out.update(mixed_precision_outputs(inputs))
    out["tensorflow_loaded"] = np.array("tensorflow" in sys.modules)
    np.savez(out_path, **out)


if __name__ == "__main__":
    main(*sys.argv[1:])
