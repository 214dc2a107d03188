"""`load_image_folder`: a folder of image files as a `tf.data` pipeline (listing and checks:
`image_files`)."""

import tensorflow as tf

from keras_ddpm.data import image_files
from keras_ddpm.data.loader_common import check_batch_size
from keras_ddpm.data.loader_common import check_channels
from keras_ddpm.data.loader_common import check_image_size
from keras_ddpm.data.pipeline import batch_pipeline
from keras_ddpm.data.pipeline import center_crop_and_resize
from keras_ddpm.data.pipeline import to_unit_range


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
    root, files = image_files.folder_files(path)
    files = image_files.check_readable(files, on_error)

    class_names = None
    if with_labels:
        class_names, labels = image_files.class_labels(root, files)
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
