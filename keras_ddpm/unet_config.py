"""The U-Net's named configurations (`UNet.from_preset`) and the checks of its arguments."""

from keras_ddpm import checks
from keras_ddpm.block_settings import check_dropout

# Named configurations for `UNet.from_preset`. The paper's networks are the authors'
# `unet2d16b2` (scripts/run_cifar.py in hojonathanho/diffusion) and `unet2d16b2c112244`
# (scripts/run_celebahq.py and scripts/run_lsun.py); appendix B gives them 35.7M and 114M
# parameters, and dropout 0.1 on CIFAR-10, 0 elsewhere.
PRESETS = {
    # CIFAR-10 32x32: 35,746,307 parameters.
    "ddpm_cifar10": {
        "image_shape": (32, 32, 3),
        "base_channels": 128,
        "channel_multipliers": (1, 2, 2, 2),
        "num_res_blocks": 2,
        "attention_resolutions": (16,),
        "dropout": 0.1,
        "norm_groups": 32,
    },
    # CelebA-HQ 256x256: 113,673,219 parameters.
    "ddpm_celebahq256": {
        "image_shape": (256, 256, 3),
        "base_channels": 128,
        "channel_multipliers": (1, 1, 2, 2, 4, 4),
        "num_res_blocks": 2,
        "attention_resolutions": (16,),
        "dropout": 0.0,
        "norm_groups": 32,
    },
    # The 8x8 grey-scale digits: 3,990,017 parameters.
    "digits": {
        "image_shape": (8, 8, 1),
        "base_channels": 64,
        "channel_multipliers": (1, 2),
        "num_res_blocks": 2,
        "attention_resolutions": (4,),
        "dropout": 0.0,
        "norm_groups": 32,
    },
}
# LSUN church / bedroom / cat 256x256 use the CelebA-HQ network. (The paper's larger ~256M
# LSUN bedroom variant is not given precisely enough to reproduce.)
PRESETS["ddpm_lsun256"] = dict(PRESETS["ddpm_celebahq256"])


def preset_arguments(name, overrides):
    """`UNet`'s arguments for the preset `name`, with `overrides` (a dict) replacing its values."""
    if name not in PRESETS:
        raise ValueError(f"Unknown UNet preset {name!r}. Valid presets are: {sorted(PRESETS)}")
    return {**PRESETS[name], **overrides}


def _int_tuple(name, value, allow_empty=True):
    """`value` as a tuple of ints (lists, as they come back from JSON, are accepted)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"`{name}` must be a sequence of integers. Received: {name}={value!r}")
    items = tuple(value)
    if not all(checks.is_int(item) for item in items):
        raise TypeError(f"`{name}` must be a sequence of integers. Received: {name}={value!r}")
    if not items and not allow_empty:
        raise ValueError(f"`{name}` must not be empty. Received: {name}={value!r}")
    return items


def check_unet_arguments(
    image_shape,
    base_channels,
    channel_multipliers,
    num_res_blocks,
    attention_resolutions,
    dropout,
    norm_groups,
    num_classes=None,
):
    """Checks the UNet arguments; returns the three sequences as tuples."""
    image_shape = _int_tuple("image_shape", image_shape)
    if len(image_shape) != 3 or min(image_shape) < 1:
        raise ValueError(
            "`image_shape` must be 3 positive integers (height, width, channels). "
            f"Received: image_shape={image_shape}"
        )
    checks.positive_int("base_channels", base_channels)
    channel_multipliers = _int_tuple("channel_multipliers", channel_multipliers, False)
    if min(channel_multipliers) < 1:
        raise ValueError(
            "`channel_multipliers` must all be positive integers. "
            f"Received: channel_multipliers={channel_multipliers}"
        )
    checks.positive_int("num_res_blocks", num_res_blocks)
    attention_resolutions = _int_tuple("attention_resolutions", attention_resolutions)
    check_dropout(dropout)
    checks.positive_int("norm_groups", norm_groups)
    if num_classes is not None:
        checks.positive_int("num_classes", num_classes)

    height, width, _ = image_shape
    num_levels = len(channel_multipliers)
    factor = 2 ** (num_levels - 1)
    if height % factor or width % factor:
        raise ValueError(
            f"The image height and width must be divisible by {factor} = 2 ** ({num_levels} - 1) "
            f"to downsample through {num_levels} levels "
            f"(len(channel_multipliers)={num_levels}). Received: image_shape={image_shape}"
        )
    widths = [base_channels] + [base_channels * mult for mult in channel_multipliers]
    bad_widths = sorted({w for w in widths if w % norm_groups})
    if bad_widths:
        raise ValueError(
            f"Every channel width must be divisible by `norm_groups`={norm_groups}, but widths "
            f"{bad_widths} are not (base_channels={base_channels}, "
            f"channel_multipliers={channel_multipliers})."
        )
    heights = [height // 2**level for level in range(num_levels)]
    unreached = [r for r in attention_resolutions if r not in heights]
    if unreached:
        raise ValueError(
            f"`attention_resolutions` contains {unreached}, which the network never reaches: "
            f"with image height {height} and {num_levels} levels its feature maps have heights "
            f"{heights}. Received: attention_resolutions={attention_resolutions}"
        )
    return image_shape, channel_multipliers, attention_resolutions
