"""What `DDPM.fit` accepts, and the checks that turn a wrong input into a clear error.

Accepted batches: images alone, `(images, labels)` tuples, or TFDS-style dicts
with an `"image"` key. uint8 images are read as [0, 255] and mapped to [−1, 1];
floating-point images must already be in [−1, 1]. A Python generator and a PyTorch
`DataLoader` may give any of these (`GeneratorBatches`).
"""

import copy
import inspect
import re
import sys

import keras
from keras import ops
import numpy as np

from keras_ddpm import backend
from keras_ddpm import batch_keys
from keras_ddpm import checks

RANGE_TOLERANCE = checks.RANGE_TOLERANCE
# What the training step's check says of a float batch outside [-1, 1] (or holding NaN);
# `batch_error` finds it in TensorFlow's error and makes it one line.
BATCH_RANGE_MESSAGE = (
    "A batch of floating-point training images holds values outside [-1, 1] (or NaN); map "
    "0..255 data with x / 127.5 - 1 or pass it as uint8"
)
LABEL_RANGE_MESSAGE = "A batch holds class labels outside"


def _pick_images(x):
    """The images out of a batch structure (tensor, spec or array)."""
    if isinstance(x, dict):
        if batch_keys.IMAGE not in x:
            raise ValueError(
                f"A dict batch must hold its images under the key {batch_keys.IMAGE!r} (the "
                f"TFDS convention). Received keys: {sorted(x)}."
            )
        return x[batch_keys.IMAGE]
    return x


def _check_shape(shape, image_shape):
    received = tuple(shape[1:])
    if image_shape is not None and len(received) == len(image_shape):
        if all(r is None or r == e for r, e in zip(received, image_shape)):
            return
    if image_shape is not None and tuple(shape) == tuple(image_shape):
        raise ValueError(
            f"Received one image of shape {tuple(shape)}, not a batch: fit takes batches "
            f"[N, {', '.join(str(d) for d in image_shape)}]; pass images[None] for a single one."
        )
    if image_shape is not None:
        raise ValueError(
            f"The images have shape {received} per example but the network expects "
            f"{tuple(image_shape)} (height, width, channels)."
        )


def _check_dtype(dtype):
    name = getattr(dtype, "name", str(dtype))
    try:
        name = keras.backend.standardize_dtype(dtype)
    except ValueError:  # not a numeric dtype (NumPy strings)
        pass
    if name != "uint8" and not keras.backend.is_float_dtype(name):
        raise TypeError(
            f"Images must be uint8 in [0, 255] or floating point in [-1, 1]. "
            f"Received dtype {name}."
        )


def brings_its_own_order(x):
    """Whether `x` orders its batches itself (a `tf.data.Dataset`, a Python generator or a
    PyTorch `DataLoader`), so that `fit` leaves it unshuffled: Keras would warn about its
    default `shuffle=True`."""
    return is_dataset(x) or inspect.isgenerator(x) or is_torch_loader(x)


def is_torch_loader(x):
    """Whether `x` is a `torch.utils.data.DataLoader`, without importing PyTorch to ask."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.utils.data.DataLoader)


def is_dataset(x):
    """Whether `x` is a `tf.data.Dataset`, without importing TensorFlow to ask."""
    tf = sys.modules.get("tensorflow")  # a dataset exists only once TensorFlow is loaded
    return tf is not None and isinstance(x, tf.data.Dataset)


def images_from_batch(data, image_shape=None):
    """Extracts float32 images in [−1, 1] from one batch inside `train_step`.

    Args:
        data: the batch `fit` passes to `train_step`.
        image_shape: (H, W, C) the network expects, or `None` to skip the check.

    Returns:
        float32 tensor `[B, H, W, C]`.
    """
    x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
    images = ops.convert_to_tensor(_pick_images(x))
    _check_dtype(images.dtype)
    _check_shape(images.shape, image_shape)
    if keras.backend.standardize_dtype(images.dtype) == "uint8":
        return ops.cast(images, "float32") / 127.5 - 1.0
    images = ops.cast(images, "float32")
    return backend.room().checked_in_step(
        images, ops.max(ops.abs(images)) <= 1.0 + RANGE_TOLERANCE, BATCH_RANGE_MESSAGE
    )


def labels_from_batch(data, num_classes):
    """Extracts the int32 class labels `[B]` of one batch inside `train_step`.

    Labels come from `(images, labels)` tuples or a dict's `"label"` key (TFDS).
    What `fit` could not look into before (a PyDataset, a generator) is checked
    here, as each batch's structure is traced.

    Args:
        data: the batch `fit` passes to `train_step`.
        num_classes: K, labels lying in `[0, K)`; `None` for an unconditional
            model, whose batches must not be `(images, labels)`.

    Returns:
        int32 tensor `[B]`, or `None` for an unconditional model.

    Raises:
        ValueError: when a conditional model's batch carries no labels, or an
            unconditional model's does (a dict's `"label"` is left alone).
    """
    x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
    if num_classes is None:
        if y is not None:
            raise ValueError(_UNCONDITIONAL_LABELS)
        return None
    labels = x.get(batch_keys.LABEL) if isinstance(x, dict) else y
    if labels is None:
        raise ValueError(_NO_LABELS.format(num_classes=num_classes))
    labels = ops.convert_to_tensor(labels)
    dtype = keras.backend.standardize_dtype(labels.dtype)
    if "int" not in dtype:
        raise TypeError(f"Class labels must be integers. Received dtype {dtype}.")
    labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
    in_range = ops.logical_and(ops.all(labels < num_classes), ops.all(labels >= 0))
    return backend.room().checked_in_step(
        labels, in_range, f"{LABEL_RANGE_MESSAGE} [0, {num_classes})"
    )


_NO_LABELS = (
    "This model is class-conditional (num_classes={num_classes}) and needs labels: "
    "give fit `(images, labels)` batches, TFDS {{'image', 'label'}} dicts or "
    "`fit(images, labels)`. Received images without labels."
)
_UNCONDITIONAL_LABELS = (
    "This model is unconditional (its network has no num_classes) but fit received "
    "labels, which it would ignore. Pass the images alone, or build a class-conditional "
    "network (UNet(..., num_classes=K))."
)


def _labels_seen_eagerly(x):
    """Whether `fit` can see the labels of `x` before training: arrays (with `y`), dicts
    of arrays and `tf.data` specs can; a PyDataset, a generator or a PyTorch `DataLoader`
    show theirs only in the step (`labels_from_batch`)."""
    return is_dataset(x) or isinstance(x, dict) or hasattr(x, "shape")


def _labels_of(x, y):
    """The labels of what `fit` received (array, spec or None)."""
    if is_dataset(x):
        spec = x.element_spec
        if isinstance(spec, tuple):
            return spec[1] if len(spec) > 1 else None
        return spec.get(batch_keys.LABEL) if isinstance(spec, dict) else None
    if isinstance(x, dict):
        return x.get(batch_keys.LABEL)
    return y


def check_training_labels(x, y, num_classes):
    """Eager checks that a conditional model's training data carries valid labels.

    Raises:
        ValueError naming what was received and what was expected.
    """
    if not _labels_seen_eagerly(x):
        return
    labels = _labels_of(x, y)
    if labels is None:
        raise ValueError(_NO_LABELS.format(num_classes=num_classes))
    if isinstance(labels, (np.ndarray, list, tuple)):
        labels = np.asarray(labels)
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            raise TypeError(f"Class labels must be integers. Received dtype {labels.dtype}.")
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"Class labels must lie in [0, {num_classes}). Received labels in "
                f"[{labels.min()}, {labels.max()}]."
            )


def check_training_data(x, image_shape=None):
    """Eager checks of what is handed to `fit`, before any tracing.

    NumPy arrays are checked completely (dtype, shape and value range); for a
    `tf.data.Dataset` the element spec is checked here and the value range
    inside the training step.

    Raises:
        ValueError / TypeError naming what was received and what was expected.
    """
    if is_dataset(x):
        spec = x.element_spec
        if isinstance(spec, tuple):
            spec = spec[0]
        spec = _pick_images(spec)
        if isinstance(spec, sys.modules["tensorflow"].TensorSpec):
            _check_dtype(spec.dtype)
            _check_shape(spec.shape, image_shape)
        return
    if isinstance(x, dict):
        x = _pick_images(x)
    if isinstance(x, np.ndarray):
        _check_dtype(x.dtype)
        _check_shape(x.shape, image_shape)
        if x.dtype != np.uint8 and x.size:
            finite = np.isfinite(x)
            if not finite.all():
                bad = np.argwhere(~finite)[0]
                raise ValueError(
                    f"The training images hold {int((~finite).sum())} NaN or infinite values "
                    f"(the first at index {tuple(int(i) for i in bad)}); they must be finite "
                    "numbers in [-1, 1]."
                )
            low, high = float(np.min(x)), float(np.max(x))
            if low < -1.0 - RANGE_TOLERANCE or high > 1.0 + RANGE_TOLERANCE:
                raise ValueError(
                    "Floating-point training images must lie in [-1, 1]. Received "
                    f"values in [{low:g}, {high:g}]; map 0..255 data with "
                    "x / 127.5 - 1 or pass it as uint8."
                )


def batch_error(error):
    """A one-line `ValueError` for a training step's failed data check, else `None`.

    Args:
        error: what a step raised (the backend room's `STEP_CHECK_ERRORS`): the range
            check of `images_from_batch` or the label check of `labels_from_batch`, found
            by their messages among the backend's lines.
    """
    text = getattr(error, "message", str(error))
    if BATCH_RANGE_MESSAGE in text:
        return ValueError(BATCH_RANGE_MESSAGE + ".")
    labels = re.search(re.escape(LABEL_RANGE_MESSAGE) + r" \[0, \d+\)", text)
    return None if labels is None else ValueError(labels.group(0) + ".")


def check_fit_arguments(x, batch_size):
    """Refuses empty training arrays and a `batch_size` that is not a positive int."""
    if batch_size is not None and (not checks.is_int(batch_size) or batch_size < 1):
        raise ValueError(
            f"`batch_size` must be a positive int or None. Received: batch_size={batch_size!r}."
        )
    if isinstance(x, dict):
        x = _pick_images(x)
    if isinstance(x, np.ndarray) and len(x) == 0:
        raise ValueError(
            f"The training images are empty (shape {x.shape}); pass at least one image."
        )
    if is_dataset(x) and int(x.cardinality()) == 0:
        raise ValueError("The training dataset is empty (it yields no batch).")


def check_no_labels(x, y):
    """Eager check that an unconditional model is not given labels it would ignore.

    TFDS-style dicts keep their `"label"` key (the model reads `"image"`).

    Raises:
        ValueError: labels as `y` or as the second part of `(images, labels)` batches.
    """
    labels = y
    if is_dataset(x) and isinstance(x.element_spec, tuple):
        labels = x.element_spec[1] if len(x.element_spec) > 1 else None
    if labels is not None:
        raise ValueError(_UNCONDITIONAL_LABELS)


def network_inputs(inputs, num_classes):
    """`DDPM.call`'s (and so `predict`'s) inputs: the network's `[x_t, t]`, `[x_t, t, labels]`
    if conditional, or a dict of them; anything else is one `ValueError` saying what to call."""
    names = "[x_t, t]" if num_classes is None else "[x_t, t, labels]"
    if isinstance(inputs, dict) or (
        isinstance(inputs, (list, tuple)) and len(inputs) == len(names.split(","))
    ):
        return inputs
    if isinstance(inputs, (list, tuple)):
        received = f"a {type(inputs).__name__} of {len(inputs)}"
    elif hasattr(inputs, "shape"):
        received = f"one array of shape {tuple(inputs.shape)}"
    else:
        received = f"a {type(inputs).__name__}"
    raise ValueError(
        f"A DDPM's call and predict take its network's inputs {names} (noisy images, their "
        f"timesteps{', class labels' if num_classes is not None else ''}) and give the "
        f"network's prediction; received {received}. To make images call "
        "generate(num_images); to noise images, encode(images)."
    )


class NetworkCall:
    """`keras.Model` mixin for a model around `self.network`: calling it (and `predict`) gives
    the network's prediction for `[x_t, t]` (`[x_t, t, labels]` if conditional); other inputs
    are one `ValueError` (`network_inputs`). Put it before `keras.Model` among the bases."""

    def __call__(self, x, *args, **kwargs):  # checked before Keras adds lines to the error
        return super().__call__(network_inputs(x, self.num_classes), *args, **kwargs)

    def call(self, x, training=False):  # JAX's predict calls it directly, not through __call__
        return self.network(network_inputs(x, self.num_classes), training=training)


def keras_batches(data):
    """`data`, or, for a Python generator or a PyTorch `DataLoader`, one that gives its batches
    as Keras' trainers read them: a tuple passes as it is, anything else (images alone, a dict)
    as `(batch,)`. (Keras' `DataLoader` adapter on TensorFlow and JAX makes a tuple of any
    batch, which splits a tensor along its first axis.)
    """
    if is_torch_loader(data):
        loader = copy.copy(data)  # the caller's loader keeps its own collate function
        loader.collate_fn = TupleBatches(data.collate_fn)
        return loader
    if not inspect.isgenerator(data):
        return data

    def batches():
        for batch in data:
            yield batch if isinstance(batch, tuple) else (batch,)

    return batches()


class TupleBatches:
    """A `DataLoader`'s collate function whose batches are tuples (or lists) as they were, and
    anything else as `(batch,)`; a class, so that worker processes can unpickle it.

    Args:
        collate: the loader's own collate function.
    """

    def __init__(self, collate):
        self.collate = collate

    def __call__(self, samples):
        batch = self.collate(samples)
        return batch if isinstance(batch, (tuple, list)) else (batch,)


class GeneratorBatches:
    """`keras.Model` mixin: `fit` (its `x` and `validation_data`) and `evaluate` take a Python
    generator or a PyTorch `DataLoader` of any accepted batch, images alone included
    (`keras_batches`), where Keras takes only tuples from a generator and refused the rest
    with the whole batch printed. Put it before `keras.Model` among the bases."""

    def fit(self, *args, **kwargs):
        arguments = fit_arguments(self, *args, **kwargs)
        for name in ("x", "validation_data"):
            if name in arguments:
                arguments[name] = keras_batches(arguments[name])
        return super().fit(**arguments)

    def evaluate(self, *args, **kwargs):
        arguments = backend.keras_arguments("evaluate", self, *args, **kwargs)
        if "x" in arguments:
            arguments["x"] = keras_batches(arguments["x"])
        return super().evaluate(**arguments)


def fit_arguments(model, *args, **kwargs):
    """`keras.Model.fit`'s arguments as a dict by name (a `TypeError` as `fit`'s for bad ones)."""
    return backend.keras_arguments("fit", model, *args, **kwargs)


def with_callbacks(callbacks, extra):
    """`callbacks` (None, a list or a `CallbackList`) with the `extra` ones after them."""
    if isinstance(callbacks, keras.callbacks.CallbackList):
        for callback in extra:
            callbacks.append(callback)
        return callbacks
    return [*(callbacks or []), *extra]
