"""What the network predicts, and how its prediction converts to x̂_0 and ε̂.

With x_t = α_t · x_0 + σ_t · ε (α_t = √ᾱ_t, σ_t = √(1 − ᾱ_t) for a DDPM
schedule) the network may be trained to predict

- `"epsilon"`: the noise ε (Ho et al. 2020);
- `"x0"`: the clean sample x_0;
- `"v"`: v = α_t · ε − σ_t · x_0 (Salimans & Ho 2022, section 4).

Every conversion below is exact algebra on that identity, so a sampler can
work with any of the three.

The per-example loss weight (`loss_weight`) is `"simple"` (1, Ho et al. eq. 14)
or `"min_snr"`: Min-SNR-γ (Hang et al. 2023), which caps the weight of the
low-noise timesteps. With SNR = α_t²/σ_t² the three regressions are the same
x_0 error scaled differently,

    ‖ε̂ − ε‖² = SNR · ‖x̂_0 − x_0‖²,   ‖v̂ − v‖² = (SNR + 1) · ‖x̂_0 − x_0‖²,

so the x_0-space weight min(SNR, γ) becomes min(SNR, γ)/SNR for an ε-loss,
min(SNR, γ) for an x_0-loss and min(SNR, γ)/(SNR + 1) for a v-loss (using the
ε weight for v is a known pitfall: it over-weights the noisy timesteps).

References:
    - Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", 2020.
    - Salimans & Ho, "Progressive Distillation for Fast Sampling of Diffusion
      Models", ICLR 2022.
    - Hang et al., "Efficient Diffusion Training via Min-SNR Weighting
      Strategy", ICCV 2023.
"""

from keras import ops

from keras_ddpm import precise_ops

PREDICTION_TYPES = ("epsilon", "v", "x0")
LOSS_WEIGHTINGS = ("simple", "min_snr")


def check_prediction_type(prediction_type, schedule=None):
    """Raises a `ValueError` unless `prediction_type` is a known name usable with `schedule`.

    A zero-terminal-SNR schedule (ᾱ_T = 0) refuses `"epsilon"`: at t = T, x_T
    holds no signal and x̂_0 = (x_T − √(1 − ᾱ_T)·ε̂)/√ᾱ_T divides by 0.

    Args:
        prediction_type: `"epsilon"`, `"v"` or `"x0"`.
        schedule: optional `NoiseSchedule` the prediction is used with.
            Defaults to `None` (no schedule check).
    """
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(
            f"Unknown prediction_type={prediction_type!r}. "
            f"Expected one of {list(PREDICTION_TYPES)}."
        )
    if prediction_type == "epsilon" and schedule is not None and schedule.zero_terminal_snr:
        raise ValueError(
            "prediction_type='epsilon' cannot be used with a zero-terminal-SNR schedule: at "
            "t = T, x_T holds no signal and no ε-prediction gives x̂_0. Use "
            "prediction_type='v' or 'x0'."
        )


def training_target(x0, noise, signal_rate, noise_rate, prediction_type):
    """The regression target for a network of the given prediction type."""
    check_prediction_type(prediction_type)
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "x0":
        return x0
    return signal_rate * noise - noise_rate * x0


def to_x0(prediction, x_t, signal_rate, noise_rate, prediction_type):
    """Converts a network prediction into the clean-sample estimate x̂_0."""
    check_prediction_type(prediction_type)
    if prediction_type == "epsilon":
        return (x_t - noise_rate * prediction) / signal_rate
    if prediction_type == "x0":
        return prediction
    return signal_rate * x_t - noise_rate * prediction


def to_epsilon(prediction, x_t, signal_rate, noise_rate, prediction_type):
    """Converts a network prediction into the noise estimate ε̂."""
    check_prediction_type(prediction_type)
    if prediction_type == "epsilon":
        return prediction
    if prediction_type == "x0":
        return (x_t - signal_rate * prediction) / noise_rate
    return noise_rate * x_t + signal_rate * prediction


def check_loss_weighting(loss_weighting, min_snr_gamma=5.0):
    """Raises a `ValueError` for an unknown weighting or a non-positive γ."""
    if loss_weighting not in LOSS_WEIGHTINGS:
        raise ValueError(
            f"Unknown loss_weighting={loss_weighting!r}. "
            f"Expected one of {list(LOSS_WEIGHTINGS)}."
        )
    if (
        isinstance(min_snr_gamma, bool)
        or not isinstance(min_snr_gamma, (int, float))
        or not min_snr_gamma > 0
    ):
        raise ValueError(
            "`min_snr_gamma` must be a positive number. "
            f"Received: min_snr_gamma={min_snr_gamma!r}."
        )


def loss_weight(snr, prediction_type, loss_weighting="simple", min_snr_gamma=5.0):
    """The per-example weight of the squared prediction error.

    Args:
        snr: signal-to-noise ratio ᾱ_t/(1 − ᾱ_t) of each example's timestep, a
            float tensor (for example `schedule.snr(t, ndim)`).
        prediction_type: `"epsilon"`, `"v"` or `"x0"`.
        loss_weighting: `"simple"` (weight 1) or `"min_snr"` (Min-SNR-γ).
            Defaults to `"simple"`.
        min_snr_gamma: γ of Min-SNR-γ. Defaults to `5.0` (Hang et al. 2023).

    Returns:
        A float tensor shaped like `snr`: 1 for `"simple"`; for `"min_snr"`
        min(SNR, γ)/SNR (ε), min(SNR, γ) (x_0) or min(SNR, γ)/(SNR + 1) (v).

    Example:

    >>> weights = loss_weight(schedule.snr(t), "v", "min_snr", 5.0)
    """
    check_prediction_type(prediction_type)
    check_loss_weighting(loss_weighting, min_snr_gamma)
    snr = ops.convert_to_tensor(snr)
    if loss_weighting == "simple":
        return ops.ones_like(snr)
    gamma = ops.cast(min_snr_gamma, snr.dtype)
    clipped = precise_ops.minimum(snr, gamma)  # the SNR's dtype on every backend
    if prediction_type == "epsilon":
        # min(SNR, γ)/SNR written as γ/max(SNR, γ): no 0/0 when SNR = 0.
        return gamma / precise_ops.maximum(snr, gamma)
    if prediction_type == "x0":
        return clipped
    return clipped / (snr + 1.0)


def diffusion_loss(
    predict, schedule, images, t, noise, prediction_type="epsilon", loss_weighting="simple",
    min_snr_gamma=5.0, sample_weight=None,
):
    """The loss E_{t, ε} w(t) ‖target − prediction(x_t, t)‖² for one batch, in float32.

    Args:
        predict: callable `(x_t, t) -> prediction` (the network).
        schedule: the `NoiseSchedule`.
        images: float32 clean images x_0 in [−1, 1], `[B, H, W, C]`.
        t: int32 timestep indices `[B]`.
        noise: ε ~ N(0, I) shaped like `images`.
        prediction_type: `"epsilon"`, `"v"` or `"x0"`. Defaults to `"epsilon"`.
        loss_weighting: `"simple"` or `"min_snr"`. Defaults to `"simple"`.
        min_snr_gamma: γ of Min-SNR-γ. Defaults to `5.0`.
        sample_weight: optional float32 weight of each example's loss `[B]`, as
            Keras weights a loss: the weighted losses are averaged over the batch
            size (not over the sum of the weights). Defaults to `None` (all 1).

    Returns:
        The scalar loss (mean over the batch and every pixel).

    References:
        - Ho et al. 2020 (Algorithm 1, eq. 14); Hang et al. 2023 (Min-SNR-γ).
    """
    ndim = len(images.shape)
    # 1. Corrupt: x_t = √ᾱ_t·x_0 + √(1 − ᾱ_t)·ε (Ho et al. eq. 4).
    x_t = schedule.add_noise(images, noise, t)
    # 2. Predict, in float32 whatever the dtype policy.
    prediction = ops.cast(predict(x_t, t), "float32")
    # 3. Regress on the target of the prediction type.
    signal_rate, noise_rate = schedule.signal_and_noise_rates(t, ndim)
    target = training_target(images, noise, signal_rate, noise_rate, prediction_type)
    squared_error = ops.square(prediction - target)
    if loss_weighting != "simple":
        # 4. Min-SNR-γ: a weight per example, [B, 1, 1, 1].
        squared_error = squared_error * loss_weight(
            schedule.snr(t, ndim), prediction_type, loss_weighting, min_snr_gamma
        )
    if sample_weight is not None:
        # 5. The caller's weight per example, [B] -> [B, 1, 1, 1].
        squared_error = squared_error * ops.reshape(sample_weight, (-1,) + (1,) * (ndim - 1))
    return ops.mean(squared_error)
