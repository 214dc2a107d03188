"""The sampling arguments of `keras-ddpm`'s verbs, read from the sampler registry.

`--sampler`'s choices, every sampler option (`--eta`, `--order`, ...), the
default steps and spacing come from `keras_ddpm.samplers.registry`, so a
sampler registered there reaches `sample`, `evaluate`, `edit`, `inpaint`,
`interpolate` and `export` with no edit here. Checked as `generate` checks
them, before TensorFlow loads.
"""

from keras_ddpm.cli.common import UserError
from keras_ddpm.cli.common import add_jit_compile
from keras_ddpm.cli.common import int_list
from keras_ddpm.cli.common import jit_compile
from keras_ddpm.cli.common import positive_int
from keras_ddpm.cli.common import user_errors
from keras_ddpm.samplers import registry
from keras_ddpm.samplers.options import OPTIMIZED
from keras_ddpm.samplers.options import TIMESTEP_SPACINGS


def steps_or_optimized(text):
    """`--steps`: a positive integer, or `"optimized"` (the model's own steps)."""
    return text if text == OPTIMIZED else positive_int(text)


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
