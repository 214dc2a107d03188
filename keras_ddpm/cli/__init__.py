"""The `keras-ddpm` command: train, sample, edit, evaluate and export from a shell.

Thin by design: each verb (one module each, listed in `VERBS`) parses its
arguments, checks the cheap ones, then calls the library
(`UNet`, `DDPM`, `keras_ddpm.data`, `keras_ddpm.callbacks`,
`keras_ddpm.metrics`, `keras_ddpm.pretrained`). Everything it does can be done from Python.

    keras-ddpm train --output runs/digits          # ~3 min on a 2-core CPU
    keras-ddpm sample runs/digits --out grid.png
    keras-ddpm inpaint runs/digits --image digit.png --mask bottom --out filled.png
    keras-ddpm evaluate runs/digits --feature-extractor pixels
    keras-ddpm convert google/ddpm-cifar10-32 ddpm_cifar10.keras

A training run's output directory holds

    config.json     the arguments of `train` (read by `sample` and `evaluate`)
    model.keras     the trained model, written when training ends
    samples/        SampleGrid's epoch_0001.png, ...
    logs/           TensorBoard logs (losses; sample grids under logs/samples)
    backup/         the BackupAndRestore checkpoint while training runs

User errors (a missing file, an unknown dataset, a bad value) print one line
on stderr and exit with status 2. `--help` and such errors come before
TensorFlow loads; TensorFlow's start-up logs are hidden unless `--verbose`
(or `TF_CPP_MIN_LOG_LEVEL=0`) asks for them. Ctrl-C prints one line and exits
with status 130; `train` says where it stopped, and the same command continues.
"""

import sys

from keras_ddpm.cli import convert
from keras_ddpm.cli import edit
from keras_ddpm.cli import evaluate
from keras_ddpm.cli import export
from keras_ddpm.cli import inpaint
from keras_ddpm.cli import interpolate
from keras_ddpm.cli import optimize_steps
from keras_ddpm.cli import sample
from keras_ddpm.cli import train
from keras_ddpm.cli.common import ArgumentParser
from keras_ddpm.cli.common import Interrupted
from keras_ddpm.cli.common import UserError
from keras_ddpm.cli.common import add_verbose
from keras_ddpm.cli.common import fail
from keras_ddpm.cli.common import os_error_line
from keras_ddpm.cli.common import quiet_tensorflow
from keras_ddpm.version import __version__

# The exit status of a run stopped by Ctrl-C (SIGINT), as shells report it.
INTERRUPTED = 130

VERBS = (train, sample, edit, inpaint, interpolate, evaluate, export, convert, optimize_steps)


def build_parser():
    """The argument parser of `keras-ddpm` and its verbs."""
    parser = ArgumentParser(
        prog="keras-ddpm",
        description="Denoising diffusion probabilistic models for Keras: "
        + ", ".join(verb.__name__.rsplit(".", 1)[-1].replace("_", "-") for verb in VERBS)
        + ".",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_verbose(parser)
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=ArgumentParser
    )
    for verb in VERBS:
        verb.add_parser(subparsers)
    return parser


def main(argv=None):
    """Runs the command line `argv` (default: `sys.argv[1:]`) and returns the exit status."""
    args = build_parser().parse_args(argv)
    quiet_tensorflow(getattr(args, "show_logs", False))
    try:
        args.check(args)
        return args.function(args)
    except UserError as error:
        return fail(args.command, error)
    except (Interrupted, KeyboardInterrupt) as error:  # Ctrl-C: one line, not a traceback
        print(f"keras-ddpm {args.command}: {error or 'interrupted'}", file=sys.stderr)
        return INTERRUPTED
    except OSError as error:  # a full disk, a folder made read-only meanwhile: one line
        return fail(args.command, os_error_line(error))


if __name__ == "__main__":
    sys.exit(main())
