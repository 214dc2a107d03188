"""`keras-ddpm interpolate`: rows of frames morphing one image (or noise) into another."""

import os

from keras_ddpm.cli import images
from keras_ddpm.cli.common import UserError
from keras_ddpm.cli.common import add_batch_size
from keras_ddpm.cli.common import add_model_argument
from keras_ddpm.cli.common import add_seed
from keras_ddpm.cli.common import add_verbose
from keras_ddpm.cli.common import check_writable
from keras_ddpm.cli.common import positive_int
from keras_ddpm.cli.models import load_model
from keras_ddpm.cli.models import resolve_model
from keras_ddpm.cli.sampling_args import add_sampler_arguments
from keras_ddpm.cli.sampling_args import check_sampler_arguments
from keras_ddpm.cli.sampling_args import sampling_kwargs
from keras_ddpm.samplers import registry


def check(args):
    """The cheap checks of `interpolate`, before TensorFlow loads."""
    if args.frames < 2:
        raise UserError(f"--frames must be at least 2 (both ends); received {args.frames}")
    if os.path.splitext(args.out)[1].lower() != ".png":
        raise UserError(f"--out must end in .png (a grid, one row per pair); received {args.out!r}")
    check_writable("--out", args.out, "file")
    if args.images is not None:
        for path in args.images:
            if os.path.isdir(path) or len(images.image_files(path)) != 1:
                raise UserError(f"--images takes two image files; {path!r} is a folder")
        record = registry.get_sampler(args.sampler)
        if record.inverse is None:
            raise UserError(
                f"--sampler {record.name} cannot encode images (it is stochastic); use one of "
                f"{', '.join(registry.invertible_samplers())}"
            )
    resolve_model(args.model)
    check_sampler_arguments(args)


def run(args):
    import numpy as np

    model, _ = load_model(args.model)
    kwargs = sampling_kwargs(model, args, 1, "one pair")  # a row's label: one class
    if args.images is not None:
        a, b = images.read_images(args.images, model.image_shape, args.resize)
        rows = [model.interpolate(a, b, num=args.frames, **kwargs)]
    else:  # row r interpolates between the two x_T that seed + r draws
        seed = kwargs.pop("seed")
        rows = [model.interpolate(num=args.frames, seed=seed + r, **kwargs) for r in range(args.rows)]
    frames = np.concatenate(rows)
    images.write_images(frames, None, args.out, ncols=args.frames)
    print(f"wrote {len(rows)} row{'s' * (len(rows) > 1)} of {args.frames} frames to {args.out}")
    return 0


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "interpolate",
        help="write rows of frames morphing one sample or image into another",
        description=(
            "Interpolate with a trained DDPM: slerp between two noises x_T (drawn from --seed, "
            "or the DDIM inversions of --images A B) and decode each frame with the sampler "
            "(default ddim). Writes a .png grid, one row per pair."
        ),
    )
    add_model_argument(parser)
    parser.add_argument("--out", required=True, help="the .png grid to write")
    parser.add_argument(
        "--images", nargs=2, metavar=("A", "B"), default=None,
        help="two image files to morph between (default: two noises drawn from --seed)",
    )
    parser.add_argument(
        "--frames", type=positive_int, default=8, help="frames per row (default: %(default)s)"
    )
    parser.add_argument(
        "--rows", type=positive_int, default=4,
        help="rows of drawn pairs without --images; row r uses --seed + r (default: %(default)s)",
    )
    parser.add_argument(
        "--resize", action="store_true",
        help="centre-crop and resize --images of another size to the model's",
    )
    add_seed(parser)
    add_batch_size(parser, help="frames decoded at once (default: all)")
    add_sampler_arguments(parser, default=registry.INVERSION_SAMPLER)
    add_verbose(parser, verb=True)
    parser.set_defaults(function=run, check=check)
