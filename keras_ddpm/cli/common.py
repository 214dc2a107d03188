"""What the verbs of `keras-ddpm` share: errors, argument types, shared options, output checks.

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

    A `TF_CPP_MIN_LOG_LEVEL` the user set is kept. The start-up lines are
    INFO lines that TensorFlow 2.21 logs before it reads that variable, so
    they are hidden at every level but `0` (all logs), which shows them.
    Call before TensorFlow loads.
    """
    _QUIET["on"] = not verbose and os.environ.get("TF_CPP_MIN_LOG_LEVEL", "").strip() != "0"
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


def name_list(text):
    """A comma-separated list of names: "q,k,v" -> ["q", "k", "v"]."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated layer names such as q,k,v; received {text!r}"
        )
    return names


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
