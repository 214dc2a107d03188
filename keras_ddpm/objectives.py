"""What the network predicts, and how its prediction converts to x̂_0 and ε̂.

With x_t = α_t · x_0 + σ_t · ε (α_t = √ᾱ_t, σ_t = √(1 − ᾱ_t) for a DDPM
schedule) the network may be trained to predict

- `"epsilon"`: the noise ε (Ho et al. 2020);
- `"x0"`: the clean sample x_0;
- `"v"`: v = α_t · ε − σ_t · x_0 (Salimans & Ho 2022, section 4).

Every conversion below is exact algebra on that identity, so a sampler can
work with any of the three.

References:
    - Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", 2020.
    - Salimans & Ho, "Progressive Distillation for Fast Sampling of Diffusion
      Models", ICLR 2022.
"""

PREDICTION_TYPES = ("epsilon", "v", "x0")


def check_prediction_type(prediction_type):
    """Raises a `ValueError` unless `prediction_type` is a known name."""
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(
            f"Unknown prediction_type={prediction_type!r}. "
            f"Expected one of {list(PREDICTION_TYPES)}."
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
