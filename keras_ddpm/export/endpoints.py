"""The SavedModel's endpoints: one table, from which the module, its signatures, the printout
and the docs are made.

An endpoint is one `Endpoint` record: its name, its named inputs, the body that computes its
output from them, and the name of that output in the signature. `saved_model.build_module`
makes one `tf.function` and one signature per record; `markdown_table()` gives the table the
README shows (a test holds the two together). Adding an endpoint is adding a record.
"""

import dataclasses
from typing import Any
from typing import Callable
from typing import Optional

import tensorflow as tf

from keras_ddpm.export import editing
from keras_ddpm.export import inputs
from keras_ddpm.export import sampling


@dataclasses.dataclass
class Exported:
    """What an export writes: the reverse process and the choices made at export time.

    Args:
        process: the `generation.ReverseProcess` of the exported weights.
        image_shape: `(H, W, C)`.
        num_classes: the model's classes, `None` for an unconditional model.
        sampler: the sampler of `generate`, `edit` and `inpaint`.
        sampler_options: `{name: options}` for every registered sampler
            (`samplers.resolve_everywhere`).
        spacing: the timestep spacing, `None` for each sampler's default.
        clip: clip x̂_0 at every step.
        jit_compile: compile the loops with XLA.
        resample_steps: RePaint passes of `inpaint`.
        jump_length: steps per RePaint block of `inpaint`.
    """

    process: Any
    image_shape: tuple
    num_classes: Optional[int]
    sampler: str
    sampler_options: dict
    spacing: Optional[str]
    clip: bool
    jit_compile: bool
    resample_steps: int
    jump_length: int


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One endpoint of the SavedModel.

    Args:
        name: the function's and the signature's name.
        inputs: `Exported -> {input name: tf.TensorSpec}`, in argument order.
        body: `(Exported, functions) -> body(**inputs)`; `functions` maps the
            names of the endpoints to their `tf.function`s, for a body that
            calls another endpoint's graph.
        output: the name of the signature's output.
        inputs_doc: the inputs, for the docs.
        output_doc: the output, for the docs.
    """

    name: str
    inputs: Callable
    body: Callable
    output: str
    inputs_doc: str
    output_doc: str


def _denoise(exported, functions):
    network = exported.process.network
    timesteps = exported.process.schedule.timesteps

    def denoise(x_t, t, **conditions):
        in_range = tf.debugging.Assert(
            tf.reduce_all(tf.logical_and(t >= 0, t < timesteps)),
            [f"`t` must hold timestep indices in [0, {timesteps}). Received values in",
             tf.reduce_min(t), tf.reduce_max(t)],
        )
        with tf.control_dependencies([in_range]):
            t = tf.identity(t)
        return tf.cast(network([x_t, t, *conditions.values()], training=False), tf.float32)

    return denoise


def _generate(exported, functions):
    # The graph of `generate_with_sampler` (looked up when traced, once every endpoint is made),
    # with the export-time sampler and options.
    return lambda **given: functions["generate_with_sampler"](
        **sampling.default_sampler_inputs(exported), **given
    )


ENDPOINTS = (
    Endpoint(
        "generate",
        lambda exported: inputs.generate_inputs(exported.num_classes),
        _generate,
        "images",
        "`num_images`, `steps` (0: the sampler's default), `seed` (int32 scalars); the "
        "export-time sampler",
        "`images`: uint8 `[N, H, W, C]`",
    ),
    Endpoint(
        "generate_with_sampler",
        lambda exported: inputs.generate_inputs(exported.num_classes, with_sampler=True),
        lambda exported, functions: sampling.sample_function(exported),
        "images",
        "the above, `sampler` (string scalar), one float32 scalar per runtime sampler option "
        "(`eta`)",
        "`images`",
    ),
    Endpoint(
        "edit",
        lambda exported: inputs.edit_inputs(exported.image_shape, exported.num_classes),
        lambda exported, functions: editing.edit_function(exported),
        "images",
        "`images` uint8 `[N, H, W, C]`, `strength` float32, `steps`, `seed`",
        "`images` uint8",
    ),
    Endpoint(
        "inpaint",
        lambda exported: inputs.inpaint_inputs(exported.image_shape, exported.num_classes),
        lambda exported, functions: editing.inpaint_function(exported),
        "images",
        "`images` uint8, `mask` float32 `[N or 1, H, W, C or 1]` in [0, 1] (1 keeps), "
        "`steps`, `seed`",
        "`images` uint8",
    ),
    Endpoint(
        "denoise",
        lambda exported: inputs.denoise_inputs(exported.image_shape, exported.num_classes),
        _denoise,
        "prediction",
        "`x_t` float32 `[B, H, W, C]`, `t` int32 `[B]`",
        "`prediction`: float32, like `x_t`",
    ),
)
# TensorFlow Serving's default signature.
SERVING_DEFAULT = "generate"
# A class-conditional model's extra inputs (of every endpoint but `denoise`, which takes labels).
CONDITIONING_DOC = (
    "A class-conditional model adds `labels` int32 and `guidance_scale` float32. Called on the "
    "loaded object (`loaded.edit(...)`, `loaded.inpaint(...)`), `images` may also be int32/int64 "
    "pixels 0..255 or float32/float64 values in [−1, 1], as `DDPM` takes them; the signatures "
    "take uint8."
)


def markdown_table():
    """The endpoints as the Markdown table the README shows."""
    rows = ["| endpoint | inputs | output |", "| --- | --- | --- |"]
    for endpoint in ENDPOINTS:
        name = f"`{endpoint.name}`"
        if endpoint.name == SERVING_DEFAULT:
            name += " (= `serving_default`)"
        rows.append(f"| {name} | {endpoint.inputs_doc} | {endpoint.output_doc} |")
    return "\n".join(rows) + "\n\n" + CONDITIONING_DOC
