"""Noise schedules: the fixed forward process q(x_t | x_0) and its posterior.

A schedule owns no weights. It holds float64 NumPy tables indexed by the
timestep *index* `t` in `0 .. timesteps - 1` (index `i` is timestep `i + 1`
of Ho et al. 2020, so `alphas_cumprod[0] = 1 - beta_1`), and offers the float32
tensor lookups that training and sampling need. Training and every sampler use
the same object, so the maths lives in one tested place.

Notation (Ho et al. 2020):

| name                  | symbol                                   |
|-----------------------|------------------------------------------|
| `betas`               | β_t                                      |
| `alphas`              | α_t = 1 − β_t                            |
| `alphas_cumprod`      | ᾱ_t = ∏_{s≤t} α_s                        |
| `alphas_cumprod_prev` | ᾱ_{t−1} (ᾱ_0 = 1)                        |
| `posterior_variance`  | β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t)      |
"""

import math

import keras
import numpy as np
from keras import ops

KINDS = ("linear", "scaled_linear", "cosine", "sigmoid")

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


_BETA_FUNCTIONS = {
    "linear": _linear_betas,
    "scaled_linear": _scaled_linear_betas,
    "cosine": _cosine_betas,
    "sigmoid": _sigmoid_betas,
}


def _rescale_zero_terminal_snr(alphas_cumprod):
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


def _check_arguments(kind, timesteps, beta_start, beta_end):
    if kind not in _BETA_FUNCTIONS:
        raise ValueError(
            f"Unknown noise schedule kind={kind!r}. Expected one of {list(KINDS)}."
        )
    if isinstance(timesteps, bool) or not isinstance(timesteps, (int, np.integer)):
        raise TypeError(
            f"`timesteps` must be an integer >= 1. Received: timesteps={timesteps!r} "
            f"of type {type(timesteps).__name__}."
        )
    if timesteps < 1:
        raise ValueError(
            f"`timesteps` must be an integer >= 1. Received: timesteps={timesteps}."
        )
    for name, value in (("beta_start", beta_start), ("beta_end", beta_end)):
        if not isinstance(value, (int, float, np.floating)) or not 0.0 < value < 1.0:
            raise ValueError(
                f"`{name}` must be a number in the open interval (0, 1). "
                f"Received: {name}={value!r}."
            )
    if beta_end < beta_start:
        raise ValueError(
            "`beta_end` must be >= `beta_start`. Received: "
            f"beta_start={beta_start}, beta_end={beta_end}."
        )


@keras.saving.register_keras_serializable(package="keras_ddpm")
class NoiseSchedule:
    """A discrete-time variance schedule β_1 … β_T and the quantities derived from it.

    Args:
        kind: how β_t grows with t. One of `"linear"` (Ho et al. 2020),
            `"scaled_linear"` (linear in √β), `"cosine"` (Nichol & Dhariwal
            2021, s = 0.008, β capped at 0.999) or `"sigmoid"` (GeoDiff).
            Defaults to `"linear"`.
        timesteps: number of diffusion steps T. Defaults to `1000`.
        beta_start: β_1, for the `linear`, `scaled_linear` and `sigmoid`
            kinds. Defaults to `1e-4`.
        beta_end: β_T, for the same kinds. Defaults to `0.02`.
        rescale_zero_terminal_snr: rescale √ᾱ so that the last timestep has
            ᾱ_T = 0 (zero signal-to-noise ratio) while ᾱ_1 stays the same
            (Lin et al. 2023, algorithm 1); the betas are then
            β_t = 1 − ᾱ_t/ᾱ_{t−1}, so β_T = 1. Training then sees pure noise
            at t = T, as sampling does. At t = T no ε-prediction can give
            x̂_0 (x_T holds no signal: x̂_0 = (x_T − ε̂)/0), so the samplers and
            `DDPM` refuse `prediction_type="epsilon"` with such a schedule;
            use `"v"` (as Lin et al. do) or `"x0"`. Needs `timesteps >= 2`.
            Defaults to `False`.

    Attributes (float64 NumPy arrays of length `timesteps`, index `i` holding
    timestep `i + 1`): `betas`, `alphas`, `alphas_cumprod`,
    `alphas_cumprod_prev`, `posterior_variance`,
    `posterior_log_variance_clipped`, `posterior_mean_coef1`,
    `posterior_mean_coef2`.

    The tensor methods take `t`, an integer tensor of timestep indices of
    shape `[B]`, gather the table entries in float32 and reshape them to
    `[B, 1, ..., 1]` with `ndim` axes so that they broadcast against images.

    Example:

    >>> schedule = NoiseSchedule("cosine", timesteps=1000)
    >>> x_t = schedule.add_noise(images, noise, t)   # q_sample

    References:
        - Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models",
          NeurIPS 2020 (eqs. 4, 6, 7).
        - Nichol & Dhariwal, "Improved Denoising Diffusion Probabilistic
          Models", ICML 2021 (eq. 17).
        - Xu et al., "GeoDiff: a Geometric Diffusion Model for Molecular
          Conformation Generation", ICLR 2022 (sigmoid schedule).
        - Lin, Liu, Li & Yang, "Common Diffusion Noise Schedules and Sample
          Steps are Flawed", WACV 2024 (algorithm 1, zero terminal SNR).
    """

    def __init__(
        self,
        kind="linear",
        timesteps=1000,
        beta_start=1e-4,
        beta_end=0.02,
        rescale_zero_terminal_snr=False,
    ):
        _check_arguments(kind, timesteps, beta_start, beta_end)
        if not isinstance(rescale_zero_terminal_snr, (bool, np.bool_)):
            raise TypeError(
                "`rescale_zero_terminal_snr` must be True or False. Received: "
                f"rescale_zero_terminal_snr={rescale_zero_terminal_snr!r}."
            )
        if rescale_zero_terminal_snr and timesteps < 2:
            raise ValueError(
                "`rescale_zero_terminal_snr=True` needs timesteps >= 2 (the first "
                f"ᾱ is kept and the last set to 0). Received: timesteps={timesteps}."
            )
        self.kind = kind
        self.timesteps = int(timesteps)
        self.beta_start = float(beta_start)
        self.beta_end = float(beta_end)
        self.rescale_zero_terminal_snr = bool(rescale_zero_terminal_snr)

        betas = _BETA_FUNCTIONS[kind](self.timesteps, self.beta_start, self.beta_end)
        betas = np.asarray(betas, dtype=np.float64)
        if self.rescale_zero_terminal_snr:
            alphas_cumprod = _rescale_zero_terminal_snr(np.cumprod(1.0 - betas))
            betas = 1.0 - alphas_cumprod / np.append(1.0, alphas_cumprod[:-1])
        self.betas = betas
        self.alphas = 1.0 - self.betas
        if self.rescale_zero_terminal_snr:
            # Kept as computed (not re-multiplied) so that ᾱ_T is exactly 0.
            self.alphas_cumprod = alphas_cumprod
        else:
            self.alphas_cumprod = np.cumprod(self.alphas)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])

        # Posterior q(x_{t-1} | x_t, x_0) = N(coef1·x_0 + coef2·x_t, β̃_t)  (eqs. 6–7).
        one_minus = 1.0 - self.alphas_cumprod
        self.posterior_variance = self.betas * (1.0 - self.alphas_cumprod_prev) / one_minus
        self.posterior_mean_coef1 = self.betas * np.sqrt(self.alphas_cumprod_prev) / one_minus
        self.posterior_mean_coef2 = (
            (1.0 - self.alphas_cumprod_prev) * np.sqrt(self.alphas) / one_minus
        )
        # β̃_1 = 0, so its log is clipped to β̃_2 as in the authors' code.
        first = self.posterior_variance[1] if self.timesteps > 1 else self.betas[0]
        self.posterior_log_variance_clipped = np.log(
            np.append(first, self.posterior_variance[1:])
        )

    # ------------------------------------------------------------------
    # Tensor lookups
    # ------------------------------------------------------------------
    def lookup(self, table, t, ndim=4):
        """Gathers `table[t]` as float32 and reshapes it to `[B, 1, …, 1]`.

        Args:
            table: a float64 NumPy array of length `timesteps` (for example
                `schedule.betas`).
            t: integer tensor of timestep indices, shape `[B]`.
            ndim: rank of the result. Defaults to `4` (images `[B, H, W, C]`).
        """
        values = ops.take(
            ops.convert_to_tensor(np.asarray(table, dtype=np.float32)),
            ops.cast(t, "int32"),
        )
        return ops.reshape(values, (-1,) + (1,) * (ndim - 1))

    def signal_and_noise_rates(self, t, ndim=4):
        """(√ᾱ_t, √(1 − ᾱ_t)): x_t = signal_rate · x_0 + noise_rate · ε."""
        signal = self.lookup(np.sqrt(self.alphas_cumprod), t, ndim)
        noise = self.lookup(np.sqrt(1.0 - self.alphas_cumprod), t, ndim)
        return signal, noise

    def add_noise(self, x0, noise, t):
        """Samples q(x_t | x_0): √ᾱ_t · x0 + √(1 − ᾱ_t) · noise (Ho et al. eq. 4).

        Args:
            x0: clean images, `[B, ...]`.
            noise: standard normal noise shaped like `x0`.
            t: integer timestep indices, `[B]`.

        Returns:
            float32 tensor shaped like `x0`.
        """
        x0 = ops.cast(x0, "float32")
        noise = ops.cast(noise, "float32")
        signal, sigma = self.signal_and_noise_rates(t, len(x0.shape))
        return signal * x0 + sigma * noise

    def posterior_mean_coefficients(self, t, ndim=4):
        """(coef1, coef2) of the posterior mean μ̃_t = coef1 · x_0 + coef2 · x_t (eq. 7)."""
        return (
            self.lookup(self.posterior_mean_coef1, t, ndim),
            self.lookup(self.posterior_mean_coef2, t, ndim),
        )

    def posterior_mean(self, x0, x_t, t):
        """μ̃_t(x_t, x_0), the mean of q(x_{t−1} | x_t, x_0) (eq. 7)."""
        coef1, coef2 = self.posterior_mean_coefficients(t, len(x_t.shape))
        return coef1 * ops.cast(x0, "float32") + coef2 * ops.cast(x_t, "float32")

    def posterior_variance_at(self, t, ndim=4):
        """β̃_t, the variance of q(x_{t−1} | x_t, x_0) (eq. 7)."""
        return self.lookup(self.posterior_variance, t, ndim)

    def posterior_log_variance(self, t, ndim=4):
        """log β̃_t with β̃_1 (which is 0) replaced by β̃_2."""
        return self.lookup(self.posterior_log_variance_clipped, t, ndim)

    @property
    def zero_terminal_snr(self):
        """True when ᾱ_T = 0: the last timestep holds no signal at all."""
        return bool(self.alphas_cumprod[-1] == 0.0)

    def snr(self, t, ndim=4):
        """Signal-to-noise ratio ᾱ_t / (1 − ᾱ_t) (Kingma et al. 2021)."""
        return self.lookup(self.alphas_cumprod / (1.0 - self.alphas_cumprod), t, ndim)

    # ------------------------------------------------------------------
    # Serialization
    # ------------------------------------------------------------------
    def get_config(self):
        return {
            "kind": self.kind,
            "timesteps": self.timesteps,
            "beta_start": self.beta_start,
            "beta_end": self.beta_end,
            "rescale_zero_terminal_snr": self.rescale_zero_terminal_snr,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return isinstance(other, NoiseSchedule) and other.get_config() == self.get_config()

    def __hash__(self):
        return hash(tuple(sorted(self.get_config().items())))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"NoiseSchedule({args})"
