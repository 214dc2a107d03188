"""`keras-ddpm evaluate`: KID, FID and bits/dim of a trained model against a dataset.

FIDs comparable with papers need `--feature-extractor inception_2015` (the
graph of the TTUR code; `--inception-graph PATH` offline). `--reference-stats
FILE.npz` compares with precomputed real statistics (TTUR/pytorch-fid format)
instead of the dataset, and `--save-stats FILE.npz` writes this run's.
"""

import argparse
import json
import os

from keras_ddpm.cli.common import UserError
from keras_ddpm.cli.common import add_batch_size
from keras_ddpm.cli.common import add_model_argument
from keras_ddpm.cli.common import add_seed
from keras_ddpm.cli.common import add_verbose
from keras_ddpm.cli.common import check_writable
from keras_ddpm.cli.common import make_parent
from keras_ddpm.cli.common import positive_int
from keras_ddpm.cli.common import user_errors
from keras_ddpm.cli.datasets import evaluation_images
from keras_ddpm.cli.models import load_model
from keras_ddpm.cli.models import resolve_model
from keras_ddpm.cli.sampling_args import add_sampler_arguments
from keras_ddpm.cli.sampling_args import check_sampler_arguments
from keras_ddpm.cli.sampling_args import generate
from keras_ddpm.data import specs
from keras_ddpm.metrics import FEATURE_EXTRACTORS
from keras_ddpm.runs import atomic

DEFAULT_EXTRACTOR = "inception_v3"

METRICS = ("kid", "fid", "bpd")


def metric_list(text):
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in METRICS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated subset of {','.join(METRICS)}; received {text!r}"
        )
    return names


def feature_extractor(args):
    """The `--feature-extractor` name: `--inception-graph` implies inception_2015."""
    if args.inception_graph is not None:
        return "inception_2015"
    return args.feature_extractor or DEFAULT_EXTRACTOR


def _needs_real_features(args):
    """True when KID or FID extracts features of the real images."""
    return "kid" in args.metrics or ("fid" in args.metrics and args.reference_stats is None)


def check(args):
    """The cheap checks of `evaluate`, before TensorFlow loads."""
    _, config = resolve_model(args.model)
    with user_errors():
        specs.parse_dataset_spec(args.dataset or (config or {}).get("dataset", "digits"))
    check_sampler_arguments(args)
    if args.out:
        check_writable("--out", args.out, "file")
    if args.inception_graph is not None:
        if args.feature_extractor not in (None, "inception_2015"):
            raise UserError(
                "--inception-graph is the graph of --feature-extractor inception_2015; received "
                f"--feature-extractor {args.feature_extractor}"
            )
        if not os.path.exists(args.inception_graph):
            raise UserError(f"--inception-graph {args.inception_graph!r} does not exist")
    if args.reference_stats is not None:
        if "fid" not in args.metrics:
            raise UserError("--reference-stats is the real side of FID; add fid to --metrics")
        if not os.path.isfile(args.reference_stats):
            raise UserError(f"--reference-stats {args.reference_stats!r} does not exist")
    if args.save_stats is not None:
        if not args.save_stats.endswith(".npz"):
            raise UserError(f"--save-stats must end in .npz; received {args.save_stats!r}")
        if not _needs_real_features(args):
            raise UserError(
                "--save-stats writes the real images' feature statistics, but with these "
                "--metrics/--reference-stats no real features are computed"
            )


def _extractor(args, model, reference):
    """The one `FeatureExtractor` of KID and FID (the network loads once), checked against
    the dimension of `--reference-stats` before the slow generation."""
    import numpy as np

    from keras_ddpm import metrics

    with user_errors():
        source = feature_extractor(args)
        if args.inception_graph is not None:
            source = metrics.Inception2015(args.inception_graph)
        extractor = metrics.FeatureExtractor(source)
    if reference is not None:
        dims = extractor.features(np.zeros((1, *model.image_shape), np.float32)).shape[1]
        if dims != len(reference[0]):
            raise UserError(
                f"--reference-stats {args.reference_stats!r} holds {len(reference[0])}-d "
                f"statistics but --feature-extractor {feature_extractor(args)} gives {dims}-d "
                "features"
            )
    return extractor


def _kid_fid(args, model, real, reference):
    """The KID/FID entries of the results; `real` is `None` when FID uses `reference` alone."""
    from keras_ddpm import metrics

    extractor = _extractor(args, model, reference)
    num = args.num if real is None else len(real)
    print(f"generating {num} images")
    generated = generate(model, args, num)
    results = {"num_generated_images": len(generated), "feature_extractor": feature_extractor(args)}
    if reference is not None:
        results["reference_statistics"] = args.reference_stats
    real_features = None if real is None else extractor.features(real)
    generated_features = extractor.features(generated)
    if "kid" in args.metrics:
        kid = metrics.KID(
            extractor, num_subsets=args.kid_subsets, subset_size=args.kid_subset_size,
            seed=args.seed,
        )
        kid.update_features(real_features, generated_features)
        with user_errors():
            results["kid"] = kid.result()
        results["kid_std"] = kid.result_std()
    if "fid" in args.metrics:
        fid = metrics.FID(extractor, reference_statistics=reference)
        fid.update_features(real_features if reference is None else None, generated_features)
        with user_errors():
            results["fid"] = fid.result()
    if args.save_stats is not None:
        with user_errors():
            metrics.save_statistics(args.save_stats, *metrics.feature_statistics(real_features))
        results["saved_statistics"] = args.save_stats
    return results


def run(args):
    from keras_ddpm import metrics

    model, config = load_model(args.model)
    config = config or {}
    reference = None
    if args.reference_stats is not None:
        with user_errors():
            reference = metrics.load_statistics(args.reference_stats)
    results = {}
    real = labels = None
    if _needs_real_features(args) or "bpd" in args.metrics:
        real, labels = evaluation_images(args, model, config)
        if tuple(real.shape[1:]) != tuple(model.image_shape):
            raise UserError(
                f"the dataset's images are {tuple(real.shape[1:])} but the model makes "
                f"{tuple(model.image_shape)}; pass --dataset/--image-size to match"
            )
        results["num_real_images"] = len(real)
    if "kid" in args.metrics or "fid" in args.metrics:
        real_side = real if _needs_real_features(args) else None
        results.update(_kid_fid(args, model, real_side, reference))
    if "bpd" in args.metrics:
        count = min(args.bpd_images, len(real))
        print(f"bits/dim of {count} images ({model.schedule.timesteps} terms each)")
        subset = real[:count] if labels is None else _batches(real[:count], labels[:count])
        results["bits_per_dim"] = metrics.bits_per_dim(
            model, subset, seed=args.seed, verbose=1 if args.progress else 0
        )
        results["bpd_images"] = count
    print(json.dumps(results, indent=2))
    if args.out:
        make_parent(args.out)
        atomic.write_json(args.out, results)
    return 0


def _batches(images, labels, batch_size=256):
    """`(images, labels)` batches of a conditional model's evaluation set."""
    return [
        (images[i : i + batch_size], labels[i : i + batch_size])
        for i in range(0, len(images), batch_size)
    ]


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "evaluate",
        help="KID, FID and bits/dim of a trained model",
        description=(
            "Compare generated images with a dataset (KID, FID) and compute the variational "
            "bound in bits/dim. The default feature extractor, inception_v3 "
            "(keras.applications, downloads its ImageNet weights on first use), gives FIDs "
            "that are NOT comparable with published ones; inception_2015, the Inception graph "
            "of the TTUR FID code (Heusel et al. 2017) that the papers use (DDPM: CIFAR-10 FID "
            "3.17), is: it downloads inception-2015-12-05.tgz once, or takes a local copy "
            "with --inception-graph. 'pixels' uses the flattened pixels (no download, for "
            "small images; not comparable with published numbers). Published FIDs use 50,000 "
            "images."
        ),
    )
    add_model_argument(parser)
    parser.add_argument(
        "--dataset",
        default=None,
        help="'digits', 'tfds:NAME' or 'folder:PATH' (default: the training run's)",
    )
    parser.add_argument("--split", default=None, help="TFDS split (default: the training run's)")
    parser.add_argument(
        "--image-size", type=positive_int, default=None, help="(default: the training run's)"
    )
    parser.add_argument(
        "--channels",
        type=int,
        choices=(1, 3),
        default=None,
        help="channels of folder images (default: the training run's, else 3)",
    )
    parser.add_argument(
        "--num",
        type=positive_int,
        default=1000,
        help="real and generated images for KID/FID; generating them is the slow part, "
        "see --sampler/--steps (default: %(default)s)",
    )
    parser.add_argument(
        "--metrics",
        type=metric_list,
        default=list(METRICS),
        help="comma-separated subset of kid,fid,bpd (default: all)",
    )
    parser.add_argument(
        "--feature-extractor",
        default=None,
        choices=FEATURE_EXTRACTORS,
        help=f"features for KID/FID: {DEFAULT_EXTRACTOR} (the default; downloads its weights; "
        "not comparable with published FIDs), inception_2015 (the reference graph of "
        "published FIDs; downloads it once) or pixels",
    )
    parser.add_argument(
        "--inception-graph",
        default=None,
        metavar="PATH",
        help="a local classify_image_graph_def.pb or inception-2015-12-05.tgz for "
        "inception_2015 (implies --feature-extractor inception_2015; no download)",
    )
    parser.add_argument(
        "--reference-stats",
        default=None,
        metavar="FILE.npz",
        help="precomputed real statistics for FID (keys mu, sigma: the TTUR/pytorch-fid "
        "format, made with the same feature extractor); with --metrics fid alone the "
        "dataset is not read",
    )
    parser.add_argument(
        "--save-stats",
        default=None,
        metavar="FILE.npz",
        help="write the real images' feature statistics of this run (mu, sigma) for "
        "--reference-stats later",
    )
    parser.add_argument(
        "--kid-subsets", type=positive_int, default=100, help="(default: %(default)s)"
    )
    parser.add_argument(
        "--kid-subset-size",
        type=positive_int,
        default=1000,
        help="(default: %(default)s, or fewer when there are fewer images)",
    )
    parser.add_argument(
        "--bpd-images",
        type=positive_int,
        default=100,
        help="real images for bits/dim, which costs T network calls per batch "
        "(default: %(default)s)",
    )
    add_seed(parser)
    add_batch_size(parser)
    parser.add_argument("--out", default=None, help="also write the results to this JSON file")
    add_sampler_arguments(parser)
    add_verbose(parser, verb=True)
    parser.set_defaults(function=run, check=check)


