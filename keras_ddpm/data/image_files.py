"""Image files, with no TensorFlow import: which names count, a folder's files and classes,
the check that every file decodes, reading one (decode, centre crop, resize), and the
mapping of integer pixels onto [-1, 1] that every NumPy loader uses.

`load_image_folder`, `load_image_folder_batches` and the command line's editing verbs
(`--image`) all ask `is_image_name`, so that a folder holds the same images for each.
"""

import os
import warnings

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def to_unit_range(pixels, max_value=255):
    """Maps integer pixels 0..`max_value` linearly onto [-1, 1] as float32.

    The NumPy loaders' one scaling (image files, arrays, the embedded digits); equal
    bit for bit to the `tf.data` loaders' `pipeline.to_unit_range`.
    """
    return np.asarray(pixels).astype(np.float32) / np.float32(max_value / 2.0) - np.float32(1)


def is_image_name(name):
    """Whether a file name is an image's: a known extension, and not a hidden file."""
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def _list_image_files(root):
    """All image files below `root`, sorted, skipping hidden files and folders."""
    files = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(names):
            if is_image_name(name):
                files.append(os.path.join(folder, name))
    return files


def folder_files(path):
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


def check_readable(files, on_error):
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


def class_labels(root, files):
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
    return class_labels(*folder_files(path))[0]


def decode_image(file, channels):
    """One file as float32 `(H, W, channels)` in [-1, 1] (a GIF: its first frame), at its size."""
    from PIL import Image

    with Image.open(file) as image:
        pixels = np.asarray(image.convert("RGB" if channels == 3 else "L"))
    return to_unit_range(pixels.reshape(pixels.shape[:2] + (channels,)))


def read_image(file, channels, size):
    """One file as float32 `(height, width, channels)` in [-1, 1], cropped and resized to `size`."""
    return center_crop_and_resize(decode_image(file, channels), size)


def center_crop_and_resize(image, size, method="bilinear"):
    """`data.pipeline.center_crop_and_resize` for one NumPy image, without TensorFlow.

    The same window (the largest centred one with the aspect ratio of `size`)
    and the same resize. `"bilinear"`: Pillow's bilinear filter on float32
    (mode `"F"`), one channel at a time, which widens its triangle with the
    scale when shrinking as TensorFlow's antialiased bilinear does (the two
    agree within 2e-6, up and down, tested). `"nearest"` (masks): TensorFlow's
    half-pixel-centre indices, computed as it does in float32 (equal). On the
    CPU with no backend op, so worker threads can run it (a JAX op would
    compile anew for every image size).

    Args:
        image: float32 `(H, W, C)` in [-1, 1] (or a mask in [0, 1]).
        size: `(height, width)` of the result.
        method: `"bilinear"` or `"nearest"`. Defaults to `"bilinear"`.
    """
    from PIL import Image

    height, width = size
    in_height, in_width = image.shape[:2]
    if (in_height, in_width) == (height, width):
        return image
    crop_height = min(max((in_width * height + width // 2) // width, 1), in_height)
    crop_width = min(max((in_height * width + height // 2) // height, 1), in_width)
    top, left = (in_height - crop_height) // 2, (in_width - crop_width) // 2
    image = np.asarray(image, np.float32)[top : top + crop_height, left : left + crop_width]
    if method == "nearest":
        resized = image[_nearest(crop_height, height)][:, _nearest(crop_width, width)]
    else:
        resized = np.stack([
            np.asarray(Image.fromarray(np.ascontiguousarray(image[:, :, c]), mode="F").resize(
                (width, height), Image.BILINEAR
            ))
            for c in range(image.shape[2])
        ], axis=-1)
    return np.clip(resized, -1.0, 1.0).astype(np.float32)


def _nearest(size_in, size_out):
    """TensorFlow's nearest-neighbour source indices: floor((i + 0.5) · in/out), in float32."""
    scale = np.float32(size_in) / np.float32(size_out)
    centres = (np.arange(size_out, dtype=np.float32) + np.float32(0.5)) * scale
    return np.minimum(np.floor(centres).astype(np.int64), size_in - 1)
