"""`keras-ddpm sample`: generate images to a PNG grid, a .npy array or a folder of PNGs."""

import os

from keras_ddpm.cli.common import UserError
from keras_ddpm.cli.common import add_batch_size
from keras_ddpm.cli.common import add_model_argument
from keras_ddpm.cli.common import add_seed
from keras_ddpm.cli.common import add_verbose
from keras_ddpm.cli.common import check_writable
from keras_ddpm.cli.common import make_parent
from keras_ddpm.cli.common import positive_int
from keras_ddpm.cli.images import save_image
from keras_ddpm.cli.models import load_model
from keras_ddpm.cli.models import resolve_model
from keras_ddpm.cli.sampling_args import add_sampler_arguments
from keras_ddpm.cli.sampling_args import check_sampler_arguments
from keras_ddpm.cli.sampling_args import generate
from keras_ddpm.runs import atomic


def check(args):
    """The cheap checks of `sample`, before TensorFlow loads."""
    if os.path.splitext(args.out)[1] not in ("", ".png", ".npy"):
        raise UserError(
            f"--out must end in .png (a grid), .npy (an array) or name a folder; received "
            f"{args.out!r}"
        )
    if os.path.splitext(args.out)[1] == "" and os.path.isfile(args.out):
        raise UserError(f"--out {args.out!r} is a file; a folder of PNGs needs a folder name")
    check_writable("--out", args.out, "folder" if os.path.splitext(args.out)[1] == "" else "file")
    resolve_model(args.model)
    check_sampler_arguments(args)


def run(args):
    import numpy as np

    from keras_ddpm import utils

    model, _ = load_model(args.model)
    images = generate(model, args, args.num)
    out = args.out
    if out.endswith(".png"):
        utils.save_image_grid(images, out)
    elif out.endswith(".npy"):
        make_parent(out)
        with atomic.atomic_write(out) as tmp, open(tmp, "wb") as file:
            np.save(file, images)
    else:
        for index, picture in enumerate(images):
            save_image(picture, os.path.join(out, f"{index:05d}.png"))
    print(f"wrote {len(images)} images to {out}")
    return 0


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "sample",
        help="generate images with a trained model",
        description="Generate images with a trained DDPM (EMA weights) and save them.",
    )
    add_model_argument(parser)
    parser.add_argument("--num", type=positive_int, default=64, help="images (default: %(default)s)")
    parser.add_argument(
        "--out",
        default="samples.png",
        help="a .png grid, a .npy array (float32 in [-1, 1]) or a folder of PNGs "
        "(default: %(default)s)",
    )
    add_seed(parser)
    add_batch_size(parser, help="images denoised at once (default: all)")
    add_sampler_arguments(parser)
    add_verbose(parser, verb=True)
    parser.set_defaults(function=run, check=check)
