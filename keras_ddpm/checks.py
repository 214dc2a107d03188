"""Small argument checks shared by the whole package, written once.

Nothing here imports TensorFlow: the command line runs these checks before it
loads TensorFlow, so that a wrong argument is answered in about a second. A
value counts as a tensor only when Keras (or TensorFlow) is already loaded and says so
(without them in the process, nothing can be a tensor).
"""

import math
import numbers
import sys

import numpy as np


def is_tensor(value):
    """True for a tensor of the Keras backend (a JAX tracer too) or of TensorFlow, if loaded."""
    keras_ops = getattr(sys.modules.get("keras"), "ops", None)
    if keras_ops is not None and keras_ops.is_tensor(value):
        return True
    tf = sys.modules.get("tensorflow")
    return tf is not None and bool(tf.is_tensor(value))


def is_int(value):
    """True for a Python or NumPy integer that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_number(value):
    """True for a real Python or NumPy number that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def positive_int(name, value):
    """Returns `value` as an `int` if it is an integer >= 1, else raises a `ValueError`.

    Args:
        name: the argument's name, quoted in the error.
        value: the value received.

    Example:

    >>> positive_int("num_images", 16)
    16
    """
    if not is_int(value) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}.")
    return int(value)


# Seeds are int64 (a `keras.random.SeedGenerator`'s state, the SavedModel's input).
SEED_LIMIT = 2**63


def optional_seed(name, value):
    """Returns `value` as an `int` or `None`.

    Raises:
        TypeError: `value` is not an int.
        ValueError: it does not fit in 64 bits (|seed| < 2⁶³).
    """
    if value is None:
        return None
    if not is_int(value):
        raise TypeError(f"`{name}` must be an int or None. Received: {name}={value!r}.")
    if not -SEED_LIMIT <= int(value) < SEED_LIMIT:
        raise ValueError(
            f"`{name}` must fit in 64 bits (|{name}| < 2**63). Received: {name}={value}."
        )
    return int(value)


def number_in(name, value, low, high, hint=""):
    """Returns a Python number in [low, high] as a float (tensors pass unchanged).

    Raises:
        TypeError: `value` is not a number.
        ValueError: it lies outside [low, high] or is not finite.
    """
    if is_tensor(value):
        return value
    if not is_number(value):
        raise TypeError(f"`{name}` must be a number in [{low}, {high}]. Received: {name}={value!r}.")
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"`{name}` must be in [{low}, {high}]{hint}. Received: {name}={value}.")
    return float(value)


def group_count(channels, groups, shape):
    """A `ValueError` unless `channels` is known and `groups` divides it (group normalisation)."""
    if channels is None or channels % groups:
        raise ValueError(
            f"group_normalization needs a known channel count divisible by groups={groups}; "
            f"received input shape {tuple(shape)}."
        )


def one_of(name, value, choices):
    """Returns `value` if it is one of `choices`, else raises a `ValueError` listing them."""
    if isinstance(value, str) and value in choices:
        return value
    raise ValueError(f"Unknown {name}={value!r}. Expected one of {list(choices)}.")


def as_numpy(values):
    """A NumPy array of `values` (a tensor is converted first)."""
    return np.asarray(values.numpy() if hasattr(values, "numpy") else values)


# How far float images may overshoot [-1, 1] (resizing's rounding); beyond it they are wrong data.
RANGE_TOLERANCE = 1e-3


def image_values(name, images, hint="", tolerance=RANGE_TOLERANCE):
    """Raises a `ValueError` unless float NumPy `images` are finite and within [−1, 1] ± `tolerance`."""
    finite = np.isfinite(images)
    if not finite.all():
        raise ValueError(
            f"`{name}` holds {int((~finite).sum())} NaN or infinite values; images must be "
            f"finite and in [-1, 1].{hint}"
        )
    if images.size and np.abs(images).max() > 1.0 + tolerance:
        raise ValueError(
            f"`{name}` must be in [-1, 1]; received values in [{images.min():.3g}, "
            f"{images.max():.3g}].{hint}"
        )


def first_line(error):
    """The first line of an exception's message (its repr when the message is empty)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else repr(error)
