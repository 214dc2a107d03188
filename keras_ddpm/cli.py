"""The `keras-ddpm` command: train, sample and evaluate from a shell.

Thin by design: each verb parses its arguments, then calls the library
(`UNet`, `DDPM`, `keras_ddpm.data`, `keras_ddpm.callbacks`,
`keras_ddpm.metrics`). Everything it does can be done from Python.

    keras-ddpm train --output runs/digits          # ~4 min on a 2-core CPU
    keras-ddpm sample runs/digits --out grid.png
    keras-ddpm evaluate runs/digits --feature-extractor pixels

A training run's output directory holds

    config.json     the arguments of `train` (read by `sample` and `evaluate`)
    model.keras     the trained model, written when training ends
    samples/        SampleGrid's epoch_0001.png, ...
    logs/           TensorBoard logs (losses; sample grids under logs/samples)
    backup/         the BackupAndRestore checkpoint while training runs

Re-running the same `train` command continues an interrupted run from its
last completed epoch, and a finished run when `--epochs` grows.

User errors (a missing file, an unknown dataset, a bad value) print one line
on stderr and exit with status 2.
"""

import argparse
import contextlib
import json
import os
import sys

import keras_ddpm
from keras_ddpm import samplers

CONFIG_FILE = "config.json"
MODEL_FILE = "model.keras"
# `train` arguments that must match for a re-run to continue an existing run.
_RUN_KEYS = (
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


class UserError(Exception):
    """A mistake in the command line: reported in one line, exit status 2."""


@contextlib.contextmanager
def user_errors():
    """Turns the library's argument errors into `UserError`s.

    Only the set-up (reading data, building or loading the model) runs inside
    it: an error raised later, while training or sampling, is a bug and keeps
    its traceback.
    """
    try:
        yield
    except (ValueError, TypeError, OSError) as error:
        raise UserError(
            str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        ) from error


# ----------------------------------------------------------------------------
# Argument types
# ----------------------------------------------------------------------------
def _int_list(text):
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 1,2,2; received {text!r}"
        ) from None
    return values


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; received {text!r}")
    return value


def _nonnegative_int(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0; received {text!r}")
    return value


# ----------------------------------------------------------------------------
# Shared helpers
# ----------------------------------------------------------------------------
def load_dataset(
    spec,
    batch_size,
    image_size=None,
    channels=3,
    split="train",
    random_flip=False,
    shuffle=True,
    seed=None,
    with_labels=False,
):
    """The dataset named by a `--dataset` value: `digits`, `tfds:NAME` or `folder:PATH`."""
    from keras_ddpm import data

    if spec == "digits":
        if random_flip:
            raise UserError(
                "--random-flip does not apply to the digits (a mirrored digit is not a digit)"
            )
        return data.load_digits(
            batch_size, image_size=image_size, shuffle=shuffle, seed=seed, with_labels=with_labels
        )
    if spec.startswith("tfds:") and spec[5:]:
        return data.load_tfds(
            spec[5:],
            split=split,
            image_size=image_size,
            batch_size=batch_size,
            shuffle=shuffle,
            random_flip=random_flip,
            seed=seed,
            with_labels=with_labels,
        )
    if spec.startswith("folder:") and spec[7:]:
        if image_size is None:
            raise UserError("--dataset folder:PATH needs --image-size")
        return data.load_image_folder(
            spec[7:],
            image_size,
            batch_size=batch_size,
            channels=channels,
            shuffle=shuffle,
            random_flip=random_flip,
            seed=seed,
            with_labels=with_labels,
        )
    raise UserError(
        f"unknown --dataset {spec!r}; expected 'digits', 'tfds:NAME' (e.g. tfds:mnist) "
        "or 'folder:PATH'"
    )


def dataset_num_classes(spec, dataset):
    """The number of classes of a `--dataset` loaded with labels, or `None` if unknown."""
    if spec == "digits":
        return 10
    if spec.startswith("folder:"):
        return len(dataset.class_names)
    try:
        import tensorflow_datasets as tfds

        return int(tfds.builder(spec[5:]).info.features["label"].num_classes)
    except Exception:  # noqa: BLE001 - any failure means "not known"; --num-classes then.
        return None


def _read_config(directory):
    path = os.path.join(directory, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def _write_config(directory, config):
    path = os.path.join(directory, CONFIG_FILE)
    with open(path + ".tmp", "w", encoding="utf-8") as file:
        json.dump(config, file, indent=2, sort_keys=True)
    os.replace(path + ".tmp", path)


def resolve_model(path):
    """(path of the .keras file, the run's config or None) for a MODEL argument."""
    if os.path.isdir(path):
        config = _read_config(path)
        model_path = os.path.join(path, MODEL_FILE)
        if not os.path.exists(model_path):
            raise UserError(
                f"{path!r} holds no {MODEL_FILE}; has `keras-ddpm train` finished there?"
            )
        return model_path, config
    if not os.path.exists(path):
        raise UserError(f"model {path!r} does not exist")
    if not path.endswith(".keras"):
        raise UserError(f"expected a .keras file or a training output directory; received {path!r}")
    return path, _read_config(os.path.dirname(path) or ".")


def load_model(path):
    """The DDPM stored in `path` (a .keras file or a `train` output directory), and its config."""
    import keras

    model_path, config = resolve_model(path)
    if config and config.get("mixed_precision"):
        keras.mixed_precision.set_global_policy(config["mixed_precision"])
    with user_errors():
        model = keras_ddpm.load_model(model_path)
    if not hasattr(model, "generate"):
        raise UserError(f"{model_path!r} holds a {type(model).__name__}, not a keras_ddpm.DDPM")
    return model, config


def _generate_kwargs(args):
    """`sampler`, `steps`, labels and guidance only when given (else generate's defaults)."""
    kwargs = {k: getattr(args, k) for k in ("sampler", "steps") if getattr(args, k, None) is not None}
    if getattr(args, "label", None) is not None:
        labels = list(args.label)
        if not labels:
            raise UserError("--label needs a class, e.g. --label 7")
        kwargs["labels"] = labels if len(labels) > 1 else labels[0]
    if getattr(args, "guidance", None) is not None:
        kwargs["guidance_scale"] = args.guidance
    return kwargs


def _check_generate_accepts(model, kwargs):
    import inspect

    parameters = inspect.signature(model.generate).parameters
    for name in kwargs:
        if name not in parameters:
            raise UserError(
                f"--{name} is not supported by this version of keras_ddpm's DDPM.generate"
            )


# ----------------------------------------------------------------------------
# train
# ----------------------------------------------------------------------------
def _build_model(args, image_shape):
    import keras

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
    model.compile(optimizer=optimizer, jit_compile=_jit_compile(args.jit_compile))
    return model


def _jit_compile(value):
    return {"auto": "auto", "true": True, "false": False}[value]


STRATEGIES = ("default", "mirrored", "multiworker")


def _strategy(name):
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


def train(args):
    """The `train` verb: fit a DDPM with checkpoints, sample grids and logs."""
    import keras

    from keras_ddpm import callbacks

    if args.strategy != "default" and args.jit_compile == "true":
        raise UserError(
            f"--jit-compile true does not work with --strategy {args.strategy} (XLA cannot "
            "compile a step that spans several devices); use --jit-compile auto or false"
        )
    # The strategy first: a multi-worker one configures TensorFlow's collectives.
    strategy = _strategy(args.strategy)
    output = args.output
    if not strategy.extended.should_checkpoint:
        # Workers other than the chief write to a scratch folder of their own.
        output = os.path.join(output, f"worker_{strategy.cluster_resolver.task_id}")
    os.makedirs(output, exist_ok=True)
    if args.preset is None:
        for key, value in DEFAULTS.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
    config = {k: v for k, v in vars(args).items() if k not in ("command", "function")}
    config = json.loads(json.dumps(config))  # tuples -> lists, as read back later
    previous = _read_config(output)
    done = 0
    if previous is not None:
        changed = [k for k in _RUN_KEYS if previous.get(k) != config.get(k)]
        if changed:
            options = ", ".join("--" + key.replace("_", "-") for key in changed)
            raise UserError(
                f"{output!r} holds a run with other settings ({options}); "
                "pass the same arguments to continue it or another --output"
            )
        done = previous.get("epochs_completed", 0)
    model_path = os.path.join(output, MODEL_FILE)
    keras.mixed_precision.set_global_policy(args.mixed_precision)
    keras.utils.set_random_seed(args.seed)

    if done >= args.epochs and os.path.exists(model_path):
        print(f"{output}: already trained for {done} epochs; pass --epochs > {done} to continue.")
        return 0
    with user_errors():
        dataset = load_dataset(
            args.dataset,
            args.batch_size,
            image_size=args.image_size,
            channels=args.channels,
            split=args.split,
            random_flip=args.random_flip,
            seed=args.seed,
            with_labels=args.conditional,
        )
        image_spec = dataset.element_spec
        if args.conditional:
            image_spec = image_spec[0]
            args.num_classes = args.num_classes or dataset_num_classes(args.dataset, dataset)
            if args.num_classes is None:
                raise UserError(
                    f"cannot tell how many classes {args.dataset!r} has; pass --num-classes"
                )
        elif args.num_classes is not None:
            raise UserError("--num-classes needs --conditional")
        image_shape = tuple(image_spec.shape[1:])
        with strategy.scope():  # variables mirrored on every replica
            if done and os.path.exists(model_path):
                model = keras_ddpm.load_model(model_path)
                model.compile(
                    optimizer=model.optimizer, jit_compile=_jit_compile(args.jit_compile)
                )
            else:
                done = 0
                model = _build_model(args, image_shape)
    config["epochs_completed"] = done
    _write_config(output, config)

    grids = callbacks.SampleGrid(
        os.path.join(output, "samples"),
        every_n_epochs=args.sample_every,
        num_images=args.num_samples,
        seed=args.seed,
        tensorboard_dir=os.path.join(output, "logs", "samples"),
        jit_compile=_jit_compile(args.jit_compile),
        **({"guidance_scale": args.guidance} if args.guidance is not None else {}),
    )
    fit_callbacks = [
        keras.callbacks.BackupAndRestore(os.path.join(output, "backup")),
        keras.callbacks.TensorBoard(os.path.join(output, "logs")),
        grids,
    ]
    model.fit(
        dataset,
        epochs=args.epochs,
        initial_epoch=done,
        callbacks=fit_callbacks,
        verbose=args.verbose,
    )
    model.save(model_path)
    config["epochs_completed"] = args.epochs
    _write_config(output, config)
    print(f"wrote {model_path} and {grids.last_path}")
    return 0


def _add_train_parser(subparsers):
    parser = subparsers.add_parser(
        "train",
        help="train a DDPM (default: the embedded digits, a few minutes on a CPU)",
        description=(
            "Train a DDPM. The defaults train the quick-start U-Net on the embedded 8x8 digits "
            "for 40 epochs (a few minutes on a 2-core CPU). Re-running the same command "
            "continues the run in --output."
        ),
    )
    parser.add_argument(
        "--output",
        default="outputs/ddpm",
        help="run directory: config.json, model.keras, samples/, logs/, backup/ "
        "(default: %(default)s)",
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--dataset",
        default="digits",
        help="'digits' (embedded, default), 'tfds:NAME' (e.g. tfds:cifar10; downloads) "
        "or 'folder:PATH' (a folder of images, needs --image-size)",
    )
    data.add_argument("--split", default="train", help="TFDS split (default: %(default)s)")
    data.add_argument(
        "--image-size",
        type=_positive_int,
        default=None,
        help="resize images to this height and width (default: the dataset's size)",
    )
    data.add_argument(
        "--channels",
        type=int,
        choices=(1, 3),
        default=3,
        help="channels of folder images (default: %(default)s)",
    )
    data.add_argument(
        "--random-flip",
        action="store_true",
        help="flip TFDS or folder images horizontally at random",
    )
    net = parser.add_argument_group("model (defaults: the quick-start U-Net)")
    net.add_argument(
        "--preset",
        default=None,
        help="a keras_ddpm.unet.PRESETS name, e.g. ddpm_cifar10; the options below override it",
    )
    net.add_argument(
        "--base-channels",
        type=_positive_int,
        default=None,
        help=f"(default: {DEFAULTS['base_channels']})",
    )
    net.add_argument(
        "--channel-multipliers",
        type=_int_list,
        default=None,
        help="comma-separated, one per resolution (default: 1,2)",
    )
    net.add_argument(
        "--num-res-blocks",
        type=_positive_int,
        default=None,
        help=f"(default: {DEFAULTS['num_res_blocks']})",
    )
    net.add_argument(
        "--attention-resolutions",
        type=_int_list,
        default=None,
        help="comma-separated feature-map sizes with self-attention (default: 4)",
    )
    net.add_argument("--dropout", type=float, default=None, help="(default: 0.0)")
    net.add_argument(
        "--norm-groups",
        type=_positive_int,
        default=None,
        help=f"GroupNormalization groups (default: {DEFAULTS['norm_groups']})",
    )
    net.add_argument(
        "--schedule",
        default="linear",
        choices=("linear", "scaled_linear", "cosine", "sigmoid"),
        help="noise schedule (default: %(default)s)",
    )
    net.add_argument(
        "--timesteps",
        type=_positive_int,
        default=1000,
        help="diffusion steps T (default: %(default)s)",
    )
    net.add_argument("--ema-decay", type=float, default=0.999, help="(default: %(default)s)")
    net.add_argument(
        "--conditional",
        action="store_true",
        help="train a class-conditional model on the dataset's labels, for classifier-free "
        "guidance (`sample --label 7 --guidance 3`)",
    )
    net.add_argument(
        "--num-classes",
        type=_positive_int,
        default=None,
        help="classes of a --conditional model (default: read from the dataset)",
    )
    net.add_argument(
        "--class-dropout",
        type=float,
        default=0.1,
        help="share of labels replaced by the null label while training a --conditional "
        "model (default: %(default)s)",
    )
    fit = parser.add_argument_group("training")
    fit.add_argument("--epochs", type=_positive_int, default=40, help="(default: %(default)s)")
    fit.add_argument("--batch-size", type=_positive_int, default=128, help="(default: %(default)s)")
    fit.add_argument(
        "--learning-rate", type=float, default=2e-3, help="Adam's (default: %(default)s)"
    )
    fit.add_argument(
        "--warmup-steps",
        type=_nonnegative_int,
        default=0,
        help="linear learning-rate warm-up steps (the DDPM paper used 5000; default: 0)",
    )
    fit.add_argument(
        "--clipnorm",
        type=float,
        default=None,
        help="clip the global gradient norm (the DDPM paper used 1.0; default: none)",
    )
    fit.add_argument(
        "--mixed-precision",
        default="float32",
        choices=("float32", "mixed_float16", "mixed_bfloat16"),
        help="Keras dtype policy (default: %(default)s)",
    )
    fit.add_argument(
        "--jit-compile",
        default="auto",
        choices=("auto", "true", "false"),
        help="compile the training step and the sampling loop of the grids with XLA "
        "(default: auto, Keras' choice for training and generate's for sampling)",
    )
    fit.add_argument(
        "--strategy",
        default="default",
        choices=STRATEGIES,
        help="tf.distribute strategy: 'mirrored' (every GPU of this host) or 'multiworker' "
        "(several hosts; reads TF_CONFIG; workers other than the chief write to "
        "OUTPUT/worker_N); --batch-size is the global batch (default: %(default)s)",
    )
    fit.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    fit.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=1,
        help="Keras' fit verbosity (default: %(default)s)",
    )
    out = parser.add_argument_group("sample grids")
    out.add_argument(
        "--sample-every",
        type=_positive_int,
        default=20,
        help="write samples/epoch_NNNN.png every N epochs and at the end (default: %(default)s)",
    )
    out.add_argument("--num-samples", type=_positive_int, default=64, help="(default: %(default)s)")
    out.add_argument(
        "--guidance",
        type=float,
        default=None,
        help="classifier-free guidance scale of the grids of a --conditional model, whose "
        "image i shows class i modulo the number of classes (default: 1, no guidance)",
    )
    parser.set_defaults(function=train)


# ----------------------------------------------------------------------------
# sample
# ----------------------------------------------------------------------------
def _check_out(out):
    if os.path.splitext(out)[1] not in ("", ".png", ".npy"):
        raise UserError(
            f"--out must end in .png (a grid), .npy (an array) or name a folder; received {out!r}"
        )


def _generate(model, args, num):
    """`model.generate` with the verb's seed, batch size, sampler and steps."""
    kwargs = _generate_kwargs(args)
    _check_generate_accepts(model, kwargs)
    with user_errors():
        # Check sampler names and step counts up front, where the library offers it.
        if "sampler" in kwargs:
            samplers.check_sampler(kwargs["sampler"])
        if "steps" in kwargs:
            samplers.check_steps(kwargs["steps"], model.schedule.timesteps)
        labels = kwargs.get("labels")
        if isinstance(labels, list) and len(labels) != num:
            raise UserError(
                f"--label lists {len(labels)} classes for --num {num}; give one class for "
                "every image, or a single class"
            )
        if labels is not None or "guidance_scale" in kwargs:
            # The model's own checks (range, conditional or not) as one-line errors.
            model._check_labels(labels, kwargs.get("guidance_scale"), num)
    return model.generate(
        num,
        seed=args.seed,
        batch_size=args.batch_size,
        verbose=1 if args.progress else 0,
        jit_compile=_jit_compile(args.jit_compile),
        **kwargs,
    )


def sample(args):
    """The `sample` verb: generate images to a PNG grid, a .npy array or a folder of PNGs."""
    import numpy as np
    from PIL import Image

    from keras_ddpm import utils

    _check_out(args.out)
    model, _ = load_model(args.model)
    images = _generate(model, args, args.num)
    out = args.out
    if out.endswith(".png"):
        utils.save_image_grid(images, out)
    elif out.endswith(".npy"):
        folder = os.path.dirname(out)
        if folder:
            os.makedirs(folder, exist_ok=True)
        np.save(out, images)
    else:
        os.makedirs(out, exist_ok=True)
        for index, picture in enumerate(utils.to_uint8(images)):
            picture = picture[..., 0] if picture.shape[-1] == 1 else picture
            Image.fromarray(picture).save(os.path.join(out, f"{index:05d}.png"))
    print(f"wrote {len(images)} images to {out}")
    return 0


def _add_sample_parser(subparsers):
    parser = subparsers.add_parser(
        "sample",
        help="generate images with a trained model",
        description="Generate images with a trained DDPM (EMA weights) and save them.",
    )
    parser.add_argument("model", help="a .keras file or the --output directory of `train`")
    parser.add_argument(
        "--num", type=_positive_int, default=64, help="images (default: %(default)s)"
    )
    parser.add_argument(
        "--out",
        default="samples.png",
        help="a .png grid, a .npy array (float32 in [-1, 1]) or a folder of PNGs "
        "(default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help="images denoised at once (default: all)",
    )
    _add_sampler_arguments(parser)
    parser.set_defaults(function=sample)


def _add_sampler_arguments(parser):
    parser.add_argument(
        "--sampler",
        default=None,
        help="sampler passed to DDPM.generate, e.g. ddim with --steps 50 for a fast run "
        "(default: generate's default, ancestral sampling over every step)",
    )
    parser.add_argument(
        "--steps",
        type=_positive_int,
        default=None,
        help="sampling steps passed to DDPM.generate (default: generate's default)",
    )
    parser.add_argument(
        "--jit-compile",
        default="auto",
        choices=("auto", "true", "false"),
        help="compile the sampling loop with XLA (default: auto, when the network "
        "supports it; compiling takes seconds, then each step is faster)",
    )
    parser.add_argument(
        "--label",
        type=_int_list,
        default=None,
        help="class-conditional models: the class of every image (e.g. 7), or one class per "
        "image, comma-separated (default: unconditional samples)",
    )
    parser.add_argument(
        "--guidance",
        type=float,
        default=None,
        help="classifier-free guidance scale with --label: 1 plain conditional, larger "
        "values follow the class more closely (default: 1)",
    )
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="hide the progress bar"
    )


# ----------------------------------------------------------------------------
# evaluate
# ----------------------------------------------------------------------------
METRICS = ("kid", "fid", "bpd")


def _metric_list(text):
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in METRICS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated subset of {','.join(METRICS)}; received {text!r}"
        )
    return names


def _real_images(dataset, num):
    import numpy as np

    batches, count = [], 0
    for batch in dataset:
        batch = batch[0] if isinstance(batch, (tuple, list)) else batch
        batches.append(np.asarray(batch))
        count += len(batch)
        if count >= num:
            break
    return np.concatenate(batches)[:num]


def evaluate(args):
    """The `evaluate` verb: KID, FID and bits/dim of a model against a dataset."""
    from keras_ddpm import metrics

    model, config = load_model(args.model)
    config = config or {}
    spec = args.dataset or config.get("dataset", "digits")
    image_size = args.image_size or config.get("image_size")
    with user_errors():
        dataset = load_dataset(
            spec,
            256,
            image_size=image_size,
            channels=args.channels or config.get("channels", 3),
            split=args.split or config.get("split", "train"),
            shuffle=False,
        )
    real = _real_images(dataset, args.num)
    if tuple(real.shape[1:]) != tuple(model.image_shape):
        raise UserError(
            f"the dataset's images are {tuple(real.shape[1:])} but the model makes "
            f"{tuple(model.image_shape)}; pass --dataset/--image-size to match"
        )
    results = {"num_real_images": len(real)}
    if "kid" in args.metrics or "fid" in args.metrics:
        with user_errors():
            kid = metrics.KID(
                args.feature_extractor,
                num_subsets=args.kid_subsets,
                subset_size=args.kid_subset_size,
                seed=args.seed,
            )
            fid = metrics.FID(args.feature_extractor)
        print(f"generating {len(real)} images")
        generated = _generate(model, args, len(real))
        results["num_generated_images"] = len(generated)
        results["feature_extractor"] = args.feature_extractor
        for name, metric in (("kid", kid), ("fid", fid)):
            if name in args.metrics:
                metric.update_state(real, generated)
                with user_errors():
                    results[name] = metric.result()
                if name == "kid":
                    results["kid_std"] = kid.result_std()
    if "bpd" in args.metrics:
        count = min(args.bpd_images, len(real))
        print(f"bits/dim of {count} images ({model.schedule.timesteps} terms each)")
        results["bits_per_dim"] = metrics.bits_per_dim(
            model, real[:count], seed=args.seed, verbose=1 if args.progress else 0
        )
        results["bpd_images"] = count
    print(json.dumps(results, indent=2))
    if args.out:
        folder = os.path.dirname(args.out)
        if folder:
            os.makedirs(folder, exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as file:
            json.dump(results, file, indent=2)
    return 0


def _add_evaluate_parser(subparsers):
    parser = subparsers.add_parser(
        "evaluate",
        help="KID, FID and bits/dim of a trained model",
        description=(
            "Compare generated images with a dataset (KID, FID) and compute the variational "
            "bound in bits/dim. The default feature extractor, inception_v3, downloads the "
            "ImageNet InceptionV3 weights on first use; 'pixels' uses the flattened pixels "
            "(no download, for small images; not comparable with published numbers)."
        ),
    )
    parser.add_argument("model", help="a .keras file or the --output directory of `train`")
    parser.add_argument(
        "--dataset",
        default=None,
        help="'digits', 'tfds:NAME' or 'folder:PATH' (default: the training run's)",
    )
    parser.add_argument("--split", default=None, help="TFDS split (default: the training run's)")
    parser.add_argument(
        "--image-size", type=_positive_int, default=None, help="(default: the training run's)"
    )
    parser.add_argument(
        "--channels",
        type=int,
        choices=(1, 3),
        default=None,
        help="channels of folder images (default: the training run's, else 3)",
    )
    parser.add_argument(
        "--num",
        type=_positive_int,
        default=1000,
        help="real and generated images for KID/FID; generating them is the slow part, "
        "see --sampler/--steps (default: %(default)s)",
    )
    parser.add_argument(
        "--metrics",
        type=_metric_list,
        default=list(METRICS),
        help="comma-separated subset of kid,fid,bpd (default: all)",
    )
    parser.add_argument(
        "--feature-extractor",
        default="inception_v3",
        choices=("inception_v3", "pixels"),
        help="features for KID/FID (default: %(default)s, downloads its weights)",
    )
    parser.add_argument(
        "--kid-subsets", type=_positive_int, default=100, help="(default: %(default)s)"
    )
    parser.add_argument(
        "--kid-subset-size",
        type=_positive_int,
        default=1000,
        help="(default: %(default)s, or fewer when there are fewer images)",
    )
    parser.add_argument(
        "--bpd-images",
        type=_positive_int,
        default=100,
        help="real images for bits/dim, which costs T network calls per batch "
        "(default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help="images generated at once (default: all)",
    )
    parser.add_argument("--out", default=None, help="also write the results to this JSON file")
    _add_sampler_arguments(parser)
    parser.set_defaults(function=evaluate)


# ----------------------------------------------------------------------------
# export
# ----------------------------------------------------------------------------
def export_model(args):
    """The `export` verb: write a TensorFlow SavedModel with generate/denoise endpoints."""
    from keras_ddpm import export

    with user_errors():
        samplers.check_sampler(args.sampler)
        samplers.check_eta(args.eta)
        if os.path.exists(args.outdir) and not os.path.isdir(args.outdir):
            raise ValueError(f"OUTDIR {args.outdir!r} is a file; expected a directory")
    model, _ = load_model(args.model)
    with user_errors():
        path = export.export_saved_model(
            model,
            args.outdir,
            sampler=args.sampler,
            eta=args.eta,
            order=args.order,
            use_ema=args.ema,
            jit_compile=args.jit_compile == "true",
            verbose=False,
        )
    inputs = "num_images=4;steps=0;seed=0"
    if getattr(model, "num_classes", None):
        inputs += ";labels=[0,1,2,3];guidance_scale=3.0"
    print(f"wrote the SavedModel {path}; try:")
    print(
        f"  saved_model_cli run --dir {path} --tag_set serve --signature_def serving_default "
        f"--input_exprs '{inputs}'"
    )
    return 0


def _add_export_parser(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="write a TensorFlow SavedModel (for tf.saved_model.load and TF Serving)",
        description=(
            "Export a trained DDPM as a TensorFlow SavedModel that needs neither Keras nor "
            "keras_ddpm: endpoints generate(num_images, steps, seed) -> uint8 images "
            "(= serving_default, using --sampler), generate_with_sampler(..., sampler, eta) and "
            "denoise(x_t, t). steps=0 asks for the sampler's default number of steps."
        ),
    )
    parser.add_argument("model", help="a .keras file or the --output directory of `train`")
    parser.add_argument("outdir", help="the SavedModel directory to write")
    parser.add_argument(
        "--sampler",
        default="ddpm",
        help="sampler of the generate endpoint: ddpm, ddim or dpm_solver (default: %(default)s)",
    )
    parser.add_argument(
        "--eta", type=float, default=0.0, help="DDIM's eta for --sampler ddim (default: 0.0)"
    )
    parser.add_argument(
        "--order",
        type=int,
        choices=(1, 2, 3),
        default=2,
        help="DPM-Solver++ order (default: %(default)s)",
    )
    parser.add_argument(
        "--no-ema", dest="ema", action="store_false", help="export the raw, not the EMA, weights"
    )
    parser.add_argument(
        "--jit-compile",
        default="false",
        choices=("true", "false"),
        help="compile the sampling loops with XLA when the SavedModel runs (default: %(default)s)",
    )
    parser.set_defaults(function=export_model)


# ----------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------
def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-ddpm",
        description="Denoising diffusion probabilistic models for Keras: train, sample, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {keras_ddpm.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_train_parser(subparsers)
    _add_sample_parser(subparsers)
    _add_evaluate_parser(subparsers)
    _add_export_parser(subparsers)
    return parser


def main(argv=None):
    """Runs the command line `argv` (default: `sys.argv[1:]`) and returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.function(args)
    except UserError as error:
        print(f"keras-ddpm {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
