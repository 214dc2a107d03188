"""What every loader shares without TensorFlow: argument checks (sizes, arrays of images and
labels), and the epoch of a pass.

A keras_ddpm loader draws the order and the flips of a pass from `(seed, epoch)`, not from
how many passes this process has made; its `epoch_counter` (`EPOCH_COUNTER`) holds the
epoch of the next pass, and `DDPM.fit` sets it with `StartEpoch` to the epoch it starts
from, so that a run resumed in a new process sees the batches an uninterrupted run saw.
The `tf.data` loaders (`pipeline`) and the backend-neutral PyDatasets (`batches`) share this.
"""

import numbers

import keras
import numpy as np

from keras_ddpm import checks

# The attribute of a loader's dataset holding its epoch counter (read by `DDPM.fit`): an
# object with `assign(epoch)` (a `tf.Variable` for the tf.data loaders).
EPOCH_COUNTER = "epoch_counter"


def check_batch_size(batch_size):
    """Returns `batch_size` as an int >= 1, else raises a `TypeError` or `ValueError`."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise TypeError(f"Expected `batch_size` to be an int >= 1; received {batch_size!r}.")
    if batch_size < 1:
        raise ValueError(f"Expected `batch_size` >= 1; received batch_size={batch_size}.")
    return int(batch_size)


def check_image_size(image_size, allow_none=True):
    """Returns `None` or an `(height, width)` tuple of positive ints."""
    if image_size is None and allow_none:
        return None
    size = (image_size, image_size) if isinstance(image_size, numbers.Integral) else image_size
    try:
        height, width = size
    except (TypeError, ValueError):
        height = width = None
    if not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1
        for v in (height, width)
    ):
        raise ValueError(
            "Expected `image_size` to be a positive int or a (height, width) pair of "
            f"positive ints; received image_size={image_size!r}."
        )
    return int(height), int(width)


def check_channels(channels):
    """Returns `channels` if it is 1 or 3, else raises a `ValueError`."""
    if channels not in (1, 3):
        raise ValueError(f"Expected `channels` to be 1 or 3; received channels={channels!r}.")
    return channels


def check_array_images(images):
    """Returns `(images, max_value)`: (N, H, W, C) uint8 with 255, or float32 with None."""
    images = checks.as_numpy(images)
    received_shape = images.shape
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or 0 in images.shape:
        raise ValueError(
            "Expected a non-empty array of images shaped (N, H, W) or (N, H, W, C) with "
            f"C in {{1, 3}}; received an array of shape {received_shape}."
        )
    if images.dtype == np.uint8:
        return images, 255
    if not np.issubdtype(images.dtype, np.floating):
        raise TypeError(
            "Expected uint8 images (0..255) or floating point images in [-1, 1]; "
            f"received dtype {images.dtype}. For 8-bit data stored in another integer "
            "type, pass `images.astype('uint8')`."
        )
    low, high = float(np.min(images)), float(np.max(images))
    if not (low >= -1.0 and high <= 1.0):  # Also rejects NaN.
        raise ValueError(
            f"Expected floating point images in [-1, 1]; received values from {low} to "
            f"{high}. Scale 0..255 data with `x / 127.5 - 1`, 0..1 data with `2 * x - 1`, "
            "or pass the data as uint8."
        )
    return images.astype(np.float32), None


def check_array_labels(labels, num_images):
    """Returns `labels` as int32 `(num_images,)`, else raises a `ValueError` or `TypeError`."""
    labels = checks.as_numpy(labels)
    if labels.ndim != 1 or len(labels) != num_images:
        raise ValueError(
            f"Expected `labels` of shape ({num_images},), one per image; received shape "
            f"{labels.shape}."
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"Expected integer `labels`; received dtype {labels.dtype}.")
    return labels.astype(np.int32)


def check_array_loader(images, labels, batch_size, image_size):
    """The checks of `from_array` and `from_array_batches`, with what they return:
    `(images, max_value, labels, batch_size, image_size)`."""
    batch_size = check_batch_size(batch_size)
    image_size = check_image_size(image_size)
    images, max_value = check_array_images(images)
    if labels is not None:
        labels = check_array_labels(labels, len(images))
    return images, max_value, labels, batch_size, image_size


class StartEpoch(keras.callbacks.Callback):
    """Sets a loader's `epoch_counter` to the epoch `fit` starts from (after any restore).

    `DDPM.fit` adds it for datasets made by the keras_ddpm loaders. The first
    epoch's iterator is made after `on_epoch_begin`; later ones count on from it.
    """

    def __init__(self, counter):
        super().__init__()
        self.counter = counter
        self._started = False

    def on_train_begin(self, logs=None):
        self._started = False

    def on_epoch_begin(self, epoch, logs=None):
        if not self._started:
            self.counter.assign(epoch)
            self._started = True
