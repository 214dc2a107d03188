"""Ancestral sampling checked against exact answers for Gaussian data."""

import math

import numpy as np
import pytest
import tensorflow as tf

from keras_ddpm import NoiseSchedule
from keras_ddpm import objectives
from keras_ddpm import samplers
from oracles import GaussianOracleLayer
from oracles import ancestral_output_moments

# A narrow data distribution: there the reverse variance matters most, so the
# tolerances below separate a correct sampler from a wrong one by a wide margin.
MEAN, STD = 0.3, 0.05
SHAPE = (2048, 8, 8, 1)  # 131,072 independent values per run
N = int(np.prod(SHAPE))


def _sample(schedule, variance="fixed_small", prediction_type="epsilon", seed=(0, 0), **kwargs):
    oracle = GaussianOracleLayer(schedule, MEAN, STD, prediction_type)
    noise = tf.random.stateless_normal(SHAPE, seed=[seed[0] + 1, seed[1]])
    run = tf.function(
        lambda x: samplers.ddpm_sample(
            lambda x_t, t: oracle([x_t, t]),
            x,
            schedule,
            tf.constant(seed),
            prediction_type=prediction_type,
            variance=variance,
            clip=False,
            **kwargs,
        )
    )
    return run(noise).numpy()


def _tolerances(std):
    # Four standard errors of the sample mean and of the sample standard deviation.
    return 4 * std / math.sqrt(N), 4 * std / math.sqrt(2 * N)


def test_ddpm_step_is_algorithm_2():
    schedule = NoiseSchedule("linear", timesteps=1000)
    rng = np.random.default_rng(1)
    x_t = rng.standard_normal((4, 3, 3, 2)).astype("float32")
    eps = rng.standard_normal(x_t.shape).astype("float32")
    z = rng.standard_normal(x_t.shape).astype("float32")
    t = np.array([0, 1, 500, 999], "int32")
    out = samplers.ddpm_step(schedule, x_t, t, eps, z, clip=False).numpy()
    a, b, ac = schedule.alphas[t], schedule.betas[t], schedule.alphas_cumprod[t]
    sigma = np.sqrt(schedule.posterior_variance[t]) * (t > 0)
    b4 = (4, 1, 1, 1)
    expected = (x_t - (b / np.sqrt(1 - ac)).reshape(b4) * eps) / np.sqrt(a).reshape(b4)
    expected += sigma.reshape(b4) * z
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    # fixed_large uses σ_t² = β_t.
    large = samplers.ddpm_step(schedule, x_t, t, eps, z, variance="fixed_large", clip=False)
    expected_large = expected + ((np.sqrt(b) - np.sqrt(schedule.posterior_variance[t])) * (t > 0)).reshape(b4) * z
    np.testing.assert_allclose(large.numpy(), expected_large, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("variance", samplers.VARIANCES)
def test_oracle_samples_have_the_exact_distribution(kind, variance):
    schedule = NoiseSchedule(kind, timesteps=1000)
    table = samplers.log_variance_table(schedule, variance)
    mean, std = ancestral_output_moments(schedule, MEAN, STD, table)
    # The sampler with the exact network is close to the data distribution…
    assert abs(mean - MEAN) < 1e-3 and abs(std - STD) < 0.1 * STD
    samples = _sample(schedule, variance)
    mean_tol, std_tol = _tolerances(std)
    # …and what it produces matches its exact output distribution.
    assert abs(samples.mean() - mean) < mean_tol
    assert abs(samples.std() - std) < std_tol
    # The expected output of a wrong sampler lies at least twice the tolerance
    # away: the other variance, or the network asked about timestep t ± 1.
    other = "fixed_large" if variance == "fixed_small" else "fixed_small"
    wrong = [ancestral_output_moments(schedule, MEAN, STD, samplers.log_variance_table(schedule, other))]
    wrong += [ancestral_output_moments(schedule, MEAN, STD, table, t_offset=k) for k in (-1, 1)]
    for wrong_mean, wrong_std in wrong:
        assert abs(wrong_mean - mean) > 2 * mean_tol or abs(wrong_std - std) > 2 * std_tol


@pytest.mark.parametrize("prediction_type", ["x0", "v"])
def test_prediction_types_give_the_same_samples(prediction_type):
    schedule = NoiseSchedule("linear", timesteps=100)
    reference = _sample(schedule, prediction_type="epsilon")
    other = _sample(schedule, prediction_type=prediction_type)
    np.testing.assert_allclose(other, reference, atol=2e-3)


def test_segmented_runs_equal_one_run_and_seeds_matter():
    schedule = NoiseSchedule("linear", timesteps=60)
    whole = _sample(schedule)
    oracle = GaussianOracleLayer(schedule, MEAN, STD)
    x = tf.random.stateless_normal(SHAPE, seed=[1, 0])
    for start, stop in ((0, 25), (25, 59), (59, 60)):
        x = samplers.ddpm_sample(
            lambda x_t, t: oracle([x_t, t]), x, schedule, tf.constant([0, 0]),
            clip=False, start=start, stop=stop,
        )
    np.testing.assert_allclose(x.numpy(), whole, atol=1e-5)
    np.testing.assert_array_equal(_sample(schedule), whole)
    assert np.abs(_sample(schedule, seed=(5, 0)) - whole).mean() > 0.5 * STD


def test_clipping_keeps_x0_estimates_in_range():
    schedule = NoiseSchedule("linear", timesteps=50)
    x_t = np.full((1, 1, 1, 1), 3.0, "float32")
    prediction = np.full_like(x_t, -40.0)  # an ε that implies a huge x̂0
    t = np.array([10], "int32")
    clipped = samplers.ddpm_step(schedule, x_t, t, prediction, np.zeros_like(x_t), clip=True)
    c1, c2 = schedule.posterior_mean_coef1[10], schedule.posterior_mean_coef2[10]
    assert float(np.ravel(clipped)[0]) == pytest.approx(c1 * 1.0 + c2 * 3.0, rel=1e-5)


def test_conversions_round_trip():
    rng = np.random.default_rng(3)
    x0, eps = rng.standard_normal((2, 1000))
    a = rng.uniform(0.01, 0.99, 1000)
    sigma = np.sqrt(1 - a**2)
    x_t = a * x0 + sigma * eps
    for kind in objectives.PREDICTION_TYPES:
        target = objectives.training_target(x0, eps, a, sigma, kind)
        np.testing.assert_allclose(objectives.to_x0(target, x_t, a, sigma, kind), x0, atol=1e-9)
        np.testing.assert_allclose(objectives.to_epsilon(target, x_t, a, sigma, kind), eps, atol=1e-9)


def test_bad_names_list_the_choices():
    schedule = NoiseSchedule("linear", timesteps=10)
    with pytest.raises(ValueError, match=r"variance='wide'.*fixed_small"):
        samplers.ddpm_sample(lambda x, t: x, np.zeros((1, 2, 2, 1)), schedule, [0, 0], variance="wide")
    with pytest.raises(ValueError, match=r"prediction_type='score'.*epsilon"):
        samplers.ddpm_sample(lambda x, t: x, np.zeros((1, 2, 2, 1)), schedule, [0, 0], prediction_type="score")
