"""SavedModel export: a trained DDPM as a TensorFlow graph that needs no Python code.

`export_saved_model(model, path)` (also `model.export(path)`) writes a
TensorFlow SavedModel that `tf.saved_model.load`, TensorFlow Serving and
`saved_model_cli run` use without Keras or keras_ddpm installed. It holds the
network's weights (the EMA copy by default) and these endpoints, each both a
signature and a function of the loaded object:

| endpoint | inputs | output |
| --- | --- | --- |
| `generate` (= `serving_default`) | `num_images`, `steps`, `seed` (int32 scalars) | `images`: uint8 `[N, H, W, C]` |
| `generate_with_sampler` | the above, `sampler` (string scalar), one float32 scalar per runtime sampler option (`eta`) | `images` |
| `edit` | `images` uint8 `[N, H, W, C]`, `strength` float32, `steps`, `seed` | `images` uint8 |
| `inpaint` | `images` uint8, `mask` float32 `[N or 1, H, W, C or 1]`, `steps`, `seed` | `images` uint8 |
| `denoise` | `x_t` float32 `[B, H, W, C]`, `t` int32 `[B]` | `prediction`: float32, like `x_t` |

`edit` and `inpaint` (module `export_editing`) use the export-time sampler
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
edit and inpaint endpoints (`export_signatures.generate_input_signature` and
`export_editing`), checked in one place (`export_editing.checked_conditioning`).
"""

import os
import shutil

import tensorflow as tf

from keras_ddpm import atomic
from keras_ddpm import checks
from keras_ddpm import export_editing
from keras_ddpm import generation
from keras_ddpm import graph_lifetime
from keras_ddpm import samplers
from keras_ddpm import utils
from keras_ddpm.export_signatures import denoise_input_signature
from keras_ddpm.export_signatures import exported_image_shape
from keras_ddpm.export_signatures import generate_input_signature
from keras_ddpm.export_signatures import named_function
from keras_ddpm.export_signatures import num_classes_of


def export_saved_model(
    model,
    filepath,
    *,
    sampler=samplers.DEFAULT_SAMPLER,
    timestep_spacing=None,
    clip=True,
    use_ema=True,
    jit_compile=False,
    image_shape=None,
    resample_steps=samplers.RESAMPLE_STEPS,
    jump_length=samplers.JUMP_LENGTH,
    verbose=True,
    **sampler_options,
):
    """Writes a `DDPM` as a TensorFlow SavedModel with generate, edit, inpaint and denoise endpoints.

    The SavedModel loads with `tf.saved_model.load(filepath)` in a process that
    has neither Keras nor keras_ddpm imported, and serves with TensorFlow
    Serving (`serving_default` is `generate`). See the module docstring for
    the endpoints and why the sampler has two of them.

    Args:
        model: the `keras_ddpm.DDPM` to export.
        filepath: str or path-like, the SavedModel directory: new, empty, or an
            earlier export (replaced whole; a non-empty folder holding no
            SavedModel is refused). It is written beside the target and renamed
            into place, so a kill never leaves half a SavedModel.
        sampler: the sampler of the `generate`, `edit` and `inpaint`
            endpoints, a name of `keras_ddpm.samplers.sampler_names()`.
            Defaults to `keras_ddpm.samplers.DEFAULT_SAMPLER`, as
            `DDPM.generate`.
        timestep_spacing: spacing of every sampler's steps (see
            `samplers.timestep_sequence`). Defaults to `None`: each sampler's
            default, as in `DDPM.generate`.
        clip: clip x̂_0 at every step (the output is always clipped to
            [−1, 1] before becoming uint8). Defaults to `True`.
        use_ema: export the EMA weights when the model keeps them. Defaults
            to `True`.
        jit_compile: compile each reverse loop with XLA (the loading process
            then needs XLA, which standard TensorFlow builds include).
            Defaults to `False`.
        image_shape: `(H, W, C)` for a network that does not declare its input
            shape (a subclassed model that was never built); it is built by
            one call on zeros. Defaults to `None` (the network's own shape).
        resample_steps: RePaint passes of the `inpaint` endpoint (see
            `DDPM.inpaint`). Defaults to `samplers.RESAMPLE_STEPS`.
        jump_length: steps per RePaint block of the `inpaint` endpoint.
            Defaults to `samplers.JUMP_LENGTH`.
        verbose: print the path and the endpoints. Defaults to `True`.
        **sampler_options: any option of a registered sampler
            (`samplers.resolve_everywhere`). A runtime option, such as DDIM's
            `eta=`, is the value the `generate` endpoint uses (the sampler must
            take it); `generate_with_sampler` takes it as an input. An option
            fixed when a loop is traced, such as DPM-Solver++'s `order=`,
            applies to every sampler that takes it. Each defaults to its
            record's value.

    Returns:
        `filepath` as a string.

    Example:

    >>> keras_ddpm.export.export_saved_model(model, "digits_savedmodel", sampler="ddim")
    >>> loaded = tf.saved_model.load("digits_savedmodel")   # no keras_ddpm needed
    >>> images = loaded.generate(num_images=16, steps=50, seed=0)   # uint8 (16, 8, 8, 1)
    >>> images = loaded.generate_with_sampler(
    ...     num_images=16, steps=20, seed=0, sampler="dpm_solver", eta=0.0)

    References:
        - TensorFlow, "Using the SavedModel format",
          https://www.tensorflow.org/guide/saved_model
    """
    if not callable(getattr(model, "reverse_process", None)):
        raise TypeError(
            f"`model` must be a keras_ddpm.DDPM. Received: model of type {type(model).__name__}."
        )
    # Every sampler's options at export time, checked as DDPM.generate checks them.
    options = samplers.resolve_everywhere(
        sampler, model.schedule.timesteps, timestep_spacing, **sampler_options
    )
    resample_steps = checks.positive_int("resample_steps", resample_steps)
    jump_length = checks.positive_int("jump_length", jump_length)
    shape = exported_image_shape(model, image_shape)
    filepath = os.fspath(filepath)
    if os.path.exists(filepath) and not os.path.isdir(filepath):
        raise ValueError(
            f"`filepath` must name a directory for the SavedModel. Received: {filepath!r}, "
            "an existing file."
        )
    if (
        os.path.isdir(filepath)
        and os.listdir(filepath)
        and not os.path.exists(os.path.join(filepath, "saved_model.pb"))
    ):
        raise ValueError(
            f"`filepath` {filepath!r} is a non-empty folder that holds no SavedModel; export "
            "into a new or empty folder (or an earlier export, which is replaced)."
        )

    module, signatures = _build_module(
        model, shape, sampler, options, timestep_spacing, clip, use_ema, jit_compile,
        resample_steps, jump_length,
    )
    # Every graph is traced once, inside `save` (a trace made before it would be redone).
    # Custom-gradient tracing (an inference export needs none) would double the export time.
    save_options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    # Written beside the target and renamed into place: a kill never leaves half a SavedModel.
    target, replaced = filepath.rstrip(os.sep) or filepath, None
    # The graphs traced for the file are freed with `module` (see `graph_lifetime`).
    with atomic.atomic_write(target) as tmp, graph_lifetime.release_traced_graphs():
        tf.saved_model.save(module, tmp, signatures=signatures, options=save_options)
        if os.path.isdir(target):  # an earlier export, or an empty folder: set aside
            replaced = atomic.partial_path(target + "-replaced")
            os.rename(target, replaced)
    if replaced is not None:
        shutil.rmtree(replaced, ignore_errors=True)
    if verbose:
        print(f"Saved SavedModel at {filepath!r} with endpoints:")
        for name in ("generate", "generate_with_sampler", "edit", "inpaint", "denoise"):
            inputs = ", ".join(spec.name for spec in signatures[name].input_signature)
            print(f"  {name}({inputs})")
        print("  serving_default = generate")
    return filepath


# ----------------------------------------------------------------------------
# The exported module
# ----------------------------------------------------------------------------
def _build_module(
    model, image_shape, default_sampler, sampler_options, spacing, clip, use_ema, jit_compile,
    resample_steps, jump_length,
):
    """The `tf.Module` of the endpoints and its signatures.

    `sampler_options` maps every registered sampler to its export-time options
    (`samplers.resolve_everywhere`).
    """
    # A process of its own, built as `generate`'s: the loops traced for the file go with the
    # module instead of staying cached on the model (89 MB on the digits preset).
    process = model.reverse_process(use_ema)
    process = generation.ReverseProcess(
        process.network, process.schedule, process.prediction_type, process.variance,
        process.num_classes, process.image_shape or image_shape,
    )
    network = process.network
    timesteps = model.schedule.timesteps
    names = samplers.sampler_names()
    records = [samplers.get_sampler(name) for name in names]
    # One compiled reverse loop per sampler: DDPM.generate's own, so the graphs agree.
    runs = [
        process.loop(
            record.name, spacing, bool(clip), bool(jit_compile),
            **{o.name: sampler_options[record.name][o.name] for o in record.static_options},
        )
        for record in records
    ]
    default_steps = [record.steps_for(timesteps) for record in records]
    num_classes = num_classes_of(model)

    def sample(num_images, steps, seed, sampler, **inputs):
        options = {o.name: inputs.pop(o.name) for o in samplers.all_options(runtime=True)}
        # 1. The sampler's index, and the checks generate() makes in Python.
        matches = tf.equal(tf.constant(names), sampler)
        checks = [
            tf.debugging.Assert(
                tf.reduce_any(matches),
                [f"Unknown sampler. Expected one of {', '.join(names)}. Received:", sampler],
            )
        ]
        index = tf.argmax(tf.cast(matches, tf.int32), output_type=tf.int32)
        steps = export_editing.steps_or_default(steps, tf.gather(default_steps, index), timesteps)
        checks.append(
            tf.debugging.assert_positive(
                num_images, message="`num_images` must be a positive integer."
            )
        )
        for option in samplers.all_options(runtime=True):
            value = options[option.name]
            if option.bounds is not None:
                low, high = option.bounds
                checks.append(
                    tf.debugging.Assert(
                        tf.logical_and(value >= low, value <= high),
                        [f"`{option.name}` must be in [{low}, {high}]. Received:", value],
                    )
                )
            takers = samplers.takers(option.name)
            checks.append(
                tf.debugging.Assert(
                    tf.logical_or(
                        tf.reduce_any(tf.equal(index, [names.index(n) for n in takers])),
                        tf.equal(value, option.neutral),
                    ),
                    [
                        f"{option.name} only applies to sampler {' or '.join(takers)}. "
                        f"Received: {option.name} =",
                        value,
                    ],
                )
            )
        with tf.control_dependencies(checks):
            index = tf.identity(index)
        # 2. x_T and the loop's seed, derived from `seed` as DDPM.generate does for one batch.
        noise_seed, loop_seed = generation.chunk_seeds(seed, 0)
        shape = tf.concat([[num_images], tf.constant(image_shape, tf.int32)], axis=0)
        x = tf.random.stateless_normal(shape, seed=noise_seed)
        conditioning = export_editing.checked_conditioning(inputs, num_images, num_classes)
        # 3. The chosen sampler's whole loop, with the runtime options it takes.
        branches = [
            (
                lambda run=run, record=record: run(
                    x, loop_seed, 0, steps, steps,
                    *[options[o.name] for o in record.runtime_options], *conditioning,
                )
            )
            for run, record in zip(runs, records)
        ]
        # 4. uint8 pixels as keras_ddpm.utils.to_uint8.
        return utils.to_uint8_tensor(tf.switch_case(index, branches))

    def denoise(x_t, t, **conditions):
        inputs = [x_t, t, *conditions.values()]
        return tf.cast(network(inputs, training=False), tf.float32)

    module = tf.Module(name="ddpm")
    sampler_specs = generate_input_signature(model, with_sampler=True)
    generate_specs = generate_input_signature(model)
    denoise_specs = denoise_input_signature(model, image_shape)
    module.generate_with_sampler = named_function(sample, sampler_specs, "generate_with_sampler")
    # `generate` calls the graph of `generate_with_sampler` with the export-time sampler.
    module.generate = named_function(
        lambda **inputs: module.generate_with_sampler(
            sampler=tf.constant(default_sampler),
            **{
                o.name: tf.constant(
                    sampler_options[default_sampler].get(o.name, o.neutral), tf.float32
                )
                for o in samplers.all_options(runtime=True)
            },
            **inputs,
        ),
        generate_specs,
        "generate",
    )
    module.denoise = named_function(denoise, denoise_specs, "denoise")
    # The editing endpoints: the export-time sampler (a single-step one for inpaint).
    inpaint_sampler = (
        default_sampler if samplers.get_sampler(default_sampler).step else samplers.DEFAULT_SAMPLER
    )
    edit_specs = export_editing.edit_input_signature(image_shape, num_classes)
    inpaint_specs = export_editing.inpaint_input_signature(image_shape, num_classes)
    module.edit = named_function(
        export_editing.edit_function(
            process, default_sampler, sampler_options[default_sampler],
            spacing, num_classes, bool(jit_compile), bool(clip),
        ),
        edit_specs, "edit",
    )
    module.inpaint = named_function(
        export_editing.inpaint_function(
            process, inpaint_sampler, sampler_options[inpaint_sampler],
            spacing, num_classes, bool(jit_compile), bool(clip), resample_steps, jump_length,
        ),
        inpaint_specs, "inpaint",
    )
    # The weights the graphs read, tracked so that the SavedModel stores them. The plain
    # tf.Variables under the Keras variables keep their names in the graph, which the
    # session-based loaders of TF Serving and saved_model_cli restore by.
    module.network_variables = [_tf_variable(weight) for weight in network.weights]
    # Signatures return named outputs (what TF Serving and saved_model_cli show).
    signatures = {
        "generate": named_function(
            lambda **inputs: {"images": module.generate(**inputs)}, generate_specs, "generate"
        ),
        "generate_with_sampler": named_function(
            lambda **inputs: {"images": module.generate_with_sampler(**inputs)},
            sampler_specs,
            "generate_with_sampler",
        ),
        "denoise": named_function(
            lambda **inputs: {"prediction": module.denoise(**inputs)}, denoise_specs, "denoise"
        ),
        "edit": named_function(
            lambda **inputs: {"images": module.edit(**inputs)}, edit_specs, "edit"
        ),
        "inpaint": named_function(
            lambda **inputs: {"images": module.inpaint(**inputs)}, inpaint_specs, "inpaint"
        ),
    }
    signatures["serving_default"] = signatures["generate"]
    return module, signatures


def _tf_variable(weight):
    """The `tf.Variable` holding a Keras variable's value (the variable itself if it is one)."""
    value = getattr(weight, "value", weight)
    return value if isinstance(value, tf.Variable) else weight
