"""Feature extractors for KID and FID, and the metric base class they share.

A `FeatureExtractor` maps [-1, 1] images to feature vectors; one instance can
serve several metrics, so that `keras-ddpm evaluate` loads InceptionV3 and
extracts each image's features once for both KID and FID (`update_features`).
"""

import keras
import numpy as np
import tensorflow as tf

from keras_ddpm import checks

FEATURE_EXTRACTORS = ("inception_v3", "pixels")
INCEPTION_SIZE = 299


def inception_v3_extractor():
    """InceptionV3 (ImageNet weights, downloaded on first use) → 2048-d pool features."""
    return keras.applications.InceptionV3(
        include_top=False,
        weights="imagenet",
        input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3),
        pooling="avg",
    )


def _resolve_extractor(feature_extractor):
    if feature_extractor is None or feature_extractor == "inception_v3":
        return inception_v3_extractor(), (-1.0, 1.0)
    if feature_extractor == "pixels":
        return None, (-1.0, 1.0)
    if isinstance(feature_extractor, str):
        raise ValueError(
            f"Unknown feature_extractor={feature_extractor!r}. Expected None, one of "
            f"{list(FEATURE_EXTRACTORS)} or a keras.Model."
        )
    if not callable(feature_extractor):
        raise TypeError(
            "`feature_extractor` must be None, a name or a keras.Model mapping images to "
            f"feature vectors. Received: {feature_extractor!r}."
        )
    return feature_extractor, None


def _as_images(name, images):
    images = np.asarray(images.numpy() if hasattr(images, "numpy") else images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"`{name}` must be a batch of images shaped (N, H, W, 1) or (N, H, W, 3) in "
            f"[-1, 1]. Received shape {images.shape}."
        )
    return images.astype(np.float32)


class FeatureExtractor:
    """[-1, 1] images → float64 feature vectors, for `KID` and `FID`.

    Args:
        feature_extractor: `None`/`"inception_v3"` (downloads ImageNet
            weights), `"pixels"`, or a `keras.Model` mapping images to feature
            vectors (see `keras_ddpm.metrics`). Defaults to `None`.
        input_range: the (low, high) range the extractor expects; [-1, 1]
            images are mapped linearly onto it. Defaults to `None` ((-1, 1)).
        batch_size: images per extractor call. Defaults to `64`.

    Example:

    >>> extractor = FeatureExtractor("pixels")
    >>> extractor.features(images).shape   # (N, H·W·C)
    """

    def __init__(self, feature_extractor=None, input_range=None, batch_size=64):
        self.name = feature_extractor if isinstance(feature_extractor, str) else None
        self.extractor, default_range = _resolve_extractor(feature_extractor)
        input_range = input_range or default_range or (-1.0, 1.0)
        if len(input_range) != 2 or not input_range[0] < input_range[1]:
            raise ValueError(
                "`input_range` must be a (low, high) pair with low < high. "
                f"Received: {input_range!r}."
            )
        self.input_range = tuple(float(v) for v in input_range)
        self.batch_size = checks.positive_int("batch_size", batch_size)

    def _prepare(self, images):
        """[-1, 1] images → the extractor's size, channels and range."""
        inputs = getattr(self.extractor, "inputs", None)
        if inputs:
            height, width, channels = tuple(inputs[0].shape[1:4])
            if height is not None and width is not None and images.shape[1:3] != (height, width):
                images = tf.image.resize(images, (height, width), method="bilinear", antialias=True)
            if channels == 3 and images.shape[-1] == 1:
                images = tf.repeat(images, 3, axis=-1)
        low, high = self.input_range
        return (tf.convert_to_tensor(images) + 1.0) * ((high - low) / 2.0) + low

    def features(self, images):
        """float64 NumPy features `(N, d)` of [-1, 1] images `(N, H, W, C)`."""
        images = _as_images("images", images)
        outputs = []
        for begin in range(0, len(images), self.batch_size):
            batch = self._prepare(images[begin : begin + self.batch_size])
            if self.extractor is None:
                feats = tf.reshape(batch, (tf.shape(batch)[0], -1))
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
