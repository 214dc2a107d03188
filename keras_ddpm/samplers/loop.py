"""What every sampler shares: x̂_0 from a prediction, broadcasting, and the step loop.

Notation: t is the timestep index (0 … T−1), ᾱ_t its cumulative α, x̂_0 the
clean-sample estimate. Scalars of the schedule are float64; images float32.
"""

import tensorflow as tf
from keras import ops

from keras_ddpm import objectives
from keras_ddpm import rng
from keras_ddpm.samplers.registry import check_steps
from keras_ddpm.samplers.spacing import timestep_sequence


def broadcast(value, ndim):
    """A float64 scalar or `[B]` value as float32 `[B or 1, 1, …, 1]`."""
    value = tf.cast(value, tf.float32)
    return tf.reshape(value, (-1,) + (1,) * (ndim - 1))


def x0_estimate(prediction, x_t, alpha_bar, prediction_type, clip):
    """x̂_0 (and its ε̂) from a prediction at a timestep with cumulative ᾱ (float64)."""
    ndim = len(x_t.shape)
    signal = broadcast(tf.sqrt(alpha_bar), ndim)
    noise = broadcast(tf.sqrt(1.0 - alpha_bar), ndim)
    prediction = tf.cast(prediction, tf.float32)
    x0 = objectives.to_x0(prediction, x_t, signal, noise, prediction_type)
    if clip:
        x0 = ops.clip(x0, -1.0, 1.0)
        # The ε̂ consistent with the clipped x̂_0; σ_t > 0 at every index.
        return x0, (x_t - signal * x0) / noise
    return x0, objectives.to_epsilon(prediction, x_t, signal, noise, prediction_type)


def prepare(schedule, initial_noise, steps, timestep_spacing, prediction_type):
    """Checks a run and returns `(x, steps, sequence)`: float32 x, int32 steps, τ_0 … τ_T."""
    objectives.check_prediction_type(prediction_type, schedule)
    x = tf.convert_to_tensor(initial_noise, tf.float32)
    steps = schedule.timesteps if steps is None else steps
    check_steps(steps, schedule.timesteps)
    sequence = timestep_sequence(schedule, steps, timestep_spacing)
    steps = tf.clip_by_value(tf.cast(steps, tf.int32), 1, schedule.timesteps)
    return x, steps, sequence


def run_steps(body, x, steps, start, stop):
    """Runs `x ← body(k, x)` for k in [start, stop) in one `tf.while_loop` (stop defaults to steps)."""
    stop = steps if stop is None else tf.minimum(tf.cast(stop, tf.int32), steps)
    _, x = tf.while_loop(
        lambda k, _: k < stop,
        lambda k, x: (k + 1, body(k, x)),
        (tf.convert_to_tensor(start, tf.int32), x),
        shape_invariants=(tf.TensorShape([]), x.shape),
    )
    return x


def stochastic_loop(step, denoise_fn, x, sequence, seed, steps, start, stop):
    """Steps k in [start, stop): x ← step(x, t_k, t_{k+1}, denoise_fn(x, t_k), z_k).

    z_k is standard normal noise, image b's drawn under `fold_in(keys[b], k)`
    (`keras_ddpm.rng`; `keys` is `seed` as one key per image), so a run split
    into ranges or chunks draws the same noise as a whole one.
    """
    keys = rng.as_image_keys(seed, tf.shape(x)[0])
    batch = tf.shape(x)[0]

    def body(k, x):
        t, prev_t = tf.fill([batch], sequence[k]), tf.fill([batch], sequence[k + 1])
        noise = rng.normal(rng.fold_in(keys, k), ops.shape(x)[1:])
        return step(x, t, prev_t, denoise_fn(x, t), noise)

    return run_steps(body, x, steps, start, stop)
