"""Regenerate `keras_ddpm/assets/digits.npz` from scikit-learn's bundled digits.

The package embeds the UCI "Optical Recognition of Handwritten Digits" test set
(1,797 images of 8x8 pixels, integer values 0..16, ten classes) so that a model
can be trained and tested with no download. scikit-learn ships exactly that set;
this script copies it once into a compressed `.npz` file:

- `images`: uint8, shape `(1797, 8, 8)`, values 0..16 (the original counts of
  "on" pixels in each 4x4 block of a 32x32 bitmap), in scikit-learn's order;
- `labels`: uint8, shape `(1797,)`, the digit 0..9 of each image.

scikit-learn is needed only here, never when keras_ddpm runs. Usage:

    python benchmarks/make_digits_asset.py [--output PATH]

The attribution that must travel with the file is in
`keras_ddpm/assets/DIGITS_LICENSE.txt`.
"""

import argparse
import pathlib

import numpy as np

DEFAULT_OUTPUT = (
    pathlib.Path(__file__).resolve().parents[1] / "keras_ddpm" / "assets" / "digits.npz"
)
NUM_IMAGES = 1797


def extract_digits():
    """Return `(images, labels)` as uint8 arrays, checked against the documented set."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = np.asarray(bunch.images)
    targets = np.asarray(bunch.target)
    if pixels.shape != (NUM_IMAGES, 8, 8) or targets.shape != (NUM_IMAGES,):
        raise RuntimeError(
            f"Expected {NUM_IMAGES} images of 8x8 pixels, got images {pixels.shape} "
            f"and labels {targets.shape}."
        )
    if not np.array_equal(pixels, np.round(pixels)) or pixels.min() < 0 or pixels.max() > 16:
        raise RuntimeError("Expected integer pixel values in 0..16.")
    if set(np.unique(targets).tolist()) != set(range(10)):
        raise RuntimeError(f"Expected labels 0..9, got {np.unique(targets)}.")
    return pixels.astype(np.uint8), targets.astype(np.uint8)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=pathlib.Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()

    images, labels = extract_digits()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.output, images=images, labels=labels)
    counts = np.bincount(labels, minlength=10).tolist()
    print(f"Wrote {args.output} ({args.output.stat().st_size} bytes): "
          f"images {images.shape} {images.dtype}, per-class counts {counts}")


if __name__ == "__main__":
    main()
