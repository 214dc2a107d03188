"""Dataset specs: the strings `digits`, `tfds:NAME` and `folder:PATH` that name a dataset.

The command line's `--dataset` takes a spec, and so does any script that
lets its user choose the data. `parse_dataset_spec` reads no files and this
module imports nothing heavy, so a bad spec is answered before TensorFlow
loads (the command line checks its arguments first); the loaders are
imported when a dataset is loaded.

Example:

>>> parse_dataset_spec("tfds:cifar10")
DatasetSpec(kind='tfds', name='cifar10')
>>> dataset = load_dataset_spec("folder:photos", batch_size=64, image_size=32)
"""

import dataclasses
from typing import Optional

# The accepted forms, for help texts and error messages.
DATASET_SPECS = "'digits', 'tfds:NAME' (e.g. tfds:mnist) or 'folder:PATH'"
# Why a `tfds:` spec cannot load where TensorFlow is not installed (the command line says it too).
NEEDS_TENSORFLOW = (
    "needs TensorFlow (its loader is a tf.data pipeline), which is not installed here; "
    "pip install tensorflow tensorflow-datasets, or use 'digits' or 'folder:PATH'"
)
# What follows the prefix of each kind that takes a name.
_NAMED_KINDS = {"tfds": "NAME", "folder": "PATH"}


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A parsed dataset spec (see `parse_dataset_spec`).

    Attributes:
        kind: str, `"digits"`, `"tfds"` or `"folder"`.
        name: str, the TFDS name (a config or version may follow, as in
            `"mnist:3.0.1"`) or the folder's path; `None` for the digits.
    """

    kind: str
    name: Optional[str] = None


def parse_dataset_spec(spec):
    """Splits a dataset spec into its kind and name, reading nothing.

    Accepted forms: `"digits"` (the embedded 8x8 digits), `"tfds:NAME"` (a
    TensorFlow Datasets name, e.g. `"tfds:mnist"` or `"tfds:mnist:3.0.1"`)
    and `"folder:PATH"` (a folder of image files). Only the form is checked:
    whether the TFDS name or the folder exists is found out on loading.

    Args:
        spec: str, the spec.

    Returns:
        A `DatasetSpec(kind, name)`; `name` is `None` for the digits.

    Raises:
        TypeError: `spec` is not a string.
        ValueError: `spec` has none of the accepted forms, or nothing after
            its `tfds:` or `folder:` prefix.

    Example:

    >>> parse_dataset_spec("digits")
    DatasetSpec(kind='digits', name=None)
    >>> parse_dataset_spec("folder:photos/cats")
    DatasetSpec(kind='folder', name='photos/cats')
    """
    if not isinstance(spec, str):
        raise TypeError(
            f"Expected a dataset spec string, {DATASET_SPECS}; received {spec!r} of type "
            f"{type(spec).__name__}."
        )
    if spec == "digits":
        return DatasetSpec("digits")
    kind, colon, name = spec.partition(":")
    if colon and kind in _NAMED_KINDS:
        if name:
            return DatasetSpec(kind, name)
        raise ValueError(
            f"Expected a {_NAMED_KINDS[kind]} after '{kind}:' in dataset spec {spec!r}; "
            f"the accepted forms are {DATASET_SPECS}."
        )
    raise ValueError(f"Unknown dataset spec {spec!r}; expected {DATASET_SPECS}.")


def load_dataset_spec(
    spec,
    batch_size=128,
    image_size=None,
    channels=3,
    split="train",
    random_flip=False,
    shuffle=True,
    seed=None,
    with_labels=False,
    on_error="raise",
):
    """Loads the dataset a spec names, with the loader of its kind.

    `"digits"` calls `load_digits`, `"tfds:NAME"` calls `load_tfds` and
    `"folder:PATH"` calls `load_image_folder`, passing on the arguments that
    loader takes; the others are ignored (`split` applies to TFDS only,
    `channels` to folders only). Where TensorFlow is not installed (JAX or
    PyTorch alone), the digits and folders come from the loaders that need
    none, `load_digits_batches` and `load_image_folder_batches` (the same
    images; their orders and flips are NumPy's), and TFDS is refused.

    Args:
        spec: str, a dataset spec (see `parse_dataset_spec`).
        batch_size: int, images per batch; the last batch may be smaller.
            Defaults to `128`.
        image_size: `None`, an int or a `(height, width)` pair. Required for
            folders. Defaults to `None` (the stored size).
        channels: int, 1 or 3, the channels of folder images. Defaults to `3`.
        split: str, the TFDS split. Defaults to `"train"`.
        random_flip: bool, whether to flip images horizontally at random. Not
            for the digits. Defaults to `False`.
        shuffle: bool, whether to reshuffle every epoch. Defaults to `True`.
        seed: optional int making shuffling and flips reproducible.
            Defaults to `None`.
        with_labels: bool, whether elements are `(images, labels)` pairs.
            Defaults to `False`.
        on_error: folders only: `"raise"` or `"skip"` for unreadable image
            files (see `load_image_folder`). Defaults to `"raise"`.

    Returns:
        The loader's `tf.data.Dataset`, or its `keras.utils.PyDataset` where
        TensorFlow is not installed: float32 batches in [-1, 1], or
        `(images, labels)` batches when `with_labels=True`.

    Raises:
        ValueError: the spec is malformed (see `parse_dataset_spec`),
            `random_flip=True` with the digits, a folder without
            `image_size`, TFDS where TensorFlow is not installed, or anything
            the loader rejects.

    Example:

    ```python
    dataset = keras_ddpm.data.load_dataset_spec("tfds:cifar10", random_flip=True, seed=0)
    ```
    """
    parsed = parse_dataset_spec(spec)
    from keras_ddpm import backend  # imports Keras, so only once a dataset is loaded
    from keras_ddpm import data

    tensorflow = backend.installed("tensorflow")
    if parsed.kind == "tfds" and not tensorflow:
        raise ValueError(f"Dataset spec {spec!r} {NEEDS_TENSORFLOW}.")
    # What every loader takes; `random_flip`, `split` and `channels` depend on the kind.
    common = dict(
        batch_size=batch_size,
        image_size=image_size,
        shuffle=shuffle,
        seed=seed,
        with_labels=with_labels,
    )
    if parsed.kind == "digits":
        if random_flip:
            raise ValueError(
                "random_flip=True does not apply to the digits (a mirrored digit is not a "
                f"digit); received random_flip={random_flip!r} with dataset spec {spec!r}."
            )
        return data.load_digits(**common) if tensorflow else data.load_digits_batches(**common)
    if parsed.kind == "tfds":
        return data.load_tfds(parsed.name, split=split, random_flip=random_flip, **common)
    if image_size is None:
        raise ValueError(
            f"Dataset spec {spec!r} needs an `image_size` (the files of a folder may differ "
            "in size); received image_size=None."
        )
    load = data.load_image_folder if tensorflow else data.load_image_folder_batches
    return load(
        parsed.name, channels=channels, random_flip=random_flip, on_error=on_error, **common
    )


def spec_num_classes(spec, dataset=None):
    """Returns the number of classes of the dataset a spec names, or `None` if unknown.

    10 for the digits; for a folder, the number of its class sub-folders
    (see `image_folder_class_names`); for TFDS, `num_classes` of the
    builder's `"label"` feature, or `None` when TFDS cannot tell (no such
    dataset, no label feature, its metadata out of reach).

    Args:
        spec: str, a dataset spec (see `parse_dataset_spec`).
        dataset: optional, the dataset loaded from `spec`. A folder's
            `class_names` attribute is then read from it instead of listing
            the folder again. Defaults to `None`.

    Returns:
        An int, or `None`.

    Raises:
        ValueError: the spec is malformed, or its folder cannot give class
            names (see `image_folder_class_names`).

    Example:

    ```python
    keras_ddpm.data.spec_num_classes("digits")  # 10
    keras_ddpm.data.spec_num_classes("tfds:cifar10")  # 10
    ```
    """
    parsed = parse_dataset_spec(spec)
    if parsed.kind == "digits":
        return 10  # The digits 0..9.
    if parsed.kind == "folder":
        class_names = getattr(dataset, "class_names", None)
        if class_names is None:
            from keras_ddpm.data.image_files import image_folder_class_names

            class_names = image_folder_class_names(parsed.name)
        return len(class_names)
    try:
        import tensorflow_datasets as tfds

        from keras_ddpm import batch_keys  # not at the top: this module runs without Keras

        return int(tfds.builder(parsed.name).info.features[batch_keys.LABEL].num_classes)
    except Exception:  # noqa: BLE001 - any failure means "not known".
        return None
