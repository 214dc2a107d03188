"""Reverse-process samplers: plain functions over any denoiser.

A sampler takes

- `denoise_fn(x_t, t) -> prediction`: any callable (a Keras network, a closed-form
  oracle, a guided wrapper) mapping float32 images `[B, ...]` and integer
  timestep indices `[B]` to the prediction named by `prediction_type`;
- the starting noise x_T;
- a `NoiseSchedule`;
- the number of network evaluations `steps` (an int or an int32 scalar tensor);
- for the stochastic samplers, a stateless random seed (an int32 tensor of
  shape `[2]`), so that a sample is a pure function of its inputs.

Each sampler is one `tf.while_loop` whose timestep sequence is computed inside
the graph from `steps` (and whose DDIM η is a tensor too), so one traced (and
XLA-compiled) function serves every step count and every η.

Timesteps. A run of S steps visits the decreasing indices τ_0 > τ_1 > … > τ_{S−1}
chosen by `timestep_sequence`; step k goes from τ_k to τ_{k+1}, and the last
step goes from τ_{S−1} to the clean data (written τ_S = −1, ᾱ_{−1} = 1). Every
sampler calls the network once per step, only at the integer indices τ_k, so
S is also the number of function evaluations (NFE). Skipping timesteps keeps ᾱ
at the kept indices and uses β_k = 1 − ᾱ_{τ_k}/ᾱ_{τ_{k+1}} for the jump
(Nichol & Dhariwal 2021, section 4).

Notation: t is the timestep index (0 … T−1, index i holding step i + 1 of the
paper), ᾱ_t the cumulative product of α, α_t = √ᾱ_t and σ_t = √(1 − ᾱ_t) the
signal and noise rates of DPM-Solver, λ_t = log(α_t/σ_t) the half log-SNR,
x̂_0 the clean-sample estimate.
"""

import numpy as np
import tensorflow as tf
from keras import ops

from keras_ddpm import objectives

VARIANCES = ("fixed_small", "fixed_large")
SAMPLERS = ("ddpm", "ddim", "dpm_solver")
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace", "logsnr")
# Justified in each sampler's docstring (measurements from
# benchmarks/benchmark_samplers.py with the exact Gaussian oracle).
DEFAULT_SPACINGS = {"ddpm": "trailing", "ddim": "trailing", "dpm_solver": "logsnr"}
ORDERS = (1, 2, 3)


# ----------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------
def check_variance(variance):
    """Raises a `ValueError` unless `variance` is a known reverse-process variance."""
    if variance not in VARIANCES:
        raise ValueError(
            f"Unknown variance={variance!r}. Expected one of {list(VARIANCES)}."
        )


def check_sampler(sampler):
    """Raises a `ValueError` unless `sampler` is a known sampler name."""
    if sampler not in SAMPLERS:
        raise ValueError(f"Unknown sampler={sampler!r}. Expected one of {list(SAMPLERS)}.")


def check_spacing(timestep_spacing):
    """Raises a `ValueError` unless `timestep_spacing` is a known convention."""
    if timestep_spacing not in TIMESTEP_SPACINGS:
        raise ValueError(
            f"Unknown timestep_spacing={timestep_spacing!r}. "
            f"Expected one of {list(TIMESTEP_SPACINGS)}."
        )


def check_steps(steps, timesteps):
    """Raises unless a Python `steps` is an integer in [1, timesteps] (tensors pass)."""
    if tf.is_tensor(steps):
        return
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
        raise TypeError(
            f"`steps` must be an integer in [1, {timesteps}]. Received: steps={steps!r}."
        )
    if not 1 <= steps <= timesteps:
        raise ValueError(
            f"`steps` must be in [1, {timesteps}] (the schedule's timesteps). "
            f"Received: steps={steps}."
        )


def check_eta(eta):
    """Raises unless a Python `eta` is a number in [0, 1] (tensors pass)."""
    if tf.is_tensor(eta):
        return
    if isinstance(eta, bool) or not isinstance(eta, (int, float, np.floating)):
        raise TypeError(f"`eta` must be a number in [0, 1]. Received: eta={eta!r}.")
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"`eta` must be in [0, 1]. Received: eta={eta}.")


def check_order(order):
    """Raises a `ValueError` unless `order` is 1, 2 or 3."""
    if isinstance(order, bool) or order not in ORDERS:
        raise ValueError(f"`order` must be one of {list(ORDERS)}. Received: order={order!r}.")


def _check_prediction(schedule, prediction_type):
    objectives.check_prediction_type(prediction_type)
    if prediction_type == "epsilon" and schedule.zero_terminal_snr:
        raise ValueError(
            "prediction_type='epsilon' cannot be sampled with a zero-terminal-SNR "
            "schedule: at t = T, x_T holds no signal and x̂_0 = (x_T − ε̂)/√ᾱ_T "
            "divides by 0. Use prediction_type='v' or 'x0'."
        )


# ----------------------------------------------------------------------------
# Timestep sequences
# ----------------------------------------------------------------------------
def _prefix_min(values):
    """Running minimum along a static-length vector, by log-depth doubling."""
    n, shift = int(values.shape[0]), 1
    while shift < n:
        shifted = tf.concat([tf.fill([shift], values.dtype.max), values[:-shift]], 0)
        values = tf.minimum(values, shifted)
        shift *= 2
    return values


def _log_snr_table(schedule):
    """log(ᾱ/(1 − ᾱ)) per index; a zero ᾱ_T gets its neighbour's value minus 1."""
    ac = schedule.alphas_cumprod
    with np.errstate(divide="ignore"):
        table = np.log(ac) - np.log1p(-ac)
    if not np.isfinite(table[-1]) and schedule.timesteps > 1:
        table[-1] = table[-2] - 1.0
    return table


def timestep_sequence(schedule, steps, timestep_spacing="trailing"):
    """The timestep indices a run of `steps` steps visits, computed with TF ops.

    With T = `schedule.timesteps`, S = `steps` and j = S − 1 − k counting down,
    the k-th index τ_k (k = 0 … S − 1, τ_0 the noisiest) is

    - `"leading"`: ⌊j·T/S⌋ (paper timesteps 1, 1 + T/S, …; starts below T);
    - `"trailing"`: round(T − k·T/S) − 1 (paper timesteps T, T − T/S, …);
    - `"linspace"`: round(j·(T − 1)/(S − 1)) (both ends; T − 1 when S = 1);
    - `"logsnr"`: the index whose log-SNR λ = log(ᾱ/(1 − ᾱ)) is nearest to
      the k-th of S values uniform in λ from λ(T − 1) to λ(0) (DPM-Solver's
      recommendation), the first always T − 1. Nearest, not interpolated,
      because a DDPM network is trained only at integer t. Where two targets
      fall on one index, later indices are pushed down so that the sequence
      stays strictly decreasing. An infinite λ(T − 1) (zero terminal SNR) is
      replaced by λ(T − 2) − 1 when placing the targets.

    The first three are the conventions compared by Lin et al. 2023 (table 2).
    With S = T every spacing gives T − 1, T − 2, …, 0.

    Args:
        schedule: the `NoiseSchedule`.
        steps: number of steps S in [1, T], an int or int32 scalar tensor.
        timestep_spacing: one of `"leading"`, `"trailing"`, `"linspace"`,
            `"logsnr"`. Defaults to `"trailing"`.

    Returns:
        int32 tensor of static shape `[T + 1]`: τ_0 … τ_{S−1}, then −1 (the
        clean data) in every later entry. The static length lets XLA compile
        the samplers for a runtime `steps`.

    Example:

    >>> timestep_sequence(NoiseSchedule(timesteps=1000), 4, "trailing")[:5]
    [999, 749, 499, 249, -1]
    """
    check_spacing(timestep_spacing)
    check_steps(steps, schedule.timesteps)
    total = schedule.timesteps
    steps = tf.clip_by_value(tf.cast(steps, tf.int32), 1, total)
    s = tf.cast(steps, tf.float64)
    k = tf.range(total + 1, dtype=tf.int32)
    kf = tf.cast(k, tf.float64)
    j = s - 1.0 - kf
    if timestep_spacing == "leading":
        index = tf.floor(j * total / s)
    elif timestep_spacing == "trailing":
        index = tf.round(total - kf * total / s) - 1.0
    elif timestep_spacing == "linspace":
        index = tf.round(j * (total - 1) / tf.maximum(s - 1.0, 1.0))
        index = tf.where(steps > 1, index, _f64(total - 1))
    else:
        table = _log_snr_table(schedule)
        lo, hi = table[-1], table[0]
        fraction = kf / tf.maximum(s - 1.0, 1.0)
        targets = lo + (hi - lo) * fraction  # [T + 1], rising
        distance = tf.abs(targets[:, None] - tf.constant(table)[None, :])
        index = tf.cast(tf.argmin(distance, axis=1), tf.float64)
        index = tf.where(k == 0, _f64(total - 1), index)
    index = tf.cast(index, tf.int32)
    # Strictly decreasing: τ_k ≤ τ_{k−1} − 1 (running minimum of τ_k + k) and
    # τ_k ≥ S − 1 − k, so that the last of the S indices is still ≥ 0.
    index = _prefix_min(index + k) - k
    index = tf.maximum(index, steps - 1 - k)
    return tf.where(k < steps, index, -1)


def _f64(value):
    return tf.constant(value, tf.float64)


def _gather(table, t):
    """float64 `table` at int indices `t`, where t = −1 reads the clean data's 1.0."""
    padded = tf.constant(np.append(1.0, np.asarray(table, np.float64)), tf.float64)
    return tf.gather(padded, tf.cast(t, tf.int32) + 1)


def _broadcast(value, ndim):
    """A float64 scalar or `[B]` value as float32 `[B or 1, 1, …, 1]`."""
    value = tf.cast(value, tf.float32)
    return tf.reshape(value, (-1,) + (1,) * (ndim - 1))


def _x0_estimate(prediction, x_t, alpha_bar, prediction_type, clip):
    """x̂_0 (and its ε̂) from a prediction at a timestep with cumulative ᾱ (float64)."""
    ndim = len(x_t.shape)
    signal = _broadcast(tf.sqrt(alpha_bar), ndim)
    noise = _broadcast(tf.sqrt(1.0 - alpha_bar), ndim)
    prediction = tf.cast(prediction, tf.float32)
    x0 = objectives.to_x0(prediction, x_t, signal, noise, prediction_type)
    if clip:
        x0 = ops.clip(x0, -1.0, 1.0)
        # The ε̂ consistent with the clipped x̂_0; σ_t > 0 at every index.
        return x0, (x_t - signal * x0) / noise
    return x0, objectives.to_epsilon(prediction, x_t, signal, noise, prediction_type)


# ----------------------------------------------------------------------------
# Ancestral sampling (DDPM)
# ----------------------------------------------------------------------------
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
    prev_t=None,
):
    """One ancestral step x_t → x_{prev_t} (Ho et al. 2020, Algorithm 2).

    Args:
        schedule: the `NoiseSchedule`.
        x_t: float32 images at timestep index `t`, `[B, ...]`.
        t: integer timestep indices, `[B]`.
        prediction: the denoiser's output for `(x_t, t)`.
        noise: standard normal noise shaped like `x_t` (unused on the last step).
        prediction_type: `"epsilon"`, `"v"` or `"x0"`. Defaults to `"epsilon"`.
        variance: `"fixed_small"` (β̃) or `"fixed_large"` (β).
            Defaults to `"fixed_small"`.
        clip: clip x̂_0 to [−1, 1] before forming the posterior mean.
            Defaults to `True`.
        prev_t: the index to step to, `[B]`, −1 for the clean data; a skip
            uses the respaced β = 1 − ᾱ_t/ᾱ_{prev_t} (Nichol & Dhariwal 2021,
            section 4). Defaults to `t − 1` (one step of the full chain).

    Returns:
        x_{prev_t}, float32, shaped like `x_t`.
    """
    x_t = tf.convert_to_tensor(x_t, tf.float32)
    t = tf.cast(t, tf.int32)
    prev_t = t - 1 if prev_t is None else tf.cast(prev_t, tf.int32)
    ndim = len(x_t.shape)
    # 1. ᾱ at both ends of the step; the (respaced) β and α of the jump.
    alpha_bar = _gather(schedule.alphas_cumprod, t)
    alpha_bar_prev = _gather(schedule.alphas_cumprod, prev_t)
    beta = 1.0 - alpha_bar / alpha_bar_prev
    # 2. Clean-sample estimate x̂_0 (for ε-prediction, eq. 15 solved for x_0),
    #    clipped to the data range as the authors' sampler does.
    x0, _ = _x0_estimate(prediction, x_t, alpha_bar, prediction_type, clip)
    # 3. Posterior mean μ̃(x_t, x̂_0) and variance β̃ (eqs. 6–7); with unclipped
    #    ε-prediction this is 1/√α_t · (x_t − β_t/√(1 − ᾱ_t) · ε̂) of Algorithm 2.
    coef1 = beta * tf.sqrt(alpha_bar_prev) / (1.0 - alpha_bar)
    coef2 = (1.0 - alpha_bar_prev) * tf.sqrt(1.0 - beta) / (1.0 - alpha_bar)
    mean = _broadcast(coef1, ndim) * x0 + _broadcast(coef2, ndim) * x_t
    # 4. Add σ·z with σ² = β̃ or β, except on the last step (to the clean data).
    if variance == "fixed_small":
        var = beta * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)
    else:
        check_variance(variance)
        var = beta
    var = tf.where(prev_t >= 0, var, _f64(0.0))
    return mean + _broadcast(tf.sqrt(var), ndim) * tf.cast(noise, tf.float32)


def _loop(body, x, steps, start, stop):
    """Runs `x ← body(k, x)` for k in [start, stop) (stop defaults to steps)."""
    stop = steps if stop is None else tf.minimum(tf.cast(stop, tf.int32), steps)
    _, x = tf.while_loop(
        lambda k, _: k < stop,
        lambda k, x: (k + 1, body(k, x)),
        (tf.convert_to_tensor(start, tf.int32), x),
        shape_invariants=(tf.TensorShape([]), x.shape),
    )
    return x


def _stochastic_loop(step, denoise_fn, x, sequence, seed, steps, start, stop):
    """Steps k in [start, stop): x ← step(x, t_k, t_{k+1}, denoise_fn(x, t_k), z_k).

    z_k is standard normal noise from `stateless_fold_in(seed, k)`.
    """
    seed = tf.cast(seed, tf.int32)
    batch = tf.shape(x)[0]

    def body(k, x):
        t, prev_t = tf.fill([batch], sequence[k]), tf.fill([batch], sequence[k + 1])
        noise = tf.random.stateless_normal(
            tf.shape(x), seed=tf.random.experimental.stateless_fold_in(seed, k)
        )
        return step(x, t, prev_t, denoise_fn(x, t), noise)

    return _loop(body, x, steps, start, stop)


def _prepare(schedule, initial_noise, steps, timestep_spacing):
    x = tf.convert_to_tensor(initial_noise, tf.float32)
    steps = schedule.timesteps if steps is None else steps
    check_steps(steps, schedule.timesteps)
    sequence = timestep_sequence(schedule, steps, timestep_spacing)
    steps = tf.clip_by_value(tf.cast(steps, tf.int32), 1, schedule.timesteps)
    return x, steps, sequence


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
    steps=None,
    timestep_spacing="trailing",
):
    """Ancestral sampling (Ho et al. 2020, Algorithm 2), optionally respaced.

    With `steps = T` (the default) this is the full chain T − 1 → 0, whatever
    the spacing. With fewer steps it visits `timestep_sequence(...)` and uses
    the respaced β_k = 1 − ᾱ_{τ_k}/ᾱ_{τ_{k+1}} and its posterior variance
    (Nichol & Dhariwal 2021, section 4). The default `"trailing"` spacing
    starts at t = T, as Lin et al. 2023 recommend, so that x_T ~ N(0, I) is
    the right input; `"leading"` (used by many DDPM/DDIM releases) starts
    below T, where a sample still holds signal that pure noise lacks.

    The loop runs steps `start … stop − 1` and step k draws its noise from
    `stateless_fold_in(seed, k)`; splitting the range lets a caller report
    progress while reusing one traced function.

    Args:
        denoise_fn: callable `(x_t, t) -> prediction`.
        initial_noise: the state entering step `start` (x_T when `start == 0`),
            float32 `[B, ...]`.
        schedule: the `NoiseSchedule`.
        seed: int32 tensor of shape `[2]`.
        prediction_type: what `denoise_fn` predicts. Defaults to `"epsilon"`.
        variance: `"fixed_small"` or `"fixed_large"`. Defaults to `"fixed_small"`.
        clip: clip x̂_0 to [−1, 1] at every step. Defaults to `True`.
        start: first step (int or int32 scalar tensor). Defaults to `0`.
        stop: one past the last step. Defaults to `steps`.
        steps: number of steps in [1, T] (int or int32 scalar tensor).
            Defaults to `schedule.timesteps`.
        timestep_spacing: see `timestep_sequence`. Defaults to `"trailing"`.

    Returns:
        The state after step `stop − 1` (x_0 for a full run), float32.

    Example:

    >>> x0 = ddpm_sample(lambda x, t: network([x, t]), noise, schedule,
    ...                  seed=tf.constant([0, 0]), steps=100)

    References:
        - Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", 2020.
        - Nichol & Dhariwal, "Improved Denoising Diffusion Probabilistic
          Models", ICML 2021 (section 4, respacing).
    """
    _check_prediction(schedule, prediction_type)
    check_variance(variance)
    x, steps, sequence = _prepare(schedule, initial_noise, steps, timestep_spacing)

    def step(x, t, prev_t, prediction, noise):
        return ddpm_step(
            schedule, x, t, prediction, noise, prediction_type, variance, clip, prev_t
        )

    return _stochastic_loop(step, denoise_fn, x, sequence, seed, steps, start, stop)


# ----------------------------------------------------------------------------
# DDIM
# ----------------------------------------------------------------------------
def ddim_step(schedule, x_t, t, prev_t, prediction, noise, eta=0.0, prediction_type="epsilon", clip=True):
    """One DDIM step x_t → x_{prev_t} (Song et al. 2021, eq. 12).

    Args:
        schedule: the `NoiseSchedule`.
        x_t: float32 images at index `t`, `[B, ...]`.
        t: integer timestep indices, `[B]`.
        prev_t: the indices to step to, `[B]`, −1 for the clean data.
        prediction: the denoiser's output for `(x_t, t)`.
        noise: standard normal noise shaped like `x_t` (unused when η = 0).
        eta: η in [0, 1] (float or float scalar tensor): 0 is the
            deterministic DDIM, 1 the DDPM posterior variance. Defaults to `0.0`.
        prediction_type: `"epsilon"`, `"v"` or `"x0"`. Defaults to `"epsilon"`.
        clip: clip x̂_0 to [−1, 1] (ε̂ is then recomputed from it).
            Defaults to `True`.

    Returns:
        x_{prev_t}, float32, shaped like `x_t`.
    """
    x_t = tf.convert_to_tensor(x_t, tf.float32)
    ndim = len(x_t.shape)
    # 1. ᾱ_t and ᾱ_{t−1} of the (respaced) step; ᾱ = 1 past the last index.
    alpha_bar = _gather(schedule.alphas_cumprod, t)
    alpha_bar_prev = _gather(schedule.alphas_cumprod, prev_t)
    # 2. "Predicted x_0" (eq. 12, first term) and the matching ε̂.
    x0, epsilon = _x0_estimate(prediction, x_t, alpha_bar, prediction_type, clip)
    # 3. σ_t(η) = η √((1 − ᾱ_{t−1})/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_{t−1})  (eq. 16).
    eta = tf.cast(eta, tf.float64)
    sigma = eta * tf.sqrt(
        (1.0 - alpha_bar_prev) / (1.0 - alpha_bar) * (1.0 - alpha_bar / alpha_bar_prev)
    )
    # 4. "Direction pointing to x_t" √(1 − ᾱ_{t−1} − σ_t²) ε̂ and the random
    #    noise σ_t z (eq. 12, second and third terms).
    direction = tf.sqrt(tf.maximum(1.0 - alpha_bar_prev - sigma**2, _f64(0.0)))
    return (
        _broadcast(tf.sqrt(alpha_bar_prev), ndim) * x0
        + _broadcast(direction, ndim) * epsilon
        + _broadcast(sigma, ndim) * tf.cast(noise, tf.float32)
    )


def ddim_sample(
    denoise_fn,
    initial_noise,
    schedule,
    seed,
    steps=50,
    eta=0.0,
    timestep_spacing="trailing",
    prediction_type="epsilon",
    clip=True,
    start=0,
    stop=None,
):
    """Denoising diffusion implicit model sampling (Song et al. 2021).

    η = 0 integrates the probability-flow ODE with a first-order
    exponential-integrator step (DDIM); η > 0 adds fresh noise, η = 1 being
    ancestral sampling with the respaced posterior variance. The default
    `"trailing"` spacing starts at t = T, where x_T really is N(0, I) (Lin et
    al. 2023); on the exact Gaussian ODE (benchmarks/benchmark_samplers.py)
    the three Lin et al. conventions gave errors within 7 % of each other at
    10–50 steps on the linear and cosine schedules (`"logsnr"` was 13 % better
    on linear but 2.3x worse on cosine), so the choice rests on the start.

    Args:
        denoise_fn: callable `(x_t, t) -> prediction`.
        initial_noise: the state entering step `start`, float32 `[B, ...]`.
        schedule: the `NoiseSchedule`.
        seed: int32 tensor of shape `[2]` (step k uses
            `stateless_fold_in(seed, k)`; unused when η = 0).
        steps: number of steps (= NFE) in [1, T], int or int32 scalar tensor.
            Defaults to `50`.
        eta: η in [0, 1], float or float scalar tensor. Defaults to `0.0`.
        timestep_spacing: see `timestep_sequence`. Defaults to `"trailing"`.
        prediction_type: what `denoise_fn` predicts. Defaults to `"epsilon"`.
        clip: clip x̂_0 to [−1, 1] at every step. Defaults to `True`.
        start: first step. Defaults to `0`.
        stop: one past the last step. Defaults to `steps`.

    Returns:
        The state after step `stop − 1` (x_0 for a full run), float32.

    Example:

    >>> x0 = ddim_sample(denoise, noise, schedule, tf.constant([0, 0]), steps=20)

    References:
        - Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021
          (eqs. 12 and 16).
    """
    _check_prediction(schedule, prediction_type)
    check_eta(eta)
    x, steps, sequence = _prepare(schedule, initial_noise, steps, timestep_spacing)

    def step(x, t, prev_t, prediction, noise):
        return ddim_step(schedule, x, t, prev_t, prediction, noise, eta, prediction_type, clip)

    return _stochastic_loop(step, denoise_fn, x, sequence, seed, steps, start, stop)


# ----------------------------------------------------------------------------
# DPM-Solver++ (multistep, data prediction)
# ----------------------------------------------------------------------------
def _dpm_solver_coefficients(lam_s, lam_t, alpha_t, sigma_ratio, h0, h1, order):
    """Scalars (c_x, c_0, c_1, c_2) with x_t = c_x·x_s + c_0·m_0 + c_1·m_1 + c_2·m_2.

    m_0, m_1, m_2 are the x̂_0 predictions at the current and two previous
    indices, h = λ_t − λ_s, h0 and h1 the two previous steps in λ.
    """
    h = lam_t - lam_s
    phi1 = tf.math.expm1(-h)  # e^{−h} − 1
    one = tf.ones_like(h)
    safe_h = tf.where(tf.math.is_finite(h), h, one)
    safe_h0 = tf.where(h0 > 0, h0, one)
    safe_h1 = tf.where(h1 > 0, h1, one)
    zero = tf.zeros_like(h)
    # First order (DPM-Solver++ eq. 9 with x̂_0 held constant; equals DDIM).
    first = (-alpha_t * phi1, zero, zero)
    # Second order, Algorithm 2: D = (1 + 1/(2r)) m_0 − 1/(2r) m_1, r = h0/h.
    half_over_r = 0.5 * h / safe_h0
    second = (-alpha_t * phi1 * (1.0 + half_over_r), alpha_t * phi1 * half_over_r, zero)
    # Third order: x̂_0(λ_s + u) ≈ m_0 + b·u + c·u² through m_0, m_1, m_2 (Newton
    # form), integrated exactly against e^λ:  x_t = (σ_t/σ_s) x_s − α_t φ1 m_0
    # + α_t h φ2 b − 2 α_t h² φ3 c,  φ2 = φ1/h + 1,  φ3 = φ2/h − 1/2.
    phi2 = phi1 / safe_h + 1.0
    phi3 = phi2 / safe_h - 0.5
    p = alpha_t * safe_h * phi2
    q = -2.0 * alpha_t * safe_h**2 * phi3
    # b = f01 + h0·c, c = (f01 − f12)/(h0 + h1), f01 = (m0 − m1)/h0, f12 = (m1 − m2)/h1.
    r = (p * safe_h0 + q) / (safe_h0 + safe_h1)
    third = (
        -alpha_t * phi1 + (p + r) / safe_h0,
        -(p + r) / safe_h0 - r / safe_h1,
        r / safe_h1,
    )
    coefficients = [
        tf.where(order >= 3, c3, tf.where(order >= 2, c2, c1))
        for c1, c2, c3 in zip(first, second, third)
    ]
    return [sigma_ratio] + coefficients


def dpm_solver_sample(
    denoise_fn,
    initial_noise,
    schedule,
    steps=20,
    order=2,
    timestep_spacing="logsnr",
    prediction_type="epsilon",
    clip=True,
):
    """DPM-Solver++ multistep sampling in data-prediction form (Lu et al. 2022).

    A deterministic solver of the probability-flow ODE written with x̂_0:
    x_t = (σ_t/σ_s) x_s + σ_t ∫ e^λ x̂_0(λ) dλ (DPM-Solver++ eq. 9), with
    x̂_0(λ) interpolated through the last `order` predictions. Order 2 is
    Algorithm 2 (DPM-Solver++(2M)); order 3 integrates the quadratic through
    the last three predictions exactly. The first steps use the order their
    history allows (warm-up), as does a step after an infinite-λ jump. The
    last step goes from τ_{S−1} to the clean data (λ = ∞): there every order
    reduces to x_0 = x̂_0(x_{τ_{S−1}}, τ_{S−1}), i.e. the final output is the
    denoised prediction at the last visited index ("final x̂_0"), so NFE =
    `steps` and no extra evaluation is spent.

    The default `"logsnr"` spacing (uniform in λ, as Lu et al. recommend) gave
    the lowest ODE error on the linear schedule (20 steps: 2.6e-2 for 2M and
    4.5e-3 for 3M against 7.6e-2 and 7.4e-2 with `"trailing"`) and for 3M
    at 50 steps on the cosine one; `"leading"`/`"linspace"` end with one long
    step in λ that the multistep extrapolation handles badly. On the cosine
    schedule, whose capped last β makes λ(T − 1) an outlier that takes
    several logsnr steps, 2M with `"trailing"` was better at 20 steps
    (5.3e-3 against 5.2e-2): pass it explicitly there.

    Args:
        denoise_fn: callable `(x_t, t) -> prediction`.
        initial_noise: x at the first index of the sequence, float32 `[B, ...]`.
        schedule: the `NoiseSchedule`.
        steps: number of steps (= NFE) in [1, T], int or int32 scalar tensor.
            Defaults to `20`.
        order: 1, 2 or 3 (Python int). Defaults to `2`.
        timestep_spacing: see `timestep_sequence`. Defaults to `"logsnr"`.
        prediction_type: what `denoise_fn` predicts. Defaults to `"epsilon"`.
        clip: clip every x̂_0 to [−1, 1]. Defaults to `True`.

    Returns:
        x_0, float32, shaped like `initial_noise`.

    Example:

    >>> x0 = dpm_solver_sample(denoise, noise, schedule, steps=20, order=2)

    References:
        - Lu, Zhou, Bao, Chen, Li & Zhu, "DPM-Solver++: Fast Solver for Guided
          Sampling of Diffusion Probabilistic Models", 2022 (eq. 9, Algorithm 2).
        - Lu et al., "DPM-Solver: A Fast ODE Solver for Diffusion Probabilistic
          Model Sampling in Around 10 Steps", NeurIPS 2022 (λ spacing).
    """
    _check_prediction(schedule, prediction_type)
    check_order(order)
    x, steps, sequence = _prepare(schedule, initial_noise, steps, timestep_spacing)
    batch = tf.shape(x)[0]
    ac = schedule.alphas_cumprod
    with np.errstate(divide="ignore"):
        half_log_snr = 0.5 * (np.log(ac) - np.log1p(-ac))  # λ per index

    def body(k, x, m1, m2, lam1, lam2):
        t, prev_t = sequence[k], sequence[k + 1]
        # 1. x̂_0 at the current index (the only network evaluation).
        alpha_bar = _gather(ac, t)
        m0, _ = _x0_estimate(
            denoise_fn(x, tf.fill([batch], t)), x, alpha_bar, prediction_type, clip
        )
        # 2. λ_s, λ_t (λ = ∞ for the clean data) and the previous steps h0, h1.
        lam_s = _gather(half_log_snr, t)
        lam_t = tf.where(prev_t >= 0, _gather(half_log_snr, tf.maximum(prev_t, 0)), _f64(np.inf))
        h0, h1 = lam_s - lam1, lam1 - lam2
        # 3. Order: warm-up (k + 1 predictions known), first order for the last
        #    step and after an infinite jump (zero terminal SNR).
        usable = tf.where(tf.math.is_finite(h0), tf.where(tf.math.is_finite(h1), 3, 2), 1)
        step_order = tf.minimum(tf.minimum(order, k + 1), usable)
        step_order = tf.where(prev_t >= 0, step_order, 1)
        # 4. Coefficients of the exponential-integrator update.
        alpha_t = tf.sqrt(_gather(ac, prev_t))
        sigma_s = tf.sqrt(1.0 - alpha_bar)
        sigma_ratio = tf.sqrt(1.0 - _gather(ac, prev_t)) / sigma_s
        cx, c0, c1, c2 = [
            tf.cast(c, tf.float32)
            for c in _dpm_solver_coefficients(
                lam_s, lam_t, alpha_t, sigma_ratio, h0, h1, step_order
            )
        ]
        x = cx * x + c0 * m0 + c1 * m1 + c2 * m2
        return k + 1, x, m0, m1, lam_s, lam1

    nan = tf.constant(np.nan, tf.float64)
    zeros = tf.zeros_like(x)
    _, x, *_ = tf.while_loop(
        lambda k, *_: k < steps,
        body,
        (tf.constant(0, tf.int32), x, zeros, zeros, nan, nan),
        shape_invariants=(
            tf.TensorShape([]), x.shape, x.shape, x.shape, tf.TensorShape([]), tf.TensorShape([])
        ),
    )
    return x


# ----------------------------------------------------------------------------
# One entry point
# ----------------------------------------------------------------------------
def sample(
    denoise_fn,
    initial_noise,
    schedule,
    sampler="ddpm",
    steps=None,
    eta=0.0,
    timestep_spacing=None,
    order=None,
    seed=(0, 0),
    prediction_type="epsilon",
    variance="fixed_small",
    clip=True,
):
    """Runs the named sampler from `initial_noise` to x_0.

    Args:
        denoise_fn: callable `(x_t, t) -> prediction`.
        initial_noise: x_T, float32 `[B, ...]`.
        schedule: the `NoiseSchedule`.
        sampler: `"ddpm"`, `"ddim"` or `"dpm_solver"`. Defaults to `"ddpm"`.
        steps: number of steps (= NFE) in [1, T]. Defaults to `None`: T for
            `"ddpm"`, 50 for `"ddim"`, 20 for `"dpm_solver"`.
        eta: DDIM's η in [0, 1]; must stay 0 for the other samplers.
            Defaults to `0.0`.
        timestep_spacing: see `timestep_sequence`. Defaults to `None`, the
            sampler's own default (`DEFAULT_SPACINGS`).
        order: DPM-Solver++ order (1–3); only for `"dpm_solver"` (another
            sampler refuses it). Defaults to `None` (2).
        seed: int32 seed of shape `[2]` for the stochastic samplers.
            Defaults to `(0, 0)`.
        prediction_type: what `denoise_fn` predicts. Defaults to `"epsilon"`.
        variance: DDPM's `"fixed_small"` or `"fixed_large"`.
            Defaults to `"fixed_small"`.
        clip: clip x̂_0 to [−1, 1] at every step. Defaults to `True`.

    Returns:
        x_0, float32, shaped like `initial_noise`.
    """
    check_sampler(sampler)
    if order is not None and sampler != "dpm_solver":
        raise ValueError(
            f"`order` only applies to sampler='dpm_solver'. Received: order={order!r} "
            f"with sampler={sampler!r}."
        )
    order = 2 if order is None else order
    check_order(order)
    check_eta(eta)
    if sampler != "ddim" and not tf.is_tensor(eta) and eta != 0:
        raise ValueError(
            f"`eta` only applies to sampler='ddim'. Received: eta={eta} with "
            f"sampler={sampler!r}."
        )
    spacing = DEFAULT_SPACINGS[sampler] if timestep_spacing is None else timestep_spacing
    check_spacing(spacing)
    if steps is None:
        steps = {"ddpm": schedule.timesteps, "ddim": 50, "dpm_solver": 20}[sampler]
        steps = min(steps, schedule.timesteps)
    seed = tf.convert_to_tensor(seed, tf.int32)
    if sampler == "ddpm":
        return ddpm_sample(
            denoise_fn, initial_noise, schedule, seed, prediction_type, variance,
            clip, steps=steps, timestep_spacing=spacing,
        )
    if sampler == "ddim":
        return ddim_sample(
            denoise_fn, initial_noise, schedule, seed, steps, eta, spacing,
            prediction_type, clip,
        )
    return dpm_solver_sample(
        denoise_fn, initial_noise, schedule, steps, order, spacing, prediction_type, clip
    )
