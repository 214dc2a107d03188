"""`keras-ddpm optimize-steps`: search a model's own sampling steps and write it with them."""

from keras_ddpm.cli.common import UserError
from keras_ddpm.cli.common import add_model_argument
from keras_ddpm.cli.common import add_seed
from keras_ddpm.cli.common import add_verbose
from keras_ddpm.cli.common import check_writable
from keras_ddpm.cli.common import make_parent
from keras_ddpm.cli.common import positive_int
from keras_ddpm.cli.common import user_errors
from keras_ddpm.cli.models import load_model
from keras_ddpm.cli.models import resolve_model


def check(args):
    """The cheap checks of `optimize-steps`, before TensorFlow loads."""
    if not args.out.endswith(".keras"):
        raise UserError(f"--out must name a .keras file; received {args.out!r}")
    check_writable("--out", args.out, "file")
    resolve_model(args.model)


def run(args):
    model, _ = load_model(args.model)
    with user_errors():
        indices = model.optimize_steps(
            num_steps=args.num_steps, num_samples=args.samples, grid_size=args.grid_size,
            seed=args.seed,
        )
    make_parent(args.out)
    model.save(args.out)  # atomic, as every .keras this package writes
    print(f"wrote {args.out} with the steps {', '.join(map(str, indices))}; sample it with "
          f"`keras-ddpm sample {args.out} --sampler ipndm --steps optimized`")
    return 0


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "optimize-steps",
        help="search the timesteps that sample a model best in few steps",
        description=(
            "Search, on the model's own trajectories, the NUM_STEPS timesteps that integrate "
            "them best (GITS, Chen et al. 2024) and write the model with them to --out; "
            "`sample --steps optimized` then runs them."
        ),
    )
    add_model_argument(parser)
    parser.add_argument("--out", required=True, help="the .keras file to write")
    parser.add_argument(
        "--num-steps", type=positive_int, default=10, help="steps to search (default: %(default)s)"
    )
    parser.add_argument(
        "--samples", type=positive_int, default=256,
        help="trajectories searched over (default: %(default)s)",
    )
    parser.add_argument(
        "--grid-size", type=positive_int, default=100,
        help="timesteps of the fine grid searched (default: %(default)s)",
    )
    add_seed(parser)
    add_verbose(parser, verb=True)
    parser.set_defaults(function=run, check=check)
