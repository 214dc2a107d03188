"""The exponential moving average (EMA) of a network's weights.

`DDPM` keeps a second, non-trainable copy of its network whose weights follow
ema ← d·ema + (1 − d)·w after every applied training step (Ho et al. 2020,
appendix B, d = 0.9999), and samples with it by default.

References:
    - Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models",
      NeurIPS 2020 (appendix B).
"""

import keras
from keras import ops


def clone_network(network):
    """A structurally identical, separately weighted, non-trainable copy of `network`.

    Rebuilding from the config keeps the class (a UNet stays a UNet); a
    network without a usable config falls back to `keras.models.clone_model`.
    """
    try:
        config = network.get_config()
        if isinstance(config, dict) and "name" in config:
            config = {**config, "name": f"ema_{config['name']}"}
        clone = type(network).from_config(config)
    except Exception:  # noqa: BLE001 - fall back to Keras' generic cloning.
        try:
            clone = keras.models.clone_model(network)
        except Exception as error:
            raise TypeError(
                "DDPM keeps an exponential moving average (EMA) copy of the network, "
                f"which needs a network that can be rebuilt from its config; "
                f"{type(network).__name__} could not be ({error}). Give it a "
                "get_config() or pass ema_decay=None."
            ) from error
    clone.trainable = False
    return clone


def copy_weights(source, target):
    """Assigns a copy of every weight of `source` to the matching weight of `target`.

    A copy, not the same array: JAX's trainer donates each variable's buffer to the
    step, and one buffer held by two variables cannot be donated twice.
    """
    for weight, target_weight in zip(source.weights, target.weights):
        target_weight.assign(ops.copy(weight.value))


def decay_at(decay, warmup, iterations, applied=True):
    """The step's decay: min(d, (1 + n)/(10 + n)) with warm-up after n steps, 1 for a skipped step.

    Args:
        decay: the EMA decay d.
        warmup: use the warm-up of `tf.train.ExponentialMovingAverage`.
        iterations: the optimizer's step count n (a tensor).
        applied: whether the step was applied (a boolean tensor or `True`).
    """
    value = ops.convert_to_tensor(decay, "float32")
    if warmup:
        steps = ops.cast(iterations, "float32")
        value = ops.minimum(value, (1.0 + steps) / (10.0 + steps))
    return ops.where(applied, value, 1.0)


def update(network, ema_network, decay):
    """ema ← d·ema + (1 − d)·w for every floating-point weight (d a float32 scalar).

    Written as ema ← ema − (1 − d)·(ema − w), one in-place subtraction a weight, with
    1 − d computed once (the same values up to float rounding).
    """
    rate = 1.0 - decay
    for weight, ema_weight in zip(network.weights, ema_network.weights):
        if not keras.backend.is_float_dtype(weight.dtype):
            continue
        value = weight.value
        if value.dtype != ema_weight.dtype:
            value = ops.cast(value, ema_weight.dtype)
        ema_weight.assign_sub(ops.cast(rate, ema_weight.dtype) * (ema_weight.value - value))
