"""`keras-ddpm edit`: image-to-image (SDEdit) on one image or a folder of them."""

from keras_ddpm.cli import images
from keras_ddpm.cli.common import UserError
from keras_ddpm.cli.common import add_batch_size
from keras_ddpm.cli.common import add_model_argument
from keras_ddpm.cli.common import add_seed
from keras_ddpm.cli.common import add_verbose
from keras_ddpm.cli.models import load_model
from keras_ddpm.cli.models import resolve_model
from keras_ddpm.cli.sampling_args import add_sampler_arguments
from keras_ddpm.cli.sampling_args import check_sampler_arguments
from keras_ddpm.cli.sampling_args import sampling_kwargs


def check(args):
    """The cheap checks of `edit`, before TensorFlow loads."""
    if not 0.0 <= args.strength <= 1.0:
        raise UserError(f"--strength must be in [0, 1]; received {args.strength}")
    images.image_files(args.image)
    images.check_out(args.out, args.image)
    resolve_model(args.model)
    check_sampler_arguments(args)


def run(args):
    model, _ = load_model(args.model)
    files = images.image_files(args.image)
    pictures = images.read_images(files, model.image_shape, args.resize)
    kwargs = sampling_kwargs(model, args, len(files))
    edited = model.generate(len(files), initial_images=pictures, strength=args.strength, **kwargs)
    out = images.write_images(edited, images.result_names(files), args.out)
    print(f"wrote {len(edited)} edited image{'s' * (len(edited) > 1)} to {out}")
    return 0


def add_image_arguments(parser):
    """`--image`, `--out` and `--resize`, shared by `edit` and `inpaint`."""
    parser.add_argument(
        "--image", required=True,
        help="an image file, or a folder of them (each is processed; results keep their names)",
    )
    parser.add_argument(
        "--out", required=True,
        help="a .png for one image; for a folder, a folder of results or a .png grid of them",
    )
    parser.add_argument(
        "--resize", action="store_true",
        help="centre-crop and resize images of another size to the model's (default: refuse them)",
    )


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "edit",
        help="turn rough images into realistic ones (SDEdit)",
        description=(
            "Image-to-image with a trained DDPM (SDEdit, Meng et al. 2022): noise each image to "
            "the point where the last --strength of the sampler's steps begin, then run them. "
            "0 returns the images, 1 ignores them."
        ),
    )
    add_model_argument(parser)
    add_image_arguments(parser)
    parser.add_argument(
        "--strength", type=float, required=True,
        help="in [0, 1]: how much of the reverse process to run (e.g. 0.6)",
    )
    add_seed(parser)
    add_batch_size(parser, help="images edited at once (default: all)")
    add_sampler_arguments(parser)
    add_verbose(parser, verb=True)
    parser.set_defaults(function=run, check=check)
