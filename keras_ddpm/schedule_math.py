"""The NumPy maths of noise schedules: β functions, zero-terminal-SNR rescaling, jump posteriors.

No TensorFlow here: the command line reads `KINDS` and `VARIANCES` before it
loads TensorFlow. `keras_ddpm.schedules.NoiseSchedule` builds its tables
from these functions.
"""

import math

import numpy as np

KINDS = ("linear", "scaled_linear", "cosine", "sigmoid")
# Reverse-process variances σ_t² of p(x_{t−1} | x_t) (Ho et al. 2020, section 3.2).
VARIANCES = ("fixed_small", "fixed_large")

# Nichol & Dhariwal (2021), section 3.2: the offset s and the cap on β_t.
COSINE_OFFSET = 0.008
COSINE_MAX_BETA = 0.999


def _linear_betas(timesteps, beta_start, beta_end):
    """β linear in t (Ho et al. 2020, section 4)."""
    return np.linspace(beta_start, beta_end, timesteps, dtype=np.float64)


def _scaled_linear_betas(timesteps, beta_start, beta_end):
    """√β linear in t (the latent-diffusion schedule, Rombach et al. 2022)."""
    roots = np.linspace(math.sqrt(beta_start), math.sqrt(beta_end), timesteps)
    return roots.astype(np.float64) ** 2


def _cosine_betas(timesteps, beta_start, beta_end):
    """ᾱ_t = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s) · π/2).

    Nichol & Dhariwal 2021, eq. 17; β_t = 1 − ᾱ_t/ᾱ_{t−1} capped at 0.999.
    `beta_start` and `beta_end` play no part.
    """
    del beta_start, beta_end
    fractions = np.arange(timesteps + 1, dtype=np.float64) / timesteps
    f = np.cos((fractions + COSINE_OFFSET) / (1 + COSINE_OFFSET) * math.pi / 2) ** 2
    alphas_cumprod = f / f[0]
    betas = 1.0 - alphas_cumprod[1:] / alphas_cumprod[:-1]
    return np.minimum(betas, COSINE_MAX_BETA)


def _sigmoid_betas(timesteps, beta_start, beta_end):
    """β_t = β_start + (β_end − β_start) · sigmoid(u_t), u_t linear in [−6, 6].

    The schedule of GeoDiff (Xu et al. 2022).
    """
    u = np.linspace(-6.0, 6.0, timesteps, dtype=np.float64)
    return beta_start + (beta_end - beta_start) / (1.0 + np.exp(-u))


BETA_FUNCTIONS = {
    "linear": _linear_betas,
    "scaled_linear": _scaled_linear_betas,
    "cosine": _cosine_betas,
    "sigmoid": _sigmoid_betas,
}


def rescale_to_zero_terminal_snr(alphas_cumprod):
    """Shifts and scales √ᾱ so that √ᾱ_T = 0 and √ᾱ_1 is unchanged.

    Lin et al. 2023, algorithm 1: √ᾱ_t ← (√ᾱ_t − √ᾱ_T) · √ᾱ_1 / (√ᾱ_1 − √ᾱ_T).
    Returns the new ᾱ, with the first entry exactly the old one and the last 0.
    """
    roots = np.sqrt(alphas_cumprod)
    first, last = roots[0], roots[-1]
    rescaled = (roots - last) * first / (first - last)
    rescaled = rescaled**2
    rescaled[0], rescaled[-1] = alphas_cumprod[0], 0.0
    return rescaled


def check_variance(variance):
    """Raises a `ValueError` unless `variance` is a known reverse-process variance."""
    if variance not in VARIANCES:
        raise ValueError(f"Unknown variance={variance!r}. Expected one of {list(VARIANCES)}.")


def jump_posterior(alpha_bar, alpha_bar_prev, sqrt):
    """β, posterior-mean coefficients and β̃ of the jump from ᾱ to ᾱ_prev.

    For the jump t → s (s < t, s = −1 the clean data with ᾱ = 1), β = 1 − ᾱ_t/ᾱ_s
    and q(x_s | x_t, x_0) = N(coef_x0·x_0 + coef_xt·x_t, β̃) with
    coef_x0 = β √ᾱ_s/(1 − ᾱ_t), coef_xt = (1 − ᾱ_s) √(1 − β)/(1 − ᾱ_t) and
    β̃ = β (1 − ᾱ_s)/(1 − ᾱ_t) (Ho et al. 2020, eqs. 6–7; respaced as in Nichol &
    Dhariwal 2021, section 4). Works on NumPy arrays (`sqrt=np.sqrt`) and on
    tensors (`sqrt=ops.sqrt`).
    """
    beta = 1.0 - alpha_bar / alpha_bar_prev
    coef_x0 = beta * sqrt(alpha_bar_prev) / (1.0 - alpha_bar)
    coef_xt = (1.0 - alpha_bar_prev) * sqrt(1.0 - beta) / (1.0 - alpha_bar)
    variance = beta * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)
    return beta, coef_x0, coef_xt, variance


