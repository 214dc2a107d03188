"""The embedded 8x8 digits as NumPy arrays: no TensorFlow, so every backend reads them.

References:
    - [Alpaydin and Kaynak, Optical Recognition of Handwritten Digits,
      UCI Machine Learning Repository, 1998](https://doi.org/10.24432/C50P49)
"""

import functools
import importlib.resources

import numpy as np

from keras_ddpm.data.image_files import to_unit_range

DIGITS_MAX_VALUE = 16  # Pixel values of the embedded digits are 0..16.


@functools.lru_cache(maxsize=1)
def read_digits_asset():
    """Returns the raw `(images, labels)`: uint8 (1797, 8, 8) in 0..16, uint8 (1797,)."""
    resource = importlib.resources.files("keras_ddpm") / "assets" / "digits.npz"
    with resource.open("rb") as file, np.load(file) as archive:
        images, labels = archive["images"], archive["labels"]
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_digits_arrays():
    """Returns the embedded handwritten digits as NumPy arrays.

    The 1,797 images of 8x8 pixels of the UCI "Optical Recognition of
    Handwritten Digits" test set (E. Alpaydin and C. Kaynak, CC BY 4.0; see
    `keras_ddpm/assets/DIGITS_LICENSE.txt`), shipped with the package, so
    nothing is downloaded. Pixel values 0..16 map exactly to `v / 8 - 1`.

    Returns:
        A tuple `(images, labels)`: `images` is float32 of shape
        `(1797, 8, 8, 1)` in [-1, 1]; `labels` is int32 of shape `(1797,)`
        holding the digit 0..9 of each image. Fresh arrays on every call.

    Example:

    ```python
    images, labels = keras_ddpm.data.load_digits_arrays()
    images.shape  # (1797, 8, 8, 1)
    ```

    References:
        - [Alpaydin and Kaynak, Optical Recognition of Handwritten Digits,
          UCI Machine Learning Repository, 1998](https://doi.org/10.24432/C50P49)
    """
    raw_images, raw_labels = read_digits_asset()
    images = to_unit_range(raw_images[..., np.newaxis], DIGITS_MAX_VALUE)
    return images, raw_labels.astype(np.int32)
