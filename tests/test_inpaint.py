"""Inpainting (`inpaint`): exact identities with the Gaussian oracles, and the Gaussian conditional.

The correlated oracle's data is N(μ, Σ) over a 3×3 image with
Σ_ij = s² exp(−|p_i − p_j| / 2) (neighbouring pixels correlate at 0.61), so
the law of the filled pixels given the kept ones is the Gaussian conditional,
in closed form.
"""

import numpy as np
import pytest

import keras_ddpm
from oracles import correlated_gaussian_oracle
from oracles import gaussian_conditional
from oracles import gaussian_oracle_model

SHAPE = (4, 4, 1)
MEAN, STD = 0.2, 0.3


@pytest.fixture(scope="module")
def model():
    schedule = keras_ddpm.NoiseSchedule("linear", timesteps=50, beta_start=1e-3, beta_end=0.2)
    return gaussian_oracle_model(schedule, SHAPE, MEAN, STD)


def data(n, seed=0):
    return np.random.default_rng(seed).normal(MEAN, STD, (n,) + SHAPE).clip(-1, 1).astype("float32")


LEFT = np.zeros(SHAPE[:2], "float32")
LEFT[:, :2] = 1.0  # keep the left half


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_nothing_kept_in_one_pass_is_generate(model, sampler):
    x = data(6)
    filled = model.inpaint(x, np.zeros(SHAPE[:2]), sampler=sampler, steps=10, resample_steps=1,
                           seed=4, verbose=0)
    np.testing.assert_array_equal(filled, model.generate(6, sampler=sampler, steps=10, seed=4,
                                                         verbose=0))


def test_variance_override_is_the_models_variance_for_that_call(model):
    large = keras_ddpm.DDPM(model.network, schedule=model.schedule, ema_decay=None,
                            variance="fixed_large")
    x = data(4)
    filled = model.inpaint(x, np.zeros(SHAPE[:2]), steps=10, resample_steps=1, seed=4, verbose=0,
                           variance="fixed_large")
    np.testing.assert_array_equal(filled, large.generate(4, steps=10, seed=4, verbose=0))
    assert not np.array_equal(filled, model.generate(4, steps=10, seed=4, verbose=0))


def test_everything_kept_returns_the_images(model):
    x = data(4)
    np.testing.assert_array_equal(
        model.inpaint(x, np.ones(SHAPE), steps=10, resample_steps=3, jump_length=4, seed=0,
                      verbose=0), x)


def test_independent_pixels_fill_as_generate_draws_them(model):
    """Pixels of the independent oracle do not see each other: the filled ones are generate's."""
    x = data(8)
    filled = model.inpaint(x, LEFT, steps=10, resample_steps=1, seed=2, clip=False, verbose=0)
    generated = model.generate(8, steps=10, seed=2, clip=False, verbose=0)
    np.testing.assert_array_equal(filled[:, :, :2], x[:, :, :2])
    np.testing.assert_allclose(filled[:, :, 2:], generated[:, :, 2:], atol=1e-6)


def test_masks_of_every_shape_keep_their_pixels(model):
    x = data(3)
    per_image = np.zeros((3,) + SHAPE, "float32")
    per_image[0, :2], per_image[1, :, :2], per_image[2, 1:3, 1:3] = 1, 1, 1
    for mask in (LEFT, LEFT[..., None], np.broadcast_to(LEFT[..., None], (3,) + SHAPE), per_image,
                 per_image.astype(bool)):
        filled = model.inpaint(x, mask, steps=8, resample_steps=2, jump_length=3, seed=1, verbose=0)
        kept = np.broadcast_to(mask if np.ndim(mask) > 2 else mask[..., None], x.shape) > 0
        np.testing.assert_array_equal(filled[kept], x[kept])
        assert not np.allclose(filled[~kept], x[~kept])


def test_chunks_seeds_and_progress(model, capsys):
    x = data(5)
    whole = model.inpaint(x, LEFT, steps=12, resample_steps=3, jump_length=5, seed=9, verbose=0)
    again = model.inpaint(x, LEFT, steps=12, resample_steps=3, jump_length=5, seed=9, verbose=0)
    np.testing.assert_array_equal(whole, again)
    other = model.inpaint(x, LEFT, steps=12, resample_steps=3, jump_length=5, seed=10, verbose=0)
    assert not np.array_equal(whole, other)
    first = model.inpaint(x[:3], LEFT, steps=12, resample_steps=3, jump_length=5, seed=9,
                          batch_size=3, verbose=1)
    np.testing.assert_array_equal(first, whole[:3])  # chunk 0 of a run is the run of its images
    assert "3/3" in capsys.readouterr().out  # ⌈12 / 5⌉ = 3 blocks


# ----------------------------------------------------------------------------
# Correlated data: the Gaussian conditional
# ----------------------------------------------------------------------------
SIDE = 3


def correlated_problem(timesteps=1000):
    rows, cols = np.meshgrid(np.arange(SIDE), np.arange(SIDE), indexing="ij")
    points = np.stack([rows.ravel(), cols.ravel()], 1)
    distance = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1))
    cov = 0.25**2 * np.exp(-distance / 2.0)
    mean = np.linspace(-0.2, 0.2, SIDE * SIDE)
    schedule = keras_ddpm.NoiseSchedule("linear", timesteps=timesteps)
    network = correlated_gaussian_oracle(schedule, (SIDE, SIDE, 1), mean, cov)
    model = keras_ddpm.DDPM(network, schedule=schedule, ema_decay=None)
    image = np.random.default_rng(0).multivariate_normal(mean, cov).astype("float32")
    keep = np.zeros((SIDE, SIDE), bool)
    keep[:, 0] = True  # keep the left column, fill the other six pixels
    return model, image, keep, gaussian_conditional(mean, cov, keep.ravel(), image[keep.ravel()])


def filled_moments(model, image, keep, n, **kwargs):
    images = np.broadcast_to(image.reshape(1, SIDE, SIDE, 1), (n, SIDE, SIDE, 1))
    filled = model.inpaint(images, keep, clip=False, seed=1, verbose=0, **kwargs)
    np.testing.assert_array_equal(filled[:, keep], images[:, keep])
    unknown = filled.reshape(n, -1)[:, ~keep.ravel()].astype(np.float64)
    return unknown.mean(0), np.cov(unknown.T)


def test_resampling_reduces_the_bias_of_replacement_on_correlated_data():
    """Replacement is biased for correlated pixels (Lugmayr et al. 2022); resampling cuts the bias.

    Measured (4,096 inpaintings, 250 of 1,000 steps): the filled pixels' mean
    is off the conditional mean by 0.022 RMS (7.0 standard errors) with
    replacement, and by 0.012 (3.6) with 10 passes over blocks of 10 steps.
    """
    model, image, keep, (mean, cov) = correlated_problem()
    n = 4096
    standard_errors = np.sqrt(np.diag(cov) / n)  # of each filled pixel's mean
    errors = {}
    for name, passes in (("replacement", 1), ("resampling", 10)):
        empirical_mean, _ = filled_moments(model, image, keep, n, steps=250,
                                           resample_steps=passes, jump_length=10)
        errors[name] = np.sqrt(np.mean(((empirical_mean - mean) / standard_errors) ** 2))
    # In standard errors: noise alone gives about 1 RMS.
    assert errors["replacement"] > 4.0, errors
    assert errors["resampling"] < errors["replacement"] - 2.0, errors


@pytest.mark.slow
def test_resampling_approaches_the_gaussian_conditional_over_the_full_chain():
    """All 1,000 steps: mean and covariance of the filled pixels against the closed form.

    Measured (4,096 inpaintings): replacement is off by 0.023 RMS in the mean
    (7.1 standard errors) and 0.029 in the covariance (Frobenius; 5.9 times
    its sampling noise); 10 passes over blocks of 10 steps by 0.005 (1.5)
    and 0.011 (2.3), and with β as the steps' variance by 1.5 and 1.1 times
    the noise. At 250 steps the covariance errors are 0.015 and 0.017 (1.9
    times the noise with β): resampling needs the finer steps, or β, to
    improve the covariance.
    """
    model, image, keep, (mean, cov) = correlated_problem()
    n = 4096
    # Standard error of the sample covariance entries of a Gaussian: √((σ_i²σ_j² + c_ij²)/n).
    cov_noise = np.sqrt(np.sum((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n))
    standard_errors = np.sqrt(np.diag(cov) / n)
    results = {}
    for name, passes, variance in (("replacement", 1, None), ("resampling", 10, None),
                                   ("resampling with β", 10, "fixed_large")):
        empirical_mean, empirical_cov = filled_moments(model, image, keep, n, steps=1000,
                                                       resample_steps=passes, jump_length=10,
                                                       variance=variance)
        results[name] = (
            np.sqrt(np.mean(((empirical_mean - mean) / standard_errors) ** 2)),
            np.linalg.norm(empirical_cov - cov) / cov_noise,
        )
    (mean_base, cov_base), (mean_resampled, cov_resampled) = results["replacement"], results["resampling"]
    assert mean_resampled < 3.0 and mean_base > mean_resampled + 3.0, results
    assert cov_resampled < 3.0 and cov_base > cov_resampled + 2.0, results
    # β instead of β̃ keeps the spread under resampling: covariance at its noise level.
    mean_large, cov_large = results["resampling with β"]
    assert mean_large < 3.0 and cov_large < 1.8, results


@pytest.mark.parametrize("call, error, fragment", [
    (lambda m: m.inpaint(data(2), np.ones((5, 5))), ValueError, "(5, 5) does not broadcast"),
    (lambda m: m.inpaint(data(2), np.ones((3,) + SHAPE)), ValueError, "(3, 4, 4, 1)"),
    (lambda m: m.inpaint(data(2), np.full(SHAPE, 2.0)), ValueError, "[2, 2]"),
    (lambda m: m.inpaint(data(2), np.full(SHAPE, -1.0)), ValueError, "[-1, -1]"),
    (lambda m: m.inpaint(data(2), np.full(SHAPE, np.nan)), ValueError, "[0, 1]"),
    (lambda m: m.inpaint(data(2), np.full(SHAPE, "a")), TypeError, "<U1"),
    (lambda m: m.inpaint(data(2), LEFT, sampler="dpm_solver"), ValueError, "sampler='dpm_solver'"),
    (lambda m: m.inpaint(data(2), LEFT, resample_steps=0), ValueError, "resample_steps=0"),
    (lambda m: m.inpaint(data(2), LEFT, jump_length=1.5), ValueError, "jump_length=1.5"),
    (lambda m: m.inpaint(np.zeros((2,) + SHAPE, np.uint8), LEFT), TypeError, "uint8"),
    (lambda m: m.inpaint(np.full((2,) + SHAPE, -3.0, np.float32), LEFT), ValueError, "[-3, -3]"),
    (lambda m: m.inpaint(data(2), LEFT, steps=0), ValueError, "steps=0"),
    (lambda m: m.inpaint(data(2), LEFT, sampler="ddpm", eta=0.5), ValueError, "eta"),
    (lambda m: m.inpaint(data(2), LEFT, variance="learned"), ValueError, "learned"),
])
def test_bad_inpaint_arguments_are_one_line(model, call, error, fragment):
    with pytest.raises(error) as info:
        call(model)
    assert fragment in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_steps_strength_and_resampling_never_retrace():
    schedule = keras_ddpm.NoiseSchedule("linear", timesteps=50, beta_start=1e-3, beta_end=0.2)
    model = gaussian_oracle_model(schedule, SHAPE, MEAN, STD)
    x = data(2)
    for steps, passes, jump in ((5, 1, 5), (8, 3, 2), (12, 2, 7)):
        model.inpaint(x, LEFT, steps=steps, resample_steps=passes, jump_length=jump, seed=0,
                      verbose=0)
    for steps in (4, 9):
        model.encode(x, steps=steps, verbose=0)
    for strength in (0.2, 0.5, 0.9):
        model.generate(2, sampler="ddim", steps=10, initial_images=x, strength=strength, verbose=0)
    loops = model.reverse_process().loops
    assert len(loops) == 3  # one inpainting loop, one inverse, one DDIM loop
    assert all(run.experimental_get_tracing_count() == 1 for run in loops.values())
