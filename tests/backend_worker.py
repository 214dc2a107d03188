"""Run under another Keras backend by `tests/test_backends.py`: load a model, sample, count traces.

Usage: `KERAS_BACKEND=jax python tests/backend_worker.py MODEL.keras INPUTS.npz OUT.npz`
(`seeded` for INPUTS: the images of `tests/legacy/counter_rng_outputs.npz` instead).
INPUTS holds `initial_noise`, `images` and, for a conditional model, `labels`. OUT gets every array
the test compares, plus `backend`, `traces` (how often the loop's Python function ran while
the steps, η and guidance scale changed), `tensorflow_loaded` and the errors of `fit` and
`export` (`fit_error`, `export_error`), which run on TensorFlow only so far.
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


def main(model_path, inputs_path, out_path):
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
    out = dict(outputs(model, inputs), backend=np.array(keras.backend.backend()))
    before = len(traces)
    conditional = {"labels": inputs["labels"]} if "labels" in inputs else {}
    for steps, eta in ((5, 0.0), (9, 0.5), (12, 1.0)):
        if conditional:
            conditional["guidance_scale"] = steps / 4
        model.generate(len(inputs["initial_noise"]), sampler="ddim", steps=steps, eta=eta,
                       initial_noise=inputs["initial_noise"], seed=3, verbose=0, **conditional)
    out["traces"] = np.array(len(traces) - before)
    # Not ported yet: one-line errors naming the backend and what to do.
    model.compile(optimizer="adam")
    for name, call in (("fit", lambda: model.fit(inputs["images"], epochs=1, verbose=0)),
                       ("export", lambda: model.export(out_path + ".savedmodel"))):
        try:
            call()
        except ValueError as error:
            out[name + "_error"] = np.array(str(error))
    out["tensorflow_loaded"] = np.array("tensorflow" in sys.modules)
    np.savez(out_path, **out)


if __name__ == "__main__":
    main(*sys.argv[1:])
