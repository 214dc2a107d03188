"""The SavedModel's editing endpoints, `edit` and `inpaint`, and the input checks they share.

Both take uint8 images `[N, H, W, C]`, return uint8 images, and run the same
compiled loops as `DDPM.generate(initial_images=, strength=)` and
`DDPM.inpaint` (from `generation.ReverseProcess`), with x_T and the loop's
seed derived from `seed` as for one batch there; so with the same seed they
return `to_uint8` of the Python methods' images, the inputs being
`images / 127.5 − 1`. `steps = 0` asks for the Python default.

| endpoint | inputs | output |
| --- | --- | --- |
| `edit` | `images` uint8 `[N, H, W, C]`, `strength` float32, `steps`, `seed` int32 | `images` uint8 |
| `inpaint` | `images` uint8, `mask` float32 `[N or 1, H, W, C or 1]` in [0, 1] (1 keeps), `steps`, `seed` | `images` uint8 |

A conditional model adds `labels` int32 `[N]` and `guidance_scale` float32 to
both, as to `generate`. `export.py` assembles the module.
"""

import tensorflow as tf

from keras_ddpm import generation
from keras_ddpm import samplers
from keras_ddpm import utils


def edit_input_signature(image_shape, num_classes):
    """The named inputs of the `edit` endpoint."""
    specs = {
        "images": tf.TensorSpec((None,) + tuple(image_shape), tf.uint8, name="images"),
        "strength": tf.TensorSpec((), tf.float32, name="strength"),
        "steps": tf.TensorSpec((), tf.int32, name="steps"),
        "seed": tf.TensorSpec((), tf.int32, name="seed"),
    }
    return _with_conditioning(specs, num_classes)


def inpaint_input_signature(image_shape, num_classes):
    """The named inputs of the `inpaint` endpoint."""
    height, width, _ = image_shape
    specs = {
        "images": tf.TensorSpec((None,) + tuple(image_shape), tf.uint8, name="images"),
        "mask": tf.TensorSpec((None, height, width, None), tf.float32, name="mask"),
        "steps": tf.TensorSpec((), tf.int32, name="steps"),
        "seed": tf.TensorSpec((), tf.int32, name="seed"),
    }
    return _with_conditioning(specs, num_classes)


def _with_conditioning(specs, num_classes):
    if num_classes is not None:
        # In the order of the conditioning inputs of generation.ReverseProcess's loops.
        specs["labels"] = tf.TensorSpec((None,), tf.int32, name="labels")
        specs["guidance_scale"] = tf.TensorSpec((), tf.float32, name="guidance_scale")
    return specs


def checked_conditioning(inputs, num_images, num_classes):
    """`[labels, guidance_scale]` of a conditional model's inputs after their checks, else `[]`."""
    if "labels" not in inputs:
        return []
    labels, guidance_scale = inputs["labels"], inputs["guidance_scale"]
    checks = [
        tf.debugging.assert_equal(
            tf.size(labels), num_images, message="`labels` needs one label per image."
        ),
        tf.debugging.assert_non_negative(labels, message="`labels` must be >= 0."),
        tf.debugging.assert_less_equal(
            labels, num_classes,
            message=f"`labels` must be in [0, {num_classes}] ({num_classes}: none).",
        ),
        tf.debugging.assert_non_negative(guidance_scale, message="`guidance_scale` must be >= 0."),
    ]
    with tf.control_dependencies(checks):
        return [tf.identity(labels), tf.identity(guidance_scale)]


def steps_or_default(steps, default, timesteps):
    """`steps` (0: `default`) after the range check `generate` makes in Python (all endpoints)."""
    steps = tf.where(steps == 0, default, steps)
    message = f"`steps` must be in [1, {timesteps}] (0: the default)."
    with tf.control_dependencies([
        tf.debugging.assert_greater_equal(steps, 1, message=message),
        tf.debugging.assert_less_equal(steps, timesteps, message=message),
    ]):
        return tf.identity(steps)


def _as_floats(images):
    """uint8 pixels as the [−1, 1] floats `DDPM` takes, after a check that there are some."""
    with tf.control_dependencies([
        tf.debugging.assert_positive(tf.shape(images)[0], message="`images` holds no image.")
    ]):
        return tf.cast(images, tf.float32) / 127.5 - 1.0


def edit_function(process, sampler, options, spacing, num_classes, jit_compile, clip):
    """The body of `edit`: SDEdit with the export-time sampler, as `generate(initial_images=)`.

    Args:
        process: the `generation.ReverseProcess` exported.
        sampler: the sampler's name.
        options: every option of the sampler, at its export-time value.
        spacing: the timestep spacing, `None` for the sampler's default.
        num_classes: the model's number of classes, `None` if unconditional.
        jit_compile: compile the loop with XLA.
        clip: clip x̂_0 at every step.
    """
    record = samplers.get_sampler(sampler)
    spacing = spacing or record.default_spacing
    run = process.loop(sampler, spacing, clip, jit_compile, **_static(record, options))
    schedule = process.schedule
    default_steps = record.steps_for(schedule.timesteps)

    def edit(images, strength, steps, seed, **inputs):
        x0 = _as_floats(images)
        steps = steps_or_default(steps, default_steps, schedule.timesteps)
        with tf.control_dependencies([
            tf.debugging.Assert(
                tf.logical_and(strength >= 0.0, strength <= 1.0),
                ["`strength` must be in [0, 1]. Received:", strength],
            )
        ]):
            # The last round(strength · steps) steps run: sampling_inputs.steps_to_run in graph form.
            taken = tf.cast(tf.round(strength * tf.cast(steps, tf.float32)), tf.int32)
        first = steps - taken
        conditioning = checked_conditioning(inputs, tf.shape(x0)[0], num_classes)
        noise_seed, loop_seed = generation.chunk_seeds(seed, 0)

        def edited():
            noise = tf.random.stateless_normal(tf.shape(x0), seed=noise_seed)
            sequence = samplers.timestep_sequence(schedule, steps, spacing)
            t = tf.fill(tf.shape(x0)[:1], tf.gather(sequence, tf.minimum(first, steps - 1)))
            x = tf.where(first > 0, schedule.add_noise(x0, noise, t), noise)
            x = run(x, loop_seed, first, steps, steps, *_runtime(record, options), *conditioning)
            return utils.to_uint8_tensor(x)

        return tf.cond(taken > 0, edited, lambda: tf.identity(images))

    return edit


def inpaint_function(process, sampler, options, spacing, num_classes, jit_compile, clip,
                     resample_steps, jump_length):
    """The body of `inpaint`: `DDPM.inpaint` with the export-time sampler and resampling.

    Args: those of `edit_function` (the sampler must have a single-step
    update), then the export-time `resample_steps` and `jump_length`.
    """
    record = samplers.get_sampler(sampler)
    spacing = spacing or record.default_spacing
    run = process.inpaint_loop(
        sampler, spacing, clip, jit_compile, None, **_static(record, options)
    )
    schedule = process.schedule
    default_steps = min(record.steps_for(schedule.timesteps), samplers.INPAINT_STEPS)

    def inpaint(images, mask, steps, seed, **inputs):
        x0 = _as_floats(images)
        steps = steps_or_default(steps, default_steps, schedule.timesteps)
        with tf.control_dependencies([
            tf.debugging.Assert(
                tf.reduce_all(tf.logical_and(mask >= 0.0, mask <= 1.0)),
                ["`mask` must hold values in [0, 1] (1 keeps a pixel, 0 fills it); received "
                 "values in", tf.reduce_min(mask), tf.reduce_max(mask)],
            )
        ]):
            mask = tf.broadcast_to(mask, tf.shape(x0))
        conditioning = checked_conditioning(inputs, tf.shape(x0)[0], num_classes)
        noise_seed, loop_seed = generation.chunk_seeds(seed, 0)
        x = tf.random.stateless_normal(tf.shape(x0), seed=noise_seed)
        x = run(x, x0, mask, loop_seed, 0, steps, steps, resample_steps, jump_length,
                *_runtime(record, options), *conditioning)
        return utils.to_uint8_tensor(x)

    return inpaint


def _static(record, options):
    return {option.name: options[option.name] for option in record.static_options}


def _runtime(record, options):
    return [tf.constant(options[option.name], tf.float32) for option in record.runtime_options]
