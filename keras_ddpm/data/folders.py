"""Folders of image files: listing, class names from sub-folders, decoding."""

import os
import warnings

import numpy as np
import tensorflow as tf

from keras_ddpm.data.pipeline import batch_pipeline
from keras_ddpm.data.pipeline import center_crop_and_resize
from keras_ddpm.data.pipeline import check_batch_size
from keras_ddpm.data.pipeline import check_channels
from keras_ddpm.data.pipeline import check_image_size
from keras_ddpm.data.pipeline import to_unit_range
from keras_ddpm.data.image_files import IMAGE_EXTENSIONS
from keras_ddpm.data.image_files import is_image_name


# 1. Listing files and classes.


def _list_image_files(root):
    """All image files below `root`, sorted, skipping hidden files and folders."""
    files = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(names):
            if is_image_name(name):
                files.append(os.path.join(folder, name))
    return files


def _image_files(path):
    """Returns `(root, files)` for a folder holding image files, else raises a `ValueError`."""
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
    return root, files


def _unreadable_reason(file):
    """Why Pillow cannot read `file` (its structure, checksums and pixel data), or `None`."""
    from PIL import Image

    try:
        with Image.open(file) as image:
            image.verify()  # structure and checksums where the format has them
        with Image.open(file) as image:  # `verify` leaves the image unusable: open it again
            image.load()  # the pixel data: a damaged stream under a sound header fails here
    except Exception as error:  # noqa: BLE001 - every Pillow failure means "unreadable".
        return str(error).splitlines()[0] if str(error) else type(error).__name__
    return None


def _unreadable(files):
    """`(file, reason)` for each file that does not decode, every file decoded once.

    Decoding runs in threads (Pillow's decoders release the GIL), so that a
    damaged file is named before training rather than failing the `tf.data`
    pipeline mid-epoch without its name.
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        reasons = list(pool.map(_unreadable_reason, files))
    return [(file, reason) for file, reason in zip(files, reasons) if reason is not None]


def _check_readable(files, on_error):
    """The files to load: all of them, or (`on_error="skip"`) the readable ones."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"`on_error` must be 'raise' or 'skip'. Received: on_error={on_error!r}")
    bad = _unreadable(files)
    if not bad:
        return files
    if on_error == "raise":
        file, reason = bad[0]
        raise ValueError(
            f"{len(bad)} of {len(files)} image files cannot be read, e.g. {file!r} ({reason}); "
            "remove them, or pass on_error='skip' (keras-ddpm train: --skip-bad-images)."
        )
    kept = [f for f in files if f not in {b for b, _ in bad}]
    if not kept:
        raise ValueError(f"None of the {len(files)} image files can be read, e.g. {bad[0][0]!r}.")
    warnings.warn(
        f"Skipped {len(bad)} unreadable image files of {len(files)}, e.g. {bad[0][0]!r}.",
        stacklevel=3,
    )
    return kept


def _classes(root, files):
    """Returns `(class_names, labels)`: a file's label indexes its first-level sub-folder."""
    parts = [os.path.relpath(f, root).split(os.sep) for f in files]
    loose = [f for f, p in zip(files, parts) if len(p) == 1]
    if loose:
        raise ValueError(
            f"Expected every image in a class sub-folder of {root!r}, as class labels "
            f"need; {len(loose)} sit directly in it, e.g. {loose[0]!r}."
        )
    class_names = sorted({p[0] for p in parts})
    index = {name: i for i, name in enumerate(class_names)}
    return class_names, np.array([index[p[0]] for p in parts], dtype=np.int32)


def image_folder_class_names(path):
    """Returns the class names `load_image_folder(path, ..., with_labels=True)` uses.

    They are the sorted names of the first-level sub-folders of `path` that
    hold image files (at any depth); hidden folders are skipped. Label `i`
    of the dataset is `image_folder_class_names(path)[i]`. Use it when the
    dataset's `class_names` attribute is gone, as it is after any
    `dataset.map(...)`. Nothing is decoded.

    Args:
        path: str or path-like, the root folder.

    Returns:
        A list of str, sorted.

    Raises:
        ValueError: `path` does not exist, is not a folder, holds no image
            files, or holds image files directly (outside a class sub-folder).

    Example:

    ```python
    # photos/cats/*.jpg, photos/dogs/*.jpg
    dataset = keras_ddpm.data.load_image_folder("photos", 64, with_labels=True)
    dataset = dataset.map(lambda images, labels: (images, labels))  # No class_names now.
    keras_ddpm.data.image_folder_class_names("photos")  # ['cats', 'dogs']
    ```
    """
    return _classes(*_image_files(path))[0]


# 2. Decoding and the dataset.


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
    on_error="raise",
):
    """Loads every image file below a folder, recursively.

    Files ending in .png, .jpg, .jpeg, .bmp or .gif (any case) are decoded
    (the first frame of an animated GIF), converted to `channels` channels,
    center-cropped to the aspect ratio of `image_size` and resized (bilinear,
    antialiased). Hidden files and folders (names starting with ".") are
    skipped. Every file is decoded once here, before any training (Pillow,
    in threads): an unreadable file, a damaged pixel stream under a sound
    header included, is reported by name (or skipped with a warning, with
    `on_error="skip"`); the pipeline decodes the pixels again as it reads.

    With `with_labels=True` the label of an image is the index of its
    first-level sub-folder among the sorted names of the sub-folders that
    hold images (`path/cat/a.png` and `path/cat/more/b.png` are both "cat").
    Those names, in index order, are the `class_names` attribute of the
    returned dataset; `dataset.map(...)` drops that attribute, and
    `image_folder_class_names(path)` gives the same list at any time.

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
        on_error: `"raise"` (a `ValueError` naming the first unreadable file
            and their count) or `"skip"` (leave them out, with a warning).
            Defaults to `"raise"`.

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
    image_size = check_image_size(image_size, allow_none=False)
    batch_size = check_batch_size(batch_size)
    channels = check_channels(channels)
    root, files = _image_files(path)
    files = _check_readable(files, on_error)

    class_names = None
    if with_labels:
        class_names, labels = _classes(root, files)
        dataset = tf.data.Dataset.from_tensor_slices((files, labels))
    else:
        dataset = tf.data.Dataset.from_tensor_slices(files)

    def preprocess(file):
        image = _decode_image(tf.io.read_file(file), channels)
        image = center_crop_and_resize(to_unit_range(image), image_size)
        return tf.ensure_shape(image, (*image_size, channels))

    dataset = batch_pipeline(
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
