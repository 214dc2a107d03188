"""Ancestral sampling (DDPM): the reverse Markov chain, optionally respaced.

References:
    - Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS
      2020 (Algorithm 2).
    - Nichol & Dhariwal, "Improved Denoising Diffusion Probabilistic Models",
      ICML 2021 (section 4, respacing).
"""

from keras import ops

from keras_ddpm.samplers.loop import broadcast
from keras_ddpm.samplers.loop import prepare
from keras_ddpm.samplers.loop import stochastic_loop
from keras_ddpm.samplers.loop import x0_estimate
from keras_ddpm.samplers.registry import resolve
from keras_ddpm.schedules import check_variance
from keras_ddpm.schedules import precise_float


def log_variance_table(schedule, variance):
    """log σ_t² of the reverse process per index: `schedule.reverse_log_variance_table`."""
    return schedule.reverse_log_variance_table(variance)


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
    x_t = ops.convert_to_tensor(x_t, "float32")
    t = ops.cast(t, "int32")
    prev_t = t - 1 if prev_t is None else ops.cast(prev_t, "int32")
    ndim = len(x_t.shape)
    # 1. The (respaced) jump t → prev_t: its posterior q(x_prev | x_t, x_0) (eqs. 6–7).
    _, coef_x0, coef_xt, _ = schedule.posterior(t, prev_t)
    # 2. Clean-sample estimate x̂_0 (for ε-prediction, eq. 15 solved for x_0),
    #    clipped to the data range as the authors' sampler does.
    x0, _ = x0_estimate(prediction, x_t, schedule.alphas_cumprod_at(t), prediction_type, clip)
    # 3. Posterior mean μ̃(x_t, x̂_0); with unclipped ε-prediction this is
    #    1/√α_t · (x_t − β_t/√(1 − ᾱ_t) · ε̂) of Algorithm 2.
    mean = broadcast(coef_x0, ndim) * x0 + broadcast(coef_xt, ndim) * x_t
    # 4. Add σ·z with σ² = β̃ or β, except on the last step (to the clean data).
    var = schedule.reverse_variance(t, prev_t, variance)
    var = ops.where(prev_t >= 0, var, ops.zeros((), precise_float()))
    return mean + broadcast(ops.sqrt(var), ndim) * ops.cast(noise, "float32")


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
    timestep_spacing=None,
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
    `rng.fold_in(keys, k)`; splitting the range lets a caller report
    progress while reusing one traced function.

    Args:
        denoise_fn: callable `(x_t, t) -> prediction`.
        initial_noise: the state entering step `start` (x_T when `start == 0`),
            float32 `[B, ...]`.
        schedule: the `NoiseSchedule`.
        seed: int32 key `[2]`, or one key per image `[B, 2]` (`keras_ddpm.rng`).
        prediction_type: what `denoise_fn` predicts. Defaults to `"epsilon"`.
        variance: `"fixed_small"` or `"fixed_large"`. Defaults to `"fixed_small"`.
        clip: clip x̂_0 to [−1, 1] at every step. Defaults to `True`.
        start: first step (int or int32 scalar tensor). Defaults to `0`.
        stop: one past the last step. Defaults to `steps`.
        steps: number of steps in [1, T] (int or int32 scalar tensor).
            Defaults to `None`: the `"ddpm"` record's default (T).
        timestep_spacing: see `timestep_sequence`. Defaults to `None`: the
            record's default spacing.

    Returns:
        The state after step `stop − 1` (x_0 for a full run), float32.

    Example:

    >>> x0 = ddpm_sample(lambda x, t: network([x, t]), noise, schedule,
    ...                  seed=np.array([0, 0]), steps=100)

    References:
        - Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", 2020.
        - Nichol & Dhariwal, "Improved Denoising Diffusion Probabilistic
          Models", ICML 2021 (section 4, respacing).
    """
    check_variance(variance)
    _, steps, timestep_spacing, _ = resolve("ddpm", schedule.timesteps, steps, timestep_spacing)
    x, steps, sequence = prepare(schedule, initial_noise, steps, timestep_spacing, prediction_type)

    def step(x, t, prev_t, prediction, noise):
        return ddpm_step(
            schedule, x, t, prediction, noise, prediction_type, variance, clip, prev_t
        )

    return stochastic_loop(step, denoise_fn, x, sequence, seed, steps, start, stop)


def run(denoise_fn, x, schedule, *, seed, steps, timestep_spacing, prediction_type, clip,
        variance, start=0, stop=None):
    """The registry's entry point (see `keras_ddpm.samplers.Sampler`)."""
    return ddpm_sample(
        denoise_fn, x, schedule, seed, prediction_type=prediction_type, variance=variance,
        clip=clip, start=start, stop=stop, steps=steps, timestep_spacing=timestep_spacing,
    )


def step(schedule, x, t, prev_t, prediction, noise, *, prediction_type, clip, variance):
    """The registry's single-step entry point (see `keras_ddpm.samplers.Sampler`)."""
    return ddpm_step(schedule, x, t, prediction, noise, prediction_type, variance, clip, prev_t)
