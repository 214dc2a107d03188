"""NoiseSchedule against its closed forms."""

import math

import keras
import numpy as np
import pytest

from keras_ddpm import NoiseSchedule
from keras_ddpm import schedules

pytestmark = pytest.mark.backends


@pytest.mark.parametrize("kind", schedules.KINDS)
def test_tables_are_float64_of_length_timesteps_and_consistent(kind):
    schedule = NoiseSchedule(kind, timesteps=50)
    for name in ("betas", "alphas", "alphas_cumprod", "alphas_cumprod_prev"):
        table = getattr(schedule, name)
        assert table.dtype == np.float64 and table.shape == (50,)
    np.testing.assert_allclose(schedule.alphas, 1.0 - schedule.betas, rtol=0, atol=0)
    np.testing.assert_allclose(schedule.alphas_cumprod, np.cumprod(1.0 - schedule.betas))
    # Index i is timestep i + 1 of the paper: ᾱ at index 0 is 1 − β_1.
    assert schedule.alphas_cumprod[0] == 1.0 - schedule.betas[0]
    assert schedule.alphas_cumprod_prev[0] == 1.0
    np.testing.assert_array_equal(schedule.alphas_cumprod_prev[1:], schedule.alphas_cumprod[:-1])
    # ᾱ falls strictly: every β is in (0, 1).
    assert np.all(schedule.betas > 0) and np.all(schedule.betas < 1)
    assert np.all(np.diff(schedule.alphas_cumprod) < 0)


def test_linear_endpoints_and_spacing():
    schedule = NoiseSchedule("linear", timesteps=1000, beta_start=1e-4, beta_end=0.02)
    assert schedule.betas[0] == 1e-4
    assert schedule.betas[-1] == pytest.approx(0.02, abs=1e-15)
    np.testing.assert_allclose(np.diff(schedule.betas), (0.02 - 1e-4) / 999, rtol=1e-9)
    # Ho et al. 2020 choose the schedule so that q(x_T | x_0) ≈ N(0, I):
    # ᾱ_T = ∏(1 − β_t) ≈ 4.04e-5 for these constants.
    assert schedule.alphas_cumprod[-1] == pytest.approx(4.0358e-5, rel=1e-3)


def test_scaled_linear_is_linear_in_sqrt_beta():
    schedule = NoiseSchedule("scaled_linear", timesteps=100, beta_start=0.00085, beta_end=0.012)
    roots = np.sqrt(schedule.betas)
    assert roots[0] == pytest.approx(math.sqrt(0.00085), rel=1e-12)
    assert roots[-1] == pytest.approx(math.sqrt(0.012), rel=1e-12)
    np.testing.assert_allclose(np.diff(roots), np.diff(roots)[0], rtol=1e-9)


def test_cosine_matches_nichol_dhariwal_formula():
    timesteps, s = 1000, 0.008
    schedule = NoiseSchedule("cosine", timesteps=timesteps)

    def f(t):
        return math.cos((t / timesteps + s) / (1 + s) * math.pi / 2) ** 2

    # Wherever β is not capped, ᾱ_t = f(t) / f(0) exactly (eq. 17).
    capped = schedule.betas >= 0.999
    assert capped.sum() == 1 and capped[-1]  # only the last step hits the cap
    for t in (1, 2, 10, 250, 500, 900, 999):
        assert schedule.alphas_cumprod[t - 1] == pytest.approx(f(t) / f(0), rel=1e-9)
    assert schedule.betas.max() == 0.999


def test_sigmoid_closed_form():
    schedule = NoiseSchedule("sigmoid", timesteps=11, beta_start=1e-4, beta_end=0.02)
    u = np.linspace(-6, 6, 11)
    expected = 1e-4 + (0.02 - 1e-4) / (1 + np.exp(-u))
    np.testing.assert_allclose(schedule.betas, expected, rtol=1e-12)
    assert schedule.betas[5] == pytest.approx((1e-4 + 0.02) / 2, rel=1e-12)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_posterior_identities(kind):
    s = NoiseSchedule(kind, timesteps=200)
    ac, ac_prev = s.alphas_cumprod, s.alphas_cumprod_prev
    # β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t); β̃_1 = 0.
    np.testing.assert_allclose(s.posterior_variance, s.betas * (1 - ac_prev) / (1 - ac))
    assert s.posterior_variance[0] == 0.0
    assert np.all(s.posterior_variance[1:] < s.betas[1:])
    # The posterior of the forward process reproduces its marginals: if x_t ~ q(x_t|x_0)
    # then coef1·x_0 + coef2·x_t + N(0, β̃_t) has mean √ᾱ_{t−1}·x_0 and variance 1 − ᾱ_{t−1}.
    c1, c2 = s.posterior_mean_coef1, s.posterior_mean_coef2
    np.testing.assert_allclose(c1 + c2 * np.sqrt(ac), np.sqrt(ac_prev), rtol=1e-10)
    np.testing.assert_allclose(c2**2 * (1 - ac) + s.posterior_variance, 1 - ac_prev, atol=1e-12)
    # The clipped log variance replaces log β̃_1 = −inf by log β̃_2.
    assert s.posterior_log_variance_clipped[0] == np.log(s.posterior_variance[1])
    np.testing.assert_allclose(s.posterior_log_variance_clipped[1:], np.log(s.posterior_variance[1:]))


def test_tensor_lookups_gather_and_broadcast():
    s = NoiseSchedule("linear", timesteps=1000)
    t = np.array([0, 499, 999], dtype="int32")
    signal, noise = s.signal_and_noise_rates(t)
    assert tuple(signal.shape) == (3, 1, 1, 1)
    assert keras.backend.standardize_dtype(signal.dtype) == "float32"
    np.testing.assert_allclose(np.ravel(signal), np.sqrt(s.alphas_cumprod[t]), rtol=1e-6)
    np.testing.assert_allclose(np.ravel(noise), np.sqrt(1 - s.alphas_cumprod[t]), rtol=1e-6)
    c1, c2 = s.posterior_mean_coefficients(t, ndim=2)
    assert tuple(c1.shape) == (3, 1)
    np.testing.assert_allclose(np.ravel(c2), s.posterior_mean_coef2[t], rtol=1e-6)
    np.testing.assert_allclose(np.ravel(s.posterior_variance_at(t)), s.posterior_variance[t], rtol=1e-6)
    np.testing.assert_allclose(
        np.ravel(s.posterior_log_variance(t)), s.posterior_log_variance_clipped[t], rtol=1e-6
    )
    snr = np.ravel(s.snr(t, ndim=1))
    np.testing.assert_allclose(snr, s.alphas_cumprod[t] / (1 - s.alphas_cumprod[t]), rtol=1e-5)
    x0 = np.ones((3, 2, 2, 1), "float32")
    x_t = s.add_noise(x0, np.zeros_like(x0), t)
    mean = s.posterior_mean(x0, x_t, t)
    expected = s.posterior_mean_coef1[t] + s.posterior_mean_coef2[t] * np.sqrt(s.alphas_cumprod[t])
    np.testing.assert_allclose(np.asarray(mean)[:, 0, 0, 0], expected, rtol=1e-5)


def test_add_noise_statistics():
    s = NoiseSchedule("linear", timesteps=1000)
    rng = np.random.default_rng(0)
    n = 200_000
    x0 = np.full((n, 1, 1, 1), 0.5, "float32")
    noise = rng.standard_normal(x0.shape).astype("float32")
    t = np.full((n,), 300, "int32")
    x_t = np.asarray(s.add_noise(x0, noise, t)).ravel()
    a = math.sqrt(s.alphas_cumprod[300])
    sigma = math.sqrt(1 - s.alphas_cumprod[300])
    # Mean a·0.5 and standard deviation σ, within 5 standard errors.
    assert abs(x_t.mean() - 0.5 * a) < 5 * sigma / math.sqrt(n)
    assert abs(x_t.std() - sigma) < 5 * sigma / math.sqrt(2 * n)
    # And exactly the formula, sample by sample.
    np.testing.assert_allclose(x_t, 0.5 * a + sigma * noise.ravel(), rtol=1e-5, atol=1e-6)


def test_config_round_trip_and_keras_serialization():
    s = NoiseSchedule("cosine", timesteps=64, beta_start=2e-4, beta_end=0.03)
    clone = NoiseSchedule.from_config(s.get_config())
    assert clone == s
    np.testing.assert_array_equal(clone.alphas_cumprod, s.alphas_cumprod)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(s))
    assert isinstance(restored, NoiseSchedule) and restored == s
    assert "cosine" in repr(s)


def test_single_timestep_schedule():
    s = NoiseSchedule("linear", timesteps=1, beta_start=0.5, beta_end=0.5)
    assert s.alphas_cumprod[0] == 0.5
    assert np.isfinite(s.posterior_log_variance_clipped).all()


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"kind": "quadratic"}, ValueError, r"kind='quadratic'.*'linear', 'scaled_linear', 'cosine', 'sigmoid'"),
        ({"timesteps": 0}, ValueError, r"timesteps=0"),
        ({"timesteps": 2.5}, TypeError, r"timesteps=2.5"),
        ({"beta_start": 0.0}, ValueError, r"\(0, 1\).*beta_start=0.0"),
        ({"beta_end": 1.0}, ValueError, r"\(0, 1\).*beta_end=1.0"),
        ({"beta_start": 0.02, "beta_end": 0.01}, ValueError, r"beta_start=0.02, beta_end=0.01"),
    ],
)
def test_bad_arguments_name_the_value(kwargs, error, message):
    with pytest.raises(error, match=message):
        NoiseSchedule(**kwargs)


@pytest.mark.parametrize("kind", ["linear", "cosine", "scaled_linear"])
def test_zero_terminal_snr_rescale(kind):
    original = NoiseSchedule(kind, timesteps=1000)
    s = NoiseSchedule(kind, timesteps=1000, rescale_zero_terminal_snr=True)
    # Lin et al. 2023, algorithm 1: ᾱ_T = 0 exactly, ᾱ_1 unchanged.
    assert s.alphas_cumprod[-1] == 0.0 and s.betas[-1] == 1.0
    assert s.alphas_cumprod[0] == original.alphas_cumprod[0]
    assert s.zero_terminal_snr and not original.zero_terminal_snr
    # √ᾱ is the affine map of the old one that fixes those two ends.
    old = np.sqrt(original.alphas_cumprod)
    expected = (old - old[-1]) * old[0] / (old[0] - old[-1])
    np.testing.assert_allclose(np.sqrt(s.alphas_cumprod), expected, rtol=1e-12, atol=1e-15)
    # The tables stay consistent and finite.
    np.testing.assert_allclose(np.cumprod(s.alphas), s.alphas_cumprod, rtol=1e-9, atol=1e-300)
    assert np.all(np.diff(s.alphas_cumprod) < 0)
    for name in ("posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1"):
        assert np.isfinite(getattr(s, name)).all()
    assert float(np.ravel(s.snr(np.array([999]), ndim=1))[0]) == 0.0
    signal, noise = s.signal_and_noise_rates(np.array([999]))
    assert float(np.ravel(signal)[0]) == 0.0 and float(np.ravel(noise)[0]) == 1.0


def test_zero_terminal_snr_config_round_trip_and_arguments():
    s = NoiseSchedule("cosine", timesteps=50, rescale_zero_terminal_snr=True)
    assert s.get_config()["rescale_zero_terminal_snr"] is True
    clone = NoiseSchedule.from_config(s.get_config())
    assert clone == s and clone != NoiseSchedule("cosine", timesteps=50)
    np.testing.assert_array_equal(clone.alphas_cumprod, s.alphas_cumprod)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(s))
    assert restored.rescale_zero_terminal_snr
    with pytest.raises(TypeError, match=r"rescale_zero_terminal_snr='yes'"):
        NoiseSchedule(rescale_zero_terminal_snr="yes")
    with pytest.raises(ValueError, match=r"timesteps >= 2.*timesteps=1"):
        NoiseSchedule(timesteps=1, beta_start=0.5, beta_end=0.5, rescale_zero_terminal_snr=True)


def test_optimized_timesteps_round_trip_and_stay_out_of_plain_configs():
    plain = NoiseSchedule("linear", timesteps=50)
    # The key earlier files lack stays absent, so their configs compare equal.
    assert "optimized_timesteps" not in plain.get_config()
    tuned = plain.with_optimized_timesteps([49, 30, 12, 3])
    assert tuned.optimized_timesteps == (49, 30, 12, 3) and plain.optimized_timesteps is None
    clone = NoiseSchedule.from_config(tuned.get_config())
    assert clone == tuned and hash(clone) == hash(tuned) and clone != plain
    np.testing.assert_array_equal(clone.alphas_cumprod, plain.alphas_cumprod)
    for bad in ([49, 49, 3], [48, 3], [49, -1], [49, 2.5], "49"):
        with pytest.raises(ValueError, match="optimized_timesteps="):
            NoiseSchedule("linear", timesteps=50, optimized_timesteps=bad)
