"""SavedModel export: a trained DDPM as a TensorFlow graph that needs no Python code.

`export_saved_model(model, path)` (also `model.export(path)`) writes a
TensorFlow SavedModel that `tf.saved_model.load`, TensorFlow Serving and
`saved_model_cli run` use without Keras or keras_ddpm installed. It holds the
network's weights (the EMA copy by default) and the endpoints of
`endpoints.ENDPOINTS`, one record an endpoint (its table in Markdown:
`markdown_table()`, shown in the README), each both a signature and a
function of the loaded object.

`edit` and `inpaint` (module `editing`) use the export-time sampler
(`inpaint` falls back to `samplers.DEFAULT_SAMPLER` when that one is
multistep) and equal
`to_uint8` of `DDPM.generate(initial_images=, strength=)` and `DDPM.inpaint`
with the same seed, on the images `images / 127.5 − 1`.

Design of the sampler input. A SavedModel signature has no optional inputs,
so the sampler cannot be an input with a default. `generate` therefore takes
only the three inputs every client needs and uses the sampler (and DDIM η)
chosen at export time; `generate_with_sampler` takes `sampler` (any name of
`keras_ddpm.samplers.sampler_names()` at export time) and the runtime sampler
options (`eta`) at run time.
Both run the same graph: the compiled reverse loops of `DDPM.generate`, one per
registered sampler, sit behind one `tf.switch_case` on the sampler's index,
and the number of steps is a tensor of every loop, so no choice needs another
export. `steps = 0` asks for the sampler record's default, as
`DDPM.generate(steps=None)` does.

Same seed, same images: x_T and the loop's noise come from the seed exactly as
in `DDPM.generate(num_images, seed=seed)` with one batch, and the float output
becomes uint8 with `keras_ddpm.utils.to_uint8_tensor`, the graph form of
`to_uint8`. So
`loaded.generate(num_images=n, steps=s, seed=k)` equals
`to_uint8(model.generate(n, steps=s, seed=k))` for the export-time sampler (up
to float rounding between differently compiled graphs).

A conditional model adds `labels` and `guidance_scale` to the generate,
edit and inpaint endpoints, checked in one place (`inputs.checked_conditioning`).

Layout: `endpoints` (the table: name, inputs, body, output), `inputs` (the named
inputs and their checks in graph form), `sampling` and `editing` (the bodies),
`saved_model` (`export_saved_model`: checks, the module, the atomic write).
"""

from keras_ddpm.lazy import lazy_names

# What a user on another backend is told to do (the SavedModel is TensorFlow's).
ON_TENSORFLOW = (
    "Export with KERAS_BACKEND=tensorflow keras-ddpm export MODEL OUT (the .keras file is the "
    "same on every backend)."
)

# Everything here loads TensorFlow, on first use (the package imports on any backend).
_LAZY = {
    "ENDPOINTS": "endpoints",
    "SERVING_DEFAULT": "endpoints",
    "markdown_table": "endpoints",
    "export_saved_model": "saved_model",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY, requires="tensorflow", then=ON_TENSORFLOW)
