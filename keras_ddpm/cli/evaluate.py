"""`keras-ddpm evaluate`: KID, FID and bits/dim of a trained model against a dataset."""

import argparse
import json

from keras_ddpm.cli.common import UserError
from keras_ddpm.cli.common import add_batch_size
from keras_ddpm.cli.common import add_model_argument
from keras_ddpm.cli.common import add_verbose
from keras_ddpm.cli.common import add_sampler_arguments
from keras_ddpm.cli.common import add_seed
from keras_ddpm.cli.common import check_sampler_arguments
from keras_ddpm.cli.common import generate
from keras_ddpm.cli.common import load_model
from keras_ddpm.cli.common import make_parent
from keras_ddpm.cli.common import positive_int
from keras_ddpm.cli.common import resolve_model
from keras_ddpm.cli.common import user_errors
from keras_ddpm.data import specs

# The names of keras_ddpm.metrics.FEATURE_EXTRACTORS (that module loads TensorFlow).
FEATURE_EXTRACTORS = ("inception_v3", "pixels")

METRICS = ("kid", "fid", "bpd")


def metric_list(text):
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in METRICS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated subset of {','.join(METRICS)}; received {text!r}"
        )
    return names


def _real_images(dataset, num):
    """Up to `num` images and their labels (`None` for unlabelled data) from a dataset."""
    import numpy as np

    images, labels, count = [], [], 0
    for batch in dataset:
        if isinstance(batch, (tuple, list)):
            labels.append(np.asarray(batch[1]))
            batch = batch[0]
        images.append(np.asarray(batch))
        count += len(batch)
        if count >= num:
            break
    return np.concatenate(images)[:num], (np.concatenate(labels)[:num] if labels else None)


def check(args):
    """The cheap checks of `evaluate`, before TensorFlow loads."""
    _, config = resolve_model(args.model)
    with user_errors():
        specs.parse_dataset_spec(args.dataset or (config or {}).get("dataset", "digits"))
    check_sampler_arguments(args)


def _load_data(args, model, config):
    """The real images, with their labels for a conditional model when the data has them."""
    from keras_ddpm import data

    options = dict(
        image_size=args.image_size or config.get("image_size"),
        channels=args.channels or config.get("channels", 3),
        split=args.split or config.get("split", "train"),
        shuffle=False,
    )
    spec = args.dataset or config.get("dataset", "digits")
    with user_errors():
        if model.num_classes is not None:
            try:
                return _real_images(data.load_dataset_spec(spec, 256, with_labels=True, **options), args.num)
            except ValueError:
                pass  # Unlabelled data: the unconditional bound.
        return _real_images(data.load_dataset_spec(spec, 256, **options), args.num)


def run(args):
    from keras_ddpm import metrics

    model, config = load_model(args.model)
    config = config or {}
    real, labels = _load_data(args, model, config)
    if tuple(real.shape[1:]) != tuple(model.image_shape):
        raise UserError(
            f"the dataset's images are {tuple(real.shape[1:])} but the model makes "
            f"{tuple(model.image_shape)}; pass --dataset/--image-size to match"
        )
    results = {"num_real_images": len(real)}
    wanted = [name for name in ("kid", "fid") if name in args.metrics]
    if wanted:
        with user_errors():
            # One extractor for both metrics: InceptionV3 loads, and features are computed, once.
            extractor = metrics.FeatureExtractor(args.feature_extractor)
            built = {
                "kid": lambda: metrics.KID(
                    extractor, num_subsets=args.kid_subsets, subset_size=args.kid_subset_size,
                    seed=args.seed,
                ),
                "fid": lambda: metrics.FID(extractor),
            }
            chosen = {name: built[name]() for name in wanted}
        print(f"generating {len(real)} images")
        generated = generate(model, args, len(real))
        results["num_generated_images"] = len(generated)
        results["feature_extractor"] = args.feature_extractor
        real_features, generated_features = extractor.features(real), extractor.features(generated)
        for name, metric in chosen.items():
            metric.update_features(real_features, generated_features)
            with user_errors():
                results[name] = metric.result()
            if name == "kid":
                results["kid_std"] = metric.result_std()
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
        with open(args.out, "w", encoding="utf-8") as file:
            json.dump(results, file, indent=2)
    return 0


def _batches(images, labels, batch_size=256):
    """`(images, labels)` batches of a conditional model's evaluation set."""
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size)


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "evaluate",
        help="KID, FID and bits/dim of a trained model",
        description=(
            "Compare generated images with a dataset (KID, FID) and compute the variational "
            "bound in bits/dim. The default feature extractor, inception_v3, downloads the "
            "ImageNet InceptionV3 weights on first use; 'pixels' uses the flattened pixels "
            "(no download, for small images; not comparable with published numbers)."
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
        default="inception_v3",
        choices=FEATURE_EXTRACTORS,
        help="features for KID/FID (default: %(default)s, downloads its weights)",
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


