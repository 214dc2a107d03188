"""What a `train` run is built from: its model and optimizer, its strategy, the keys of its folder.

`RUN_KEYS` are the `train` arguments that must match for a re-run to continue
an existing run folder; `DEFAULTS` are the quick-start U-Net's sizes
(examples/train_digits.py). A run `--from` a trained model starts from a copy of it
(`start_from`, `fine_tune`).
"""

import contextlib
import os

from keras_ddpm.cli.common import UserError
from keras_ddpm.cli.common import jit_compile
from keras_ddpm.cli.common import user_errors


# Defaults of `train` = the README quick start (examples/train_digits.py).
DEFAULTS = {
    "base_channels": 32,
    "channel_multipliers": (1, 2),
    "num_res_blocks": 1,
    "attention_resolutions": (4,),
    "dropout": 0.0,
    "norm_groups": 32,
}
# Defaults of `train`'s other model options, whatever the network.
MODEL_DEFAULTS = {"schedule": "linear", "timesteps": 1000, "ema_decay": 0.999, "class_dropout": 0.1}
# `train` arguments that make the model; a run `--from` a trained model takes them from it.
MODEL_KEYS = (
    "preset", *DEFAULTS, "schedule", "timesteps", "ema_decay", "conditional", "num_classes",
    "class_dropout",
)
# `train` arguments that adapt a `--from` model with LoRA.
LORA_KEYS = ("lora_rank", "lora_alpha", "lora_layers")
# `train` arguments that must match for a re-run to continue an existing run.
RUN_KEYS = (
    "dataset", "split", "image_size", "channels", *MODEL_KEYS, "seed", "from_model", *LORA_KEYS,
)


def build_model(args, image_shape):
    """A new DDPM for `train`'s model options, compiled."""
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
    return _compiled(model, args)


def start_from(args):
    """A copy of the `--from` model whose training noise is seeded by `--seed`, uncompiled.

    Its network, schedule, EMA and class conditioning are the model's; its random state is new
    (the same seed repeats the run), and a `UNet` computes in `--mixed-precision`.
    """
    from keras_ddpm.cli.models import load_resolved
    from keras_ddpm.cli.models import resolve_model

    source = load_resolved(resolve_model(args.from_model)[0])
    config = {**source.get_config(), "seed": args.seed}
    policy = source.network.dtype_policy.name
    if policy != args.mixed_precision:
        if config["network"].get("class_name") != "UNet":  # its layers' configs name the dtype
            raise UserError(
                f"--from {args.from_model!r} computes in {policy}; fine-tune it with "
                f"--mixed-precision {policy}"
            )
        # The model and the U-Net in the policy asked for; weights are float32 in every one.
        network = config["network"]
        network = {**network, "config": {**network["config"], "dtype": args.mixed_precision}}
        config = {**config, "network": network, "dtype": args.mixed_precision}
    model = type(source).from_config(config)
    model.set_weights(source.get_weights())
    return model


def fine_tune(model, args):
    """`model` (from `start_from`) with `--lora-rank` updates enabled if given, compiled."""
    if args.lora_rank is not None:
        with user_errors():
            paths = model.enable_lora(
                args.lora_rank, lora_alpha=args.lora_alpha, target_names=args.lora_layers
            )
        trained = sum(w.numpy().size for w in model.network.trainable_weights)
        print(f"LoRA of rank {args.lora_rank} on {len(paths)} layers: {trained:,} weights train")
    return _compiled(model, args)


def _compiled(model, args):
    """`model` compiled with `train`'s Adam (`--learning-rate`, `--warmup-steps`, `--clipnorm`)."""
    import keras

    optimizer = keras.optimizers.Adam(learning_rate_of(args), global_clipnorm=args.clipnorm)
    model.compile(optimizer=optimizer, jit_compile=jit_compile(args.jit_compile))
    return model


def learning_rate_of(args):
    """`--learning-rate`, or with `--warmup-steps` a linear warm-up to it, then constant."""
    import keras

    if not args.warmup_steps:
        return args.learning_rate
    # Linear warm-up, then constant (Ho et al. 2020): CosineDecay with alpha=1.
    return keras.optimizers.schedules.CosineDecay(
        0.0,
        decay_steps=1,
        alpha=1.0,
        warmup_target=args.learning_rate,
        warmup_steps=args.warmup_steps,
    )


# `train` options a continued run may change; they are applied to the restored optimizer.
OPTIMIZER_KEYS = ("learning_rate", "warmup_steps", "clipnorm")


def apply_optimizer_options(optimizer, args, changed):
    """Puts the changed `OPTIMIZER_KEYS` of `args` into a restored optimizer (Adam's moments
    and step count stay)."""
    import keras

    inner = getattr(optimizer, "inner_optimizer", optimizer)  # under a LossScaleOptimizer
    if "learning_rate" in changed or "warmup_steps" in changed:
        rate = learning_rate_of(args)
        # A schedule's config is a dict, a constant rate's a number (public, unlike _learning_rate).
        schedule = isinstance(inner.get_config()["learning_rate"], dict)
        if not schedule and not args.warmup_steps:
            inner.learning_rate = rate
        elif schedule:
            # A constant learning rate as a schedule: the optimizer keeps its variables.
            inner.learning_rate = rate if args.warmup_steps else keras.optimizers.schedules.CosineDecay(
                args.learning_rate, decay_steps=1, alpha=1.0
            )
        else:  # refused by `train` before it starts
            raise UserError("--warmup-steps cannot be added to a run without a warm-up")
    if "clipnorm" in changed:
        inner.global_clipnorm = args.clipnorm


STRATEGIES = ("default", "mirrored", "multiworker")


class _OneProcess:
    """What `train` asks of a strategy on JAX and PyTorch (tf.distribute's do not apply): one
    process, which writes the run, and variables made as they are (the backend places them)."""

    class extended:  # noqa: N801 - as `tf.distribute.Strategy.extended`
        should_checkpoint = True

    @staticmethod
    def scope():
        return contextlib.nullcontext()


def strategy_named(name):
    """The `tf.distribute` strategy named by `--strategy` (`_OneProcess` on other backends)."""
    from keras_ddpm import backend

    if backend.name() != "tensorflow":  # JAX or PyTorch, with or without TensorFlow installed
        if name != "default":
            raise UserError(
                f"--strategy {name} is tf.distribute's and needs the TensorFlow backend "
                f"(KERAS_BACKEND={backend.name()} here); on JAX, spread a run over devices with "
                "keras.distribution (README, 'Backends')"
            )
        return _OneProcess()
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
