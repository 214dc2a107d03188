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

The posterior of a jump between two indices (one step of the chain, or a
respaced step that skips timesteps) is written once, in `jump_posterior`, and serves
both the NumPy tables and the float64 tensor method `posterior` that the
samplers and the variational bound call. The reverse-process variance
(`VARIANCES`) likewise has one home, `reverse_variance`.
"""

import keras
import numpy as np
from keras import ops

from keras_ddpm import backend
from keras_ddpm.schedule_math import BETA_FUNCTIONS
from keras_ddpm.schedule_math import COSINE_MAX_BETA  # noqa: F401 - public name
from keras_ddpm.schedule_math import COSINE_OFFSET  # noqa: F401 - public name
from keras_ddpm.schedule_math import KINDS
from keras_ddpm.schedule_math import VARIANCES  # noqa: F401 - public name
from keras_ddpm.schedule_math import jump_posterior
from keras_ddpm.schedule_math import rescale_to_zero_terminal_snr
from keras_ddpm.schedule_math import check_variance


def precise_float():
    """The dtype of the schedule's coefficient arithmetic in tensors: float64 where the backend has it.

    TensorFlow and PyTorch: float64. JAX: float64 inside keras_ddpm's compiled loops and
    wherever `jax_enable_x64` is on, else float32 (JAX's default has no float64).
    """
    return backend.room().precise_float()


def _check_optimized_timesteps(indices, timesteps):
    """`indices` as a tuple of ints, strictly decreasing from T − 1 and ≥ 0 (or `None`)."""
    if indices is None:
        return None
    try:
        values = tuple(int(i) for i in indices)
        exact = all(int(i) == i for i in indices)
    except (TypeError, ValueError):
        values, exact = (), False
    decreasing = all(a > b for a, b in zip(values, values[1:]))
    if not (exact and values and values[0] == timesteps - 1 and values[-1] >= 0 and decreasing):
        raise ValueError(
            "`optimized_timesteps` must be strictly decreasing integer indices from "
            f"{timesteps - 1} (the schedule's last) down to 0 or more. Received: "
            f"optimized_timesteps={indices!r}."
        )
    return values


def _check_arguments(kind, timesteps, beta_start, beta_end):
    if kind not in BETA_FUNCTIONS:
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
        optimized_timesteps: the indices τ_0 = T − 1 > … > τ_{S−1} ≥ 0 that
            `DDPM.optimize_steps` found for one model, run by
            `timestep_spacing="optimized"` (`generate(steps="optimized")`).
            Defaults to `None`.

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
        optimized_timesteps=None,
    ):
        _check_arguments(kind, timesteps, beta_start, beta_end)
        self.optimized_timesteps = _check_optimized_timesteps(optimized_timesteps, timesteps)
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

        betas = BETA_FUNCTIONS[kind](self.timesteps, self.beta_start, self.beta_end)
        betas = np.asarray(betas, dtype=np.float64)
        if self.rescale_zero_terminal_snr:
            alphas_cumprod = rescale_to_zero_terminal_snr(np.cumprod(1.0 - betas))
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
        _, self.posterior_mean_coef1, self.posterior_mean_coef2, self.posterior_variance = jump_posterior(
            self.alphas_cumprod, self.alphas_cumprod_prev, np.sqrt
        )
        # β̃_1 = 0, so its log is clipped to β̃_2 as in the authors' code.
        self.posterior_log_variance_clipped = np.log(
            np.append(self._decoder_variance(), self.posterior_variance[1:])
        )

    def _decoder_variance(self):
        """σ² of the last step p(x_0 | x_1): β̃_2, as the authors clip it (β_1 when T = 1)."""
        return self.posterior_variance[1] if self.timesteps > 1 else self.betas[0]

    def reverse_log_variance_table(self, variance):
        """log σ_t² of the reverse process p(x_{t−1} | x_t) per index, a float64 table.

        `"fixed_small"` is σ_t² = β̃_t, the posterior variance, right when x_0 is
        a point mass; `"fixed_large"` is σ_t² = β_t, right when x_0 ~ N(0, I)
        (Ho et al. 2020, section 3.2). Both clip the first entry to β̃_2, as
        the authors' code does.
        """
        check_variance(variance)
        if variance == "fixed_small":
            return self.posterior_log_variance_clipped
        return np.log(np.append(self._decoder_variance(), self.betas[1:]))

    # ------------------------------------------------------------------
    # Tensor lookups
    # ------------------------------------------------------------------
    def gather(self, table, t, dtype="float32", clean_value=None):
        """`table[t]` as a tensor of `dtype`, shaped like `t`.

        Args:
            table: a NumPy array of length `timesteps` (for example
                `schedule.alphas_cumprod`).
            t: integer tensor (or array) of timestep indices.
            dtype: the result's dtype. Defaults to `"float32"`.
            clean_value: when given, index −1 (the clean data, one step past
                index 0) reads this value. Defaults to `None` (no index −1).
        """
        values = np.asarray(table, dtype=np.float64)
        dtype = precise_float() if dtype == "float64" else dtype
        t = ops.cast(t, "int32")
        if clean_value is not None:
            values, t = np.append(clean_value, values), t + 1
        return ops.take(ops.convert_to_tensor(values.astype(dtype)), t)

    def lookup(self, table, t, ndim=4, dtype="float32"):
        """`gather(table, t)` reshaped to `[B, 1, …, 1]` with `ndim` axes.

        Args:
            table: a float64 NumPy array of length `timesteps` (for example
                `schedule.betas`).
            t: integer tensor of timestep indices, shape `[B]`.
            ndim: rank of the result. Defaults to `4` (images `[B, H, W, C]`).
            dtype: the result's dtype. Defaults to `"float32"`.
        """
        return ops.reshape(self.gather(table, t, dtype), (-1,) + (1,) * (ndim - 1))

    def alphas_cumprod_at(self, t):
        """ᾱ at integer indices `t` in float64, where t = −1 (the clean data) reads 1."""
        return self.gather(self.alphas_cumprod, t, "float64", clean_value=1.0)

    def posterior(self, t, prev_t):
        """q(x_{prev_t} | x_t, x_0) for the jump t → prev_t, in float64.

        One step of the chain is prev_t = t − 1; a respaced step skips
        timesteps (Nichol & Dhariwal 2021, section 4); prev_t = −1 is the clean
        data.

        Args:
            t: integer tensor of timestep indices, any shape.
            prev_t: integer tensor of the indices jumped to, shaped like `t`.

        Returns:
            float64 tensors `(beta, coef_x0, coef_xt, variance)` shaped like
            `t`: the jump's β = 1 − ᾱ_t/ᾱ_{prev_t}, the posterior mean
            coef_x0·x_0 + coef_xt·x_t and its variance β̃ (eqs. 6–7).
        """
        return jump_posterior(self.alphas_cumprod_at(t), self.alphas_cumprod_at(prev_t), ops.sqrt)

    def reverse_variance(self, t, prev_t, variance):
        """σ² of the reverse step p(x_{prev_t} | x_t), in float64, shaped like `t`.

        `"fixed_small"` is the jump's β̃, `"fixed_large"` its β (see
        `reverse_log_variance_table`). The step into the clean data
        (prev_t = −1) reads the decoder's clipped variance β̃_2.
        """
        check_variance(variance)
        beta, _, _, posterior_variance = self.posterior(t, prev_t)
        value = posterior_variance if variance == "fixed_small" else beta
        return ops.where(ops.cast(prev_t, "int32") >= 0, value, self._decoder_variance())

    def signal_and_noise_rates(self, t, ndim=4, dtype="float32"):
        """(√ᾱ_t, √(1 − ᾱ_t)): x_t = signal_rate · x_0 + noise_rate · ε."""
        signal = self.lookup(np.sqrt(self.alphas_cumprod), t, ndim, dtype)
        noise = self.lookup(np.sqrt(1.0 - self.alphas_cumprod), t, ndim, dtype)
        return signal, noise

    def add_noise(self, x0, noise, t, dtype="float32"):
        """Samples q(x_t | x_0): √ᾱ_t · x0 + √(1 − ᾱ_t) · noise (Ho et al. eq. 4).

        Args:
            x0: clean images, `[B, ...]`.
            noise: standard normal noise shaped like `x0`.
            t: integer timestep indices, `[B]`.
            dtype: the arithmetic's and the result's dtype. Defaults to
                `"float32"`.

        Returns:
            A tensor of `dtype` shaped like `x0`.
        """
        x0 = ops.cast(x0, dtype)
        noise = ops.cast(noise, dtype)
        signal, sigma = self.signal_and_noise_rates(t, len(x0.shape), dtype)
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
    def with_optimized_timesteps(self, timesteps):
        """This schedule with `optimized_timesteps` set (a new object; see `DDPM.optimize_steps`)."""
        return NoiseSchedule(**{**self.get_config(), "optimized_timesteps": timesteps})

    def get_config(self):
        config = {
            "kind": self.kind,
            "timesteps": self.timesteps,
            "beta_start": self.beta_start,
            "beta_end": self.beta_end,
            "rescale_zero_terminal_snr": self.rescale_zero_terminal_snr,
        }
        if self.optimized_timesteps is not None:  # absent otherwise, as in earlier files
            config["optimized_timesteps"] = list(self.optimized_timesteps)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return isinstance(other, NoiseSchedule) and other.get_config() == self.get_config()

    def __hash__(self):
        return hash(tuple(sorted(
            (key, tuple(value) if isinstance(value, list) else value)
            for key, value in self.get_config().items()
        )))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"NoiseSchedule({args})"
