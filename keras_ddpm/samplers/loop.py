"""What every sampler shares: x̂_0 from a prediction, broadcasting, and the step loop.

Notation: t is the timestep index (0 … T−1), ᾱ_t its cumulative α, x̂_0 the
clean-sample estimate. Scalars of the schedule are float64 (`schedules.precise_float`);
images float32. Written in `keras.ops`: the same loop runs on every backend.
"""

import numpy as np
from keras import ops

from keras_ddpm import objectives
from keras_ddpm import rng
from keras_ddpm.samplers.registry import check_steps
from keras_ddpm.samplers.spacing import timestep_sequence
from keras_ddpm.schedules import precise_float


def broadcast(value, ndim):
    """A float64 scalar or `[B]` value as float32 `[B or 1, 1, …, 1]`."""
    value = ops.cast(value, "float32")
    return ops.reshape(value, (-1,) + (1,) * (ndim - 1))


def per_image(value, batch):
    """An int32 scalar as int32 `[batch]` (a timestep index for every image)."""
    return ops.broadcast_to(ops.cast(value, "int32"), (batch,))


def x0_estimate(prediction, x_t, alpha_bar, prediction_type, clip):
    """x̂_0 (and its ε̂) from a prediction at a timestep with cumulative ᾱ (float64)."""
    ndim = len(x_t.shape)
    signal = broadcast(ops.sqrt(alpha_bar), ndim)
    noise = broadcast(ops.sqrt(1.0 - alpha_bar), ndim)
    prediction = ops.cast(prediction, "float32")
    x0 = objectives.to_x0(prediction, x_t, signal, noise, prediction_type)
    if clip:
        x0 = ops.clip(x0, -1.0, 1.0)
        # The ε̂ consistent with the clipped x̂_0; σ_t > 0 at every index.
        return x0, (x_t - signal * x0) / noise
    return x0, objectives.to_epsilon(prediction, x_t, signal, noise, prediction_type)


def half_log_snr_at(schedule, index):
    """λ = log(α/σ) at an int32 index (float64 scalar): −∞ where ᾱ = 0, ∞ at −1 (the clean data).

    The multistep solvers' time variable (DPM-Solver++, UniPC).
    """
    ac = schedule.alphas_cumprod
    with np.errstate(divide="ignore"):
        table = 0.5 * (np.log(ac) - np.log1p(-ac))
    finite = schedule.gather(table, ops.maximum(index, 0), "float64")
    return ops.where(index >= 0, finite, ops.full((), np.inf, precise_float()))


def prepare(schedule, initial_noise, steps, timestep_spacing, prediction_type):
    """Checks a run and returns `(x, steps, sequence)`: float32 x, int32 steps, τ_0 … τ_T."""
    objectives.check_prediction_type(prediction_type, schedule)
    x = ops.convert_to_tensor(initial_noise, "float32")
    steps = schedule.timesteps if steps is None else steps
    check_steps(steps, schedule.timesteps)
    sequence = timestep_sequence(schedule, steps, timestep_spacing)
    steps = ops.clip(ops.cast(steps, "int32"), 1, schedule.timesteps)
    return x, steps, sequence


def run_steps(body, x, steps, start, stop):
    """Runs `x ← body(k, x)` for k in [start, stop) in one while loop (stop defaults to steps)."""
    stop = steps if stop is None else ops.minimum(ops.cast(stop, "int32"), steps)
    _, x = ops.while_loop(
        lambda k, _: k < stop,
        lambda k, x: (k + 1, body(k, x)),
        (ops.convert_to_tensor(start, "int32"), x),
    )
    return x


def stochastic_loop(step, denoise_fn, x, sequence, seed, steps, start, stop):
    """Steps k in [start, stop): x ← step(x, t_k, t_{k+1}, denoise_fn(x, t_k), z_k).

    z_k is standard normal noise, image b's drawn under `fold_in(keys[b], k)`
    (`keras_ddpm.rng`; `keys` is `seed` as one key per image), so a run split
    into ranges or chunks draws the same noise as a whole one.
    """
    batch = ops.shape(x)[0]
    keys = rng.as_image_keys(seed, batch)

    def body(k, x):
        t, prev_t = per_image(sequence[k], batch), per_image(sequence[k + 1], batch)
        noise = rng.normal(rng.fold_in(keys, k), ops.shape(x)[1:])
        return step(x, t, prev_t, denoise_fn(x, t), noise)

    return run_steps(body, x, steps, start, stop)


def multistep_run(sample):
    """The registry entry point (see `keras_ddpm.samplers.Sampler`) of a deterministic
    multistep `sample(denoise_fn, x, schedule, *, steps, order, timestep_spacing,
    prediction_type, clip, start)`: it runs from `start` to the end (its history lives in
    the loop, so a run cannot stop part-way), and draws no noise."""

    def run(denoise_fn, x, schedule, *, seed, steps, timestep_spacing, prediction_type, clip,
            variance, order, start=0, stop=None):
        del seed, variance, stop
        return sample(
            denoise_fn, x, schedule, steps=steps, order=order, timestep_spacing=timestep_spacing,
            prediction_type=prediction_type, clip=clip, start=start,
        )

    return run
