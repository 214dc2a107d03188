"""The inputs of the exported SavedModel: named signatures, the image shape, named functions.

`keras_ddpm.export` builds the SavedModel's endpoints from these: this module is the one place
that decides which named inputs each endpoint takes (a conditional model's `labels` and
`guidance_scale` belong here) and how a `tf.function` gets those names.
"""

import inspect

import tensorflow as tf

from keras_ddpm import samplers


def generate_input_signature(model, with_sampler=False):
    """The named inputs of the `generate` endpoints for `model`.

    This is the one place that decides them: a conditional model's inputs
    (class labels, guidance scale) belong here.

    Args:
        model: the `DDPM`.
        with_sampler: add the `sampler` and `eta` inputs of
            `generate_with_sampler`. Defaults to `False`.

    Returns:
        A dict from input name to `tf.TensorSpec`, in argument order.
    """
    specs = {
        "num_images": tf.TensorSpec((), tf.int32, name="num_images"),
        "steps": tf.TensorSpec((), tf.int32, name="steps"),
        "seed": tf.TensorSpec((), tf.int32, name="seed"),
    }
    if with_sampler:
        specs["sampler"] = tf.TensorSpec((), tf.string, name="sampler")
        for option in samplers.all_options(runtime=True):
            specs[option.name] = tf.TensorSpec((), tf.float32, name=option.name)
    if num_classes_of(model) is not None:
        # In the order of the conditioning inputs of generation.ReverseProcess.loop.
        specs["labels"] = tf.TensorSpec((None,), tf.int32, name="labels")
        specs["guidance_scale"] = tf.TensorSpec((), tf.float32, name="guidance_scale")
    return specs


def denoise_input_signature(model, image_shape):
    """The named inputs of the `denoise` endpoint: `x_t` `[B, H, W, C]`, `t` `[B]` (and `labels` `[B]`)."""
    specs = {
        "x_t": tf.TensorSpec((None,) + tuple(image_shape), tf.float32, name="x_t"),
        "t": tf.TensorSpec((None,), tf.int32, name="t"),
    }
    if num_classes_of(model) is not None:
        specs["labels"] = tf.TensorSpec((None,), tf.int32, name="labels")
    return specs


def num_classes_of(model):
    """The model's number of classes, `None` for an unconditional one."""
    return getattr(model, "num_classes", None)


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
