"""The variational bound of a DDPM (Ho et al. 2020, eq. 5) and bits per dimension.

The terms are written in `keras.ops` and run on every Keras backend: one compiled
function of the timestep (a traced value) serves all T terms, through the reverse process's
loop cache (`ReverseProcess.cached_loop`), with the schedule's coefficients in float64. The
noise of each term is drawn by the counter-based generator (`keras_ddpm.rng`) from the
image's key and the timestep, so an image's bound depends on the seed and its position in
the evaluation set, not on the backend's kernels or on how the set is batched.

References:
    - Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models",
      NeurIPS 2020 (eq. 5, eq. 13, table 2).
"""

import math

import keras
import numpy as np
from keras import ops

from keras_ddpm import checks
from keras_ddpm import objectives
from keras_ddpm import precise_ops
from keras_ddpm import rng
from keras_ddpm.generation import INT_SPEC
from keras_ddpm.generation import KEYS_SPEC
from keras_ddpm.metrics.features import _as_images
from keras_ddpm.schedules import precise_float

# Draws of the bound's x_t fold this into the images' keys, apart from sampling's streams.
_BOUND_STREAM = 0x62706400  # "bpd\0"


def _normal_kl(mean1, log_var1, mean2, log_var2, exp=ops.exp):
    """KL(N(mean1, e^log_var1) ‖ N(mean2, e^log_var2)), elementwise, in nats.

    `exp` is `ops.exp` for tensors, `np.exp` for NumPy's float64 (the prior term).
    """
    return 0.5 * (
        log_var2 - log_var1 + exp(log_var1 - log_var2)
        + (mean1 - mean2) ** 2 * exp(-log_var2) - 1.0
    )


def _standard_normal_cdf(x):
    return 0.5 * (1.0 + ops.erf(x / math.sqrt(2.0)))


def _safe_log(x):
    return ops.log(precise_ops.maximum(x, ops.cast(1e-12, x.dtype)))


def discretized_gaussian_log_likelihood(x, mean, log_scale):
    """log P(x) of 8-bit data in [−1, 1] under N(mean, e^{2·log_scale}), per element.

    Each of the 256 values owns a bin of width 2/255; the edge bins extend to
    ±∞ (Ho et al. 2020, eq. 13). The inputs are tensors of one float dtype.
    """
    centered = x - mean
    inv_std = ops.exp(-log_scale)
    cdf_plus = _standard_normal_cdf(inv_std * (centered + 1.0 / 255.0))
    cdf_min = _standard_normal_cdf(inv_std * (centered - 1.0 / 255.0))
    log_cdf_plus = _safe_log(cdf_plus)
    log_one_minus_cdf_min = _safe_log(1.0 - cdf_min)
    log_delta = _safe_log(cdf_plus - cdf_min)
    return ops.where(
        x < -0.999, log_cdf_plus, ops.where(x > 0.999, log_one_minus_cdf_min, log_delta)
    )


def _bound_loop(process):
    """The compiled `(x0, keys, t[, labels, w]) → L_t` per image, in nats, of timestep index t.

    The network is reached only through `process.denoiser`, the call that sampling uses, so a
    class-conditional model is evaluated with its labels (`w` = 1: no guidance). t is an int32
    scalar, a traced value: one trace (TensorFlow, JAX) serves every timestep.
    """
    schedule = process.schedule

    def body():
        def term(x0, keys, t, *conditioning):
            precise = precise_float()
            ndim = len(x0.shape)
            axes = tuple(range(1, ndim))
            t_batch = ops.zeros_like(keys[:, 0]) + t
            noise = rng.normal(rng.fold_in(keys, t), ops.shape(x0)[1:])
            x0 = ops.cast(x0, precise)
            x_t = schedule.add_noise(x0, noise, t_batch, dtype=precise)
            prediction = process.denoiser(*conditioning)(ops.cast(x_t, "float32"), t_batch)
            signal, sigma = schedule.signal_and_noise_rates(t_batch, ndim, precise)
            x0_hat = objectives.to_x0(
                ops.cast(prediction, precise), x_t, signal, sigma, process.prediction_type
            )
            # The forward posterior of the step t → t − 1 and the model's reverse step.
            _, coef_x0, coef_xt, posterior_variance = schedule.posterior(t, t - 1)
            model_mean = coef_x0 * x0_hat + coef_xt * x_t
            model_log_var = ops.log(schedule.reverse_variance(t, t - 1, process.variance))
            # L_0 = −log p(x_0 | x_1): the discretised Gaussian decoder.
            decoder = -ops.sum(
                discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_log_var), axes
            )
            # L_{t−1} = KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t)); at t = 0 the
            # posterior variance is 0 and the KL is not used.
            true_mean = coef_x0 * x0 + coef_xt * x_t
            kl = _normal_kl(true_mean, ops.log(posterior_variance), model_mean, model_log_var)
            return ops.where(t == 0, decoder, ops.sum(kl, axes))

        return term

    return process.cached_loop(("bound",), (KEYS_SPEC, INT_SPEC), False, body)


def _bound_terms(model, images, keys, use_ema, labels):
    """`(prior [B], terms [B, T])` of `images` whose noise is drawn under `keys` `[B, 2]`."""
    process = model.reverse_process(use_ema)
    schedule = process.schedule
    conditioning = ()
    if labels is not None and process.num_classes is not None:
        conditioning = (ops.convert_to_tensor(np.asarray(labels), "int32"), ops.ones((), "float32"))
    elif labels is not None:
        raise ValueError(
            "`labels` need a class-conditional model; this one is unconditional. "
            f"Received labels of shape {np.shape(labels)}."
        )
    elif process.num_classes is not None:  # the unconditional prediction: the null label
        null = np.full(len(images), process.num_classes, np.int32)
        conditioning = (ops.convert_to_tensor(null), ops.ones((), "float32"))
    term = _bound_loop(process)
    x0 = ops.convert_to_tensor(images, "float32")
    columns = []
    for t in range(schedule.timesteps):
        column = term(x0, keys, ops.convert_to_tensor(t, "int32"), *conditioning)
        columns.append(np.asarray(ops.convert_to_numpy(column), np.float64))
    ac_last = float(schedule.alphas_cumprod[-1])
    x0_64 = images.reshape(len(images), -1).astype(np.float64)
    prior = _normal_kl(math.sqrt(ac_last) * x0_64, math.log(1.0 - ac_last), 0.0, 0.0, exp=np.exp)
    return prior.sum(axis=1), np.stack(columns, axis=1)


def _keys(seed, first, count):
    """The bound's keys of images `first … first + count − 1` of an evaluation seeded `seed`."""
    keys = rng.image_keys(rng.seed_key(seed), first, count)
    return rng.fold_in(keys, _BOUND_STREAM)


def variational_bound_terms(model, images, seed=0, use_ema=True, labels=None):
    """Every term of the variational bound (Ho et al. 2020, eq. 5) for a batch, in nats.

    Each diffusion term uses one draw of x_t ~ q(x_t | x_0), as the authors'
    evaluation does; the prior term is exact. Runs on every Keras backend.

    Args:
        model: a `keras_ddpm.DDPM`.
        images: float images in [−1, 1], `(B, H, W, C)` (8-bit data for the
            decoder term to be a likelihood).
        seed: int, seed of the noise: image i of the batch draws the same x_t
            as image i of `bits_per_dim` with this seed. Defaults to `0`.
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

    Example:

    >>> bound = keras_ddpm.metrics.variational_bound_terms(model, images[:16])
    >>> bound["terms"].mean(axis=0)  # where the bits go, per timestep
    """
    images = _as_images("images", images)
    prior, terms = _bound_terms(model, images, _keys(seed, 0, len(images)), use_ema, labels)
    return {"prior": prior, "terms": terms, "total": prior + terms.sum(axis=1)}


def _batches(dataset):
    """`(images, labels or None)` NumPy batches of an array or an iterable of batches."""
    if hasattr(dataset, "shape"):  # one array (NumPy, or a tensor of any backend)
        yield _as_images("dataset", ops.convert_to_numpy(dataset)), None
        return
    try:
        iterator = iter(dataset)
    except TypeError:
        raise TypeError(
            "`dataset` must be an array of images (N, H, W, C) or an iterable of batches "
            f"(a tf.data.Dataset, a list of arrays). Received: {type(dataset).__name__}."
        ) from None
    for batch in iterator:
        images, labels = batch if isinstance(batch, (tuple, list)) else (batch, None)
        labels = None if labels is None else np.asarray(ops.convert_to_numpy(labels))
        yield _as_images("dataset", ops.convert_to_numpy(images)), labels


def bits_per_dim(model, dataset, num_images=None, seed=0, use_ema=True, verbose=1):
    """The variational bound on −log p(x_0) in bits per dimension (Ho et al. 2020, eq. 5).

    L = L_T + Σ_{t>1} L_{t−1} + L_0, with the prior KL L_T, the Gaussian KLs
    L_{t−1} between the forward posterior and the model's reverse step
    (one x_t draw per image and timestep, as in the authors' evaluation), and
    the discretised Gaussian decoder L_0 on 256 bins over [−1, 1]; divided by
    the number of dimensions H·W·C and by ln 2. It costs T network calls per
    batch. The value is a likelihood bound for 8-bit data (pixels on the
    256-level grid of [−1, 1]). Ho et al. report 3.70 (≤ 3.75) bits/dim on the
    CIFAR-10 test set. Runs on every Keras backend; the result does not depend
    on how the images are batched.

    Args:
        model: a `keras_ddpm.DDPM`.
        dataset: a NumPy array of [−1, 1] images `(N, H, W, C)`, or an
            iterable of batches (a `tf.data.Dataset`, a list): image arrays, or
            `(images, labels)` pairs, with which a class-conditional model is
            evaluated on p(x | c), else on its unconditional prediction.
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
    if hasattr(dataset, "shape"):
        target = len(dataset) if num_images is None else min(num_images, len(dataset))
    progress = keras.utils.Progbar(target, unit_name="image") if verbose else None
    totals, dims, seen = [], None, 0
    conditional = getattr(model, "num_classes", None) is not None
    for batch, labels in _batches(dataset):
        labels = labels if conditional else None
        if num_images is not None:
            batch = batch[: num_images - seen]
            labels = None if labels is None else labels[: len(batch)]
        if len(batch) == 0:
            break
        dims = int(np.prod(batch.shape[1:]))
        prior, terms = _bound_terms(model, batch, _keys(seed, seen, len(batch)), use_ema, labels)
        totals.append(prior + terms.sum(axis=1))
        seen += len(batch)
        if progress is not None:
            progress.update(seen)
        if num_images is not None and seen >= num_images:
            break
    if not totals:
        raise ValueError("`dataset` holds no images.")
    return float(np.concatenate(totals).mean() / (dims * math.log(2.0)))
