"""What `generate`, `inpaint` and the edits accept: image and label checks, and a run's seeds.

Every check turns a wrong argument into a `ValueError` or `TypeError` that names the value
received and what was expected, before anything is compiled or run. `keras_ddpm.generation`
and `keras_ddpm.editing` call them; `keras_ddpm.inputs` holds the checks of training data.
"""

import random

import keras
import numpy as np

from keras_ddpm import checks
from keras_ddpm import guidance
from keras_ddpm import rng

# The streams of a run's key: x_T, and the noise of the loop's steps.
_X_T, _LOOP = 0, 1


def run_seed(seed):
    """The Python int seed of one run, from what `generate` and the edits accept as `seed`.

    Args:
        seed: an int (used as is); a `keras.random.SeedGenerator`, which
            gives the next seed of its sequence and advances (its k-th run,
            counted from 0, is seeded `s + k·2³²` for `SeedGenerator(s)`, so
            its first run's images are `seed=s`'s); or `None`: a seed drawn
            from Python's global `random`, which `keras.utils.set_random_seed`
            seeds, as Keras draws a `SeedGenerator`'s default seed.

    Raises:
        TypeError: `seed` is none of these.

    Example:

    >>> generator = keras.random.SeedGenerator(3)
    >>> run_seed(generator), run_seed(generator)
    (3, 4294967299)
    """
    if seed is None:
        return random.randint(0, 2**31 - 1)
    if isinstance(seed, keras.random.SeedGenerator):
        words = keras.ops.convert_to_numpy(seed.next()).astype(np.int64) % 2**32
        return int(words[0]) + (int(words[1]) << 32)
    if not checks.is_int(seed):
        raise TypeError(
            "`seed` must be an int, a `keras.random.SeedGenerator` or None. "
            f"Received: seed={seed!r}."
        )
    return int(seed)


def image_seeds(seed, begin, end):
    """`(noise_keys, loop_keys)`, int32 `[end − begin, 2]`: images `begin … end − 1` of a run.

    Image i's x_T is drawn under the first key (`initial_noise`), its loop's
    noise under the second, both derived from the run's `seed` and i alone
    (`keras_ddpm.rng`): how the images are split into chunks changes nothing.
    `seed` may be a Python int or an int32/int64 scalar tensor (the
    SavedModel's input); `begin` and `end` ints or int32 scalars.
    """
    key = rng.seed_key(seed)
    count = end - begin
    noise_keys = rng.image_keys(rng.fold_in(key, _X_T), begin, count)
    return noise_keys, rng.image_keys(rng.fold_in(key, _LOOP), begin, count)


def initial_noise(noise_keys, image_shape):
    """Standard normal x_T `[B, H, W, C]`, image b drawn under `noise_keys[b]` (`image_seeds`)."""
    return rng.normal(noise_keys, tuple(image_shape))


def check_initial_noise(initial_noise, num_images, image_shape, has_images=False):
    """`initial_noise` as float32 `(num_images, H, W, C)`, checked finite; `None` stays `None`.

    Without noise, the images' shape comes from `image_shape` or from the
    images to edit (`has_images`); with neither, the noise is required.
    """
    if initial_noise is None:
        if image_shape is None and not has_images:
            raise ValueError("The network does not declare its input shape; pass `initial_noise`.")
        return None
    initial_noise = np.asarray(initial_noise, dtype=np.float32)
    expected = (num_images,) + tuple(image_shape or initial_noise.shape[1:])
    if initial_noise.shape != expected:
        raise ValueError(
            f"`initial_noise` must have shape {expected} (num_images, H, W, C). "
            f"Received shape {initial_noise.shape}."
        )
    if not np.all(np.isfinite(initial_noise)):
        raise ValueError(
            f"`initial_noise` holds {int((~np.isfinite(initial_noise)).sum())} NaN or "
            "infinite values; the samplers need finite noise."
        )
    return initial_noise


def steps_to_run(strength, steps):
    """The steps an edit of `strength` runs: round(strength · steps), halves to even.

    Computed in float32, as the SavedModel's `edit` computes it from its
    float32 input, so that both take the same steps (the float32 input 0.7
    widened to float64 would give 0.7 · 5 = 3.49999994, 3 steps; in float32
    the product is 3.5, 4 steps, as with Python floats).
    """
    return int(np.round(np.float32(strength) * np.float32(steps)))


def check_edit(initial_images, strength, num_images, image_shape):
    """Checks image-to-image arguments; returns `(images as float32 NumPy or None, strength)`."""
    if initial_images is None:
        if strength is not None:
            raise ValueError(f"`strength={strength!r}` needs `initial_images` to edit.")
        return None, None
    if strength is None:
        raise ValueError(
            "Pass `strength` in [0, 1] with `initial_images`: the fraction of the reverse process "
            "to run (0 returns the images, 1 ignores them)."
        )
    strength = float(checks.number_in("strength", strength, 0.0, 1.0))
    return check_images("initial_images", initial_images, num_images, image_shape), strength


def check_images(name, images, num_images=None, image_shape=None):
    """Float images in [−1, 1] of shape `(num_images, *image_shape)`, as float32 NumPy.

    Args:
        name: the argument's name, for the error message.
        images: the images given.
        num_images: the batch size expected, or `None` for any. Defaults to `None`.
        image_shape: `(H, W, C)` expected, or `None` for any. Defaults to `None`.
    """
    images = checks.as_numpy(images)
    if not np.issubdtype(images.dtype, np.floating):
        raise TypeError(
            f"`{name}` must be floats in [-1, 1]; received dtype {images.dtype} (for "
            "uint8 pixels use x / 127.5 - 1)."
        )
    images = images.astype(np.float32)
    shape = tuple(image_shape or images.shape[1:])
    count = len(images) if num_images is None and images.ndim == 4 else num_images
    if images.shape != (count,) + shape:
        expected = ", ".join(str(size) for size in ("N" if count is None else count,) + shape)
        what = "N, H, W, C" if num_images is None else "num_images, H, W, C"
        raise ValueError(
            f"`{name}` must have shape ({expected}) ({what}); received shape {images.shape}."
        )
    checks.image_values(name, images)
    return images


def check_labels(labels, guidance_scale, num_images, num_classes):
    """`generate`'s labels as int32 `[num_images]` (null labels when none) and w.

    Args:
        labels: `None`, one int for every image, or one int per image in
            `[0, num_classes)`.
        guidance_scale: `None` (1) or a number ≥ 0; needs `labels`.
        num_images: the number of images drawn.
        num_classes: the model's number of classes, `None` if unconditional.

    Returns:
        `(labels, guidance_scale)`: `labels` is `None` for an unconditional
        model and holds the null label `num_classes` for unlabelled samples of
        a conditional one.
    """
    if num_classes is None:
        if labels is not None or guidance_scale is not None:
            raise ValueError(
                "`labels` and `guidance_scale` need a class-conditional model "
                "(a network built with num_classes); this one is unconditional. "
                f"Received: labels={labels!r}, guidance_scale={guidance_scale!r}."
            )
        return None, 1.0
    if labels is None:
        if guidance_scale is not None:
            raise ValueError(
                "`guidance_scale` needs `labels` (the classes to guide towards). "
                f"Received: guidance_scale={guidance_scale!r} with labels=None."
            )
        return np.full((num_images,), num_classes, np.int32), 1.0
    guidance_scale = 1.0 if guidance_scale is None else guidance_scale
    guidance.check_guidance_scale(guidance_scale)
    array = np.asarray(labels)
    if not np.issubdtype(array.dtype, np.integer) or array.size == 0:
        raise TypeError(
            f"`labels` must be an int or a sequence of ints in [0, {num_classes}). "
            f"Received: labels={labels!r}."
        )
    if array.ndim == 0:
        array = np.full((num_images,), int(array))
    if array.shape != (num_images,):
        raise ValueError(
            f"`labels` must hold one label per image: shape ({num_images},). "
            f"Received {array.shape[0] if array.ndim == 1 else array.shape} labels "
            f"for num_images={num_images}."
        )
    if array.min() < 0 or array.max() >= num_classes:
        raise ValueError(
            f"`labels` must lie in [0, {num_classes}). Received labels in "
            f"[{array.min()}, {array.max()}]."
        )
    return array.astype(np.int32), float(guidance_scale)
