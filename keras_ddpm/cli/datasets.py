"""Where `train` and `evaluate` get their images.

With TensorFlow installed, the `--dataset` spec's `tf.data` pipeline
(`keras_ddpm.data.load_dataset_spec`: the embedded digits, a folder, TFDS).
Without it (JAX or PyTorch on a machine that has no TensorFlow, such as the
GPU machines), the embedded digits as NumPy arrays and a folder as
`load_image_folder_batches`' PyDataset; TFDS, or resizing the digits, is
refused in one line: those loaders are `tf.data`'s.
"""

import warnings

from keras_ddpm.cli.common import UserError
from keras_ddpm.cli.common import user_errors

_NEEDS_TENSORFLOW = "needs TensorFlow (its loader is a tf.data pipeline), which is not installed"


def training_data(args, output):
    """`(fit's data keywords, image shape)` of `train`'s `--dataset`."""
    from keras_ddpm import backend
    from keras_ddpm import data

    tensorflow = backend.installed("tensorflow")
    kind = None if tensorflow else _kind_without_tensorflow(args.dataset, args.image_size)
    if kind == "digits":
        return _digits_arrays(args)
    options = dict(
        image_size=args.image_size,
        channels=args.channels,
        batch_size=args.batch_size,
        random_flip=args.random_flip,
        seed=args.seed,
        with_labels=args.conditional,
        on_error="skip" if args.skip_bad_images else "raise",
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        if kind == "folder":
            dataset = _folder_batches(args.dataset, **options)
        else:
            dataset = data.load_dataset_spec(args.dataset, split=args.split, **options)
    for warning in caught:  # the CLI hides Python warnings; this one the user must see
        if "unreadable image files" in str(warning.message):
            print(f"{output}: {warning.message}")
    if kind == "folder":
        return {"x": dataset}, (*dataset.image_size, dataset.channels)
    image_spec = dataset.element_spec[0] if args.conditional else dataset.element_spec
    return {"x": dataset}, tuple(image_spec.shape[1:])


def evaluation_images(args, model, config):
    """`evaluate`'s first `--num` real images, with their labels for a conditional model when
    the data has them (else `None`)."""
    from keras_ddpm import backend
    from keras_ddpm import data

    spec = args.dataset or config.get("dataset", "digits")
    image_size = args.image_size or config.get("image_size")
    channels = args.channels or config.get("channels", 3)
    conditional = model.num_classes is not None
    if not backend.installed("tensorflow"):
        if _kind_without_tensorflow(spec, image_size) == "digits":
            images, labels = data.load_digits_arrays()
            return images[: args.num], labels[: args.num] if conditional else None
        return _first_images(_folder_batches(
            spec, image_size=image_size, channels=channels, shuffle=False, batch_size=256,
            with_labels=conditional and _has_classes(spec),
        ), args.num)
    options = dict(
        image_size=image_size,
        channels=channels,
        split=args.split or config.get("split", "train"),
        shuffle=False,
    )
    with user_errors():
        if conditional:
            try:
                labelled = data.load_dataset_spec(spec, 256, with_labels=True, **options)
                return _first_images(labelled, args.num)
            except ValueError:
                pass  # Unlabelled data: the unconditional bound.
        return _first_images(data.load_dataset_spec(spec, 256, **options), args.num)


def _kind_without_tensorflow(spec, image_size):
    """The spec's kind where TensorFlow is missing: `"digits"` or `"folder"`, else one line."""
    from keras_ddpm import data

    with user_errors():
        kind = data.parse_dataset_spec(spec).kind
    if kind == "tfds":
        raise UserError(
            f"--dataset {spec} {_NEEDS_TENSORFLOW}; pip install tensorflow, or use the embedded "
            "digits (--dataset digits) or a folder (--dataset folder:PATH)"
        )
    if kind == "digits" and image_size not in (None, 8):
        raise UserError(f"--image-size with the digits {_NEEDS_TENSORFLOW}; leave it out")
    if kind == "folder" and image_size is None:
        raise UserError(f"--dataset {spec} needs --image-size (the files may differ in size)")
    return kind


def _folder_batches(spec, **options):
    """`load_image_folder_batches` of a `folder:PATH` spec, its errors in one line."""
    from keras_ddpm import data

    with user_errors():
        return data.load_image_folder_batches(data.parse_dataset_spec(spec).name, **options)


def _has_classes(spec):
    """Whether a folder's images all sit in class sub-folders (else: unlabelled)."""
    from keras_ddpm import data

    try:
        data.image_folder_class_names(data.parse_dataset_spec(spec).name)
    except ValueError:
        return False
    return True


def _digits_arrays(args):
    """The embedded digits as arrays, for `fit` to batch and shuffle (no TensorFlow)."""
    from keras_ddpm import data

    images, labels = data.load_digits_arrays()
    fit_data = {"x": images, "batch_size": args.batch_size, "shuffle": True}
    if args.conditional:
        fit_data["y"] = labels
    return fit_data, images.shape[1:]


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
