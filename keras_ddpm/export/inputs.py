"""The exported endpoints' named inputs and the checks their graphs make on them.

A SavedModel signature has no optional inputs: every endpoint's inputs are fixed here, with a
conditional model's `labels` and `guidance_scale` appended, and `named_function` turns a body
of keyword arguments into a `tf.function` whose argument names are the signature's input names.
The checks are those `DDPM.generate` and its editing methods make in Python, in graph form.
"""

import inspect

import tensorflow as tf

from keras_ddpm import samplers
from keras_ddpm.checks import RANGE_TOLERANCE
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


# The `images` dtypes of the loaded object's `edit` and `inpaint` (their signatures take uint8):
# integer pixels 0..255, or floats in [−1, 1] as `DDPM.generate(initial_images=)` takes them.
IMAGE_DTYPES = (tf.uint8, tf.int32, tf.int64, tf.float32, tf.float64)


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
    function.__signature__ = _signature(specs)
    return tf.function(function, input_signature=list(specs.values()), autograph=False)


def _signature(specs):
    """A Python signature whose arguments are the names of `specs` (the signature's inputs)."""
    return inspect.Signature(
        [inspect.Parameter(key, inspect.Parameter.POSITIONAL_OR_KEYWORD) for key in specs]
    )


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
    """`images` as the [−1, 1] float32 values `DDPM` takes, after checks (one per dtype kind).

    Integer pixels (uint8, or the int32/int64 of `IMAGE_DTYPES`) must lie in 0..255 and become
    `images / 127.5 − 1`; float images must be finite and in [−1, 1] (within
    `checks.RANGE_TOLERANCE`, as the Python methods check) and are taken as they are.
    """
    found = [tf.reduce_min(images), tf.reduce_max(images)]
    checks = [
        tf.debugging.assert_positive(tf.shape(images)[0], message="`images` holds no image.")
    ]
    if images.dtype.is_floating:
        limit = 1.0 + RANGE_TOLERANCE
        in_range = tf.reduce_all(tf.abs(images) <= limit)  # false for NaN too
        checks.append(tf.debugging.Assert(in_range, [
            f"`images` of dtype {images.dtype.name} must be finite values in [-1, 1], as "
            "DDPM takes them (or uint8 pixels 0..255). Received values in", *found,
        ]))
        with tf.control_dependencies(checks):
            return tf.cast(images, tf.float32)
    if images.dtype != tf.uint8:
        in_range = tf.reduce_all(tf.logical_and(images >= 0, images <= 255))
        checks.append(tf.debugging.Assert(in_range, [
            f"`images` of dtype {images.dtype.name} must be pixels in 0..255. Received values in",
            *found,
        ]))
    with tf.control_dependencies(checks):
        return tf.cast(images, tf.float32) / 127.5 - 1.0


def image_functions(body, specs, name):
    """`(signature function, module function)` of an endpoint whose `images` are uint8.

    The graph of `body` is traced once, for float32 images in [−1, 1]; the images reach it
    checked and converted once, by `as_floats`. The signature takes uint8 pixels, as TF Serving clients send them. The
    loaded object's function takes every dtype of `IMAGE_DTYPES`, so that the [−1, 1] floats
    of the Python API (float32, or NumPy's default float64) and integer pixels are converted
    and checked instead of silently cast to uint8 (which TensorFlow does for a one-dtype
    function: floats in [−1, 1] became black images, 300 became 44).
    """
    float_specs = dict(specs, images=tf.TensorSpec(specs["images"].shape, tf.float32, "images"))
    core = named_function(body, float_specs, name)

    def function(*args):
        given = dict(zip(specs, args))
        # Any shape is traced, and checked here: the wrong one is one line, not TensorFlow's
        # list of every concrete function the loaded object has.
        images = tf.ensure_shape(given.pop("images"), specs["images"].shape)
        return core(images=as_floats(images), **given)

    function.__name__ = name
    function.__signature__ = _signature(specs)
    every_dtype = tf.function(function, autograph=False)

    def signature(**given):
        # The module function's dtypes are traced here, when `tf.saved_model.save` traces the
        # signatures (before it lists the module's functions): a trace made before `save` is
        # made again inside it, which would trace `body`'s loops twice.
        for dtype in IMAGE_DTYPES:
            every_dtype.get_concrete_function(*[
                tf.TensorSpec(None, dtype, spec.name) if key == "images" else spec
                for key, spec in specs.items()
            ])
        return every_dtype(**given)

    return named_function(signature, specs, name), every_dtype
