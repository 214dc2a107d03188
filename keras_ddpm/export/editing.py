"""The bodies of the SavedModel's editing endpoints, `edit` and `inpaint`.

Both take images `[N, H, W, C]` (uint8 pixels in the signatures; through the loaded object
also other integer pixels, or floats in [−1, 1]: `inputs.image_functions`), return uint8
images, and run the same compiled loops as `DDPM.generate(initial_images=, strength=)` and
`DDPM.inpaint` (from `generation.ReverseProcess`), with x_T and the loop's seed derived from
`seed` as for one batch there; so with the same seed they return `to_uint8` of the Python
methods' images, the inputs being `images / 127.5 − 1` (float images: as they are).
`steps = 0` asks for the Python default.
"""

import tensorflow as tf
from keras import ops

from keras_ddpm import samplers
from keras_ddpm import sampling_inputs
from keras_ddpm import utils
from keras_ddpm.export import inputs


def edit_function(exported):
    """The body of `edit`: SDEdit with the export-time sampler, as `generate(initial_images=)`.

    Args:
        exported: the `endpoints.Exported` being written.
    """
    sampler, process, num_classes = exported.sampler, exported.process, exported.num_classes
    record, options = samplers.get_sampler(sampler), exported.sampler_options[sampler]
    spacing = exported.spacing or record.default_spacing
    run = process.loop(
        sampler, spacing, exported.clip, exported.jit_compile, **_static(record, options)
    )
    schedule = process.schedule
    default_steps = record.steps_for(schedule.timesteps)

    def edit(images, strength, steps, seed, **given):
        x0 = images  # float32 in [−1, 1], checked (`inputs.image_functions`)
        steps = inputs.steps_or_default(steps, default_steps, schedule, spacing)
        with tf.control_dependencies([
            tf.debugging.Assert(
                tf.logical_and(strength >= 0.0, strength <= 1.0),
                ["`strength` must be in [0, 1]. Received:", strength],
            )
        ]):
            # The last round(strength · steps) steps run: sampling_inputs.steps_to_run in graph form.
            taken = tf.cast(tf.round(strength * tf.cast(steps, tf.float32)), tf.int32)
        first = steps - taken
        conditioning = inputs.checked_conditioning(given, tf.shape(x0)[0], num_classes)
        noise_keys, loop_keys = sampling_inputs.image_seeds(seed, 0, tf.shape(x0)[0])

        def edited():
            noise = sampling_inputs.initial_noise(noise_keys, ops.shape(x0)[1:])
            sequence = samplers.timestep_sequence(schedule, steps, spacing)
            t = tf.fill(tf.shape(x0)[:1], tf.gather(sequence, tf.minimum(first, steps - 1)))
            x = tf.where(first > 0, schedule.add_noise(x0, noise, t), noise)
            x = run(x, loop_keys, first, steps, steps, *_runtime(record, options), *conditioning)
            return utils.to_uint8_tensor(x)

        return tf.cond(taken > 0, edited, lambda: utils.to_uint8_tensor(x0))

    return edit


def inpaint_function(exported):
    """The body of `inpaint`: `DDPM.inpaint` with the export-time resampling and sampler.

    The sampler is the export-time one when it has a single-step update, else
    the registry's `DEFAULT_SAMPLER` (a multistep solver cannot jump back).

    Args:
        exported: the `endpoints.Exported` being written.
    """
    process, num_classes = exported.process, exported.num_classes
    sampler = exported.sampler
    if samplers.get_sampler(sampler).step is None:
        sampler = samplers.DEFAULT_SAMPLER
    record, options = samplers.get_sampler(sampler), exported.sampler_options[sampler]
    spacing = exported.spacing or record.default_spacing
    resample_steps, jump_length = exported.resample_steps, exported.jump_length
    run = process.inpaint_loop(
        sampler, spacing, exported.clip, exported.jit_compile, None, **_static(record, options)
    )
    schedule = process.schedule
    default_steps = record.inpaint_steps_for(schedule.timesteps)

    def inpaint(images, mask, steps, seed, **given):
        x0 = images  # float32 in [−1, 1], checked (`inputs.image_functions`)
        steps = inputs.steps_or_default(steps, default_steps, schedule, spacing)
        with tf.control_dependencies([
            tf.debugging.Assert(
                tf.reduce_all(tf.logical_and(mask >= 0.0, mask <= 1.0)),
                ["`mask` must hold values in [0, 1] (1 keeps a pixel, 0 fills it); received "
                 "values in", tf.reduce_min(mask), tf.reduce_max(mask)],
            )
        ]):
            mask = tf.broadcast_to(mask, tf.shape(x0))
        conditioning = inputs.checked_conditioning(given, tf.shape(x0)[0], num_classes)
        noise_keys, loop_keys = sampling_inputs.image_seeds(seed, 0, tf.shape(x0)[0])
        x = sampling_inputs.initial_noise(noise_keys, ops.shape(x0)[1:])
        x = run(x, x0, mask, loop_keys, 0, steps, steps, resample_steps, jump_length,
                *_runtime(record, options), *conditioning)
        return utils.to_uint8_tensor(x)

    return inpaint


def _static(record, options):
    return {option.name: options[option.name] for option in record.static_options}


def _runtime(record, options):
    return [tf.constant(options[option.name], tf.float32) for option in record.runtime_options]
