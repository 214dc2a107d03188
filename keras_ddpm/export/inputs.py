"""The exported endpoints' named inputs and the checks their graphs make on them.

A SavedModel signature has no optional inputs: every endpoint's inputs are fixed here, with a
conditional model's `labels` and `guidance_scale` appended, and `named_function` turns a body
of keyword arguments into a `tf.function` whose argument names are the signature's input names.
The checks are those `DDPM.generate` and its editing methods make in Python, in graph form.
"""

import inspect

import tensorflow as tf

from keras_ddpm import samplers
from keras_ddpm.samplers.spacing import optimized_indices


def scalar(name, dtype=tf.int32):
    return tf.TensorSpec((), dtype, name=name)


def with_conditioning(specs, num_classes):
    """`specs` plus a conditional model's `labels` `[N]` and `guidance_scale`."""
    if num_classes is not None:
        # In the order of the conditioning inputs of generation.ReverseProcess's loops.
        specs["labels"] = tf.TensorSpec((None,), tf.int32, name="labels")
        specs["guidance_scale"] = scalar("guidance_scale", tf.float32)
    return specs


def generate_inputs(num_classes, with_sampler=False):
    """`num_images`, `steps`, `seed` (and `sampler` with one float per runtime sampler option)."""
    specs = {name: scalar(name) for name in ("num_images", "steps", "seed")}
    if with_sampler:
        specs["sampler"] = scalar("sampler", tf.string)
        for option in samplers.all_options(runtime=True):
            specs[option.name] = scalar(option.name, tf.float32)
    return with_conditioning(specs, num_classes)


def image_input(image_shape):
    return tf.TensorSpec((None,) + tuple(image_shape), tf.uint8, name="images")


def edit_inputs(image_shape, num_classes):
    """`images` uint8 `[N, H, W, C]`, `strength`, `steps`, `seed`."""
    specs = {
        "images": image_input(image_shape), "strength": scalar("strength", tf.float32),
        "steps": scalar("steps"), "seed": scalar("seed"),
    }
    return with_conditioning(specs, num_classes)


def inpaint_inputs(image_shape, num_classes):
    """`images` uint8, `mask` float32 `[N or 1, H, W, C or 1]`, `steps`, `seed`."""
    height, width, _ = image_shape
    specs = {
        "images": image_input(image_shape),
        "mask": tf.TensorSpec((None, height, width, None), tf.float32, name="mask"),
        "steps": scalar("steps"), "seed": scalar("seed"),
    }
    return with_conditioning(specs, num_classes)


def denoise_inputs(image_shape, num_classes):
    """`x_t` float32 `[B, H, W, C]`, `t` int32 `[B]` (and `labels` `[B]`)."""
    specs = {
        "x_t": tf.TensorSpec((None,) + tuple(image_shape), tf.float32, name="x_t"),
        "t": tf.TensorSpec((None,), tf.int32, name="t"),
    }
    if num_classes is not None:
        specs["labels"] = tf.TensorSpec((None,), tf.int32, name="labels")
    return specs


def named_function(body, specs, name):
    """A `tf.function` of `body(**inputs)` whose arguments are the names of `specs`.

    The argument names become the input names of the SavedModel signature; one
    helper serves every set of inputs (with or without conditioning).
    """

    def function(*args):
        return body(**dict(zip(specs, args)))

    function.__name__ = name
    function.__signature__ = inspect.Signature(
        [inspect.Parameter(key, inspect.Parameter.POSITIONAL_OR_KEYWORD) for key in specs]
    )
    return tf.function(function, input_signature=list(specs.values()), autograph=False)


def exported_image_shape(model, image_shape):
    """(H, W, C) of the exported images; builds an unbuilt network from `image_shape`."""
    if model.image_shape is not None and None not in model.image_shape:
        if image_shape is not None and tuple(image_shape) != tuple(model.image_shape):
            raise ValueError(
                f"The network takes images of shape {tuple(model.image_shape)}. Received: "
                f"image_shape={tuple(image_shape)}."
            )
        return tuple(model.image_shape)
    if image_shape is None:
        raise ValueError(
            "Cannot export a DDPM whose network declares no input shape (a subclassed "
            "network that was never built). Pass image_shape=(H, W, C) to "
            "keras_ddpm.export.export_saved_model, or build the network first by calling it "
            "as network([x_t, t])."
        )
    if len(image_shape) != 3 or not all(isinstance(d, int) and d > 0 for d in image_shape):
        raise ValueError(
            f"`image_shape` must be three positive integers (H, W, C). Received: "
            f"image_shape={image_shape!r}."
        )
    image_shape = tuple(image_shape)
    if not model.network.built or not model.network.weights:
        model.network([tf.zeros((1,) + image_shape), tf.zeros((1,), tf.int32)])
    return image_shape


# ----------------------------------------------------------------------------
# Checks in graph form
# ----------------------------------------------------------------------------
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


def steps_or_default(steps, default, schedule, spacing=None):
    """`steps` (0: `default`) after the checks `generate` makes in Python (all endpoints).

    With the `"optimized"` spacing the only steps are the model's optimized ones
    (`DDPM.optimize_steps`): `default` is their number, and any other is refused.
    """
    timesteps = schedule.timesteps
    if spacing == samplers.OPTIMIZED:
        default = len(optimized_indices(schedule))
        steps = tf.where(steps == 0, default, steps)
        message = (f"`steps` must be {default} (0: the default), the number of the model's "
                   "optimized steps (the SavedModel was written with timestep_spacing='optimized').")
        with tf.control_dependencies([tf.debugging.assert_equal(steps, default, message=message)]):
            return tf.identity(steps)
    steps = tf.where(steps == 0, default, steps)
    message = f"`steps` must be in [1, {timesteps}] (0: the default)."
    with tf.control_dependencies([
        tf.debugging.assert_greater_equal(steps, 1, message=message),
        tf.debugging.assert_less_equal(steps, timesteps, message=message),
    ]):
        return tf.identity(steps)


def as_floats(images):
    """uint8 pixels as the [−1, 1] floats `DDPM` takes, after a check that there are some."""
    with tf.control_dependencies([
        tf.debugging.assert_positive(tf.shape(images)[0], message="`images` holds no image.")
    ]):
        return tf.cast(images, tf.float32) / 127.5 - 1.0
