"""Weightless denoisers whose predictions are exact for Gaussian data.

For data x_0 ~ N(μ, s²) (every pixel independent) and x_t = a·x_0 + σ·ε with
a = √ᾱ_t, σ = √(1 − ᾱ_t), the marginal is x_t ~ N(aμ, a²s² + σ²) and the
minimum-MSE predictions are

    E[ε | x_t]   = σ (x_t − aμ) / (a²s² + σ²)
    E[x_0 | x_t] = μ + a s² (x_t − aμ) / (a²s² + σ²)

A network that returns them is what a perfectly trained model would be.
"""

import keras
from keras import ops

from keras_ddpm import objectives


class GaussianOracleLayer(keras.layers.Layer):
    """Returns the exact optimal prediction for N(mean, std²) data."""

    def __init__(self, schedule, mean, std, prediction_type="epsilon", **kwargs):
        super().__init__(**kwargs)
        self.schedule = schedule
        self.mean = mean
        self.std = std
        self.prediction_type = prediction_type

    def call(self, inputs):
        x_t, t = inputs
        a, sigma = self.schedule.signal_and_noise_rates(t, len(x_t.shape))
        variance = a * a * self.std**2 + sigma * sigma
        epsilon = sigma * (x_t - a * self.mean) / variance
        x0 = objectives.to_x0(epsilon, x_t, a, sigma, "epsilon")
        if self.prediction_type == "epsilon":
            return epsilon
        if self.prediction_type == "x0":
            return x0
        return a * epsilon - sigma * x0


def gaussian_oracle(schedule, image_shape, mean, std, prediction_type="epsilon"):
    """A functional `keras.Model` with the network calling convention `[x_t, t]`."""
    x_t = keras.Input(shape=image_shape, name="x_t")
    t = keras.Input(shape=(), dtype="int32", name="t")
    out = GaussianOracleLayer(schedule, mean, std, prediction_type)([x_t, t])
    return keras.Model([x_t, t], out, name="gaussian_oracle")


def ancestral_output_moments(schedule, mean, std, log_variances, t_offset=0):
    """Exact mean and std of ancestral sampling (unclipped) driven by the ε-oracle.

    With the oracle every step is affine in x plus Gaussian noise,
    x_{t−1} = M_t·x + N_t + σ_t·z, so the output is Gaussian and its moments
    follow from x_T ~ N(0, 1) by the recursions m ← M m + N, v ← M² v + σ_t².
    `t_offset` asks the oracle about timestep index t + offset while the sampler
    uses index t: the off-by-one a test must be able to tell apart.

    Args:
        log_variances: log σ_t² per timestep index (the sampler's table).
    """
    import numpy as np

    ac = schedule.alphas_cumprod
    m, v = 0.0, 1.0
    last = schedule.timesteps - 1
    for t in range(last, -1, -1):
        # The ε-oracle, possibly asked about the wrong timestep k.
        k = min(max(t + t_offset, 0), last)
        a_k, sigma_k = np.sqrt(ac[k]), np.sqrt(1.0 - ac[k])
        eps_slope = sigma_k / (a_k * a_k * std**2 + sigma_k**2)
        eps_offset = -eps_slope * a_k * mean
        # x̂_0 = (x − σ_t ε̂) / a_t with the sampler's own timestep t.
        a, sigma = np.sqrt(ac[t]), np.sqrt(1.0 - ac[t])
        slope_x0, offset_x0 = (1.0 - sigma * eps_slope) / a, -sigma * eps_offset / a
        c1, c2 = schedule.posterior_mean_coef1[t], schedule.posterior_mean_coef2[t]
        m = (c1 * slope_x0 + c2) * m + c1 * offset_x0
        v = (c1 * slope_x0 + c2) ** 2 * v + (np.exp(log_variances[t]) if t > 0 else 0.0)
    return m, float(np.sqrt(v))
