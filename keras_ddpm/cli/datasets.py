"""Where `train` and `evaluate` get their images.

With TensorFlow installed, the `--dataset` spec's `tf.data` pipeline
(`keras_ddpm.data.load_dataset_spec`: the embedded digits, a folder, TFDS).
Without it (JAX or PyTorch on a machine that has no TensorFlow, such as the
GPU machines), the embedded digits as NumPy arrays, and any other dataset or a
resize refused in one line: their loaders are `tf.data`'s.
"""

import warnings

from keras_ddpm.cli.common import UserError
from keras_ddpm.cli.common import user_errors


def _digits_without_tensorflow(spec, image_size=None):
    """`(images, labels)` of the embedded digits; any other dataset, or a resize, is one line."""
    from keras_ddpm import data

    needs = "needs TensorFlow (its loaders are tf.data pipelines), which is not installed here"
    with user_errors():
        kind = data.parse_dataset_spec(spec).kind
    if kind != "digits":
        raise UserError(
            f"--dataset {spec} {needs}; pip install tensorflow, or use the embedded digits "
            "(--dataset digits)"
        )
    if image_size not in (None, 8):
        raise UserError(f"--image-size {needs}; leave it out for the 8x8 digits")
    return data.load_digits_arrays()


def training_data(args, output):
    """`(fit's data keywords, image shape)` of `train`'s `--dataset`."""
    from keras_ddpm import backend
    from keras_ddpm import data

    if not backend.installed("tensorflow"):
        return _digits_arrays(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        dataset = data.load_dataset_spec(
            args.dataset,
            args.batch_size,
            image_size=args.image_size,
            channels=args.channels,
            split=args.split,
            random_flip=args.random_flip,
            seed=args.seed,
            with_labels=args.conditional,
            on_error="skip" if args.skip_bad_images else "raise",
        )
    for warning in caught:  # the CLI hides Python warnings; this one the user must see
        if "unreadable image files" in str(warning.message):
            print(f"{output}: {warning.message}")
    image_spec = dataset.element_spec[0] if args.conditional else dataset.element_spec
    return {"x": dataset}, tuple(image_spec.shape[1:])


def _digits_arrays(args):
    """The embedded digits as arrays, for `fit` to batch and shuffle (no TensorFlow)."""
    images, labels = _digits_without_tensorflow(args.dataset, args.image_size)
    fit_data = {"x": images, "batch_size": args.batch_size, "shuffle": True}
    if args.conditional:
        fit_data["y"] = labels
    return fit_data, images.shape[1:]


def evaluation_images(args, model, config):
    """`evaluate`'s first `--num` real images, with their labels for a conditional model when
    the data has them (else `None`)."""
    from keras_ddpm import backend
    from keras_ddpm import data

    spec = args.dataset or config.get("dataset", "digits")
    image_size = args.image_size or config.get("image_size")
    if not backend.installed("tensorflow"):
        images, labels = _digits_without_tensorflow(spec, image_size)
        labels = labels[: args.num] if model.num_classes is not None else None
        return images[: args.num], labels
    options = dict(
        image_size=image_size,
        channels=args.channels or config.get("channels", 3),
        split=args.split or config.get("split", "train"),
        shuffle=False,
    )
    with user_errors():
        if model.num_classes is not None:
            try:
                labelled = data.load_dataset_spec(spec, 256, with_labels=True, **options)
                return _first_images(labelled, args.num)
            except ValueError:
                pass  # Unlabelled data: the unconditional bound.
        return _first_images(data.load_dataset_spec(spec, 256, **options), args.num)


def _first_images(dataset, num):
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
