"""`keras-ddpm inpaint`: fill a masked region of one image or a folder of them (RePaint)."""

from keras_ddpm.cli import images
from keras_ddpm.cli.common import UserError
from keras_ddpm.cli.common import add_batch_size
from keras_ddpm.cli.common import add_model_argument
from keras_ddpm.cli.common import add_seed
from keras_ddpm.cli.common import add_verbose
from keras_ddpm.cli.edit import add_image_arguments
from keras_ddpm.cli.models import load_model
from keras_ddpm.cli.models import resolve_model
from keras_ddpm.cli.sampling_args import add_resampling_arguments
from keras_ddpm.cli.sampling_args import add_sampler_arguments
from keras_ddpm.cli.sampling_args import check_sampler_arguments
from keras_ddpm.cli.sampling_args import sampling_kwargs
from keras_ddpm.samplers import registry
from keras_ddpm.schedule_math import VARIANCES


def check(args):
    """The cheap checks of `inpaint`, before TensorFlow loads."""
    images.image_files(args.image)
    images.check_mask(args.mask)
    images.check_out(args.out, args.image)
    resolve_model(args.model)
    check_sampler_arguments(args)
    if registry.get_sampler(args.sampler or registry.DEFAULT_SAMPLER).step is None:
        raise UserError(
            f"--sampler {args.sampler} cannot inpaint (a multistep solver cannot jump back); "
            f"use one of {', '.join(registry.single_step_samplers())}"
        )


def run(args):
    from keras_ddpm import editing

    model, _ = load_model(args.model)
    files = images.image_files(args.image)
    pictures = images.read_images(files, model.image_shape, args.resize)
    mask = images.read_mask(args.mask, model.image_shape, args.resize)
    kwargs = sampling_kwargs(model, args, len(files))
    try:
        editing.check_mask(mask, pictures.shape)
    except ValueError as error:
        raise UserError(f"{args.mask!r}: {error}") from None
    filled = model.inpaint(
        pictures, mask, resample_steps=args.resample_steps, jump_length=args.jump_length,
        variance=args.variance, **kwargs
    )
    out = images.write_images(filled, images.result_names(files), args.out)
    print(f"wrote {len(filled)} inpainted image{'s' * (len(filled) > 1)} to {out}")
    return 0


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "inpaint",
        help="fill a masked region of images (RePaint)",
        description=(
            "Inpaint with a trained DDPM: keep the pixels where the mask is white and fill the "
            "others, resampling each block of steps so that the filled region agrees with the "
            "kept one (RePaint, Lugmayr et al. 2022). Network evaluations: steps x "
            "--resample-steps."
        ),
    )
    add_model_argument(parser)
    add_image_arguments(parser)
    parser.add_argument(
        "--mask", required=True,
        help="a mask image (white keeps a pixel, black fills it; resized with --resize) or a "
        f"preset naming the part to fill: {', '.join(images.MASK_PRESETS)}",
    )
    add_resampling_arguments(parser)
    parser.add_argument(
        "--variance", choices=VARIANCES, default=None,
        help="the ddpm steps' variance; fixed_large keeps the filled region's spread under "
        "resampling (default: the model's)",
    )
    add_seed(parser)
    add_batch_size(parser, help="images inpainted at once (default: all)")
    add_sampler_arguments(parser)
    add_verbose(parser, verb=True)
    parser.set_defaults(function=run, check=check)
