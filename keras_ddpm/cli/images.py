"""Images in and out of the editing verbs: one file or a folder, masks, and where results go.

Reading needs only Pillow and NumPy, so the checks that need no model (files
exist, a mask preset is known, --out fits the input) run before TensorFlow
loads; sizes are checked against the model once it is loaded.
"""

import os

from keras_ddpm.cli.common import UserError
from keras_ddpm.cli.common import check_writable
from keras_ddpm.data.image_files import IMAGE_EXTENSIONS
from keras_ddpm.data.image_files import is_image_name

# `--mask` presets: the region that is filled (mask 0); the rest is kept.
MASK_PRESETS = ("top", "bottom", "left", "right", "center")


def image_files(path):
    """The image files `path` names: itself, or the images directly in a folder (sorted)."""
    if os.path.isdir(path):
        files = sorted(os.path.join(path, name) for name in os.listdir(path) if is_image_name(name))
        if not files:
            raise UserError(f"folder {path!r} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        return files
    if not os.path.exists(path):
        raise UserError(f"image {path!r} does not exist")
    if not is_image_name(os.path.basename(path)):
        raise UserError(f"expected an image ({', '.join(IMAGE_EXTENSIONS)}) or a folder; received {path!r}")
    return [path]


def check_out(out, inputs):
    """Raises unless `--out` fits the input and loses nothing.

    A .png for one image (not the image itself); for a folder, a folder of
    results (not the input folder, and no two inputs with one result name) or
    a .png grid; and a place this user can write.
    """
    extension = os.path.splitext(out)[1].lower()
    if not os.path.isdir(inputs):
        if extension != ".png":
            raise UserError(f"--out must end in .png for the one image {inputs!r}; received {out!r}")
        if os.path.exists(out) and os.path.samefile(out, inputs):
            raise UserError(f"--out {out!r} is the input image; the result would overwrite it")
        check_writable("--out", out, "file")
        return
    if extension not in ("", ".png"):
        raise UserError(
            f"--out must name a folder (one result per image) or end in .png (a grid); "
            f"received {out!r}"
        )
    if extension == ".png":
        check_writable("--out", out, "file")
        return
    check_writable("--out", out, "folder")
    if os.path.isdir(out) and os.path.samefile(out, inputs):
        raise UserError(
            f"--out {out!r} is the --image folder; the results would overwrite the originals"
        )
    seen = {}
    for path, name in zip(image_files(inputs), result_names(image_files(inputs))):
        if name in seen:
            raise UserError(
                f"{os.path.basename(seen[name])!r} and {os.path.basename(path)!r} would both be "
                f"written as {name!r} in --out; rename one of them"
            )
        seen[name] = path


def _fit(array, size, resize, path, method):
    """`array` `(h, w, C)` at `size` (H, W): as it is, or centre-cropped and resized.

    With `resize`, the training data's own crop and resize, without TensorFlow
    (`keras_ddpm.data.image_files.center_crop_and_resize`, within 2e-6 of the `tf.data`
    loaders').
    """
    if array.shape[:2] == tuple(size):
        return array
    if not resize:
        raise UserError(
            f"{path!r} is {array.shape[1]}x{array.shape[0]} pixels; the model takes "
            f"{size[1]}x{size[0]} (pass --resize to centre-crop and resize it)"
        )
    from keras_ddpm.data.image_files import center_crop_and_resize

    return center_crop_and_resize(array, size, method)


def read_images(files, image_shape, resize=False):
    """float32 `(N, H, W, C)` in [−1, 1] from image files, for a model of `image_shape`."""
    import numpy as np

    from keras_ddpm.data.image_files import decode_image

    height, width, channels = image_shape
    pictures = []
    for path in files:
        try:
            array = decode_image(path, channels)
        except OSError as error:
            raise UserError(f"cannot read image {path!r}: {error}") from None
        pictures.append(_fit(array, (height, width), resize, path, "bilinear"))
    return np.stack(pictures).astype(np.float32)


def check_mask(spec):
    """Raises unless `--mask` is a preset or an existing image file."""
    if spec in MASK_PRESETS:
        return
    if not os.path.isfile(spec):
        raise UserError(
            f"--mask must be an image file (white keeps a pixel, black fills it) or one of "
            f"{', '.join(MASK_PRESETS)} (the part to fill); received {spec!r}"
        )


def read_mask(spec, image_shape, resize=False):
    """float32 `(H, W, 1)` mask, 1 where pixels are kept, from a preset or an image file."""
    import numpy as np
    from PIL import Image

    height, width, _ = image_shape
    if spec in MASK_PRESETS:
        mask = np.ones((height, width), np.float32)
        rows, cols = slice(height // 2, None), slice(width // 2, None)
        filled = {
            "top": (slice(None, height // 2), slice(None)),
            "bottom": (rows, slice(None)),
            "left": (slice(None), slice(None, width // 2)),
            "right": (slice(None), cols),
            "center": (slice(height // 4, height - height // 4), slice(width // 4, width - width // 4)),
        }[spec]
        mask[filled] = 0.0
        return mask[..., None]
    try:
        with Image.open(spec) as opened:
            picture = opened.convert("L")
    except OSError as error:
        raise UserError(f"cannot read mask {spec!r}: {error}") from None
    mask = (np.asarray(picture, np.float32) / 255.0)[..., None]
    return _fit(mask, (height, width), resize, spec, "nearest")


def save_image(picture, path):
    """One image, pixel for pixel, as a PNG (written whole or not at all)."""
    from keras_ddpm import utils

    utils.save_image_grid(picture[None], path, ncols=1, padding=0, scale=1)


def result_names(files):
    """The result file names of input files: their names, as .png."""
    return [os.path.splitext(os.path.basename(path))[0] + ".png" for path in files]


def write_images(images, names, out, ncols=None):
    """Writes results: `names` in folder `out`, or `out.png` (one image, or a grid of `ncols`)."""
    from keras_ddpm import utils

    if out.lower().endswith(".png"):
        if len(images) == 1 and ncols is None:
            save_image(images[0], out)
        else:
            utils.save_image_grid(images, out, ncols=ncols)
        return out
    for name, picture in zip(names, images):
        save_image(picture, os.path.join(out, name))
    return out
