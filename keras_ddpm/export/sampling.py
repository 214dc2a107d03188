"""The body of `generate_with_sampler`: every registered sampler's loop behind one switch."""

import tensorflow as tf

from keras_ddpm import samplers
from keras_ddpm import sampling_inputs
from keras_ddpm import utils
from keras_ddpm.export import inputs


def sample_function(exported):
    """`sample(num_images, steps, seed, sampler, **runtime options and conditioning)` → uint8.

    One compiled reverse loop per registered sampler (`DDPM.generate`'s own, so
    the graphs agree) sits behind a `tf.switch_case` on the sampler's index;
    steps and runtime options are tensors of every loop.

    Args:
        exported: the `endpoints.Exported` being written.
    """
    process, timesteps = exported.process, exported.process.schedule.timesteps
    names = samplers.sampler_names()
    records = [samplers.get_sampler(name) for name in names]
    runs = [
        process.loop(
            record.name, exported.spacing, exported.clip, exported.jit_compile,
            **{o.name: exported.sampler_options[record.name][o.name] for o in record.static_options},
        )
        for record in records
    ]
    default_steps = [record.steps_for(timesteps) for record in records]
    runtime_options = samplers.all_options(runtime=True)

    def sample(num_images, steps, seed, sampler, **given):
        options = {o.name: given.pop(o.name) for o in runtime_options}
        # 1. The sampler's index, and the checks generate() makes in Python.
        matches = tf.equal(tf.constant(names), sampler)
        checks = [
            tf.debugging.Assert(
                tf.reduce_any(matches),
                [f"Unknown sampler. Expected one of {', '.join(names)}. Received:", sampler],
            ),
            tf.debugging.assert_positive(
                num_images, message="`num_images` must be a positive integer."
            ),
        ]
        index = tf.argmax(tf.cast(matches, tf.int32), output_type=tf.int32)
        steps = inputs.steps_or_default(
            steps, tf.gather(default_steps, index), process.schedule, exported.spacing
        )
        for option in runtime_options:
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
        # 2. x_T and the loop's keys, derived from `seed` as DDPM.generate derives them.
        noise_keys, loop_keys = sampling_inputs.image_seeds(seed, 0, num_images)
        x = sampling_inputs.initial_noise(noise_keys, exported.image_shape)
        conditioning = inputs.checked_conditioning(given, num_images, exported.num_classes)
        # 3. The chosen sampler's whole loop, with the runtime options it takes.
        branches = [
            (
                lambda run=run, record=record: run(
                    x, loop_keys, 0, steps, steps,
                    *[options[o.name] for o in record.runtime_options], *conditioning,
                )
            )
            for run, record in zip(runs, records)
        ]
        # 4. uint8 pixels as keras_ddpm.utils.to_uint8.
        return utils.to_uint8_tensor(tf.switch_case(index, branches))

    return sample


def default_sampler_inputs(exported):
    """`generate`'s fixed inputs of `generate_with_sampler`: the export-time sampler and options."""
    chosen = exported.sampler_options[exported.sampler]
    return {
        "sampler": tf.constant(exported.sampler),
        **{
            option.name: tf.constant(chosen.get(option.name, option.neutral), tf.float32)
            for option in samplers.all_options(runtime=True)
        },
    }
