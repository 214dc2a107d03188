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
        # x̂_0 directly, not from ε̂: it stays finite where a = 0 (zero terminal SNR).
        x0 = self.mean + a * self.std**2 * (x_t - a * self.mean) / variance
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


def gaussian_oracle_model(schedule, image_shape, mean, std, **ddpm_kwargs):
    """A `keras_ddpm.DDPM` around `gaussian_oracle` (no EMA: the oracle has no weights)."""
    import keras_ddpm

    network = gaussian_oracle(schedule, image_shape, mean, std)
    return keras_ddpm.DDPM(network, schedule=schedule, ema_decay=None, **ddpm_kwargs)


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


def exact_ode_solution(schedule, mean, std, z, t):
    """x_t on the probability-flow ODE path through z: √ᾱ_t μ + √(ᾱ_t s² + 1 − ᾱ_t) z.

    For N(μ, s²) data the marginal at t is N(√ᾱ_t μ, ᾱ_t s² + 1 − ᾱ_t) and the
    ODE keeps z = (x_t − √ᾱ_t μ)/√(ᾱ_t s² + 1 − ᾱ_t) constant, so the exact
    x_0 of the path is μ + s z. `t = −1` is the clean data.
    """
    import numpy as np

    alpha_bar = 1.0 if t < 0 else schedule.alphas_cumprod[t]
    return np.sqrt(alpha_bar) * mean + np.sqrt(alpha_bar * std**2 + 1.0 - alpha_bar) * z


def exact_x0_estimate(schedule, mean, std, x_t, t):
    """E[x_0 | x_t] for N(μ, s²) data, the optimal x̂_0 (float64)."""
    import numpy as np

    alpha_bar = schedule.alphas_cumprod[t]
    a = np.sqrt(alpha_bar)
    return mean + a * std**2 * (x_t - a * mean) / (alpha_bar * std**2 + 1.0 - alpha_bar)


def respaced_output_moments(schedule, mean, std, sequence, eta=None, variance="fixed_small", variances=None):
    """Exact output mean and std of a respaced ancestral or DDIM run with the oracle.

    Every step τ_k → τ_{k+1} (τ_S = −1, ᾱ = 1) is affine in x plus Gaussian
    noise once x̂_0 is the oracle's (affine) E[x_0 | x]:

    - ancestral (`eta=None`): x' = c1·x̂_0 + c2·x + σ z with the respaced
      β = 1 − ᾱ_τ/ᾱ_prev, c1 = β√ᾱ_prev/(1 − ᾱ_τ), c2 = (1 − ᾱ_prev)√(1 − β)/(1 − ᾱ_τ)
      and σ² = β(1 − ᾱ_prev)/(1 − ᾱ_τ) (`"fixed_small"`) or β (`"fixed_large"`);
    - DDIM: x' = √ᾱ_prev·x̂_0 + √(1 − ᾱ_prev − σ²)·ε̂ + σ z with ε̂ = (x − √ᾱ_τ x̂_0)/√(1 − ᾱ_τ)
      and σ = η √((1 − ᾱ_prev)/(1 − ᾱ_τ)) √(1 − ᾱ_τ/ᾱ_prev).

    `variances`, if given, replaces the per-step σ² (to price a wrong sampler).
    The moments follow from x_T ~ N(0, 1) by m ← A m + B, v ← A² v + σ².
    """
    import numpy as np

    ac = schedule.alphas_cumprod
    sequence = list(sequence) + [-1]
    m, v = 0.0, 1.0
    for k in range(len(sequence) - 1):
        t, prev = sequence[k], sequence[k + 1]
        ab, ab_prev = ac[t], (1.0 if prev < 0 else ac[prev])
        a = np.sqrt(ab)
        slope = a * std**2 / (ab * std**2 + 1.0 - ab)  # x̂_0 = slope·x + offset
        offset = mean - slope * a * mean
        if eta is None:
            beta = 1.0 - ab / ab_prev
            c1 = beta * np.sqrt(ab_prev) / (1.0 - ab)
            c2 = (1.0 - ab_prev) * np.sqrt(1.0 - beta) / (1.0 - ab)
            var = beta * (1.0 - ab_prev) / (1.0 - ab) if variance == "fixed_small" else beta
            var = var if prev >= 0 else 0.0
            big_a, big_b = c1 * slope + c2, c1 * offset
        else:
            var = eta**2 * (1.0 - ab_prev) / (1.0 - ab) * (1.0 - ab / ab_prev)
            direction = np.sqrt(max(1.0 - ab_prev - var, 0.0)) / np.sqrt(1.0 - ab)
            big_a = np.sqrt(ab_prev) * slope + direction * (1.0 - a * slope)
            big_b = np.sqrt(ab_prev) * offset - direction * a * offset
        if variances is not None:
            var = variances[k]
        m = big_a * m + big_b
        v = big_a**2 * v + var
    return m, float(np.sqrt(v))


class CorrelatedGaussianOracleLayer(keras.layers.Layer):
    """The exact ε for data N(μ, Σ) over the flattened image, Σ any covariance.

    With a = √ᾱ_t and σ = √(1 − ᾱ_t), x_t ~ N(aμ, a²Σ + σ²I) and
    E[ε | x_t] = σ (a²Σ + σ²I)⁻¹ (x_t − aμ): one d × d matrix per timestep,
    tabulated in float64 and applied in float32.
    """

    def __init__(self, schedule, mean, cov, **kwargs):
        super().__init__(**kwargs)
        import numpy as np

        self.schedule = schedule
        alpha_bar = schedule.alphas_cumprod.astype(np.float64)
        cov = np.asarray(cov, np.float64)
        eye = np.eye(len(cov))
        self.matrices = np.stack([
            np.sqrt(1 - a) * np.linalg.inv(a * cov + (1 - a) * eye) for a in alpha_bar
        ]).astype("float32")
        self.mean = np.asarray(mean, np.float32).reshape(-1)

    def call(self, inputs):
        import tensorflow as tf

        x_t, t = inputs
        flat = ops.reshape(x_t, (ops.shape(x_t)[0], -1))
        a = ops.cast(ops.sqrt(self.schedule.alphas_cumprod_at(t)), "float32")[:, None]
        matrices = ops.take(ops.convert_to_tensor(self.matrices), t, axis=0)
        epsilon = ops.einsum("bij,bj->bi", matrices, flat - a * self.mean)
        return ops.reshape(epsilon, ops.shape(x_t))


def correlated_gaussian_oracle(schedule, image_shape, mean, cov):
    """A Keras model `[x_t, t] -> ε*` for N(mean, cov) data of `image_shape` (flattened)."""
    x_t = keras.Input(shape=image_shape, name="x_t")
    t = keras.Input(shape=(), dtype="int32", name="t")
    out = CorrelatedGaussianOracleLayer(schedule, mean, cov)([x_t, t])
    return keras.Model([x_t, t], out, name="correlated_gaussian_oracle")


def gaussian_conditional(mean, cov, known, values):
    """Mean and covariance of the unknown coordinates given `values` at the `known` ones (bool)."""
    import numpy as np

    mean, cov = np.asarray(mean, np.float64), np.asarray(cov, np.float64)
    k, u = np.asarray(known, bool), ~np.asarray(known, bool)
    gain = cov[np.ix_(u, k)] @ np.linalg.inv(cov[np.ix_(k, k)])
    return mean[u] + gain @ (values - mean[k]), cov[np.ix_(u, u)] - gain @ cov[np.ix_(k, u)]
