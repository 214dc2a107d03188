"""What the verbs of `keras-ddpm` share: errors, argument types, shared options, sampling.

Nothing here imports TensorFlow at module level: `--help` and a wrong argument
are answered before TensorFlow loads (in about a second instead of its import
time), and `quiet_tensorflow` silences TensorFlow's C++ start-up logs unless
the user set `TF_CPP_MIN_LOG_LEVEL` or passed `--verbose`.
"""

import argparse
import contextlib
import os
import sys

from keras_ddpm import checks
from keras_ddpm.samplers.options import OPTIMIZED
from keras_ddpm.samplers.options import TIMESTEP_SPACINGS
from keras_ddpm.samplers import registry

JIT_CHOICES = ("auto", "true", "false")


class UserError(Exception):
    """A mistake in the command line: reported in one line, exit status 2."""


class Interrupted(Exception):
    """Ctrl-C, with what was kept: reported in one line, exit status 130 (128 + SIGINT)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr (exit status 2), without the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


@contextlib.contextmanager
def user_errors():
    """Turns the library's argument errors into `UserError`s (one line each).

    Only the set-up (reading data, building or loading the model) runs inside
    it: an error raised later, while training or sampling, is a bug and keeps
    its traceback.
    """
    try:
        yield
    except (ValueError, TypeError, OSError) as error:
        raise UserError(checks.first_line(error)) from error


_QUIET = {"on": True}


def quiet_tensorflow(verbose=False):
    """Hides TensorFlow's start-up logs and Python warnings unless `verbose`.

    A `TF_CPP_MIN_LOG_LEVEL` the user set is kept, and then nothing is hidden
    at start-up. Call before TensorFlow loads.
    """
    _QUIET["on"] = not verbose and "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import logging
    import warnings

    logging.getLogger("absl").setLevel(logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="keras")
    warnings.filterwarnings("ignore", module="tensorflow")


@contextlib.contextmanager
def _start_up_logs_hidden():
    """Sends the C++ stderr of TensorFlow's import to a file, replayed only if the import fails.

    TensorFlow's C++ libraries log a few INFO lines (oneDNN, CUDA, CPU
    features) through absl before `TF_CPP_MIN_LOG_LEVEL` is read.
    """
    if not _QUIET["on"]:
        yield
        return
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def import_library():
    """Loads keras_ddpm (and TensorFlow, where installed) whole: every class a saved model may name."""
    import keras_ddpm

    with _start_up_logs_hidden():
        keras_ddpm.import_all()  # Keras, and with it the backend's libraries
        from keras_ddpm import backend

        if backend.installed("tensorflow"):  # JAX and PyTorch run without it
            import tensorflow as tf

            tf.config.list_physical_devices()  # Device start-up logs (cuInit on CPU-only hosts) too.
    return keras_ddpm


def digits_without_tensorflow(spec, image_size=None):
    """`(images, labels)` of the embedded digits, for `train` and `evaluate` where TensorFlow is
    not installed; any other dataset, or resizing, is one line: its loaders are `tf.data`'s."""
    from keras_ddpm import data

    needs = "needs TensorFlow (its loaders are tf.data pipelines), which is not installed here"
    with user_errors():
        kind = data.parse_dataset_spec(spec).kind
    if kind != "digits":
        raise UserError(
            f"--dataset {spec} {needs}; pip install tensorflow, or use the embedded digits "
            "(--dataset digits)"
        )
    if image_size not in (None, 8):
        raise UserError(f"--image-size {needs}; leave it out for the 8x8 digits")
    return data.load_digits_arrays()


# ----------------------------------------------------------------------------
# Argument types
# ----------------------------------------------------------------------------
def int_list(text):
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 1,2,2; received {text!r}"
        ) from None


def steps_or_optimized(text):
    """`--steps`: a positive integer, or `"optimized"` (the model's own steps)."""
    return text if text == OPTIMIZED else positive_int(text)


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; received {text!r}")
    return value


def nonnegative_int(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0; received {text!r}")
    return value


def jit_compile(value):
    """`--jit-compile auto|true|false` as `generate`/`compile` take it."""
    return {"auto": "auto", "true": True, "false": False}[value]


# ----------------------------------------------------------------------------
# Shared options (each defined once)
# ----------------------------------------------------------------------------
def add_model_argument(parser):
    parser.add_argument(
        "model",
        help="a .keras file, the --output directory of `train`, a diffusers folder or a hub "
        "id such as google/ddpm-cifar10-32",
    )


def seed_int(text):
    """A `--seed`: an int that fits in 64 bits (`checks.optional_seed`)."""
    try:
        return checks.optional_seed("--seed", int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer of at most 64 bits (|seed| < 2**63); received {text!r}"
        ) from None


def add_seed(parser, default=0):
    parser.add_argument("--seed", type=seed_int, default=default, help="(default: %(default)s)")


def add_batch_size(parser, help="images generated at once (default: all)", default=None):
    parser.add_argument("--batch-size", type=positive_int, default=default, help=help)


def add_jit_compile(parser, default="auto", help=None):
    parser.add_argument(
        "--jit-compile",
        default=default,
        choices=JIT_CHOICES if default == "auto" else JIT_CHOICES[1:],
        help=help
        or "compile the sampling loop with XLA (default: auto, when the network supports it "
        "and, on a CPU, when the steps are small enough for XLA to be faster and the run long "
        "enough, 250 network evaluations or more, to earn back the compile time)",
    )


def add_verbose(parser, verb=False):
    """`--verbose`: show TensorFlow's logs (`keras-ddpm --verbose VERB`, or after the verb)."""
    parser.add_argument(
        "--verbose",
        dest="show_logs",
        action="store_true",
        # A verb's default must not overwrite the value parsed before the verb.
        default=argparse.SUPPRESS if verb else False,
        help="show TensorFlow's start-up logs and warnings",
    )


def sampler_help():
    """One line per registered sampler, from the registry."""
    lines = []
    for name in registry.sampler_names():
        record = registry.get_sampler(name)
        steps = "T" if record.default_steps is None else record.default_steps
        lines.append(f"{name} ({record.description}; default {steps} steps)")
    return "; ".join(lines)


def add_sampler_choice(parser, default=None):
    """`--sampler` with the registered samplers as choices, and their options."""
    parser.add_argument(
        "--sampler",
        default=default,
        choices=registry.sampler_names(),
        metavar="SAMPLER",
        help=f"{sampler_help()} (default: {default or registry.DEFAULT_SAMPLER})",
    )
    for option in registry.all_options():
        parser.add_argument(
            "--" + option.name.replace("_", "-"),
            type=float if option.runtime else int,
            default=None,
            help=_option_help(option.name),
        )


def _option_help(name):
    """The help of a sampler option, per sampler where several take it (`--order`)."""
    records = [registry.get_sampler(taker) for taker in registry.takers(name)]
    options = [record.option(name) for record in records]
    if all(option == options[0] for option in options):
        return (
            f"{options[0].help} (only for {', '.join(r.name for r in records)}; "
            f"default: {options[0].default})"
        )
    return "; ".join(
        f"{option.help} (default: {option.default})" for option in options
    )


def add_spacing_argument(parser):
    parser.add_argument(
        "--timestep-spacing", default=None, choices=TIMESTEP_SPACINGS, metavar="SPACING",
        help=f"which timesteps the steps visit: {', '.join(TIMESTEP_SPACINGS)}; "
        "'optimized' for those `optimize-steps` stored in the model (default: the sampler's)",
    )


def add_sampler_arguments(parser, default=None):
    """What `sample` and `evaluate` pass to `generate`: sampler, steps, options, labels, XLA."""
    add_sampler_choice(parser, default)
    parser.add_argument(
        "--steps", type=steps_or_optimized, default=None,
        help="sampling steps, or 'optimized': those `optimize-steps` stored in the model "
        "(default: the sampler's)",
    )
    add_spacing_argument(parser)
    add_jit_compile(parser)
    parser.add_argument(
        "--label",
        type=int_list,
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


def add_resampling_arguments(parser, where=""):
    """`--resample-steps` and `--jump-length` of RePaint (`inpaint`, and `export`'s endpoint)."""
    parser.add_argument(
        "--resample-steps", type=positive_int, default=registry.RESAMPLE_STEPS,
        help=f"passes over each block of steps{where}; 1 is plain replacement "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--jump-length", type=positive_int, default=registry.JUMP_LENGTH,
        help=f"steps per resampled block{where} (default: %(default)s)",
    )


def sampler_options(args):
    """The sampler options given on the command line (`None` where not given)."""
    return {option.name: getattr(args, option.name, None) for option in registry.all_options()}


def _counted_steps(args):
    """`--steps` as a number for the registry's checks (`None` for "optimized")."""
    steps = getattr(args, "steps", None)
    return None if steps == OPTIMIZED else steps


def check_sampler_arguments(args):
    """The cheap checks of `--sampler` and its options, before TensorFlow loads."""
    with user_errors():
        registry.resolve(
            args.sampler or registry.DEFAULT_SAMPLER, 10**9, _counted_steps(args),
            getattr(args, "timestep_spacing", None),
            **sampler_options(args),
        )


def sampling_kwargs(model, args, num, count=None):
    """The keyword arguments of the verb's sampler, steps, options and labels for `num` images.

    Checked as `generate` checks them, so that a bad value is one line;
    `count` names the number of images in that line (default: "N images").
    """
    from keras_ddpm import sampling_inputs

    kwargs = {
        k: getattr(args, k)
        for k in ("sampler", "steps", "timestep_spacing")
        if getattr(args, k, None) is not None
    }
    kwargs.update({k: v for k, v in sampler_options(args).items() if v is not None})
    if getattr(args, "label", None) is not None:
        labels = list(args.label)
        if not labels:
            raise UserError("--label needs a class, e.g. --label 7")
        if len(labels) > 1 and len(labels) != num:
            raise UserError(
                f"--label lists {len(labels)} classes for {count or f'{num} images'}; give one "
                "class for every image, or a single class"
            )
        kwargs["labels"] = labels if len(labels) > 1 else labels[0]
    if getattr(args, "guidance", None) is not None:
        kwargs["guidance_scale"] = args.guidance
    with user_errors():
        from keras_ddpm.samplers.spacing import resolve_optimized

        steps, spacing = resolve_optimized(
            model.schedule, kwargs.get("steps"), kwargs.get("timestep_spacing")
        )
        registry.resolve(
            kwargs.get("sampler", registry.DEFAULT_SAMPLER), model.schedule.timesteps,
            steps, spacing, **sampler_options(args),
        )
        sampling_inputs.check_labels(
            kwargs.get("labels"), kwargs.get("guidance_scale"), num, model.num_classes
        )
    kwargs.update(
        seed=args.seed, batch_size=args.batch_size, verbose=1 if args.progress else 0,
        jit_compile=jit_compile(args.jit_compile),
    )
    return kwargs


def generate(model, args, num, **extra):
    """`model.generate` with the verb's seed, batch size, sampler, steps, options and labels."""
    return model.generate(num, **sampling_kwargs(model, args, num, f"--num {num}"), **extra)


def check_writable(option, path, kind):
    """Raises a `UserError` unless `path` can be written as a `kind` (`"file"` or `"folder"`).

    Checked before any work: an existing path of the other kind, a parent that
    is a file, or a folder this user may not write in.
    """
    path = os.path.abspath(path)
    if os.path.exists(path):
        if (kind == "folder") != os.path.isdir(path):
            other = "a folder" if os.path.isdir(path) else "a file"
            raise UserError(f"{option} {path!r} is {other}; expected a {kind} name")
        where = path if kind == "folder" else os.path.dirname(path)
    else:
        where = os.path.dirname(path)
        while not os.path.exists(where):
            where = os.path.dirname(where)
        if not os.path.isdir(where):
            raise UserError(f"{option} {path!r} cannot be created: {where!r} is a file, not a folder")
    if not os.access(where, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path!r}: no permission to write in {where!r}")


def os_error_line(error):
    """One line for an `OSError` (a full disk, a folder made read-only): the path and the reason."""
    reason = error.strerror or checks.first_line(error)
    return f"{error.filename!r}: {reason}" if getattr(error, "filename", None) else reason


def make_parent(path):
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)


def fail(command, error):
    print(f"keras-ddpm {command}: error: {error}", file=sys.stderr)
    return 2
