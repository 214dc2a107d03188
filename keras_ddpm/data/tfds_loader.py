"""Image datasets from TensorFlow Datasets (TFDS), streamed from TFDS's prepared files.

`tensorflow_datasets` is imported when a dataset is loaded, not with this
module.
"""

import tensorflow as tf

from keras_ddpm import batch_keys
from keras_ddpm.data.loader_common import check_batch_size
from keras_ddpm.data.loader_common import check_image_size
from keras_ddpm.data.pipeline import batch_pipeline
from keras_ddpm.data.pipeline import center_crop_and_resize
from keras_ddpm.data.pipeline import to_unit_range

# Upper bound on the shuffle buffer of streamed (TFDS) datasets, in examples.
TFDS_SHUFFLE_BUFFER = 10_000


def _check_image_feature(name, spec, with_labels, image_size):
    """Raises a `ValueError` unless the examples hold images (and labels) we can batch."""
    if not isinstance(spec, dict) or batch_keys.IMAGE not in spec:
        keys = sorted(spec) if isinstance(spec, dict) else spec
        raise ValueError(
            f"Expected TFDS dataset {name!r} to have an {batch_keys.IMAGE!r} feature; it has "
            f"{keys}."
        )
    if with_labels and batch_keys.LABEL not in spec:
        raise ValueError(
            f"with_labels=True needs a {batch_keys.LABEL!r} feature, but TFDS dataset {name!r} "
            f"has only {sorted(spec)}."
        )
    image_spec = spec[batch_keys.IMAGE]
    image_shape = image_spec.shape
    if image_spec.dtype != tf.uint8 or image_shape.rank != 3 or image_shape[-1] not in (1, 3):
        raise ValueError(
            f"Expected uint8 images of shape (H, W, 1) or (H, W, 3) in TFDS dataset {name!r}; "
            f"received {image_spec.dtype.name} images of shape {tuple(image_shape)}."
        )
    if image_size is None and not image_shape.is_fully_defined():
        raise ValueError(
            f"The images of TFDS dataset {name!r} vary in size (stored shape "
            f"{tuple(image_shape)}); pass `image_size` so that they can be batched."
        )


def _tfds_load(tfds, name, data_dir, **kwargs):
    """`tfds.load(name, data_dir=data_dir, **kwargs)`, its failures to find or fetch in one line.

    Raises:
        ValueError: `name` is no TFDS dataset (TFDS's own message lists
            every dataset it knows: hundreds of lines).
        ConnectionError: the dataset is not prepared in `data_dir` and its
            download failed (offline, a proxy, a server down).
    """
    import requests

    try:
        return tfds.load(name, data_dir=data_dir, **kwargs)
    except tfds.core.DatasetNotFoundError:
        raise ValueError(
            f"Unknown TFDS dataset {name!r}; the names are listed at "
            "https://www.tensorflow.org/datasets/catalog/overview."
        ) from None
    except requests.exceptions.RequestException as error:
        where = data_dir or "TFDS's default data_dir (~/tensorflow_datasets)"
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConnectionError(
            f"Cannot download TFDS dataset {name!r} (offline?): {reason[:200]}. Prepare it "
            f"where the network is reachable and copy it into {where}."
        ) from None


def load_tfds(
    name,
    split="train",
    image_size=None,
    batch_size=128,
    shuffle=True,
    random_flip=False,
    with_labels=False,
    data_dir=None,
    seed=None,
):
    """Loads an image dataset from TensorFlow Datasets (TFDS).

    The dataset is downloaded and prepared by `tfds.load` on first use, which
    needs network access and may take a while and a lot of disk space; later
    calls read the prepared copy in `data_dir`. Each `example["image"]`
    (uint8) maps to [-1, 1]; grayscale datasets keep one channel.

    Args:
        name: str, a TFDS name such as `"mnist"`, `"cifar10"` or
            `"celeb_a"` (a config or version may follow, e.g.
            `"mnist:3.0.1"`).
        split: str, the split to read, e.g. `"train"` or `"train[:10%]"`.
            Defaults to `"train"`.
        image_size: `None`, an int or a `(height, width)` pair. When it differs
            from the stored size, each image is center-cropped to the target
            aspect ratio and resized (bilinear, antialiased). Required for
            datasets whose images vary in size. Defaults to `None`.
        batch_size: int, images per batch; the last batch may be smaller.
            Defaults to `128`.
        shuffle: bool, whether to shuffle the files and, through a buffer of
            up to `TFDS_SHUFFLE_BUFFER` examples, the examples every epoch.
            Defaults to `True`.
        random_flip: bool, whether to flip each image horizontally with
            probability 1/2, anew each epoch. Defaults to `False`.
        with_labels: bool, whether elements are `(images, labels)` pairs with
            int32 labels from `example["label"]`. Defaults to `False`.
        data_dir: optional str, where TFDS stores the data. Defaults to `None`
            (TFDS's default, `~/tensorflow_datasets`).
        seed: optional int making shuffling and flips reproducible.
            Defaults to `None`.

    Returns:
        A `tf.data.Dataset` of float32 batches `(B, H, W, C)` in [-1, 1], or
        `(images, labels)` batches when `with_labels=True`.

    Raises:
        ValueError: an unknown dataset name, or examples without uint8
            images (and labels, if asked for).
        ConnectionError: the dataset is not prepared in `data_dir` and cannot
            be downloaded (offline?).

    Example:

    ```python
    dataset = keras_ddpm.data.load_tfds("cifar10", random_flip=True)
    ```
    """
    import tensorflow_datasets as tfds

    batch_size = check_batch_size(batch_size)
    image_size = check_image_size(image_size)
    dataset = _tfds_load(tfds, name, split=split, data_dir=data_dir, shuffle_files=shuffle,
                         read_config=tfds.ReadConfig(shuffle_seed=seed))
    _check_image_feature(name, dataset.element_spec, with_labels, image_size)

    if with_labels:
        dataset = dataset.map(
            lambda ex: (ex[batch_keys.IMAGE], tf.cast(ex[batch_keys.LABEL], tf.int32))
        )
    else:
        dataset = dataset.map(lambda ex: ex[batch_keys.IMAGE])

    def preprocess(image):
        image = to_unit_range(image)
        return image if image_size is None else center_crop_and_resize(image, image_size)

    shuffle_buffer = int(dataset.cardinality())  # The split's size; negative when unknown.
    if not 0 < shuffle_buffer < TFDS_SHUFFLE_BUFFER:
        shuffle_buffer = TFDS_SHUFFLE_BUFFER
    return batch_pipeline(
        dataset,
        preprocess,
        with_labels=with_labels,
        batch_size=batch_size,
        shuffle=shuffle,
        shuffle_buffer=shuffle_buffer,
        random_flip=random_flip,
        seed=seed,
    )
