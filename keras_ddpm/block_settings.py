"""What the U-Net's blocks share: argument checks, float32 for sensitive sublayers, group norm.

`keras_ddpm.layers` and `keras_ddpm.unet` build their sublayers and check their arguments with
these, so that every block says the same thing about the same wrong value.
"""

from keras_ddpm import checks
from keras_ddpm.normalization import GroupNormalization

# The authors' value (the tf.contrib.layers.group_norm default); Keras defaults to 1e-3.
GROUP_NORM_EPSILON = 1e-6

HALF_DTYPES = ("float16", "bfloat16")


def check_dropout(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"`dropout` must be a float in [0, 1). Received: dropout={value!r}")


def check_flip(value):
    if not isinstance(value, bool):
        raise TypeError(
            f"`flip_sin_to_cos` must be True or False. Received: flip_sin_to_cos={value!r}"
        )
    return value


def check_freq_shift(value):
    if not checks.is_number(value) or not 0 <= value <= 1:
        raise ValueError(
            f"`freq_shift` must be a number in [0, 1]. Received: freq_shift={value!r}"
        )
    return value


def check_groups(layer_name, what, channels, norm_groups):
    if channels % norm_groups != 0:
        raise ValueError(
            f"{layer_name}: {what} ({channels}) must be divisible by `norm_groups` for group "
            f"normalisation. Received: channels={channels}, norm_groups={norm_groups}"
        )


def float32_if_half(dtype_policy):
    """The dtype for numerically sensitive sublayers: float32 under a 16-bit compute dtype."""
    if dtype_policy.compute_dtype in HALF_DTYPES:
        return "float32"
    return dtype_policy


def check_epsilon(value):
    if not checks.is_number(value) or not value > 0:
        raise ValueError(
            f"`norm_epsilon` must be a positive float. Received: norm_epsilon={value!r}"
        )
    return float(value)


def group_norm(norm_groups, dtype_policy, name, epsilon=GROUP_NORM_EPSILON):
    """Group normalisation (the authors' epsilon by default), in float32 under mixed precision."""
    return GroupNormalization(
        groups=norm_groups,
        epsilon=epsilon,
        dtype=float32_if_half(dtype_policy),
        name=name,
    )
