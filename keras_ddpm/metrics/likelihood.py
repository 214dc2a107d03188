"""The variational bound of a DDPM (Ho et al. 2020, eq. 5) and bits per dimension.

References:
    - Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models",
      NeurIPS 2020 (eq. 5, eq. 13, table 2).
"""

import math

import keras
import numpy as np
import tensorflow as tf

from keras_ddpm import backend
from keras_ddpm import checks
from keras_ddpm import objectives
from keras_ddpm.backend.graph_lifetime import GraphReleasingFunction
from keras_ddpm.metrics.features import _as_images


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


def _bound_function(process):
    """A compiled (x0, t, noise[, labels]) → per-image L_t in nats, for one timestep index t.

    The network is reached only through `process.denoiser`, the call that
    sampling uses, so a class-conditional model is evaluated with its labels.
    t is an int32 scalar tensor: one trace serves every timestep.
    """
    schedule = process.schedule

    @tf.function(reduce_retracing=True)
    def term(x0, t, noise, labels=None):
        x0 = tf.cast(x0, tf.float64)
        ndim = len(x0.shape)
        t_batch = tf.fill(tf.shape(x0)[:1], t)
        axes = tf.range(1, ndim)
        x_t = schedule.add_noise(x0, noise, t_batch, dtype="float64")
        prediction = process.denoiser(labels)(tf.cast(x_t, tf.float32), t_batch)
        signal, sigma = schedule.signal_and_noise_rates(t_batch, ndim, "float64")
        x0_hat = objectives.to_x0(
            tf.cast(prediction, tf.float64), x_t, signal, sigma, process.prediction_type
        )
        # The forward posterior of the step t → t − 1 and the model's reverse step.
        _, coef_x0, coef_xt, posterior_variance = schedule.posterior(t, t - 1)
        model_mean = coef_x0 * x0_hat + coef_xt * x_t
        model_log_var = tf.math.log(schedule.reverse_variance(t, t - 1, process.variance))
        if t == 0:
            # L_0 = −log p(x_0 | x_1): the discretised Gaussian decoder.
            log_likelihood = discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_log_var)
            return -tf.reduce_sum(log_likelihood, axes)
        # L_{t−1} = KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t)).
        true_mean = coef_x0 * x0 + coef_xt * x_t
        kl = _normal_kl(true_mean, tf.math.log(posterior_variance), model_mean, model_log_var)
        return tf.reduce_sum(kl, axes)

    return GraphReleasingFunction(term)  # the trace is freed with `term`


def variational_bound_terms(model, images, seed=0, use_ema=True, labels=None):
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
        labels: for a class-conditional model, the images' int labels `(B,)`
            (the bound of p(x | c)); `None` evaluates the unconditional
            prediction (the null label). Defaults to `None`.

    Returns:
        A dict of float64 NumPy arrays: `"prior"` `(B,)`, the prior term
        L_T = KL(q(x_T | x_0) ‖ N(0, I)); `"terms"` `(B, T)`, where column 0 is
        the decoder term L_0 = −log p_θ(x_0 | x_1) and column i ≥ 1 is the KL
        term of timestep index i (the paper's L_i); `"total"` `(B,)`, their sum.
    """
    backend.require_tensorflow("keras_ddpm.metrics.variational_bound_terms (and bits_per_dim)")
    x0 = tf.convert_to_tensor(_as_images("images", images))
    process = model.reverse_process(use_ema)
    schedule = process.schedule
    conditioning = ()
    if labels is not None and process.num_classes is not None:
        conditioning = (tf.convert_to_tensor(np.asarray(labels), tf.int32),)
    elif labels is not None:
        raise ValueError(
            "`labels` need a class-conditional model; this one is unconditional. "
            f"Received labels of shape {np.shape(labels)}."
        )
    term = _bound_function(process)
    columns = []
    for t in range(schedule.timesteps):
        noise = tf.random.stateless_normal(tf.shape(x0), seed=[seed, t])
        columns.append(term(x0, tf.constant(t), noise, *conditioning).numpy())
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
            `(images, labels)`: a class-conditional model is then evaluated
            on p(x | c), else on its unconditional prediction), or a NumPy
            array of images `(N, H, W, C)`.
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
    if num_images is not None:
        checks.positive_int("num_images", num_images)
    target = num_images
    if isinstance(dataset, tf.data.Dataset):
        batches = (b if isinstance(b, (tuple, list)) else (b, None) for b in dataset)
    else:
        array = _as_images("dataset", dataset)
        batches = iter([(array, None)])
        target = len(array) if num_images is None else min(num_images, len(array))
    progress = keras.utils.Progbar(target, unit_name="image") if verbose else None
    totals, dims, seen = [], None, 0
    conditional = getattr(model, "num_classes", None) is not None
    for index, (batch, labels) in enumerate(batches):
        batch = np.asarray(batch, np.float32)
        labels = None if labels is None or not conditional else np.asarray(labels)
        if num_images is not None:
            batch = batch[: num_images - seen]
            labels = None if labels is None else labels[: len(batch)]
        if len(batch) == 0:
            break
        dims = int(np.prod(batch.shape[1:]))
        totals.append(
            variational_bound_terms(
                model, batch, seed=seed + index, use_ema=use_ema, labels=labels
            )["total"]
        )
        seen += len(batch)
        if progress is not None:
            progress.update(seen)
        if num_images is not None and seen >= num_images:
            break
    if not totals:
        raise ValueError("`dataset` holds no images.")
    return float(np.concatenate(totals).mean() / (dims * math.log(2.0)))
