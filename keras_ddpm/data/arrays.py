"""In-memory images as `tf.data` pipelines: NumPy arrays or tensors, and the embedded digits.

References:
    - [Alpaydin and Kaynak, Optical Recognition of Handwritten Digits,
      UCI Machine Learning Repository, 1998](https://doi.org/10.24432/C50P49)
"""

import numpy as np
import tensorflow as tf

from keras_ddpm.data.digits import DIGITS_MAX_VALUE
from keras_ddpm.data.digits import read_digits_asset
from keras_ddpm.data.loader_common import check_array_loader
from keras_ddpm.data.loader_common import check_batch_size
from keras_ddpm.data.loader_common import check_image_size
from keras_ddpm.data.pipeline import batch_pipeline
from keras_ddpm.data.pipeline import center_crop_and_resize
from keras_ddpm.data.pipeline import to_unit_range


def _array_dataset(images, labels, max_value, image_size, **pipeline_args):
    """Pipeline over in-memory images: uint8 when `max_value` is set, else float [-1, 1]."""

    def preprocess(image):
        image = image if max_value is None else to_unit_range(image, max_value)
        return image if image_size is None else center_crop_and_resize(image, image_size)

    if labels is None:
        dataset = tf.data.Dataset.from_tensor_slices(images)
    else:
        dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    return batch_pipeline(
        dataset,
        preprocess,
        with_labels=labels is not None,
        shuffle_buffer=len(images),
        **pipeline_args,
    )


# 1. The embedded digits.


def load_digits(batch_size=128, image_size=None, with_labels=False, shuffle=True, seed=None):
    """Loads the embedded 8x8 handwritten digits as a `tf.data.Dataset`.

    The default dataset of keras_ddpm: 1,797 grayscale digits that ship with
    the package (see `load_digits_arrays`), small enough to train a DDPM on a
    CPU in minutes. Pixel values 0..16 map exactly to `v / 8 - 1`. There is
    no `random_flip`: a mirrored digit is not a digit.

    Args:
        batch_size: int, images per batch; the last batch may be smaller.
            Defaults to `128`.
        image_size: `None`, an int or a `(height, width)` pair. When set, the
            digits are resized (bilinear, antialiased) to that size.
            Defaults to `None` (8x8).
        with_labels: bool, whether elements are `(images, labels)` pairs with
            int32 digits 0..9. Defaults to `False`.
        shuffle: bool, whether to reshuffle the images every epoch.
            Defaults to `True`.
        seed: optional int making the shuffling order reproducible.
            Defaults to `None`.

    Returns:
        A `tf.data.Dataset` of float32 batches `(B, H, W, 1)` in [-1, 1], or
        `(images, labels)` batches when `with_labels=True`.

    Example:

    ```python
    dataset = keras_ddpm.data.load_digits(batch_size=64, seed=0)
    images = next(iter(dataset))  # (64, 8, 8, 1), float32 in [-1, 1]
    ```

    References:
        - [Alpaydin and Kaynak, Optical Recognition of Handwritten Digits,
          UCI Machine Learning Repository, 1998](https://doi.org/10.24432/C50P49)
    """
    batch_size = check_batch_size(batch_size)
    image_size = check_image_size(image_size)
    raw_images, raw_labels = read_digits_asset()
    return _array_dataset(
        raw_images[..., np.newaxis],
        raw_labels.astype(np.int32) if with_labels else None,
        DIGITS_MAX_VALUE,
        image_size,
        batch_size=batch_size,
        shuffle=shuffle,
        random_flip=False,  # A mirrored digit is not a digit.
        seed=seed,
    )


# 2. Any in-memory array.


def from_array(
    images, labels=None, batch_size=128, image_size=None, shuffle=True, random_flip=False, seed=None
):
    """Builds a dataset from in-memory images (NumPy arrays or tensors).

    uint8 images map as `v / 127.5 - 1` (0 -> -1, 255 -> +1); floating point
    images must already lie in [-1, 1] and are only cast to float32. The
    whole array is held in memory and shuffled with a buffer of its size.

    Args:
        images: array of shape `(N, H, W)` (grayscale; a channel axis is
            added) or `(N, H, W, C)` with `C` 1 or 3, dtype uint8 or float.
        labels: optional integer array of shape `(N,)`. When given, elements
            are `(images, labels)` pairs with int32 labels. Defaults to `None`.
        batch_size: int, images per batch; the last batch may be smaller.
            Defaults to `128`.
        image_size: `None`, an int or a `(height, width)` pair. When set,
            images are center-cropped to that aspect ratio and resized
            (bilinear, antialiased). Defaults to `None` (keep the size).
        shuffle: bool, whether to reshuffle every epoch. Defaults to `True`.
        random_flip: bool, whether to flip each image horizontally with
            probability 1/2, anew each epoch. Defaults to `False`.
        seed: optional int making shuffling and flips reproducible.
            Defaults to `None`.

    Returns:
        A `tf.data.Dataset` of float32 batches `(B, H, W, C)` in [-1, 1], or
        `(images, labels)` batches when `labels` is given.

    Example:

    ```python
    (x_train, _), _ = keras.datasets.cifar10.load_data()  # uint8
    dataset = keras_ddpm.data.from_array(x_train, random_flip=True)
    ```
    """
    images, max_value, labels, batch_size, image_size = check_array_loader(
        images, labels, batch_size, image_size
    )
    return _array_dataset(
        images,
        labels,
        max_value,
        image_size,
        batch_size=batch_size,
        shuffle=shuffle,
        random_flip=random_flip,
        seed=seed,
    )
