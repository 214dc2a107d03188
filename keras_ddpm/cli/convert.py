"""`keras-ddpm convert`: diffusers checkpoints to .keras files, and back.

    keras-ddpm convert google/ddpm-cifar10-32 ddpm_cifar10.keras   # hub id or folder → Keras
    keras-ddpm convert runs/digits digits_diffusers                # Keras → a DDPMPipeline folder
"""

import os
import time

from keras_ddpm.cli.common import UserError
from keras_ddpm.cli.common import add_verbose
from keras_ddpm.cli.common import check_writable
from keras_ddpm.cli.common import import_library
from keras_ddpm.cli.common import make_parent
from keras_ddpm.cli.common import user_errors
from keras_ddpm.cli.models import is_pretrained
from keras_ddpm.cli.models import load_model
from keras_ddpm.cli.models import resolve_model


def _to_keras(args):
    return is_pretrained(args.source)


def check(args):
    """The cheap checks of `convert`, before TensorFlow loads."""
    resolve_model(args.source)
    check_writable("OUT", args.out, "file" if _to_keras(args) else "folder")
    if _to_keras(args):
        if not args.out.endswith(".keras"):
            raise UserError(
                f"OUT must be a .keras file when SOURCE is a diffusers checkpoint; received "
                f"{args.out!r}"
            )
        if os.path.isdir(args.out):
            raise UserError(f"OUT {args.out!r} is a folder; expected a .keras file name")
    elif os.path.isfile(args.out):
        raise UserError(
            f"OUT {args.out!r} is a file; converting a keras_ddpm model writes a diffusers folder"
        )


def run(args):
    start = time.perf_counter()
    if _to_keras(args):
        keras_ddpm = import_library()
        with user_errors():
            model = keras_ddpm.DDPM.from_pretrained(
                args.source, allow_pickle=args.allow_pickle, dropout=args.dropout
            )
        make_parent(args.out)
        model.save(args.out)
        what = "model"
    else:
        model, _ = load_model(args.source)
        with user_errors():
            model.save_pretrained(args.out, use_ema=args.ema)
        what = "DDPMPipeline folder"
    print(
        f"wrote the {what} {args.out} ({model.network.count_params():,} parameters, "
        f"{time.perf_counter() - start:.1f} s)"
    )
    return 0


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "convert",
        help="diffusers checkpoint (folder or hub id) -> .keras, or a keras_ddpm model -> "
        "diffusers folder",
        description=(
            "Convert a diffusers DDPM checkpoint (a pipeline or model folder, or a hub id such "
            "as google/ddpm-cifar10-32, which needs `pip install keras-ddpm[hub]`) into a "
            ".keras file, or a keras_ddpm model (.keras file or `train` directory) into a "
            "folder that diffusers.DDPMPipeline.from_pretrained loads."
        ),
    )
    parser.add_argument("source", help="a diffusers folder or hub id, or a keras_ddpm model")
    parser.add_argument("out", help="the .keras file, or the diffusers folder, to write")
    parser.add_argument(
        "--allow-pickle",
        action="store_true",
        help="read a pickled diffusion_pytorch_model.bin when there is no .safetensors "
        "(unpickling can run code; needs PyTorch)",
    )
    parser.add_argument(
        "--dropout", type=float, default=None,
        help="dropout rate for fine-tuning the converted network (default: the checkpoint's)",
    )
    parser.add_argument(
        "--no-ema", dest="ema", action="store_false",
        help="to diffusers: write the raw, not the EMA, weights",
    )
    add_verbose(parser, verb=True)
    parser.set_defaults(function=run, check=check)
