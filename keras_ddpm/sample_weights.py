"""Keras' per-example loss weights (`sample_weight`, `class_weight`) in `fit` and `evaluate`.

Keras puts them third in a batch, `(images, labels, weights)`, and only beside labels: an
array's `sample_weight` given without `y` is dropped before the step.
"""

import keras
import numpy as np
from keras import ops


def from_batch(data):
    """The per-example loss weights of one batch inside `train_step`/`test_step`.

    They are `fit`'s and `evaluate`'s `sample_weight`, `class_weight` turned into weights,
    or the third part of `(images, labels, weights)` batches.

    Args:
        data: the batch `fit` or `evaluate` passes to the step.

    Returns:
        float32 tensor `[B]`, or `None` when the batch carries no weights.
    """
    _, _, weights = keras.utils.unpack_x_y_sample_weight(data)
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

    An unconditional model has no labels `y`, beside which alone Keras passes weights on.

    Args:
        arguments: `fit`'s or `evaluate`'s arguments by name.
        num_classes: the model's `num_classes` (`None` when unconditional).

    Raises:
        ValueError: naming the argument, for an unconditional model.
    """
    if num_classes is not None:
        return
    for name in ("sample_weight", "class_weight"):
        value = arguments.get(name)
        if value is not None:
            shown = f"an array of shape {tuple(value.shape)}" if hasattr(value, "shape") else value
            raise ValueError(
                f"An unconditional model cannot take `{name}`: Keras hands per-example "
                "weights to the training step only beside class labels, so they would be "
                f"ignored. Received: {name}={shown!s}."
            )
