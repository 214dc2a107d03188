"""diffusers' `UNet2DModel` and scheduler configs ↔ `UNet`, `NoiseSchedule` and `DDPM` arguments.

Plain dictionaries in and out, no TensorFlow: the command line checks a
checkpoint's config before TensorFlow loads. Anything one side can express and
the other cannot is refused with one `ValueError` that lists every problem, so
that a conversion is exact or does not happen.

The correspondence (diffusers' names left):

| `UNet2DModel`                         | `UNet`                                         |
|---------------------------------------|------------------------------------------------|
| `block_out_channels` `(c0, c1, …)`     | `base_channels=c0`, `channel_multipliers=ci/c0` |
| `layers_per_block`                    | `num_res_blocks`                               |
| `Attn*Block2D` at down position `i`   | `attention_resolutions` ∋ `height / 2**i`      |
| `norm_num_groups`, `norm_eps`         | `norm_groups`, `norm_epsilon`                  |
| `flip_sin_to_cos`, `freq_shift`       | `flip_sin_to_cos`, `freq_shift`                |
| `dropout`, `sample_size`, `in_channels` | `dropout`, `image_shape`                    |

| scheduler                              | keras_ddpm                                     |
|----------------------------------------|------------------------------------------------|
| `beta_schedule` `linear`, `scaled_linear`, `squaredcos_cap_v2`, `sigmoid` | `NoiseSchedule(kind=…)` (`cosine` for the third) |
| `num_train_timesteps`, `beta_start`, `beta_end`, `rescale_betas_zero_snr` | `timesteps`, `beta_start`, `beta_end`, `rescale_zero_terminal_snr` |
| `variance_type` `fixed_small`, `fixed_large` | `DDPM(variance=…)`                        |
| `prediction_type` `epsilon`, `v_prediction`, `sample` | `DDPM(prediction_type=…)` `epsilon`, `v`, `x0` |

References:
    - von Platen et al., "Diffusers: State-of-the-art diffusion models",
      https://github.com/huggingface/diffusers (the file format).
    - Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models",
      NeurIPS 2020 (the network and schedule the google/ddpm-* checkpoints hold).
"""

import numpy as np

from keras_ddpm import schedule_math

# What save_pretrained writes as `_diffusers_version`: the format these files follow.
DIFFUSERS_VERSION = "0.31.0"

PLAIN_DOWN, ATTN_DOWN = "DownBlock2D", "AttnDownBlock2D"
PLAIN_UP, ATTN_UP = "UpBlock2D", "AttnUpBlock2D"

# Keys of a UNet2DModel config and the only values UNet can represent.
_FIXED_UNET_VALUES = {
    "act_fn": "silu",
    "attention_head_dim": None,
    "center_input_sample": False,
    "class_embed_type": None,
    "num_class_embeds": None,
    "downsample_padding": 0,
    "downsample_type": "conv",
    "upsample_type": "conv",
    "mid_block_scale_factor": 1,
    "mid_block_type": "UNetMidBlock2D",
    "resnet_time_scale_shift": "default",
    "time_embedding_type": "positional",
    "time_embedding_dim": None,
    "add_attention": True,
    "attn_norm_num_groups": None,
}
# UNet2DModel's own defaults for keys an older config may leave out: the fixed values above
# except two, where an omitted key means something UNet cannot represent.
_UNET2D_DEFAULTS = {
    **_FIXED_UNET_VALUES,
    "attention_head_dim": 8,
    "downsample_padding": 1,
    "dropout": 0.0,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "norm_eps": 1e-5,
    "norm_num_groups": 32,
    "layers_per_block": 2,
    "in_channels": 3,
    "out_channels": 3,
}

_BETA_SCHEDULES = {
    "linear": "linear",
    "scaled_linear": "scaled_linear",
    "squaredcos_cap_v2": "cosine",
    "sigmoid": "sigmoid",
}
_PREDICTION_TYPES = {"epsilon": "epsilon", "v_prediction": "v", "sample": "x0"}


def _refuse(what, problems):
    """One ValueError listing every problem, or nothing."""
    if problems:
        raise ValueError(f"{what} cannot be represented exactly: " + "; ".join(problems) + ".")


def _sample_size(value):
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), int(value[1])
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    raise ValueError(
        f"`sample_size` must be an int or [height, width] in the UNet2DModel config. "
        f"Received: sample_size={value!r}"
    )


# ----------------------------------------------------------------------------
# UNet2DModel config → UNet arguments
# ----------------------------------------------------------------------------
def unet_arguments(config):
    """`UNet` keyword arguments for a diffusers `UNet2DModel` config dict.

    Args:
        config: the parsed `config.json` of a `UNet2DModel`.

    Returns:
        A dict of `UNet` arguments (`image_shape`, `base_channels`,
        `channel_multipliers`, `num_res_blocks`, `attention_resolutions`,
        `dropout`, `norm_groups`, `norm_epsilon`, `flip_sin_to_cos`,
        `freq_shift`).

    Raises:
        ValueError: listing every setting `UNet` cannot represent.
    """
    if not isinstance(config, dict):
        raise TypeError(f"A UNet2DModel config must be a dict. Received: {config!r}")
    class_name = config.get("_class_name", "UNet2DModel")
    if class_name != "UNet2DModel":
        raise ValueError(
            f"Expected a diffusers UNet2DModel config; this one is a {class_name!r} "
            "(keras_ddpm converts the pixel-space DDPM U-Net only)."
        )
    value = {**_UNET2D_DEFAULTS, **config}.get
    problems = []
    for key, expected in _FIXED_UNET_VALUES.items():
        if value(key) != expected:
            problems.append(f"{key}={value(key)!r} (supported: {expected!r})")
    if value("in_channels") != value("out_channels"):
        problems.append(
            f"in_channels={value('in_channels')} differs from out_channels="
            f"{value('out_channels')} (the U-Net predicts an image-shaped tensor)"
        )
    widths = [int(w) for w in value("block_out_channels") or ()]
    down = list(value("down_block_types") or ())
    up = list(value("up_block_types") or ())
    if not widths:
        problems.append("block_out_channels is empty")
    if len(down) != len(widths) or len(up) != len(widths):
        problems.append(
            f"{len(widths)} block_out_channels but {len(down)} down_block_types and "
            f"{len(up)} up_block_types"
        )
    unknown = sorted({b for b in down if b not in (PLAIN_DOWN, ATTN_DOWN)})
    unknown += sorted({b for b in up if b not in (PLAIN_UP, ATTN_UP)})
    if unknown:
        problems.append(
            f"block types {unknown} (supported: {PLAIN_DOWN}, {ATTN_DOWN}, {PLAIN_UP}, {ATTN_UP})"
        )
    down_attention = [b == ATTN_DOWN for b in down]
    up_attention = [b == ATTN_UP for b in up]
    if not unknown and down_attention[::-1] != up_attention:
        problems.append(
            f"up_block_types {up} do not mirror down_block_types {down} (UNet puts attention "
            "at the same resolutions on both sides)"
        )
    if widths and any(w % widths[0] for w in widths):
        problems.append(
            f"block_out_channels {widths} are not all multiples of the first "
            "(UNet's widths are base_channels × integer multipliers)"
        )
    try:
        height, width = _sample_size(value("sample_size"))
    except ValueError as error:
        problems.append(str(error))
        height = width = None
    if problems:
        _refuse("This UNet2DModel config", problems)

    attention = tuple(height // 2**level for level, on in enumerate(down_attention) if on)
    return {
        "image_shape": (height, width, int(value("in_channels"))),
        "base_channels": widths[0],
        "channel_multipliers": tuple(w // widths[0] for w in widths),
        "num_res_blocks": int(value("layers_per_block")),
        "attention_resolutions": attention,
        "dropout": float(value("dropout")),
        "norm_groups": int(value("norm_num_groups")),
        "norm_epsilon": float(value("norm_eps")),
        "flip_sin_to_cos": bool(value("flip_sin_to_cos")),
        "freq_shift": value("freq_shift"),
    }


# ----------------------------------------------------------------------------
# UNet config → UNet2DModel config
# ----------------------------------------------------------------------------
def diffusers_unet_config(unet_config):
    """The `UNet2DModel` `config.json` dict of a `UNet` config (`UNet.get_config()`, every key).

    Raises:
        ValueError: listing what diffusers' `UNet2DModel` cannot represent
            (class conditioning, a first multiplier other than 1).
    """
    problems = []
    if unet_config.get("num_classes") is not None:
        problems.append(
            f"num_classes={unet_config['num_classes']} (class-conditional; diffusers' "
            "DDPMPipeline has no labels or classifier-free guidance)"
        )
    multipliers = [int(m) for m in unet_config["channel_multipliers"]]
    if multipliers[0] != 1:
        problems.append(
            f"channel_multipliers[0]={multipliers[0]} (UNet2DModel's first level is as wide as "
            "its input convolution and timestep embedding; use multipliers starting with 1)"
        )
    height, width, channels = (int(v) for v in unet_config["image_shape"])
    _refuse("This UNet as a diffusers UNet2DModel", problems)

    base = int(unet_config["base_channels"])
    attention = set(int(r) for r in unet_config["attention_resolutions"])
    heights = [height // 2**level for level in range(len(multipliers))]
    down = [ATTN_DOWN if h in attention else PLAIN_DOWN for h in heights]
    up = [ATTN_UP if h in attention else PLAIN_UP for h in reversed(heights)]
    return {
        "_class_name": "UNet2DModel",
        "_diffusers_version": DIFFUSERS_VERSION,
        **_FIXED_UNET_VALUES,
        "block_out_channels": [base * m for m in multipliers],
        "down_block_types": down,
        "dropout": float(unet_config["dropout"]),
        "flip_sin_to_cos": bool(unet_config["flip_sin_to_cos"]),
        "freq_shift": unet_config["freq_shift"],
        "in_channels": channels,
        "layers_per_block": int(unet_config["num_res_blocks"]),
        "norm_eps": float(unet_config["norm_epsilon"]),
        "norm_num_groups": int(unet_config["norm_groups"]),
        "num_train_timesteps": None,
        "out_channels": channels,
        "sample_size": height if height == width else [height, width],
        "up_block_types": up,
    }


# ----------------------------------------------------------------------------
# Scheduler config ↔ NoiseSchedule / DDPM arguments
# ----------------------------------------------------------------------------
def _matching_kind(betas, timesteps, beta_start, beta_end):
    """The schedule kind whose β table equals `betas` (to float32 rounding), or `None`."""
    for kind, function in schedule_math.BETA_FUNCTIONS.items():
        table = function(timesteps, beta_start, beta_end)
        if np.allclose(table, betas, rtol=1e-6, atol=1e-9):
            return kind
    return None


def schedule_arguments(config):
    """`(NoiseSchedule kwargs, DDPM kwargs, clip_sample)` for a diffusers scheduler config.

    Accepts the configs of `DDPMScheduler`, `DDIMScheduler` and the other
    discrete schedulers that share their keys; only the training schedule and
    the reverse variance matter here (the sampler is chosen at `generate`).

    Raises:
        ValueError: listing every setting that has no keras_ddpm equivalent.
    """
    if not isinstance(config, dict):
        raise TypeError(f"A scheduler config must be a dict. Received: {config!r}")
    value = config.get
    problems = []
    timesteps = int(value("num_train_timesteps", 1000))
    beta_start = float(value("beta_start", 1e-4))
    beta_end = float(value("beta_end", 0.02))
    schedule_name = value("beta_schedule", "linear")
    kind = _BETA_SCHEDULES.get(schedule_name)
    trained = value("trained_betas")
    if trained is not None:
        kind = _matching_kind(np.asarray(trained, np.float64), timesteps, beta_start, beta_end)
        if kind is None or len(trained) != timesteps:
            problems.append(
                "trained_betas that match none of the linear, scaled_linear, cosine and "
                "sigmoid schedules"
            )
    elif kind is None:
        problems.append(f"beta_schedule={schedule_name!r} (supported: {sorted(_BETA_SCHEDULES)})")
    variance = value("variance_type", "fixed_small")
    if variance not in schedule_math.VARIANCES:
        problems.append(f"variance_type={variance!r} (supported: {list(schedule_math.VARIANCES)})")
    prediction = value("prediction_type", "epsilon")
    if prediction not in _PREDICTION_TYPES:
        problems.append(f"prediction_type={prediction!r} (supported: {sorted(_PREDICTION_TYPES)})")
    if value("thresholding", False):
        problems.append("thresholding=True (dynamic thresholding is not implemented)")
    clip_sample = bool(value("clip_sample", True))
    if clip_sample and float(value("clip_sample_range", 1.0)) != 1.0:
        problems.append(
            f"clip_sample_range={value('clip_sample_range')!r} (generate(clip=True) clips x̂_0 "
            "to [-1, 1])"
        )
    _refuse("This scheduler config", problems)
    schedule = {
        "kind": kind,
        "timesteps": timesteps,
        "beta_start": beta_start,
        "beta_end": beta_end,
        "rescale_zero_terminal_snr": bool(value("rescale_betas_zero_snr", False)),
    }
    ddpm = {"variance": variance, "prediction_type": _PREDICTION_TYPES[prediction]}
    return schedule, ddpm, clip_sample


def diffusers_scheduler_config(schedule_config, variance, prediction_type):
    """The `DDPMScheduler` `scheduler_config.json` dict of a schedule and a DDPM's settings.

    Args:
        schedule_config: `NoiseSchedule.get_config()`.
        variance: `DDPM.variance`, `"fixed_small"` or `"fixed_large"`.
        prediction_type: `DDPM.prediction_type`, `"epsilon"`, `"v"` or `"x0"`.
    """
    kinds = {kind: name for name, kind in _BETA_SCHEDULES.items()}
    predictions = {ours: theirs for theirs, ours in _PREDICTION_TYPES.items()}
    problems = []
    if schedule_config["kind"] not in kinds:
        problems.append(f"schedule kind={schedule_config['kind']!r}")
    if prediction_type not in predictions:
        problems.append(f"prediction_type={prediction_type!r}")
    if variance not in schedule_math.VARIANCES:
        problems.append(f"variance={variance!r}")
    _refuse("This DDPM as a diffusers DDPMScheduler", problems)
    return {
        "_class_name": "DDPMScheduler",
        "_diffusers_version": DIFFUSERS_VERSION,
        "beta_end": float(schedule_config["beta_end"]),
        "beta_schedule": kinds[schedule_config["kind"]],
        "beta_start": float(schedule_config["beta_start"]),
        "clip_sample": True,
        "clip_sample_range": 1.0,
        "dynamic_thresholding_ratio": 0.995,
        "num_train_timesteps": int(schedule_config["timesteps"]),
        "prediction_type": predictions[prediction_type],
        "rescale_betas_zero_snr": bool(schedule_config.get("rescale_zero_terminal_snr", False)),
        "sample_max_value": 1.0,
        "steps_offset": 0,
        "thresholding": False,
        "timestep_spacing": "leading",
        "trained_betas": None,
        "variance_type": variance,
    }


def pipeline_index():
    """The `model_index.json` dict of a `DDPMPipeline`."""
    return {
        "_class_name": "DDPMPipeline",
        "_diffusers_version": DIFFUSERS_VERSION,
        "scheduler": ["diffusers", "DDPMScheduler"],
        "unet": ["diffusers", "UNet2DModel"],
    }
