"""`keras-ddpm export`: a TensorFlow SavedModel with generate, edit, inpaint and denoise endpoints."""

import os

from keras_ddpm.cli.common import UserError
from keras_ddpm.cli.common import add_jit_compile
from keras_ddpm.cli.common import add_model_argument
from keras_ddpm.cli.common import add_verbose
from keras_ddpm.cli.common import check_writable
from keras_ddpm.cli.common import user_errors
from keras_ddpm.cli.models import load_model
from keras_ddpm.cli.models import resolve_model
from keras_ddpm.cli.sampling_args import add_resampling_arguments
from keras_ddpm.cli.sampling_args import add_sampler_choice
from keras_ddpm.cli.sampling_args import add_spacing_argument
from keras_ddpm.cli.sampling_args import sampler_options
from keras_ddpm.samplers import registry


def check(args):
    """The cheap checks of `export`, before TensorFlow loads."""
    with user_errors():
        # A trace-time option (--order) serves every sampler that takes it, whatever --sampler is.
        registry.resolve_everywhere(args.sampler, 10**9, **sampler_options(args))
    if os.path.exists(args.outdir) and not os.path.isdir(args.outdir):
        raise UserError(f"OUTDIR {args.outdir!r} is a file; expected a directory")
    check_writable("OUTDIR", args.outdir, "folder")
    resolve_model(args.model)


def run(args):
    from keras_ddpm import export

    model, _ = load_model(args.model)
    with user_errors():
        path = export.export_saved_model(
            model,
            args.outdir,
            sampler=args.sampler,
            timestep_spacing=args.timestep_spacing,
            use_ema=args.ema,
            jit_compile=args.jit_compile == "true",
            resample_steps=args.resample_steps,
            jump_length=args.jump_length,
            verbose=False,
            **sampler_options(args),
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


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="write a TensorFlow SavedModel (for tf.saved_model.load and TF Serving)",
        description=(
            "Export a trained DDPM as a TensorFlow SavedModel that needs neither Keras nor "
            "keras_ddpm: endpoints generate(num_images, steps, seed) -> uint8 images "
            "(= serving_default, using --sampler), generate_with_sampler(..., sampler, the "
            "runtime sampler options such as eta), "
            "edit(images, strength, steps, seed), inpaint(images, mask, steps, seed) (uint8 "
            "images in and out) and denoise(x_t, t). steps=0 asks for the sampler's default "
            "number of steps (with --timestep-spacing optimized: the model's optimized steps, "
            "the only number then accepted)."
        ),
    )
    add_model_argument(parser)
    parser.add_argument("outdir", help="the SavedModel directory to write")
    add_sampler_choice(parser, default=registry.DEFAULT_SAMPLER)
    add_spacing_argument(parser)
    parser.add_argument(
        "--no-ema", dest="ema", action="store_false", help="export the raw, not the EMA, weights"
    )
    add_resampling_arguments(parser, " in the inpaint endpoint")
    add_jit_compile(
        parser, default="false",
        help="compile the sampling loops with XLA when the SavedModel runs (default: %(default)s)",
    )
    add_verbose(parser, verb=True)
    parser.set_defaults(function=run, check=check)


