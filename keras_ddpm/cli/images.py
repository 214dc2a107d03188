"""Images in and out of the editing verbs: one file or a folder, masks, and where results go.

Reading needs only Pillow and NumPy, so the checks that need no model (files
exist, a mask preset is known, --out fits the input) run before TensorFlow
loads; sizes are checked against the model once it is loaded.
"""

import os

from keras_ddpm.cli.common import UserError
from keras_ddpm.cli.common import make_parent
from keras_ddpm.data.specs import IMAGE_EXTENSIONS

# `--mask` presets: the region that is filled (mask 0); the rest is kept.
MASK_PRESETS = ("top", "bottom", "left", "right", "center")


def image_files(path):
    """The image files `path` names: itself, or the images directly in a folder (sorted)."""
    if os.path.isdir(path):
        files = sorted(
            os.path.join(path, name) for name in os.listdir(path)
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)
        )
        if not files:
            raise UserError(f"folder {path!r} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        return files
    if not os.path.exists(path):
        raise UserError(f"image {path!r} does not exist")
    if not path.lower().endswith(IMAGE_EXTENSIONS):
        raise UserError(f"expected an image ({', '.join(IMAGE_EXTENSIONS)}) or a folder; received {path!r}")
    return [path]


def check_out(out, inputs):
    """Raises unless `--out` fits the input: a .png for one image; a folder or a .png grid for a folder."""
    extension = os.path.splitext(out)[1].lower()
    if not os.path.isdir(inputs):
        if extension != ".png":
            raise UserError(f"--out must end in .png for the one image {inputs!r}; received {out!r}")
        return
    if extension not in ("", ".png"):
        raise UserError(
            f"--out must name a folder (one result per image) or end in .png (a grid); "
            f"received {out!r}"
        )
    if extension == "" and os.path.isfile(out):
        raise UserError(f"--out {out!r} is a file; a folder of results needs a folder name")


def _fit(picture, size, resize, path, resample):
    """`picture` at `size` (W, H): as it is, or centre-cropped and resized with `resize`."""
    if picture.size == size:
        return picture
    if not resize:
        raise UserError(
            f"{path!r} is {picture.size[0]}x{picture.size[1]} pixels; the model takes "
            f"{size[0]}x{size[1]} (pass --resize to centre-crop and resize it)"
        )
    width, height = picture.size
    scale = min(width / size[0], height / size[1])
    crop_w, crop_h = round(size[0] * scale), round(size[1] * scale)
    left, top = (width - crop_w) // 2, (height - crop_h) // 2
    return picture.crop((left, top, left + crop_w, top + crop_h)).resize(size, resample)


def read_images(files, image_shape, resize=False):
    """float32 `(N, H, W, C)` in [−1, 1] from image files, for a model of `image_shape`."""
    import numpy as np
    from PIL import Image

    height, width, channels = image_shape
    pictures = []
    for path in files:
        try:
            with Image.open(path) as opened:
                picture = opened.convert("L" if channels == 1 else "RGB")
        except OSError as error:
            raise UserError(f"cannot read image {path!r}: {error}") from None
        picture = _fit(picture, (width, height), resize, path, Image.Resampling.BICUBIC)
        array = np.asarray(picture, np.float32).reshape(height, width, channels)
        pictures.append(array / 127.5 - 1.0)
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
    picture = _fit(picture, (width, height), resize, spec, Image.Resampling.NEAREST)
    return (np.asarray(picture, np.float32) / 255.0)[..., None]


def write_images(images, files, out, ncols=None):
    """Writes results: one .png per input into folder `out`, or `out.png` (one image or a grid)."""
    from PIL import Image

    from keras_ddpm import utils

    if out.lower().endswith(".png"):
        if len(images) == 1 and ncols is None:
            make_parent(out)
            picture = utils.to_uint8(images[0])
            picture = picture[..., 0] if picture.shape[-1] == 1 else picture
            Image.fromarray(picture).save(out)
        else:
            utils.save_image_grid(images, out, ncols=ncols)
        return out
    os.makedirs(out, exist_ok=True)
    for path, picture in zip(files, utils.to_uint8(images)):
        picture = picture[..., 0] if picture.shape[-1] == 1 else picture
        name = os.path.splitext(os.path.basename(path))[0] + ".png"
        Image.fromarray(picture).save(os.path.join(out, name))
    return out
