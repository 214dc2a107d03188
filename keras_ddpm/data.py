"""Input pipelines: the embedded digits, NumPy arrays, TFDS and image folders.

Every loader returns a batched, prefetched `tf.data.Dataset` whose elements are
float32 images shaped `(batch, height, width, channels)` with values in
`[-1, 1]`, or `(images, labels)` pairs with int32 labels when labels are asked
for. `[-1, 1]` is the scale DDPM works in (Ho et al. 2020, section 3.3):
integer pixels are scaled linearly so that 0 is -1 and full intensity is +1,
which keeps the network's inputs on the same scale as the standard normal
noise that sampling starts from. 8-bit pixels map as `v / 127.5 - 1`, so
0 -> -1, 255 -> +1, and `keras_ddpm.utils.to_uint8` inverts it exactly.

The last batch of an epoch may be smaller than `batch_size` (nothing is
dropped). With `shuffle=True` the order changes every epoch; passing `seed`
makes the whole sequence of epochs, and the random flips, reproducible. The
loaders switch tf.data's autotuning off (`disable_autotune`); parallel maps
and prefetching still run, with TensorFlow's fixed defaults.

References:
    - [Ho et al., 2020. Denoising Diffusion Probabilistic Models](
      https://arxiv.org/abs/2006.11239)
"""

import functools
import importlib.resources
import numbers
import os

import numpy as np
import tensorflow as tf

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
DIGITS_MAX_VALUE = 16  # Pixel values of the embedded digits are 0..16.
# Upper bound on the shuffle buffer of streamed (TFDS) datasets, in examples.
TFDS_SHUFFLE_BUFFER = 10_000

_AUTOTUNE = tf.data.AUTOTUNE


def disable_autotune(dataset):
    """Returns `dataset` with tf.data's autotuning switched off.

    tf.data's autotuner runs a background thread that wakes at doubling
    intervals (10 ms, 20 ms, ... ); when Keras drops an epoch's iterator, the
    iterator is only released at that thread's next wake-up. Measured with
    TensorFlow 2.21 on 2 CPU cores: `fit` calls and epochs that ended at 6 s
    waited until 10.24 s after the iterator started, and the README quick start's
    epochs took 3.1 s instead of 4.3 s without autotuning. With it
    off, `num_parallel_calls=tf.data.AUTOTUNE` maps run with a fixed degree
    of parallelism and `prefetch(tf.data.AUTOTUNE)` still overlaps input and
    training (tested). Apply it to your own pipelines with short epochs.

    Args:
        dataset: a `tf.data.Dataset`.

    Returns:
        The dataset with `options().autotune.enabled == False`.

    Example:

    ```python
    dataset = keras_ddpm.data.disable_autotune(
        tf.data.Dataset.from_tensor_slices(images).batch(32).prefetch(tf.data.AUTOTUNE)
    )
    model.fit(dataset, epochs=10)
    ```
    """
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            f"disable_autotune expects a tf.data.Dataset; received {type(dataset).__name__}."
        )
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


# 1. Argument checks shared by the loaders.


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise TypeError(f"Expected `batch_size` to be an int >= 1; received {batch_size!r}.")
    if batch_size < 1:
        raise ValueError(f"Expected `batch_size` >= 1; received batch_size={batch_size}.")
    return int(batch_size)


def _check_image_size(image_size, allow_none=True):
    """Returns `None` or an `(height, width)` tuple of positive ints."""
    if image_size is None and allow_none:
        return None
    size = (image_size, image_size) if isinstance(image_size, numbers.Integral) else image_size
    try:
        height, width = size
    except (TypeError, ValueError):
        height = width = None
    if not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1
        for v in (height, width)
    ):
        raise ValueError(
            "Expected `image_size` to be a positive int or a (height, width) pair of "
            f"positive ints; received image_size={image_size!r}."
        )
    return int(height), int(width)


def _check_channels(channels):
    if channels not in (1, 3):
        raise ValueError(f"Expected `channels` to be 1 or 3; received channels={channels!r}.")
    return channels


# 2. Image maths shared by the loaders.


def _to_unit_range(images, max_value=255):
    """Maps integer pixels 0..max_value linearly onto [-1, 1] as float32."""
    return tf.cast(images, tf.float32) / (max_value / 2.0) - 1.0


def _center_crop_and_resize(image, size):
    """Crops the largest centred window with the aspect ratio of `size`, then resizes.

    `image` is a float `(H, W, C)` tensor in [-1, 1]; its size may be dynamic.
    Resizing is bilinear with antialiasing, so shrinking does not alias.
    """
    height, width = size
    if tuple(image.shape[:2]) == (height, width):
        return image
    shape = tf.shape(image)
    in_height, in_width = shape[0], shape[1]
    crop_height = tf.clip_by_value((in_width * height + width // 2) // width, 1, in_height)
    crop_width = tf.clip_by_value((in_height * width + height // 2) // height, 1, in_width)
    top = (in_height - crop_height) // 2
    left = (in_width - crop_width) // 2
    image = image[top : top + crop_height, left : left + crop_width]
    image = tf.image.resize(image, (height, width), method="bilinear", antialias=True)
    return tf.clip_by_value(image, -1.0, 1.0)


def _batch_pipeline(
    dataset, preprocess, *, with_labels, batch_size, shuffle, shuffle_buffer, random_flip, seed
):
    """The tail every loader shares: shuffle, preprocess, batch, flip, prefetch.

    `dataset` yields raw images (or `(raw_image, label)` pairs when
    `with_labels`); shuffling happens before `preprocess` so that the buffer
    holds the compact raw form (bytes, paths or uint8 pixels).
    """
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if with_labels:
        dataset = dataset.map(lambda x, y: (preprocess(x), y), num_parallel_calls=_AUTOTUNE)
    else:
        dataset = dataset.map(preprocess, num_parallel_calls=_AUTOTUNE)
    dataset = dataset.batch(batch_size)
    if random_flip:
        # One stateless seed pair per batch, drawn anew each epoch.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

        def flip(batch, pair):
            if with_labels:
                images, labels = batch
                return tf.image.stateless_random_flip_left_right(images, pair), labels
            return tf.image.stateless_random_flip_left_right(batch, pair)

        dataset = tf.data.Dataset.zip((dataset, seeds)).map(flip, num_parallel_calls=_AUTOTUNE)
    return disable_autotune(dataset.prefetch(_AUTOTUNE))


def _array_dataset(images, labels, max_value, image_size, **pipeline_args):
    """Pipeline over in-memory images: uint8 when `max_value` is set, else float [-1, 1]."""

    def preprocess(image):
        image = image if max_value is None else _to_unit_range(image, max_value)
        return image if image_size is None else _center_crop_and_resize(image, image_size)

    if labels is None:
        dataset = tf.data.Dataset.from_tensor_slices(images)
    else:
        dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    return _batch_pipeline(
        dataset,
        preprocess,
        with_labels=labels is not None,
        shuffle_buffer=len(images),
        **pipeline_args,
    )


# 3. The embedded digits.


@functools.lru_cache(maxsize=1)
def _read_digits_asset():
    """Returns the raw `(images, labels)`: uint8 (1797, 8, 8) in 0..16, uint8 (1797,)."""
    resource = importlib.resources.files("keras_ddpm") / "assets" / "digits.npz"
    with resource.open("rb") as file, np.load(file) as archive:
        images, labels = archive["images"], archive["labels"]
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_digits_arrays():
    """Returns the embedded handwritten digits as NumPy arrays.

    The 1,797 images of 8x8 pixels of the UCI "Optical Recognition of
    Handwritten Digits" test set (E. Alpaydin and C. Kaynak, CC BY 4.0; see
    `keras_ddpm/assets/DIGITS_LICENSE.txt`), shipped with the package, so
    nothing is downloaded. Pixel values 0..16 map exactly to `v / 8 - 1`.

    Returns:
        A tuple `(images, labels)`: `images` is float32 of shape
        `(1797, 8, 8, 1)` in [-1, 1]; `labels` is int32 of shape `(1797,)`
        holding the digit 0..9 of each image. Fresh arrays on every call.

    Example:

    ```python
    images, labels = keras_ddpm.data.load_digits_arrays()
    images.shape  # (1797, 8, 8, 1)
    ```

    References:
        - [Alpaydin and Kaynak, Optical Recognition of Handwritten Digits,
          UCI Machine Learning Repository, 1998](https://doi.org/10.24432/C50P49)
    """
    raw_images, raw_labels = _read_digits_asset()
    images = raw_images[..., np.newaxis].astype(np.float32) / (DIGITS_MAX_VALUE / 2) - 1
    return images, raw_labels.astype(np.int32)


def load_digits(batch_size=128, image_size=None, with_labels=False, shuffle=True, seed=None):
    """Loads the embedded 8x8 handwritten digits as a `tf.data.Dataset`.

    The default dataset of keras_ddpm: 1,797 grayscale digits that ship with
    the package (see `load_digits_arrays`), small enough to train a DDPM on a
    CPU in minutes. Pixel values 0..16 map exactly to `v / 8 - 1`.

    Args:
        batch_size: int, images per batch; the last batch may be smaller.
            Defaults to `128`.
        image_size: `None`, an int or a `(height, width)` pair. When set, the
            digits are resized (bilinear, antialiased) to that size.
            Defaults to `None` (8x8).
        with_labels: bool, whether elements are `(images, labels)` pairs with
            int32 digits 0..9. Defaults to `False`.
        shuffle: bool, whether to reshuffle the images every epoch.
            Defaults to `True`.
        seed: optional int making the shuffling order reproducible.
            Defaults to `None`.

    Returns:
        A `tf.data.Dataset` of float32 batches `(B, H, W, 1)` in [-1, 1], or
        `(images, labels)` batches when `with_labels=True`.

    Example:

    ```python
    dataset = keras_ddpm.data.load_digits(batch_size=64, seed=0)
    images = next(iter(dataset))  # (64, 8, 8, 1), float32 in [-1, 1]
    ```

    References:
        - [Alpaydin and Kaynak, Optical Recognition of Handwritten Digits,
          UCI Machine Learning Repository, 1998](https://doi.org/10.24432/C50P49)
    """
    batch_size = _check_batch_size(batch_size)
    image_size = _check_image_size(image_size)
    raw_images, raw_labels = _read_digits_asset()
    return _array_dataset(
        raw_images[..., np.newaxis],
        raw_labels.astype(np.int32) if with_labels else None,
        DIGITS_MAX_VALUE,
        image_size,
        batch_size=batch_size,
        shuffle=shuffle,
        random_flip=False,  # A mirrored digit is not a digit.
        seed=seed,
    )


# 4. In-memory arrays.


def _as_numpy(values):
    return np.asarray(values.numpy() if hasattr(values, "numpy") else values)


def _check_array_images(images):
    """Returns `(images, max_value)`: (N, H, W, C) uint8 with 255, or float32 with None."""
    images = _as_numpy(images)
    received_shape = images.shape
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or 0 in images.shape:
        raise ValueError(
            "Expected a non-empty array of images shaped (N, H, W) or (N, H, W, C) with "
            f"C in {{1, 3}}; received an array of shape {received_shape}."
        )
    if images.dtype == np.uint8:
        return images, 255
    if not np.issubdtype(images.dtype, np.floating):
        raise TypeError(
            "Expected uint8 images (0..255) or floating point images in [-1, 1]; "
            f"received dtype {images.dtype}. For 8-bit data stored in another integer "
            "type, pass `images.astype('uint8')`."
        )
    low, high = float(np.min(images)), float(np.max(images))
    if not (low >= -1.0 and high <= 1.0):  # Also rejects NaN.
        raise ValueError(
            f"Expected floating point images in [-1, 1]; received values from {low} to "
            f"{high}. Scale 0..255 data with `x / 127.5 - 1`, 0..1 data with `2 * x - 1`, "
            "or pass the data as uint8."
        )
    return images.astype(np.float32), None


def _check_array_labels(labels, num_images):
    labels = _as_numpy(labels)
    if labels.ndim != 1 or len(labels) != num_images:
        raise ValueError(
            f"Expected `labels` of shape ({num_images},), one per image; received shape "
            f"{labels.shape}."
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"Expected integer `labels`; received dtype {labels.dtype}.")
    return labels.astype(np.int32)


def from_array(
    images, labels=None, batch_size=128, image_size=None, shuffle=True, random_flip=False, seed=None
):
    """Builds a dataset from in-memory images (NumPy arrays or tensors).

    uint8 images map as `v / 127.5 - 1` (0 -> -1, 255 -> +1); floating point
    images must already lie in [-1, 1] and are only cast to float32. The
    whole array is held in memory and shuffled with a buffer of its size.

    Args:
        images: array of shape `(N, H, W)` (grayscale; a channel axis is
            added) or `(N, H, W, C)` with `C` 1 or 3, dtype uint8 or float.
        labels: optional integer array of shape `(N,)`. When given, elements
            are `(images, labels)` pairs with int32 labels. Defaults to `None`.
        batch_size: int, images per batch; the last batch may be smaller.
            Defaults to `128`.
        image_size: `None`, an int or a `(height, width)` pair. When set,
            images are center-cropped to that aspect ratio and resized
            (bilinear, antialiased). Defaults to `None` (keep the size).
        shuffle: bool, whether to reshuffle every epoch. Defaults to `True`.
        random_flip: bool, whether to flip each image horizontally with
            probability 1/2, anew each epoch. Defaults to `False`.
        seed: optional int making shuffling and flips reproducible.
            Defaults to `None`.

    Returns:
        A `tf.data.Dataset` of float32 batches `(B, H, W, C)` in [-1, 1], or
        `(images, labels)` batches when `labels` is given.

    Example:

    ```python
    (x_train, _), _ = keras.datasets.cifar10.load_data()  # uint8
    dataset = keras_ddpm.data.from_array(x_train, random_flip=True)
    ```
    """
    batch_size = _check_batch_size(batch_size)
    image_size = _check_image_size(image_size)
    images, max_value = _check_array_images(images)
    if labels is not None:
        labels = _check_array_labels(labels, len(images))
    return _array_dataset(
        images,
        labels,
        max_value,
        image_size,
        batch_size=batch_size,
        shuffle=shuffle,
        random_flip=random_flip,
        seed=seed,
    )


# 5. TensorFlow Datasets.


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

    Example:

    ```python
    dataset = keras_ddpm.data.load_tfds("cifar10", random_flip=True)
    ```
    """
    import tensorflow_datasets as tfds

    batch_size = _check_batch_size(batch_size)
    image_size = _check_image_size(image_size)
    dataset = tfds.load(
        name,
        split=split,
        data_dir=data_dir,
        shuffle_files=shuffle,
        read_config=tfds.ReadConfig(shuffle_seed=seed),
    )
    spec = dataset.element_spec
    if not isinstance(spec, dict) or "image" not in spec:
        keys = sorted(spec) if isinstance(spec, dict) else spec
        raise ValueError(
            f"Expected TFDS dataset {name!r} to have an 'image' feature; it has {keys}."
        )
    if with_labels and "label" not in spec:
        raise ValueError(
            f"with_labels=True needs a 'label' feature, but TFDS dataset {name!r} has only "
            f"{sorted(spec)}."
        )
    image_spec = spec["image"]
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

    if with_labels:
        dataset = dataset.map(lambda ex: (ex["image"], tf.cast(ex["label"], tf.int32)))
    else:
        dataset = dataset.map(lambda ex: ex["image"])

    def preprocess(image):
        image = _to_unit_range(image)
        return image if image_size is None else _center_crop_and_resize(image, image_size)

    shuffle_buffer = int(dataset.cardinality())  # The split's size; negative when unknown.
    if not 0 < shuffle_buffer < TFDS_SHUFFLE_BUFFER:
        shuffle_buffer = TFDS_SHUFFLE_BUFFER
    return _batch_pipeline(
        dataset,
        preprocess,
        with_labels=with_labels,
        batch_size=batch_size,
        shuffle=shuffle,
        shuffle_buffer=shuffle_buffer,
        random_flip=random_flip,
        seed=seed,
    )


# 6. Folders of image files.


def _list_image_files(path):
    """All image files below `path`, sorted, skipping hidden files and folders."""
    files = []
    for folder, subfolders, names in os.walk(path):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
                files.append(os.path.join(folder, name))
    return files


def _decode_image(contents, channels):
    """Decodes PNG/JPEG/BMP/GIF bytes (a GIF's first frame) to uint8 `(H, W, channels)`."""

    def decode(num_channels):
        return tf.io.decode_image(contents, channels=num_channels, expand_animations=False)

    if channels == 3:
        return decode(3)
    # TensorFlow decodes BMP and GIF only to colour; convert those to gray ourselves.
    colour_only = tf.logical_or(
        tf.strings.substr(contents, 0, 3) == "GIF", tf.strings.substr(contents, 0, 2) == "BM"
    )
    return tf.cond(colour_only, lambda: tf.image.rgb_to_grayscale(decode(3)), lambda: decode(1))


def load_image_folder(
    path,
    image_size,
    batch_size=128,
    channels=3,
    shuffle=True,
    random_flip=False,
    with_labels=False,
    seed=None,
):
    """Loads every image file below a folder, recursively.

    Files ending in .png, .jpg, .jpeg, .bmp or .gif (any case) are decoded
    (the first frame of an animated GIF), converted to `channels` channels,
    center-cropped to the aspect ratio of `image_size` and resized (bilinear,
    antialiased). Hidden files and folders (names starting with ".") are
    skipped. Files are read lazily; a corrupt file raises when it is reached.

    With `with_labels=True` the label of an image is the index of its
    first-level sub-folder among the sorted names of the sub-folders that
    hold images (`path/cat/a.png` and `path/cat/more/b.png` are both "cat").
    Those names, in index order, are the `class_names` attribute of the
    returned dataset.

    Args:
        path: str or path-like, the root folder.
        image_size: an int or a `(height, width)` pair, the output size.
        batch_size: int, images per batch; the last batch may be smaller.
            Defaults to `128`.
        channels: int, 1 (grayscale) or 3 (RGB). Defaults to `3`.
        shuffle: bool, whether to reshuffle the files every epoch.
            Defaults to `True`.
        random_flip: bool, whether to flip each image horizontally with
            probability 1/2, anew each epoch. Defaults to `False`.
        with_labels: bool, whether elements are `(images, labels)` pairs with
            int32 class indices. Every image must then sit in a sub-folder.
            Defaults to `False`.
        seed: optional int making shuffling and flips reproducible.
            Defaults to `None`.

    Returns:
        A `tf.data.Dataset` of float32 batches `(B, height, width, channels)`
        in [-1, 1], or `(images, labels)` batches when `with_labels=True`;
        then `dataset.class_names` lists the class names.

    Example:

    ```python
    # photos/cats/*.jpg, photos/dogs/*.jpg
    dataset = keras_ddpm.data.load_image_folder("photos", 64, with_labels=True)
    dataset.class_names  # ['cats', 'dogs']
    ```
    """
    image_size = _check_image_size(image_size, allow_none=False)
    batch_size = _check_batch_size(batch_size)
    channels = _check_channels(channels)
    root = os.fspath(path)
    if not os.path.exists(root):
        raise ValueError(f"Image folder {root!r} does not exist.")
    if not os.path.isdir(root):
        raise ValueError(f"Expected a folder of images; {root!r} is not a directory.")
    files = _list_image_files(root)
    if not files:
        raise ValueError(
            f"Found no image files ({', '.join(IMAGE_EXTENSIONS)}) below folder {root!r}."
        )

    class_names = None
    if with_labels:
        parts = [os.path.relpath(f, root).split(os.sep) for f in files]
        loose = [f for f, p in zip(files, parts) if len(p) == 1]
        if loose:
            raise ValueError(
                f"with_labels=True expects every image in a class sub-folder of {root!r}, "
                f"but {len(loose)} sit directly in it, e.g. {loose[0]!r}."
            )
        class_names = sorted({p[0] for p in parts})
        index = {name: i for i, name in enumerate(class_names)}
        labels = np.array([index[p[0]] for p in parts], dtype=np.int32)
        dataset = tf.data.Dataset.from_tensor_slices((files, labels))
    else:
        dataset = tf.data.Dataset.from_tensor_slices(files)

    def preprocess(file):
        image = _decode_image(tf.io.read_file(file), channels)
        image = _center_crop_and_resize(_to_unit_range(image), image_size)
        return tf.ensure_shape(image, (*image_size, channels))

    dataset = _batch_pipeline(
        dataset,
        preprocess,
        with_labels=with_labels,
        batch_size=batch_size,
        shuffle=shuffle,
        shuffle_buffer=len(files),
        random_flip=random_flip,
        seed=seed,
    )
    if class_names is not None:
        dataset.class_names = class_names
    return dataset
