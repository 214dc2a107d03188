"""Image helpers: back from the model's [-1, 1] scale to 8-bit pixels and PNG grids; slerp.

keras_ddpm works on float images in [-1, 1] (see `keras_ddpm.data`); these
helpers turn such images, or uint8 ones, into uint8 arrays, a single tiled
grid, and a PNG file a person can look at, and `slerp` interpolates between
noise tensors. They run on NumPy: tensors are converted first.
"""

import math
import numbers
import os

import numpy as np
from PIL import Image

from keras_ddpm import checks
from keras_ddpm.runs import atomic

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
    # NaN → 0, then clip to [-1, 1], then round((x + 1)·127.5) with halves up, in float64:
    # the steps of `to_uint8_tensor`, each exactly rounded, so the two agree to the bit.
    values = images.astype(np.float64)
    values = np.clip(np.where(np.isnan(values), -1.0, values), -1.0, 1.0)
    return np.floor((values + 1.0) * 127.5 + 0.5).astype(np.uint8)


def to_uint8_tensor(images):
    """The graph form of `to_uint8`: float images in [-1, 1] → uint8, with TensorFlow ops.

    The SavedModel endpoints use it, so that exported and Python images agree
    to the bit: NaN → 0, then clip to [-1, 1], then round((x + 1)·127.5) with
    halves up, all in float64 (`to_uint8` takes the same steps in NumPy, so
    that it runs without TensorFlow).
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
    values = np.asarray(images.numpy() if hasattr(images, "numpy") else images)
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise ValueError(
            f"The images hold {int((~np.isfinite(values)).sum())} NaN or infinite values; "
            f"nothing written to {os.fspath(path)!r}."
        )
    grid = make_image_grid(values, ncols=ncols, padding=padding)
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


def slerp(a, b, fractions):
    """Spherical linear interpolation between two batches, example by example.

    For each pair of examples (flattened to vectors) at angle θ, the frame at
    fraction f is `sin((1 − f)θ)/sin θ · a + sin(fθ)/sin θ · b` (Shoemake
    1985): f = 0 gives `a`, f = 1 gives `b`, and when `a` and `b` have the same
    norm every frame has it too. That is what noise x_T needs: two draws of
    N(0, I) in d dimensions have norm ≈ √d and are nearly orthogonal, and
    their straight-line midpoint has norm ≈ √(d/2), which the model has never
    seen (Song, Meng & Ermon 2021 interpolate DDIM latents this way). Nearly
    parallel pairs fall back to the straight line.

    Args:
        a: float array `[N, ...]` (a batch; pass `x[None]` for one example).
        b: float array of the same shape.
        fractions: a number or a 1-D sequence of numbers, usually in [0, 1].

    Returns:
        float32 `[N, ...]` for a number, `[len(fractions), N, ...]` for a sequence.

    Example:

    ```python
    noise = keras.random.normal((2, 8, 8, 1), seed=0)
    frames = keras_ddpm.utils.slerp(noise[:1], noise[1:], np.linspace(0, 1, 8))  # (8, 1, 8, 8, 1)
    images = model.generate(8, sampler="ddim", initial_noise=frames[:, 0])
    ```

    References:
        - Shoemake, "Animating rotation with quaternion curves", SIGGRAPH 1985.
        - Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021.
    """
    a = np.asarray(_as_numpy(a), dtype=np.float64)
    b = np.asarray(_as_numpy(b), dtype=np.float64)
    if a.shape != b.shape or a.ndim < 1:
        raise ValueError(
            "Expected `a` and `b` to be batches `[N, ...]` of one shape; received shapes "
            f"{a.shape} and {b.shape}."
        )
    scalar = np.ndim(fractions) == 0
    f = np.atleast_1d(np.asarray(fractions, dtype=np.float64))
    if f.ndim != 1 or not np.all(np.isfinite(f)) or not np.all(np.isfinite(a)) or not np.all(
        np.isfinite(b)
    ):
        raise ValueError(
            "Expected finite `a`, `b` and `fractions` (a number or a 1-D sequence); received "
            f"fractions={fractions!r} and {'non-finite' if f.ndim == 1 else 'finite'} a, b."
        )
    flat_a, flat_b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    norms = np.linalg.norm(flat_a, axis=1) * np.linalg.norm(flat_b, axis=1)
    if np.any(norms == 0):
        raise ValueError("slerp is undefined for an all-zero example in `a` or `b`.")
    theta = np.arccos(np.clip(np.sum(flat_a * flat_b, axis=1) / norms, -1.0, 1.0))  # [N]
    f = f[:, None]  # [K, 1]
    sin_theta = np.sin(theta)
    straight = sin_theta < 1e-6
    safe = np.where(straight, 1.0, sin_theta)
    weight_a = np.where(straight, 1.0 - f, np.sin((1.0 - f) * theta) / safe)  # [K, N]
    weight_b = np.where(straight, f, np.sin(f * theta) / safe)
    shape = (len(f), len(a)) + (1,) * (a.ndim - 1)
    frames = weight_a.reshape(shape) * a + weight_b.reshape(shape) * b
    frames = frames.astype(np.float32)
    return frames[0] if scalar else frames
