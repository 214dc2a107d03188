"""Feature extractors for KID and FID, and the metric base class they share.

A `FeatureExtractor` maps [-1, 1] images to feature vectors; one instance can
serve several metrics, so that `keras-ddpm evaluate` loads the network and
extracts each image's features once for both KID and FID (`update_features`).
The extractors by name (`FEATURE_EXTRACTORS`):

- `"inception_v3"` (the default): `keras.applications.InceptionV3`; its FIDs
  are *not* comparable with published ones.
- `"inception_2015"`: the reference graph of the TTUR FID code
  (`Inception2015`), the one published FIDs use.
- `"pixels"`: the flattened pixels.

Everything but `"inception_2015"` (a TensorFlow graph, TensorFlow installed) runs on every
Keras backend: the images are prepared with `keras.ops`.
"""

import os
import sys

import keras
import numpy as np
from keras import ops

from keras_ddpm import backend
from keras_ddpm import checks
from keras_ddpm.backend import internals
from keras_ddpm.metrics import FEATURE_EXTRACTORS

INCEPTION_SIZE = 299
GRAPH_SUFFIXES = (".pb", ".tgz", ".tar.gz")


def inception_v3_extractor(weights="imagenet"):
    """`keras.applications.InceptionV3` → 2048-d average-pool features (299x299 inputs).

    Not the network of published FIDs: Keras' ImageNet weights and resize
    differ from the 2015 graph of the TTUR code, and FIDs move by several
    points; use `"inception_2015"` to compare with papers.

    Args:
        weights: `"imagenet"` (downloaded by Keras on first use into
            `~/.keras/models/`) or the path of a local copy of
            `inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5`.
            Defaults to `"imagenet"`.

    Raises:
        ValueError: the download failed (one line naming the URL and the
            offline alternatives).
    """
    try:
        return keras.applications.InceptionV3(
            include_top=False,
            weights=weights,
            input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3),
            pooling="avg",
        )
    except Exception as error:
        # Keras raises a bare Exception when the download fails.
        download_failed = type(error) is Exception or isinstance(error, OSError)
        if weights != "imagenet" or not download_failed:
            raise
        raise ValueError(
            f"Cannot download the InceptionV3 weights from {internals.inception_v3_weights_url()} "
            f"({checks.first_line(error)}). Offline? Download that file elsewhere and pass "
            "feature_extractor=keras_ddpm.metrics.inception_v3_extractor(weights='/path/to/"
            "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5') (or copy it into "
            "~/.keras/models/), or use feature_extractor='inception_2015' with a local graph, "
            "or 'pixels'."
        ) from None


def _is_graph_path(value):
    if isinstance(value, os.PathLike):
        return True
    return isinstance(value, str) and (value.endswith(GRAPH_SUFFIXES) or os.path.exists(value))


def _inception_2015(*args):
    """`Inception2015(*args)`, TensorFlow's graph: a `ValueError` where TensorFlow is missing."""
    backend.require_installed("tensorflow", "feature_extractor='inception_2015'")
    from keras_ddpm.metrics.inception_2015 import Inception2015

    return Inception2015(*args)


def _is_inception_2015(extractor):
    """Whether `extractor` is an `Inception2015` (none exists before its module loads)."""
    module = sys.modules.get("keras_ddpm.metrics.inception_2015")
    return module is not None and isinstance(extractor, module.Inception2015)


def _resolve_extractor(feature_extractor):
    """(the extractor, its name) for a `feature_extractor` argument."""
    if feature_extractor is None or feature_extractor == "inception_v3":
        return inception_v3_extractor(), "inception_v3"
    if feature_extractor == "inception_2015":
        return _inception_2015(), "inception_2015"
    if feature_extractor == "pixels":
        return None, "pixels"
    if _is_inception_2015(feature_extractor):
        return feature_extractor, "inception_2015"
    if _is_graph_path(feature_extractor):
        return _inception_2015(feature_extractor), "inception_2015"
    if isinstance(feature_extractor, str):
        raise ValueError(
            f"Unknown feature_extractor={feature_extractor!r}. Expected None, one of "
            f"{list(FEATURE_EXTRACTORS)}, a path to classify_image_graph_def.pb or "
            "inception-2015-12-05.tgz, or a keras.Model."
        )
    if not callable(feature_extractor):
        raise TypeError(
            "`feature_extractor` must be None, a name, a path to the Inception graph or a "
            f"keras.Model mapping images to feature vectors. Received: {feature_extractor!r}."
        )
    return feature_extractor, None


def _as_images(name, images):
    images = np.asarray(images.numpy() if hasattr(images, "numpy") else images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"`{name}` must be a batch of images shaped (N, H, W, 1) or (N, H, W, 3) in "
            f"[-1, 1]. Received shape {images.shape}."
        )
    images = images.astype(np.float32)
    # The extractors clip to [-1, 1] (unclipped samples overshoot a little); beyond ±2 the
    # images are on another scale (0..255 pixels), and their features would be meaningless.
    checks.image_values(name, images, hint=" Map 0..255 pixels with x / 127.5 - 1.", tolerance=1.0)
    return images


class FeatureExtractor:
    """[-1, 1] images → float64 feature vectors, for `KID` and `FID`.

    Args:
        feature_extractor: `None`/`"inception_v3"` (keras.applications
            InceptionV3, downloads ImageNet weights; not comparable with
            published FIDs), `"inception_2015"` (the TTUR graph of published
            FIDs, downloaded once) or a path to its
            `classify_image_graph_def.pb`/`inception-2015-12-05.tgz` or an
            `Inception2015`, `"pixels"`, or a `keras.Model` mapping images to
            feature vectors (see `keras_ddpm.metrics`). Defaults to `None`.
        input_range: the (low, high) range the extractor expects; [-1, 1]
            images are mapped linearly onto it. Not for `inception_2015`,
            which quantises to 0..255 pixels itself. Defaults to `None`
            ((-1, 1)).
        batch_size: images per extractor call. Defaults to `64`.

    Example:

    >>> extractor = FeatureExtractor("pixels")
    >>> extractor.features(images).shape   # (N, H·W·C)
    """

    def __init__(self, feature_extractor=None, input_range=None, batch_size=64):
        self.extractor, self.name = _resolve_extractor(feature_extractor)
        if _is_inception_2015(self.extractor) and input_range is not None:
            raise ValueError(
                "`input_range` does not apply to inception_2015, which takes [-1, 1] images and "
                f"quantises them to 0..255 pixels itself. Received: input_range={input_range!r}."
            )
        input_range = input_range or (-1.0, 1.0)
        if len(input_range) != 2 or not input_range[0] < input_range[1]:
            raise ValueError(
                "`input_range` must be a (low, high) pair with low < high. "
                f"Received: {input_range!r}."
            )
        self.input_range = tuple(float(v) for v in input_range)
        self.batch_size = checks.positive_int("batch_size", batch_size)

    def _prepare(self, images):
        """[-1, 1] images → the extractor's size, channels and range."""
        if _is_inception_2015(self.extractor):
            return images  # It quantises, repeats channels and resizes (in the graph) itself.
        inputs = getattr(self.extractor, "inputs", None)
        if inputs:
            height, width, channels = tuple(inputs[0].shape[1:4])
            if height is not None and width is not None and images.shape[1:3] != (height, width):
                images = ops.image.resize(
                    images, (height, width), interpolation="bilinear", antialias=True
                )
            if channels == 3 and images.shape[-1] == 1:
                images = ops.repeat(images, 3, axis=-1)
        low, high = self.input_range
        return (ops.convert_to_tensor(images) + 1.0) * ((high - low) / 2.0) + low

    def features(self, images):
        """float64 NumPy features `(N, d)` of [-1, 1] images `(N, H, W, C)`."""
        images = _as_images("images", images)
        outputs = []
        for begin in range(0, len(images), self.batch_size):
            batch = self._prepare(images[begin : begin + self.batch_size])
            if self.extractor is None:
                feats = ops.reshape(batch, (batch.shape[0], -1))
            else:
                feats = self.extractor(batch, training=False)
            feats = np.asarray(keras.ops.convert_to_numpy(feats), dtype=np.float64)
            outputs.append(feats.reshape(len(feats), -1))
        if not outputs:
            return np.zeros((0, 0))
        return np.concatenate(outputs, axis=0)


class FeatureMetric(keras.metrics.Metric):
    """What `KID` and `FID` share: a `FeatureExtractor` and the two sides' updates.

    `feature_extractor` may also be a `FeatureExtractor` instance, shared with
    other metrics (then `input_range` and `batch_size` are its own).
    """

    def __init__(
        self, feature_extractor=None, input_range=None, batch_size=64, name=None, **kwargs
    ):
        super().__init__(name=name, **kwargs)
        if isinstance(feature_extractor, FeatureExtractor):
            self.feature_extractor = feature_extractor
        else:
            self.feature_extractor = FeatureExtractor(feature_extractor, input_range, batch_size)
        self.extractor = self.feature_extractor.extractor
        self.input_range = self.feature_extractor.input_range
        self.batch_size = self.feature_extractor.batch_size

    def features(self, images):
        """float64 NumPy features `(N, d)` of [-1, 1] images `(N, H, W, C)`."""
        return self.feature_extractor.features(images)

    def update_state(self, real_images=None, generated_images=None, sample_weight=None):
        """Adds a batch of real and/or generated [-1, 1] images `(N, H, W, C)`."""
        if sample_weight is not None:
            raise ValueError(f"{type(self).__name__} does not support `sample_weight`.")
        self.update_features(
            None if real_images is None else self.features(real_images),
            None if generated_images is None else self.features(generated_images),
        )

    def update_features(self, real=None, generated=None):
        """Adds features `(N, d)` already extracted (by the same extractor) for either side."""
        if real is not None:
            self._add("real", np.asarray(real, np.float64))
        if generated is not None:
            self._add("generated", np.asarray(generated, np.float64))
