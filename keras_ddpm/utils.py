"""Image helpers: back from the model's [-1, 1] scale to 8-bit pixels and PNG grids.

keras_ddpm works on float images in [-1, 1] (see `keras_ddpm.data`); these
helpers turn such images, or uint8 ones, into uint8 arrays, a single tiled
grid, and a PNG file a person can look at. They run on NumPy: tensors are
converted first.
"""

import math
import numbers
import os

import numpy as np
from PIL import Image

from keras_ddpm import atomic
from keras_ddpm import checks

# Automatic upscaling in `save_image_grid` makes grids at least this wide.
MIN_GRID_WIDTH = 256


_as_numpy = checks.as_numpy


def _check_int(name, value, minimum, maximum=None):
    valid = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    valid = valid and value >= minimum and (maximum is None or value <= maximum)
    if not valid:
        expected = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise ValueError(f"Expected `{name}` to be an int {expected}; received {name}={value!r}.")
    return int(value)


def to_uint8(images):
    """Converts images in [-1, 1] to uint8 pixels 0..255.

    Each value `x` becomes `round((x + 1) * 127.5)`, rounding halves up, after
    clipping to [-1, 1] (so -1 -> 0, 0 -> 128, 1 -> 255). NaN becomes 0.
    uint8 input is returned unchanged. The inverse of the `v / 127.5 - 1`
    mapping of `keras_ddpm.data`.

    Args:
        images: NumPy array or tensor of any shape, floating point in
            [-1, 1] or uint8.

    Returns:
        A uint8 NumPy array of the same shape.

    Example:

    ```python
    keras_ddpm.utils.to_uint8(np.array([-1.0, 0.0, 1.0]))  # [0, 128, 255]
    ```
    """
    images = _as_numpy(images)
    if images.dtype == np.uint8:
        return images
    if not np.issubdtype(images.dtype, np.floating):
        raise TypeError(
            "Expected floating point images in [-1, 1] or uint8 images; received dtype "
            f"{images.dtype}."
        )
    return to_uint8_tensor(images).numpy()


def to_uint8_tensor(images):
    """The graph form of `to_uint8`: float images in [-1, 1] → uint8, with TensorFlow ops.

    The SavedModel endpoints use it, so that exported and Python images agree
    to the bit: NaN → 0, then clip to [-1, 1], then round((x + 1)·127.5) with
    halves up, all in float64.
    """
    import tensorflow as tf

    values = tf.cast(images, tf.float64)
    values = tf.where(tf.math.is_nan(values), tf.constant(-1.0, tf.float64), values)
    values = tf.clip_by_value(values, -1.0, 1.0)
    return tf.cast(tf.floor((values + 1.0) * 127.5 + 0.5), tf.uint8)


def _check_image_batch(images):
    """Returns the batch as (N, H, W, C) with C in {1, 3}, or raises naming its shape."""
    images = _as_numpy(images)
    batch = images[..., np.newaxis] if images.ndim == 3 else images
    if batch.ndim != 4 or batch.shape[-1] not in (1, 3) or 0 in batch.shape:
        raise ValueError(
            "Expected a non-empty batch of images shaped (N, H, W) or (N, H, W, C) with "
            f"C in {{1, 3}}; received shape {images.shape}."
        )
    return batch


def make_image_grid(images, ncols=None, padding=1, pad_value=0):
    """Tiles a batch of images into one uint8 image.

    Tiles fill the grid row by row; `padding` pixels of `pad_value` separate
    the tiles and frame the grid, and the cells after the last image of a
    ragged last row are `pad_value` too. Image `i` sits at row
    `i // ncols`, column `i % ncols`, with its top-left pixel at
    `(padding + row * (H + padding), padding + col * (W + padding))`.

    Args:
        images: NumPy array or tensor shaped `(N, H, W)` or `(N, H, W, C)` with
            `C` 1 or 3, floating point in [-1, 1] or uint8.
        ncols: optional int, tiles per row, at most `N`. Defaults to `None`
            (`ceil(sqrt(N))`, a near-square grid).
        padding: int >= 0, pixels between tiles and around the grid.
            Defaults to `1`.
        pad_value: int 0..255, the 8-bit value of the padding.
            Defaults to `0` (black).

    Returns:
        A uint8 NumPy array of shape
        `(rows * (H + padding) + padding, ncols * (W + padding) + padding, C)`,
        with `C = 1` for `(N, H, W)` input.

    Example:

    ```python
    grid = keras_ddpm.utils.make_image_grid(np.zeros((10, 8, 8, 1)))
    grid.shape  # (37, 37, 1): 4 x 3 tiles of 8 + 1 pixels, plus 1
    ```
    """
    pixels = to_uint8(_check_image_batch(images))
    num_images, height, width, channels = pixels.shape
    if ncols is None:
        ncols = math.isqrt(num_images - 1) + 1  # ceil(sqrt(N))
    ncols = min(_check_int("ncols", ncols, 1), num_images)
    padding = _check_int("padding", padding, 0)
    pad_value = _check_int("pad_value", pad_value, 0, 255)

    nrows = math.ceil(num_images / ncols)
    grid_shape = (
        nrows * (height + padding) + padding,
        ncols * (width + padding) + padding,
        channels,
    )
    grid = np.full(grid_shape, pad_value, dtype=np.uint8)
    for i, tile in enumerate(pixels):
        row, col = divmod(i, ncols)
        top = padding + row * (height + padding)
        left = padding + col * (width + padding)
        grid[top : top + height, left : left + width] = tile
    return grid


def save_image_grid(images, path, ncols=None, padding=1, scale=None):
    """Saves a batch of images as one PNG grid.

    The grid of `make_image_grid` is enlarged `scale` times by repeating
    pixels (nearest neighbour, so pixels stay sharp) and written with Pillow,
    as a grayscale ("L") PNG for one channel and an RGB PNG for three. The
    file is PNG whatever `path`'s extension; missing parent folders are
    created. It is written under a temporary name and renamed into place, so
    a kill never leaves a truncated grid.

    Args:
        images: NumPy array or tensor shaped `(N, H, W)` or `(N, H, W, C)` with
            `C` 1 or 3, floating point in [-1, 1] or uint8.
        path: str or path-like, the file to write.
        ncols: optional int, tiles per row. Defaults to `None`
            (`ceil(sqrt(N))`).
        padding: int >= 0, pixels between tiles, before scaling.
            Defaults to `1`.
        scale: optional int >= 1, the upscaling factor. Defaults to `None`:
            the smallest factor that makes the grid at least
            `MIN_GRID_WIDTH` (256) pixels wide, so that 8x8 digits are not a
            thumbnail; 1 for grids already that wide.

    Returns:
        `path`, as passed.

    Example:

    ```python
    images = model.generate(16)
    keras_ddpm.utils.save_image_grid(images, "digits.png")
    ```
    """
    grid = make_image_grid(images, ncols=ncols, padding=padding)
    if scale is None:
        scale = max(1, math.ceil(MIN_GRID_WIDTH / grid.shape[1]))
    scale = _check_int("scale", scale, 1)
    grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)

    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    picture = grid[..., 0] if grid.shape[-1] == 1 else grid  # 2-D uint8 -> "L", (H, W, 3) -> "RGB"
    with atomic.atomic_write(path) as tmp:  # a kill never leaves a truncated PNG
        Image.fromarray(picture).save(tmp, format="PNG")
    return path
