"""Where `train` and `evaluate` get their images: `keras_ddpm.data.load_dataset_spec`.

The `--dataset` spec's loader: a `tf.data` pipeline with TensorFlow installed (the
embedded digits, a folder, TFDS); without it (JAX or PyTorch on a machine that has no
TensorFlow, such as the GPU machines), the digits and folders as PyDatasets, and TFDS
refused in one line.
"""

import warnings

from keras_ddpm.cli.common import user_errors


def training_data(args, output):
    """`(fit's data keywords, image shape)` of `train`'s `--dataset`."""
    from keras_ddpm import data

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
        dataset = data.load_dataset_spec(args.dataset, split=args.split, **options)
    for warning in caught:  # the CLI hides Python warnings; this one the user must see
        if "unreadable image files" in str(warning.message):
            print(f"{output}: {warning.message}")
    image_shape = getattr(dataset, "image_shape", None)  # the PyDatasets know theirs
    if image_shape is None:
        image_spec = dataset.element_spec[0] if args.conditional else dataset.element_spec
        image_shape = tuple(image_spec.shape[1:])
    return {"x": dataset}, image_shape


def evaluation_images(args, model, config):
    """`evaluate`'s first `--num` real images, with their labels for a conditional model when
    the data has them (else `None`)."""
    from keras_ddpm import data

    spec = args.dataset or config.get("dataset", "digits")
    options = dict(
        image_size=args.image_size or config.get("image_size"),
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
