"""DDIM: denoising diffusion implicit models, deterministic at η = 0.

References:
    - Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021
      (eqs. 12 and 16).
"""

from keras import ops

from keras_ddpm import precise_ops
from keras_ddpm.samplers.loop import broadcast
from keras_ddpm.samplers.loop import prepare
from keras_ddpm.samplers.loop import stochastic_loop
from keras_ddpm.samplers.loop import x0_estimate
from keras_ddpm.samplers.registry import resolve
from keras_ddpm.schedules import precise_float


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
    x_t = ops.convert_to_tensor(x_t, "float32")
    ndim = len(x_t.shape)
    # 1. ᾱ_t and ᾱ_{t−1} of the (respaced) step; ᾱ = 1 past the last index.
    alpha_bar = schedule.alphas_cumprod_at(t)
    alpha_bar_prev = schedule.alphas_cumprod_at(prev_t)
    # 2. "Predicted x_0" (eq. 12, first term) and the matching ε̂.
    x0, epsilon = x0_estimate(prediction, x_t, alpha_bar, prediction_type, clip)
    # 3. σ_t(η) = η √((1 − ᾱ_{t−1})/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_{t−1})  (eq. 16).
    eta = ops.cast(eta, precise_float())
    sigma = eta * ops.sqrt(
        (1.0 - alpha_bar_prev) / (1.0 - alpha_bar) * (1.0 - alpha_bar / alpha_bar_prev)
    )
    # 4. "Direction pointing to x_t" √(1 − ᾱ_{t−1} − σ_t²) ε̂ and the random
    #    noise σ_t z (eq. 12, second and third terms).
    direction = ops.sqrt(precise_ops.maximum(1.0 - alpha_bar_prev - sigma**2, 0.0))
    return (
        broadcast(ops.sqrt(alpha_bar_prev), ndim) * x0
        + broadcast(direction, ndim) * epsilon
        + broadcast(sigma, ndim) * ops.cast(noise, "float32")
    )


def ddim_sample(
    denoise_fn,
    initial_noise,
    schedule,
    seed,
    steps=None,
    eta=None,
    timestep_spacing=None,
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
        seed: int32 key `[2]`, or one key per image `[B, 2]` (step k
            draws under `rng.fold_in(keys, k)`; unused when η = 0).
        steps: number of steps (= NFE) in [1, T], int or int32 scalar tensor.
            Defaults to `None`: the `"ddim"` record's default steps.
        eta: η in [0, 1], float or float scalar tensor. Defaults to `None`:
            the record's default (0).
        timestep_spacing: see `timestep_sequence`. Defaults to `None`: the
            record's default spacing.
        prediction_type: what `denoise_fn` predicts. Defaults to `"epsilon"`.
        clip: clip x̂_0 to [−1, 1] at every step. Defaults to `True`.
        start: first step. Defaults to `0`.
        stop: one past the last step. Defaults to `steps`.

    Returns:
        The state after step `stop − 1` (x_0 for a full run), float32.

    Example:

    >>> x0 = ddim_sample(denoise, noise, schedule, np.array([0, 0]), steps=20)

    References:
        - Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021
          (eqs. 12 and 16).
    """
    _, steps, timestep_spacing, options = resolve(
        "ddim", schedule.timesteps, steps, timestep_spacing, eta=eta
    )
    eta = options["eta"]
    x, steps, sequence = prepare(schedule, initial_noise, steps, timestep_spacing, prediction_type)

    def step(x, t, prev_t, prediction, noise):
        return ddim_step(schedule, x, t, prev_t, prediction, noise, eta, prediction_type, clip)

    return stochastic_loop(step, denoise_fn, x, sequence, seed, steps, start, stop)


def run(denoise_fn, x, schedule, *, seed, steps, timestep_spacing, prediction_type, clip,
        variance, eta, start=0, stop=None):
    """The registry's entry point (see `keras_ddpm.samplers.Sampler`)."""
    del variance  # DDIM's variance is σ(η).
    return ddim_sample(
        denoise_fn, x, schedule, seed, steps=steps, eta=eta, timestep_spacing=timestep_spacing,
        prediction_type=prediction_type, clip=clip, start=start, stop=stop,
    )


def step(schedule, x, t, prev_t, prediction, noise, *, prediction_type, clip, variance, eta):
    """The registry's single-step entry point (see `keras_ddpm.samplers.Sampler`)."""
    del variance  # DDIM's variance is σ(η).
    return ddim_step(schedule, x, t, prev_t, prediction, noise, eta, prediction_type, clip)
