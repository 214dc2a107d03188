"""`keras-ddpm train`: fit a DDPM with checkpoints, sample grids and logs in a run folder.

A run folder holds `config.json` (the arguments), `model.keras`, `samples/`,
`logs/` and `backup/` while training runs. Re-running the same command
continues an interrupted run from its last backup (made after every epoch, or
every `--backup-every` batches, from the very next batch), and a finished
run when `--epochs` grows; arguments in `RUN_KEYS` must match to continue.
"""

import argparse
import json
import math
import os
import shutil
import sys

from keras_ddpm.cli.common import Interrupted
from keras_ddpm.cli.common import UserError
from keras_ddpm.cli.common import check_writable
from keras_ddpm.cli.common import import_library
from keras_ddpm.cli.common import jit_compile
from keras_ddpm.cli.common import user_errors
from keras_ddpm.cli.datasets import training_data
from keras_ddpm.cli.models import MODEL_FILE
from keras_ddpm.cli.models import read_config
from keras_ddpm.cli.models import resolve_model
from keras_ddpm.cli.runs import DEFAULTS
from keras_ddpm.cli.runs import LORA_KEYS
from keras_ddpm.cli.runs import MODEL_DEFAULTS
from keras_ddpm.cli.runs import MODEL_KEYS
from keras_ddpm.cli.runs import OPTIMIZER_KEYS
from keras_ddpm.cli.runs import RUN_KEYS
from keras_ddpm.cli.runs import apply_optimizer_options
from keras_ddpm.cli.runs import build_model
from keras_ddpm.cli.runs import fine_tune
from keras_ddpm.cli.runs import start_from
from keras_ddpm.cli.runs import strategy_named
from keras_ddpm.cli.train_options import add_train_arguments
from keras_ddpm.data import specs
from keras_ddpm import runs
from keras_ddpm.runs.lock import RunLocked
from keras_ddpm.runs import write_config
from keras_ddpm.runs.lock import run_lock


def check(args):
    """The cheap checks of `train`, before TensorFlow loads."""
    if args.strategy != "default" and args.jit_compile == "true":
        raise UserError(
            f"--jit-compile true does not work with --strategy {args.strategy} (XLA cannot "
            "compile a step that spans several devices); use --jit-compile auto or false"
        )
    check_writable("--output", args.output, "folder")
    try:
        spec = specs.parse_dataset_spec(args.dataset)
    except (TypeError, ValueError):
        raise UserError(f"unknown --dataset {args.dataset!r}; expected {specs.DATASET_SPECS}") from None
    if spec.kind == "folder" and args.image_size is None:
        raise UserError("--dataset folder:PATH needs --image-size")
    if spec.kind == "digits" and args.random_flip:
        raise UserError("--random-flip does not apply to the digits (a mirrored digit is not a digit)")
    if args.num_classes is not None and not args.conditional:
        raise UserError("--num-classes needs --conditional")
    for name in ("learning_rate", "clipnorm", "dropout", "ema_decay", "class_dropout", "guidance"):
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and value >= 0):
            option = "--" + name.replace("_", "-")
            raise UserError(f"{option} must be a finite number >= 0; received {value}")
    if args.guidance is not None and not args.conditional and args.from_model is None:
        raise UserError("--guidance needs --conditional (it guides the grids towards their classes)")
    _check_fine_tuning(args)


def _check_fine_tuning(args):
    """`--from` without model options; the LoRA options only with `--from` and `--lora-rank`."""
    given = [key for key in LORA_KEYS[1:] if getattr(args, key) is not None]
    if given and args.lora_rank is None:
        raise UserError(f"{_options(given)} needs --lora-rank")
    if args.from_model is None:
        if args.lora_rank is not None:
            raise UserError(
                "--lora-rank needs --from MODEL: LoRA adapts a trained model (a new U-Net has "
                "nothing to keep)"
            )
        return
    # `is`, not `in (None, False)`: `--dropout 0` is given (0 == False).
    given = [key for key in MODEL_KEYS if not any(getattr(args, key) is v for v in (None, False))]
    if given:
        raise UserError(
            f"--from takes the network, schedule, EMA and classes of {args.from_model!r}; "
            f"{_options(given)} cannot be combined with it"
        )
    if args.lora_alpha is not None and not (math.isfinite(args.lora_alpha) and args.lora_alpha > 0):
        raise UserError(f"--lora-alpha must be a finite number > 0; received {args.lora_alpha}")
    resolve_model(args.from_model)  # a path that does not exist: one line, before TensorFlow


def _options(keys):
    return ", ".join("--" + key.replace("_", "-") for key in keys)


def run(args):
    """The `train` verb: fit a DDPM with checkpoints, sample grids and logs."""
    import_library()
    # The strategy first: a multi-worker one configures TensorFlow's collectives.
    strategy = strategy_named(args.strategy)
    output = args.output
    if not strategy.extended.should_checkpoint:
        # Workers other than the chief write to a scratch folder of their own.
        output = os.path.join(output, f"worker_{strategy.cluster_resolver.task_id}")
    created = not os.path.exists(output)
    os.makedirs(output, exist_ok=True)
    try:
        try:
            with run_lock(output):
                return _train(args, output, strategy)
        except RunLocked as error:
            raise UserError(str(error)) from None
    except BaseException:
        # A run that fails before it has anything to keep leaves no folder behind.
        if created and not os.path.exists(os.path.join(output, MODEL_FILE)) and not os.path.exists(
            os.path.join(output, runs.BACKUP_DIR)
        ):
            shutil.rmtree(output, ignore_errors=True)
        raise


def _train(args, output, strategy):
    """`run` inside the locked run folder."""
    import keras
    import numpy as np

    import keras_ddpm
    from keras_ddpm.runs import atomic
    from keras_ddpm import backend
    from keras_ddpm import callbacks
    from keras_ddpm import data
    from keras_ddpm import divergence
    from keras_ddpm.backend import hardware

    for folder in (output, os.path.join(output, runs.SAMPLES_DIR)):
        atomic.remove_partials(folder)  # what a killed write left behind
    if args.from_model is None:  # else the model's own
        defaults = {**MODEL_DEFAULTS, **(DEFAULTS if args.preset is None else {})}
        for key, value in defaults.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
    config = {k: v for k, v in vars(args).items() if k not in ("command", "function", "check", "show_logs")}
    config = json.loads(json.dumps(config))  # tuples -> lists, as read back later
    previous = read_config(output)
    done = 0
    changed = {}  # the OPTIMIZER_KEYS and batch size this continuation changes
    if previous is not None:
        different = [k for k in RUN_KEYS if previous.get(k) != config.get(k)]
        if different:
            raise UserError(
                f"{output!r} holds a run with other settings ({_options(different)}); "
                "pass the same arguments to continue it or another --output"
            )
        done = previous.get("epochs_completed", 0)
        changed = {
            key: previous[key] for key in (*OPTIMIZER_KEYS, "batch_size")
            if key in previous and previous[key] != config.get(key)
        }
        if not previous.get("warmup_steps") and args.warmup_steps:
            raise UserError(
                f"{output!r} was trained without a warm-up; --warmup-steps cannot be added to it "
                "(pass --warmup-steps 0, or another --output)"
            )
        if changed:
            print(f"{output}: continuing with " + ", ".join(
                f"--{key.replace('_', '-')} {old} -> {config.get(key)}" for key, old in changed.items()
            ))
    model_path = os.path.join(output, MODEL_FILE)
    keras.mixed_precision.set_global_policy(args.mixed_precision)
    keras.utils.set_random_seed(args.seed)
    slow = args.mixed_precision == "mixed_bfloat16" and hardware.slow_bfloat16_message()
    if slow:
        print(f"warning: {slow}", file=sys.stderr)

    if done >= args.epochs and os.path.exists(model_path):
        print(f"{output}: already trained for {done} epochs; pass --epochs > {done} to continue.")
        return 0
    continuing = bool(done) and os.path.exists(model_path)
    with user_errors():
        source = None
        if args.from_model is not None:
            with strategy.scope():  # variables mirrored on every replica
                source = keras_ddpm.load_model(model_path) if continuing else start_from(args)
            args.conditional = source.num_classes is not None
            args.num_classes = source.num_classes
            if args.guidance is not None and not args.conditional:
                raise UserError(f"--guidance needs a conditional model; {args.from_model!r} is not")
        fit_data, image_shape = training_data(args, output)
        if args.conditional:
            _set_num_classes(args, data.spec_num_classes(args.dataset, fit_data.get("x")))
        if source is not None and tuple(source.image_shape) != tuple(image_shape):
            size, _, channels = source.image_shape
            raise UserError(
                f"--from {args.from_model!r} takes {tuple(source.image_shape)} images but "
                f"{args.dataset!r} gives {tuple(image_shape)}; pass --image-size {size} "
                f"(and --channels {channels} for a folder)"
            )
        with strategy.scope():
            if continuing:
                model = source if source is not None else keras_ddpm.load_model(model_path)
                model.compile(
                    optimizer=model.optimizer, jit_compile=jit_compile(args.jit_compile)
                )
            else:
                done = 0
                # The optimizer the run started with, so that its backup restores into it;
                # changed options are applied after the restore (`continued` below).
                started = argparse.Namespace(**{**vars(args), **{
                    key: previous[key] for key in OPTIMIZER_KEYS if key in changed
                }})
                model = build_model(started, image_shape) if source is None else fine_tune(
                    source, started
                )
    # TensorBoard's writers are tf.summary's: without TensorFlow a run keeps its PNG grids only.
    logs = backend.installed("tensorflow")
    grids = callbacks.SampleGrid(
        os.path.join(output, runs.SAMPLES_DIR),
        every_n_epochs=args.sample_every,
        num_images=args.num_samples,
        seed=args.seed,
        sampler=args.sampler,
        steps=args.sample_steps,
        tensorboard_dir=os.path.join(output, runs.LOGS_DIR, runs.SAMPLES_DIR) if logs else None,
        jit_compile=jit_compile(args.jit_compile),
        **({"guidance_scale": args.guidance} if args.guidance is not None else {}),
    )
    grids.set_model(model)
    with user_errors():  # --sample-steps beyond T: one line now, not after the first epochs
        grids.check_model()
    config["epochs_completed"] = done
    write_config(output, config)

    # Kept until model.keras is written: a kill at any instant loses at most the batches
    # trained since the last backup.
    backup = callbacks.RunBackup(
        os.path.join(output, runs.BACKUP_DIR), save_freq=args.backup_every, delete_checkpoint=False
    )
    continued = keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: apply_optimizer_options(model.optimizer, args, changed)
    )
    position = {"epoch": done, "batch": 0}  # where a Ctrl-C lands, for its one line
    tracker = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: position.update(epoch=epoch, batch=0),
        on_train_batch_end=lambda batch, logs: position.update(batch=batch + 1),
    )
    fit_callbacks = [
        backup,
        continued,  # after the restore
        tracker,
        *([keras.callbacks.TensorBoard(os.path.join(output, runs.LOGS_DIR))] if logs else []),
        grids,
    ]
    backup_dir = os.path.join(output, runs.BACKUP_DIR)
    try:
        model.fit(
            **fit_data,
            epochs=args.epochs,
            initial_epoch=done,
            callbacks=fit_callbacks,
            verbose=args.verbose,
        )
    except divergence.TrainingDiverged as error:
        raise UserError(_diverged(str(error), backup_dir)) from None
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted at epoch {position['epoch'] + 1}, batch {position['batch']}; run the "
            "same command to continue" + (" from the backup" if _has_backup(backup_dir) else "")
        ) from None
    if not all(np.isfinite(w.numpy()).all() for w in model.weights if "float" in str(w.dtype)):
        raise UserError(_diverged("Training diverged: the weights hold NaN or infinite values.",
                                  backup_dir))
    if not os.path.exists(grids.path_for(args.epochs)):
        # Killed while writing the final grid, the re-run had no epoch left to train.
        grids.write_grid(args.epochs)
    model.save(model_path)  # atomic: the previous model.keras stays whole until replaced
    config["epochs_completed"] = args.epochs
    write_config(output, config)
    backup.delete()
    print(f"wrote {model_path} and {grids.last_path}")
    return 0


def _set_num_classes(args, found):
    """`args.num_classes` of a conditional run: given, the model's or the dataset's (`found`)."""
    if args.num_classes is not None and found is not None and args.num_classes < found:
        given = (
            f"--num-classes {args.num_classes} is" if args.from_model is None
            else f"--from {args.from_model!r} has"
        )
        raise UserError(
            f"{given} fewer than the {found} classes of {args.dataset!r} (labels 0..{found - 1})"
            + (f"; pass --num-classes {found} or more" if args.from_model is None else "")
        )
    args.num_classes = args.num_classes or found
    if args.num_classes is None:
        raise UserError(f"cannot tell how many classes {args.dataset!r} has; pass --num-classes")


def _has_backup(folder):
    return os.path.isdir(folder) and any(
        not name.startswith(".") for name in os.listdir(folder)
    )


def _diverged(message, backup_dir):
    """The one line of a diverged run: no model.keras; the backup named only if there is one."""
    if _has_backup(backup_dir):
        return f"{message} The backup in {backup_dir!r} holds the last completed epoch."
    return f"{message} Nothing was saved; try a smaller --learning-rate."


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "train",
        help="train a DDPM (default: the embedded digits, a few minutes on a CPU)",
        description=(
            "Train a DDPM. The defaults train the quick-start U-Net on the embedded 8x8 digits "
            "for 40 epochs (a few minutes on a 2-core CPU). Re-running the same command "
            "continues the run in --output."
        ),
    )
    add_train_arguments(parser)
    parser.set_defaults(function=run, check=check)
