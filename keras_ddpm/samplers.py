"""Reverse-process samplers: plain functions over any denoiser.

A sampler takes

- `denoise_fn(x_t, t) -> prediction`: any callable (a Keras network, a closed-form
  oracle, a guided wrapper) mapping float32 images `[B, ...]` and integer
  timestep indices `[B]` to the prediction named by `prediction_type`;
- the starting noise x_T;
- a `NoiseSchedule`;
- a stateless random seed (an int32 tensor of shape `[2]`), so that a sample is a
  pure function of its inputs and one traced graph serves every seed.

Each sampler is written with TensorFlow control flow (`tf.while_loop`) so that
`DDPM.generate` and the SavedModel export compile the whole reverse loop once.

Notation: t is the timestep index (0 … T−1, index i holding step i + 1 of the
paper), ᾱ_t the cumulative product of α, x̂_0 the clean-sample estimate.
"""

import numpy as np
import tensorflow as tf
from keras import ops

from keras_ddpm import objectives

VARIANCES = ("fixed_small", "fixed_large")


def check_variance(variance):
    """Raises a `ValueError` unless `variance` is a known reverse-process variance."""
    if variance not in VARIANCES:
        raise ValueError(
            f"Unknown variance={variance!r}. Expected one of {list(VARIANCES)}."
        )


def log_variance_table(schedule, variance):
    """log σ_t² of the reverse process p(x_{t−1} | x_t), a float64 table.

    `"fixed_small"` is σ_t² = β̃_t, the posterior variance, right when x_0 is a
    point mass; `"fixed_large"` is σ_t² = β_t, right when x_0 ~ N(0, I) (Ho et al.
    2020, section 3.2). Both clip the first entry as the authors' code does (it is
    never used: the last step adds no noise).
    """
    check_variance(variance)
    if variance == "fixed_small":
        return schedule.posterior_log_variance_clipped
    first = schedule.posterior_variance[1] if schedule.timesteps > 1 else schedule.betas[0]
    return np.log(np.append(first, schedule.betas[1:]))


def ddpm_step(
    schedule,
    x_t,
    t,
    prediction,
    noise,
    prediction_type="epsilon",
    variance="fixed_small",
    clip=True,
):
    """One ancestral step x_t → x_{t−1} (Ho et al. 2020, Algorithm 2).

    Args:
        schedule: the `NoiseSchedule`.
        x_t: float32 images at timestep index `t`, `[B, ...]`.
        t: integer timestep indices, `[B]`.
        prediction: the denoiser's output for `(x_t, t)`.
        noise: standard normal noise shaped like `x_t` (unused where `t == 0`).
        prediction_type: `"epsilon"`, `"v"` or `"x0"`. Defaults to `"epsilon"`.
        variance: `"fixed_small"` (β̃_t) or `"fixed_large"` (β_t).
            Defaults to `"fixed_small"`.
        clip: clip x̂_0 to [−1, 1] before forming the posterior mean.
            Defaults to `True`.

    Returns:
        x_{t−1}, float32, shaped like `x_t`.
    """
    ndim = len(x_t.shape)
    # 1. Clean-sample estimate x̂_0 (for ε-prediction, eq. 15 solved for x_0).
    signal_rate, noise_rate = schedule.signal_and_noise_rates(t, ndim)
    x0 = objectives.to_x0(prediction, x_t, signal_rate, noise_rate, prediction_type)
    # 2. Keep x̂_0 in the data range, as the authors' sampler does.
    if clip:
        x0 = ops.clip(x0, -1.0, 1.0)
    # 3. Posterior mean μ̃_t(x_t, x̂_0) (eq. 7); with unclipped ε-prediction this
    #    equals 1/√α_t · (x_t − β_t/√(1 − ᾱ_t) · ε̂) of Algorithm 2.
    mean = schedule.posterior_mean(x0, x_t, t)
    # 4. Add σ_t · z, except on the final step (t index 0 ↔ t = 1 in the paper).
    log_var = schedule.lookup(log_variance_table(schedule, variance), t, ndim)
    keep_noise = ops.reshape(ops.cast(t > 0, "float32"), (-1,) + (1,) * (ndim - 1))
    return mean + keep_noise * ops.exp(0.5 * log_var) * noise


def ddpm_sample(
    denoise_fn,
    initial_noise,
    schedule,
    seed,
    prediction_type="epsilon",
    variance="fixed_small",
    clip=True,
    start=0,
    stop=None,
):
    """Ancestral sampling over every timestep (Ho et al. 2020, Algorithm 2).

    The loop runs steps `start … stop − 1`, step `i` denoising from timestep index
    `T − 1 − i`; the defaults run the whole chain from x_T to x_0. Splitting the
    range lets a caller report progress while reusing one traced function.

    Args:
        denoise_fn: callable `(x_t, t) -> prediction`.
        initial_noise: the state entering step `start` (x_T when `start == 0`),
            float32 `[B, ...]`.
        schedule: the `NoiseSchedule`.
        seed: int32 tensor of shape `[2]`; step `i` draws its noise from
            `stateless_fold_in(seed, i)`.
        prediction_type: what `denoise_fn` predicts. Defaults to `"epsilon"`.
        variance: `"fixed_small"` or `"fixed_large"`. Defaults to `"fixed_small"`.
        clip: clip x̂_0 to [−1, 1] at every step. Defaults to `True`.
        start: first step (int or int32 scalar tensor). Defaults to `0`.
        stop: one past the last step. Defaults to `schedule.timesteps`.

    Returns:
        The state after step `stop − 1` (x_0 for a full run), float32.

    Example:

    >>> x0 = ddpm_sample(lambda x, t: network([x, t]), noise, schedule,
    ...                  seed=tf.constant([0, 0]))

    References:
        - Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", 2020.
    """
    objectives.check_prediction_type(prediction_type)
    check_variance(variance)
    last = schedule.timesteps - 1
    stop = schedule.timesteps if stop is None else stop
    x = tf.convert_to_tensor(initial_noise, tf.float32)
    seed = tf.cast(seed, tf.int32)
    batch = tf.shape(x)[0]

    def body(i, x):
        t = tf.fill([batch], last - i)
        prediction = tf.cast(denoise_fn(x, t), tf.float32)
        noise = tf.random.stateless_normal(
            tf.shape(x), seed=tf.random.experimental.stateless_fold_in(seed, i)
        )
        x = ddpm_step(schedule, x, t, prediction, noise, prediction_type, variance, clip)
        return i + 1, x

    _, x = tf.while_loop(
        lambda i, _: i < stop,
        body,
        (tf.convert_to_tensor(start, tf.int32), x),
        shape_invariants=(tf.TensorShape([]), x.shape),
    )
    return x
