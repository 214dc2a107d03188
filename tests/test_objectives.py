"""Prediction targets, their conversions and the loss weights."""

import keras
import numpy as np
import pytest

from keras_ddpm import NoiseSchedule
from keras_ddpm import objectives
from keras_ddpm import precise_ops
from keras_ddpm import schedules

pytestmark = pytest.mark.backends
# float64 arithmetic where the backend has it (JAX's default is float32).
RTOL = 1e-12 if schedules.precise_float() == "float64" else 1e-6


def _batch(n=1000, seed=3):
    rng = np.random.default_rng(seed)
    x0, eps = rng.standard_normal((2, n))
    a = rng.uniform(0.01, 0.99, n)
    sigma = np.sqrt(1 - a**2)
    return x0, eps, a, sigma, a * x0 + sigma * eps


@pytest.mark.parametrize("prediction_type", objectives.PREDICTION_TYPES)
def test_targets_convert_back_exactly(prediction_type):
    x0, eps, a, sigma, x_t = _batch()
    target = objectives.training_target(x0, eps, a, sigma, prediction_type)
    np.testing.assert_allclose(objectives.to_x0(target, x_t, a, sigma, prediction_type), x0, atol=1e-9)
    np.testing.assert_allclose(objectives.to_epsilon(target, x_t, a, sigma, prediction_type), eps, atol=1e-9)


def test_v_is_salimans_ho_definition_and_round_trips_through_every_type():
    x0, eps, a, sigma, x_t = _batch()
    v = objectives.training_target(x0, eps, a, sigma, "v")
    np.testing.assert_allclose(v, a * eps - sigma * x0, atol=1e-12)
    # x̂_0 from any type, re-expressed as any other type, gives back that type's target.
    for source in objectives.PREDICTION_TYPES:
        prediction = objectives.training_target(x0, eps, a, sigma, source)
        x0_hat = objectives.to_x0(prediction, x_t, a, sigma, source)
        eps_hat = objectives.to_epsilon(prediction, x_t, a, sigma, source)
        for target_type in objectives.PREDICTION_TYPES:
            np.testing.assert_allclose(
                objectives.training_target(x0_hat, eps_hat, a, sigma, target_type),
                objectives.training_target(x0, eps, a, sigma, target_type),
                atol=1e-9,
            )


def test_min_snr_weights_match_their_formulas():
    snr = np.array([0.0, 1e-3, 0.5, 1.0, 4.9, 5.0, 5.1, 50.0, 1e4])
    gamma = 5.0
    clipped = np.minimum(snr, gamma)
    expected = {
        # ε: min(SNR, γ)/SNR, which is 1 wherever SNR ≤ γ (also at SNR = 0).
        "epsilon": np.where(snr > 0, clipped / np.where(snr > 0, snr, 1.0), 1.0),
        "x0": clipped,
        "v": clipped / (snr + 1.0),
    }
    for prediction_type, weights in expected.items():
        got = np.asarray(objectives.loss_weight(snr, prediction_type, "min_snr", gamma))
        np.testing.assert_allclose(got, weights, rtol=RTOL)
        simple = np.asarray(objectives.loss_weight(snr, prediction_type, "simple"))
        np.testing.assert_array_equal(simple, np.ones_like(snr))
    # The three weights put the same weight on the x0 error: ε-error = SNR·x0-error,
    # v-error = (SNR + 1)·x0-error.
    eps_w = np.asarray(objectives.loss_weight(snr[1:], "epsilon", "min_snr", gamma))
    v_w = np.asarray(objectives.loss_weight(snr[1:], "v", "min_snr", gamma))
    np.testing.assert_allclose(eps_w * snr[1:], clipped[1:], rtol=RTOL)
    np.testing.assert_allclose(v_w * (snr[1:] + 1), clipped[1:], rtol=RTOL)


def test_min_snr_on_a_schedule_is_finite_with_zero_terminal_snr():
    schedule = NoiseSchedule("linear", timesteps=100, rescale_zero_terminal_snr=True)
    snr = schedule.snr(np.arange(100), ndim=1)
    for prediction_type in objectives.PREDICTION_TYPES:
        weights = np.asarray(objectives.loss_weight(snr, prediction_type, "min_snr"))
        assert np.isfinite(weights).all() and weights.shape == (100,)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"loss_weighting": "p2"}, r"loss_weighting='p2'.*'simple', 'min_snr'"),
        ({"loss_weighting": "min_snr", "min_snr_gamma": 0.0}, r"min_snr_gamma=0.0"),
        ({"loss_weighting": "min_snr", "min_snr_gamma": -1}, r"min_snr_gamma=-1"),
    ],
)
def test_bad_weighting_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        objectives.loss_weight(np.ones(3), "v", **kwargs)
    with pytest.raises(ValueError, match=r"prediction_type='score'"):
        objectives.loss_weight(np.ones(3), "score")


def test_the_precise_maximum_and_minimum_keep_the_precise_dtype_on_every_backend():
    # Keras 3.15's ops.maximum/minimum answer float32 for float64 inputs on PyTorch.
    precise = schedules.precise_float()  # float64 (float32 on JAX outside its loops)
    x = keras.ops.convert_to_tensor(np.array([0.25, 1.0 + 2.0**-40, -3.0]), precise)
    y = keras.ops.convert_to_tensor(np.array([0.5, 1.0, -4.0]), precise)
    for value, expected in (
        (precise_ops.maximum(x, y), [0.5, 1.0 + 2.0**-40, -3.0]),
        (precise_ops.minimum(x, y), [0.25, 1.0, -4.0]),
        (precise_ops.maximum(x, 0.0), [0.25, 1.0 + 2.0**-40, 0.0]),
    ):
        assert keras.backend.standardize_dtype(value.dtype) == precise
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(value), np.array(expected).astype(precise)
        )


def test_the_precise_maximum_and_minimum_propagate_nan_as_ops_maximum_does():
    x = keras.ops.convert_to_tensor(np.array([np.nan, 1.0, np.nan]), "float32")
    y = keras.ops.convert_to_tensor(np.array([2.0, np.nan, np.nan]), "float32")
    for precise, plain in (
        (precise_ops.maximum, keras.ops.maximum),
        (precise_ops.minimum, keras.ops.minimum),
    ):
        got = keras.ops.convert_to_numpy(precise(x, y))
        np.testing.assert_array_equal(got, keras.ops.convert_to_numpy(plain(x, y)))
        assert np.isnan(got).all()


@pytest.mark.parametrize("loss_weighting", objectives.LOSS_WEIGHTINGS)
def test_sample_weights_average_over_the_batch_size_as_keras_losses_do(loss_weighting):
    """Example b's error times its weight w_b, summed and divided by B (not by Σ w_b)."""
    schedule = NoiseSchedule("linear", timesteps=50)
    rng = np.random.default_rng(5)
    images = rng.uniform(-1, 1, (4, 3, 3, 1)).astype("float32")
    noise = rng.standard_normal((4, 3, 3, 1)).astype("float32")
    t = np.array([0, 10, 30, 49], "int32")
    weights = np.array([0.0, 1.0, 2.5, 0.5], "float32")
    images, noise, t, weights = (keras.ops.convert_to_tensor(a) for a in (images, noise, t, weights))

    def predict(x_t, t):
        return 0.5 * x_t  # any fixed function of x_t

    def loss(**kwargs):
        return float(objectives.diffusion_loss(
            predict, schedule, images, t, noise, "v", loss_weighting, **kwargs
        ))

    per_example = [
        float(objectives.diffusion_loss(
            predict, schedule, images[b:b + 1], t[b:b + 1], noise[b:b + 1], "v", loss_weighting
        ))
        for b in range(4)
    ]
    expected = float(np.sum(keras.ops.convert_to_numpy(weights) * np.array(per_example)) / 4)
    np.testing.assert_allclose(loss(sample_weight=weights), expected, rtol=1e-6)
    np.testing.assert_allclose(loss(sample_weight=weights * 0 + 1), loss(), rtol=1e-7)
    assert loss(sample_weight=weights * 0) == 0.0
