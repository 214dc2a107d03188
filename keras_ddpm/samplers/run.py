"""`sample`: run any registered sampler by name."""

from keras import ops

from keras_ddpm.samplers.registry import DEFAULT_SAMPLER
from keras_ddpm.samplers.registry import resolve


def sample(
    denoise_fn,
    initial_noise,
    schedule,
    sampler=DEFAULT_SAMPLER,
    steps=None,
    timestep_spacing=None,
    seed=(0, 0),
    prediction_type="epsilon",
    variance="fixed_small",
    clip=True,
    **options,
):
    """Runs a registered sampler from `initial_noise` to x_0.

    Args:
        denoise_fn: callable `(x_t, t) -> prediction`.
        initial_noise: x_T, float32 `[B, ...]`.
        schedule: the `NoiseSchedule`.
        sampler: a name of `sampler_names()`. Defaults to `DEFAULT_SAMPLER`
            (ancestral sampling).
        steps: number of steps (= NFE) in [1, T]. Defaults to `None`, the
            record's `default_steps` (T for `"ddpm"`), capped at T.
        timestep_spacing: see `timestep_sequence`. Defaults to `None`, the
            record's `default_spacing`.
        seed: int32 key `[2]` (or one per image, `[B, 2]`) for the stochastic samplers.
            Defaults to `(0, 0)`.
        prediction_type: what `denoise_fn` predicts. Defaults to `"epsilon"`.
        variance: ancestral sampling's `"fixed_small"` or `"fixed_large"`.
            Defaults to `"fixed_small"`.
        clip: clip x̂_0 to [−1, 1] at every step. Defaults to `True`.
        **options: the sampler's options, e.g. `eta=` for `"ddim"` and
            `order=` for `"dpm_solver"`; another sampler refuses them unless
            they are neutral (η = 0).

    Returns:
        x_0, float32, shaped like `initial_noise`.

    Example:

    >>> x0 = sample(denoise, noise, schedule, "ddim", steps=20, eta=0.0)
    """
    record, steps, spacing, options = resolve(
        sampler, schedule.timesteps, steps, timestep_spacing, **options
    )
    return record.function()(
        denoise_fn, initial_noise, schedule, seed=ops.convert_to_tensor(seed, "int32"),
        steps=steps, timestep_spacing=spacing, prediction_type=prediction_type, clip=clip,
        variance=variance, start=0, stop=None, **options,
    )
