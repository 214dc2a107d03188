"""What a `train` run is built from: its model and optimizer, its strategy, the keys of its folder.

`RUN_KEYS` are the `train` arguments that must match for a re-run to continue
an existing run folder; `DEFAULTS` are the quick-start U-Net's sizes
(examples/train_digits.py).
"""

import os

from keras_ddpm.cli.common import UserError
from keras_ddpm.cli.common import jit_compile
from keras_ddpm.cli.common import user_errors


# `train` arguments that must match for a re-run to continue an existing run.
RUN_KEYS = (
    "dataset",
    "split",
    "image_size",
    "channels",
    "preset",
    "base_channels",
    "channel_multipliers",
    "num_res_blocks",
    "attention_resolutions",
    "dropout",
    "norm_groups",
    "schedule",
    "timesteps",
    "ema_decay",
    "seed",
    "conditional",
    "num_classes",
    "class_dropout",
)
# Defaults of `train` = the README quick start (examples/train_digits.py).
DEFAULTS = {
    "base_channels": 32,
    "channel_multipliers": (1, 2),
    "num_res_blocks": 1,
    "attention_resolutions": (4,),
    "dropout": 0.0,
    "norm_groups": 32,
}




def build_model(args, image_shape):
    import keras

    import keras_ddpm
    from keras_ddpm import unet

    if args.preset is not None:
        if args.preset not in unet.PRESETS:
            raise UserError(
                f"unknown --preset {args.preset!r}; expected one of {sorted(unet.PRESETS)}"
            )
        preset_shape = tuple(unet.PRESETS[args.preset]["image_shape"])
        if preset_shape != tuple(image_shape):
            raise UserError(
                f"--preset {args.preset} is for {preset_shape} images but the dataset has "
                f"{tuple(image_shape)}; pass a matching --image-size or another --preset"
            )
        overrides = {k: getattr(args, k) for k in DEFAULTS if getattr(args, k) is not None}
        network = keras_ddpm.UNet.from_preset(
            args.preset, num_classes=args.num_classes, **overrides
        )
    else:
        network = keras_ddpm.UNet(
            image_shape,
            num_classes=args.num_classes,
            **{k: getattr(args, k) for k in DEFAULTS},
        )
    schedule = keras_ddpm.NoiseSchedule(args.schedule, timesteps=args.timesteps)
    model = keras_ddpm.DDPM(
        network,
        schedule=schedule,
        ema_decay=args.ema_decay,
        seed=args.seed,
        class_dropout=args.class_dropout,
    )
    learning_rate = args.learning_rate
    if args.warmup_steps:
        # Linear warm-up, then constant (Ho et al. 2020): CosineDecay with alpha=1.
        learning_rate = keras.optimizers.schedules.CosineDecay(
            0.0,
            decay_steps=1,
            alpha=1.0,
            warmup_target=learning_rate,
            warmup_steps=args.warmup_steps,
        )
    optimizer = keras.optimizers.Adam(learning_rate, global_clipnorm=args.clipnorm)
    model.compile(optimizer=optimizer, jit_compile=jit_compile(args.jit_compile))
    return model


STRATEGIES = ("default", "mirrored", "multiworker")


def strategy_named(name):
    """The `tf.distribute` strategy named by `--strategy`."""
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()  # every local GPU (or the CPU)
    if name == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise UserError(
                "--strategy multiworker reads the cluster from the TF_CONFIG environment "
                "variable, which is not set (see the README, 'Training on many GPUs, hosts "
                "or TPUs')"
            )
        with user_errors():
            return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()  # "default" (argparse allows only STRATEGIES)
