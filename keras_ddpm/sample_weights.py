"""Keras' per-example loss weights (`sample_weight`, `class_weight`) in `fit` and `evaluate`.

Keras puts them third in a batch, `(images, labels, weights)`, and only beside labels: an
array's `sample_weight` given without `y` would be dropped before the step. `fit` and
`evaluate` carry an unconditional model's themselves (`fit_order`), in dict batches
`{"image", "sample_weight"}`, which any dataset can give too.
"""

import keras
import numpy as np
from keras import ops

from keras_ddpm import batch_keys


def from_batch(data):
    """The per-example loss weights of one batch inside `train_step`/`test_step`.

    They are `fit`'s and `evaluate`'s `sample_weight`, `class_weight` turned into weights,
    the third part of `(images, labels, weights)` batches, or a dict batch's
    `"sample_weight"` (`batch_keys.SAMPLE_WEIGHT`).

    Args:
        data: the batch `fit` or `evaluate` passes to the step.

    Returns:
        float32 tensor `[B]`, or `None` when the batch carries no weights.
    """
    x, _, weights = keras.utils.unpack_x_y_sample_weight(data)
    if weights is None and isinstance(x, dict):
        weights = x.get(batch_keys.SAMPLE_WEIGHT)
    if weights is None:
        return None
    return ops.reshape(ops.cast(ops.convert_to_tensor(weights), "float32"), (-1,))


def from_class_weight(labels, class_weight):
    """Each image's weight under `class_weight`, by Keras' rule: its class's weight, 1 for a
    class the dict leaves out (labels rounded to integers; one-hot rows by their argmax).

    Args:
        labels: `[N]` (or `[N, 1]`, or one-hot `[N, C]`) array of class labels.
        class_weight: dict from class index to weight.

    Returns:
        float32 array `[N]`.
    """
    labels = np.asarray(labels)
    if labels.ndim > 1:
        labels = labels.argmax(axis=-1) if labels.shape[-1] != 1 else labels[..., 0]
    classes = np.round(labels).astype("int64")
    return np.array([class_weight.get(int(c), 1.0) for c in classes], dtype="float32")


def check_none_dropped(arguments, num_classes):
    """Refuses `sample_weight`/`class_weight` that Keras would drop before the step.

    An unconditional model has no labels `y`, beside which alone Keras passes weights on;
    `fit` and `evaluate` carry an array's weights themselves (`fit_order`) and leave here
    only those they could not: with `steps_per_epoch`, or beside data that is not an array.

    Args:
        arguments: `fit`'s or `evaluate`'s arguments by name.
        num_classes: the model's `num_classes` (`None` when unconditional).

    Raises:
        ValueError: naming the argument, for an unconditional model.
    """
    if num_classes is not None:
        return
    if arguments.get("class_weight") is not None:
        raise ValueError(
            "An unconditional model cannot take `class_weight`: it has no classes. Received: "
            f"class_weight={arguments['class_weight']!s}."
        )
    value = arguments.get("sample_weight")
    if value is not None:
        shown = f"an array of shape {tuple(value.shape)}" if hasattr(value, "shape") else value
        raise ValueError(
            "An unconditional model takes `sample_weight` beside arrays of images only (not "
            "with `steps_per_epoch`); give other data as dict batches "
            f"{{'{batch_keys.IMAGE}': images, '{batch_keys.SAMPLE_WEIGHT}': weights}}. "
            f"Received: sample_weight={shown!s}."
        )
