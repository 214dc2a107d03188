"""Sample-quality and likelihood metrics: KID, FID and bits per dimension.

`KID` and `FID` compare the feature statistics of real and generated images.
The features come from a `feature_extractor`:

- `None` or `"inception_v3"` (the default): the 2048-d average-pool features
  of `keras.applications.InceptionV3` with ImageNet weights, as in the
  papers. The weights (~90 MB) are downloaded by Keras on first use into
  `~/.keras/models`. Images are resized to 299x299 (bilinear) and grayscale
  images repeated to three channels; InceptionV3 expects [-1, 1], the range
  keras_ddpm works in.
- `"pixels"`: the flattened pixels themselves (H·W·C features, no download).
  Cheap and deterministic, for tests and small images such as the 8x8
  digits; not comparable with published numbers.
- any `keras.Model` (or callable) mapping a batch of images to a batch of
  feature vectors. When it declares an input shape, images are resized to
  its height and width and grayscale images repeated to three channels if it
  takes three; `input_range` maps [-1, 1] to the range it expects.

Both metrics run eagerly on NumPy state (call them outside compiled
functions), and accept either side alone in `update_state`, so real-image
statistics can be gathered once and generated ones batch by batch.

`bits_per_dim` evaluates the variational bound of Ho et al. (2020, eq. 5), the
negative log-likelihood bound reported in their table 2.

References:
    - Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to
      a Local Nash Equilibrium", NeurIPS 2017 (FID).
    - Bińkowski et al., "Demystifying MMD GANs", ICLR 2018 (KID).
    - Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models",
      NeurIPS 2020 (eq. 5 and appendix: bits/dim).
"""

import math

import keras
import numpy as np
import tensorflow as tf

from keras_ddpm import objectives
from keras_ddpm import samplers

FEATURE_EXTRACTORS = ("inception_v3", "pixels")
INCEPTION_SIZE = 299


# ----------------------------------------------------------------------------
# 1. Features
# ----------------------------------------------------------------------------
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


class _FeatureMetric(keras.metrics.Metric):
    """Feature extraction shared by `KID` and `FID`."""

    def __init__(
        self, feature_extractor=None, input_range=None, batch_size=64, name=None, **kwargs
    ):
        super().__init__(name=name, **kwargs)
        self.extractor, default_range = _resolve_extractor(feature_extractor)
        input_range = input_range or default_range or (-1.0, 1.0)
        if len(input_range) != 2 or not input_range[0] < input_range[1]:
            raise ValueError(
                "`input_range` must be a (low, high) pair with low < high. "
                f"Received: {input_range!r}."
            )
        self.input_range = tuple(float(v) for v in input_range)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(
                f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}."
            )
        self.batch_size = batch_size

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

    def update_state(self, real_images=None, generated_images=None, sample_weight=None):
        """Adds a batch of real and/or generated [-1, 1] images `(N, H, W, C)`."""
        if sample_weight is not None:
            raise ValueError(f"{type(self).__name__} does not support `sample_weight`.")
        if real_images is not None:
            self._add("real", self.features(real_images))
        if generated_images is not None:
            self._add("generated", self.features(generated_images))


# ----------------------------------------------------------------------------
# 2. FID
# ----------------------------------------------------------------------------
def frechet_distance(mean1, cov1, mean2, cov2):
    """‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2(Σ1Σ2)^½) between two Gaussians, in float64.

    Tr((Σ1Σ2)^½) is the sum of the square roots of the eigenvalues of the
    symmetric positive semi-definite matrix Σ1^½ Σ2 Σ1^½ (which has the same
    eigenvalues as Σ1Σ2), so no non-symmetric matrix square root is needed.
    """
    mean1, mean2 = np.asarray(mean1, np.float64), np.asarray(mean2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    values, vectors = np.linalg.eigh((cov1 + cov1.T) / 2)
    root1 = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    product = root1 @ cov2 @ root1
    eigenvalues = np.linalg.eigvalsh((product + product.T) / 2)
    trace_root = np.sqrt(np.clip(eigenvalues, 0.0, None)).sum()
    return float(np.sum((mean1 - mean2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_root)


class FID(_FeatureMetric):
    """Fréchet Inception Distance between real and generated images.

    Fits a Gaussian to the features of each set (running sums and sums of
    outer products in float64) and returns the Fréchet distance between them,
    ‖μ_r − μ_g‖² + Tr(Σ_r + Σ_g − 2(Σ_rΣ_g)^½). Lower is better; identical
    sets give 0. FID is biased for small sets: compare values computed from
    the same number of images (50,000 in the literature).

    Args:
        feature_extractor: `None`/`"inception_v3"` (downloads ImageNet
            weights), `"pixels"`, or a `keras.Model` mapping images to feature
            vectors (see the module docstring). Defaults to `None`.
        input_range: the (low, high) range the extractor expects; [-1, 1]
            images are mapped linearly onto it. Defaults to `None` ((-1, 1)).
        batch_size: images per extractor call. Defaults to `64`.
        name: metric name. Defaults to `"fid"`.

    Example:

    ```python
    fid = keras_ddpm.metrics.FID()
    for real in dataset.take(8):
        fid.update_state(real, model.generate(len(real)))
    print(float(fid.result()))
    ```

    References:
        - Heusel et al., NeurIPS 2017 (FID).
    """

    def __init__(
        self, feature_extractor=None, input_range=None, batch_size=64, name="fid", **kwargs
    ):
        super().__init__(feature_extractor, input_range, batch_size, name=name, **kwargs)
        self.reset_state()

    def reset_state(self):
        self._stats = {}

    def _add(self, side, feats):
        if len(feats) == 0:
            return
        count, total, outer = self._stats.get(side, (0, 0.0, 0.0))
        self._stats[side] = (count + len(feats), total + feats.sum(axis=0), outer + feats.T @ feats)

    def statistics(self, side):
        """(mean, covariance) of the `"real"` or `"generated"` features so far."""
        if side not in self._stats or self._stats[side][0] < 2:
            raise ValueError(
                f"FID needs at least 2 {side} images; received {self._stats.get(side, (0,))[0]}."
            )
        count, total, outer = self._stats[side]
        mean = total / count
        covariance = (outer - count * np.outer(mean, mean)) / (count - 1)
        return mean, covariance

    def result(self):
        real_mean, real_cov = self.statistics("real")
        gen_mean, gen_cov = self.statistics("generated")
        return frechet_distance(real_mean, real_cov, gen_mean, gen_cov)


# ----------------------------------------------------------------------------
# 3. KID
# ----------------------------------------------------------------------------
def polynomial_mmd2(x, y):
    """Unbiased MMD² between feature sets `x` `(m, d)` and `y` `(n, d)`.

    Kernel k(a, b) = (aᵀb / d + 1)³; the within-set sums leave out the
    diagonal (Bińkowski et al. 2018, eq. 2 with the cubic kernel).
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    m, n, d = len(x), len(y), x.shape[1]

    def kernel(a, b):
        k = a @ b.T / d + 1.0
        return k * k * k  # Faster than k ** 3.

    k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
    return float(
        (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
        + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
        - 2.0 * k_xy.mean()
    )


class KID(_FeatureMetric):
    """Kernel Inception Distance between real and generated images.

    The unbiased estimator of the squared maximum mean discrepancy (MMD²)
    with the cubic polynomial kernel k(x, y) = (xᵀy/d + 1)³, averaged over
    `num_subsets` random subsets of `subset_size` features from each set
    (drawn without replacement, reproducibly from `seed`). Unlike FID it is
    unbiased, so it can be slightly negative when the sets match; identical
    distributions give 0 on average. The standard deviation over subsets is
    `result_std()`.

    Args:
        feature_extractor: `None`/`"inception_v3"` (downloads ImageNet
            weights), `"pixels"`, or a `keras.Model` mapping images to feature
            vectors (see the module docstring). Defaults to `None`.
        num_subsets: subsets averaged over. Defaults to `100`.
        subset_size: features per subset, reduced to the size of the smaller
            set when that has fewer. Defaults to `1000`.
        seed: seed of the subset draws. Defaults to `0`.
        input_range: the (low, high) range the extractor expects.
            Defaults to `None` ((-1, 1)).
        batch_size: images per extractor call. Defaults to `64`.
        name: metric name. Defaults to `"kid"`.

    Example:

    ```python
    kid = keras_ddpm.metrics.KID(feature_extractor="pixels", subset_size=100)
    kid.update_state(real_images, model.generate(len(real_images)))
    print(float(kid.result()))
    ```

    References:
        - Bińkowski et al., "Demystifying MMD GANs", ICLR 2018.
    """

    def __init__(
        self,
        feature_extractor=None,
        num_subsets=100,
        subset_size=1000,
        seed=0,
        input_range=None,
        batch_size=64,
        name="kid",
        **kwargs,
    ):
        super().__init__(feature_extractor, input_range, batch_size, name=name, **kwargs)
        for key, value in (("num_subsets", num_subsets), ("subset_size", subset_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{key}` must be a positive integer. Received: {key}={value!r}.")
        if subset_size < 2:
            raise ValueError(
                f"`subset_size` must be at least 2. Received: subset_size={subset_size}."
            )
        self.num_subsets = num_subsets
        self.subset_size = subset_size
        self.seed = seed
        self.reset_state()

    def reset_state(self):
        self._features = {"real": [], "generated": []}

    def _add(self, side, feats):
        if len(feats):
            self._features[side].append(feats)

    def _subset_values(self):
        real, generated = (
            np.concatenate(self._features[s]) if self._features[s] else np.zeros((0, 0))
            for s in ("real", "generated")
        )
        size = min(self.subset_size, len(real), len(generated))
        if size < 2:
            raise ValueError(
                f"KID needs at least 2 real and 2 generated images; received {len(real)} and "
                f"{len(generated)}."
            )
        rng = np.random.default_rng(self.seed)
        values = []
        for _ in range(self.num_subsets):
            x = real[rng.choice(len(real), size, replace=False)]
            y = generated[rng.choice(len(generated), size, replace=False)]
            values.append(polynomial_mmd2(x, y))
        return np.array(values)

    def result(self):
        return float(self._subset_values().mean())

    def result_std(self):
        """Standard deviation of the MMD² estimates over the subsets."""
        return float(self._subset_values().std())


# ----------------------------------------------------------------------------
# 4. Bits per dimension (the variational bound)
# ----------------------------------------------------------------------------
def _normal_kl(mean1, log_var1, mean2, log_var2):
    """KL(N(mean1, e^log_var1) ‖ N(mean2, e^log_var2)), elementwise, in nats."""
    return 0.5 * (
        log_var2
        - log_var1
        + tf.exp(log_var1 - log_var2)
        + tf.square(mean1 - mean2) * tf.exp(-log_var2)
        - 1.0
    )


def _standard_normal_cdf(x):
    return 0.5 * (1.0 + tf.math.erf(x / math.sqrt(2.0)))


def discretized_gaussian_log_likelihood(x, mean, log_scale):
    """log P(x) of 8-bit data in [−1, 1] under N(mean, e^{2·log_scale}), per element.

    Each of the 256 values owns a bin of width 2/255; the edge bins extend to
    ±∞ (Ho et al. 2020, eq. 13).
    """
    centered = x - mean
    inv_std = tf.exp(-log_scale)
    cdf_plus = _standard_normal_cdf(inv_std * (centered + 1.0 / 255.0))
    cdf_min = _standard_normal_cdf(inv_std * (centered - 1.0 / 255.0))
    log_cdf_plus = tf.math.log(tf.maximum(cdf_plus, 1e-12))
    log_one_minus_cdf_min = tf.math.log(tf.maximum(1.0 - cdf_min, 1e-12))
    log_delta = tf.math.log(tf.maximum(cdf_plus - cdf_min, 1e-12))
    return tf.where(x < -0.999, log_cdf_plus, tf.where(x > 0.999, log_one_minus_cdf_min, log_delta))


def _bound_function(model, use_ema):
    """A compiled (x0, t, noise) → per-image L_t in nats, for one timestep index t."""
    schedule = model.schedule
    network = model.ema_network if use_ema and model.ema_network is not None else model.network
    table = lambda values: tf.constant(np.asarray(values), tf.float64)  # noqa: E731
    ac = table(schedule.alphas_cumprod)
    coef1, coef2 = table(schedule.posterior_mean_coef1), table(schedule.posterior_mean_coef2)
    posterior_log_var = table(schedule.posterior_log_variance_clipped)
    model_log_var = table(samplers.log_variance_table(schedule, model.variance))

    @tf.function(reduce_retracing=True)
    def term(x0, t, noise):
        batch = tf.shape(x0)[0]
        a, sigma = tf.sqrt(ac[t]), tf.sqrt(1.0 - ac[t])
        x0_64 = tf.cast(x0, tf.float64)
        x_t = a * x0_64 + sigma * tf.cast(noise, tf.float64)
        prediction = network([tf.cast(x_t, tf.float32), tf.fill([batch], t)], training=False)
        x0_hat = objectives.to_x0(
            tf.cast(prediction, tf.float64), x_t, a, sigma, model.prediction_type
        )
        model_mean = coef1[t] * x0_hat + coef2[t] * x_t
        axes = tf.range(1, tf.rank(x0))
        if t == 0:
            # L_0 = −log p(x_0 | x_1): the discretised Gaussian decoder.
            log_likelihood = discretized_gaussian_log_likelihood(
                x0_64, model_mean, 0.5 * model_log_var[0]
            )
            return -tf.reduce_sum(log_likelihood, axes)
        # L_{t−1} = KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t)).
        true_mean = coef1[t] * x0_64 + coef2[t] * x_t
        kl = _normal_kl(true_mean, posterior_log_var[t], model_mean, model_log_var[t])
        return tf.reduce_sum(kl, axes)

    return term


def variational_bound_terms(model, images, seed=0, use_ema=True):
    """Every term of the variational bound (Ho et al. 2020, eq. 5) for a batch, in nats.

    Each diffusion term uses one draw of x_t ~ q(x_t | x_0), as the authors'
    evaluation does; the prior term is exact.

    Args:
        model: a `keras_ddpm.DDPM`.
        images: float images in [−1, 1], `(B, H, W, C)` (8-bit data for the
            decoder term to be a likelihood).
        seed: int, seed of the noise. Defaults to `0`.
        use_ema: evaluate the EMA weights when the model keeps them.
            Defaults to `True`.

    Returns:
        A dict of float64 NumPy arrays: `"prior"` `(B,)`, the prior term
        L_T = KL(q(x_T | x_0) ‖ N(0, I)); `"terms"` `(B, T)`, where column 0 is
        the decoder term L_0 = −log p_θ(x_0 | x_1) and column i ≥ 1 is the KL
        term of timestep index i (the paper's L_i); `"total"` `(B,)`, their sum.
    """
    x0 = tf.convert_to_tensor(_as_images("images", images))
    schedule = model.schedule
    term = _bound_function(model, use_ema)
    columns = []
    for t in range(schedule.timesteps):
        noise = tf.random.stateless_normal(tf.shape(x0), seed=[seed, t])
        columns.append(term(x0, tf.constant(t), noise).numpy())
    terms = np.stack(columns, axis=1)
    ac_last = float(schedule.alphas_cumprod[-1])
    x0_64 = tf.cast(x0, tf.float64)
    prior = _normal_kl(
        math.sqrt(ac_last) * x0_64,
        tf.constant(math.log(1.0 - ac_last), tf.float64),
        tf.zeros_like(x0_64),
        tf.constant(0.0, tf.float64),
    )
    prior = tf.reduce_sum(prior, axis=tf.range(1, tf.rank(x0))).numpy()
    return {"prior": prior, "terms": terms, "total": prior + terms.sum(axis=1)}


def bits_per_dim(model, dataset, num_images=None, seed=0, use_ema=True, verbose=1):
    """The variational bound on −log p(x_0) in bits per dimension (Ho et al. 2020, eq. 5).

    L = L_T + Σ_{t>1} L_{t−1} + L_0, with the prior KL L_T, the Gaussian KLs
    L_{t−1} between the forward posterior and the model's reverse step
    (one x_t draw per image and timestep, as in the authors' evaluation), and
    the discretised Gaussian decoder L_0 on 256 bins over [−1, 1]; divided by
    the number of dimensions H·W·C and by ln 2. It costs T network calls per
    batch. The value is a likelihood bound for 8-bit data (pixels on the
    256-level grid of [−1, 1]). Ho et al. report 3.70 (≤ 3.75) bits/dim on the
    CIFAR-10 test set.

    Args:
        model: a `keras_ddpm.DDPM`.
        dataset: a `tf.data.Dataset` of [−1, 1] image batches (or
            `(images, labels)`), or a NumPy array of images `(N, H, W, C)`.
        num_images: evaluate at most this many images. Defaults to `None`
            (all of them; a dataset must then be finite).
        seed: int, seed of the noise. Defaults to `0`.
        use_ema: evaluate the EMA weights. Defaults to `True`.
        verbose: `0` silent, `1` a progress bar over images. Defaults to
            `1`.

    Returns:
        The mean bound over the images, in bits per dimension (a float).

    Example:

    ```python
    test = keras_ddpm.data.load_tfds("cifar10", split="test", shuffle=False)
    print(keras_ddpm.metrics.bits_per_dim(model, test, num_images=1000))
    ```

    References:
        - Ho, Jain & Abbeel, NeurIPS 2020 (eq. 5, table 2).
    """
    if num_images is not None and (
        isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1
    ):
        raise ValueError(
            f"`num_images` must be a positive integer or None. Received: num_images={num_images!r}."
        )
    target = num_images
    if isinstance(dataset, tf.data.Dataset):
        batches = (b[0] if isinstance(b, (tuple, list)) else b for b in dataset)
    else:
        array = _as_images("dataset", dataset)
        batches = iter([array])
        target = len(array) if num_images is None else min(num_images, len(array))
    progress = keras.utils.Progbar(target, unit_name="image") if verbose else None
    totals, dims, seen = [], None, 0
    for index, batch in enumerate(batches):
        batch = np.asarray(batch, np.float32)
        if num_images is not None:
            batch = batch[: num_images - seen]
        if len(batch) == 0:
            break
        dims = int(np.prod(batch.shape[1:]))
        totals.append(
            variational_bound_terms(model, batch, seed=seed + index, use_ema=use_ema)["total"]
        )
        seen += len(batch)
        if progress is not None:
            progress.update(seen)
        if num_images is not None and seen >= num_images:
            break
    if not totals:
        raise ValueError("`dataset` holds no images.")
    return float(np.concatenate(totals).mean() / (dims * math.log(2.0)))
