"""Samplers checked against exact answers for Gaussian data.

Deterministic samplers are compared sample by sample with the closed-form
probability-flow ODE solution; stochastic ones with their exact output moments.
"""

import math
import os

import numpy as np
import pytest
import tensorflow as tf

from keras_ddpm import NoiseSchedule
from keras_ddpm import objectives
from keras_ddpm import rng
from keras_ddpm import samplers
from oracles import GaussianOracleLayer
from oracles import ancestral_output_moments
from oracles import exact_ode_solution
from oracles import exact_x0_estimate
from oracles import respaced_output_moments

# A narrow data distribution: there the reverse variance matters most, so the
# tolerances below separate a correct sampler from a wrong one by a wide margin.
MEAN, STD = 0.3, 0.05
SHAPE = (2048, 8, 8, 1)  # 131,072 independent values per run
N = int(np.prod(SHAPE))
FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "diffusers")


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


# ----------------------------------------------------------------------------
# Timestep sequences
# ----------------------------------------------------------------------------
def _sequence(schedule, steps, spacing):
    return samplers.timestep_sequence(schedule, steps, spacing).numpy()[:steps]


def test_spacings_match_lin_et_al_table_2():
    schedule = NoiseSchedule("linear", timesteps=1000)
    # Paper timesteps 1, 101, …, 901 / 1000, 900, …, 100 / round(linspace(1, 1000, 10)).
    np.testing.assert_array_equal(_sequence(schedule, 10, "leading"), np.arange(900, -1, -100))
    np.testing.assert_array_equal(_sequence(schedule, 10, "trailing"), np.arange(999, 0, -100))
    np.testing.assert_array_equal(
        _sequence(schedule, 10, "linspace"), np.round(np.linspace(999, 0, 10)).astype(int)
    )
    full = samplers.timestep_sequence(schedule, 1000, "logsnr").numpy()
    assert full[-1] == -1
    for spacing in [s for s in samplers.TIMESTEP_SPACINGS if s != samplers.OPTIMIZED]:  # a model's own
        np.testing.assert_array_equal(_sequence(schedule, 1000, spacing), np.arange(999, -1, -1))
        padded = samplers.timestep_sequence(schedule, 7, spacing).numpy()
        assert padded.shape == (1001,) and np.all(padded[7:] == -1)
    assert _sequence(schedule, 1, "linspace").tolist() == [999]


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("steps", [2, 10, 37, 500, 900, 999])
def test_logsnr_spacing_is_uniform_in_log_snr_and_strictly_decreasing(kind, steps):
    schedule = NoiseSchedule(kind, timesteps=1000)
    seq = _sequence(schedule, steps, "logsnr")
    assert seq[0] == 999 and seq[-1] == 0 and np.all(np.diff(seq) < 0)
    if steps <= 37:
        # Each index is the one whose log-SNR is nearest to its uniform target.
        ac = schedule.alphas_cumprod
        lam = np.log(ac) - np.log1p(-ac)
        targets = np.linspace(lam[-1], lam[0], steps)
        nearest = np.abs(lam[None, :] - targets[:, None]).argmin(1)
        nearest[0] = 999
        if np.all(np.diff(nearest) < 0):  # no collision to resolve
            np.testing.assert_array_equal(seq, nearest)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("steps", [2, 5, 10, 37, 500, 999])
def test_karras_spacing_follows_edm_polynomial_in_sigma(kind, steps):
    schedule = NoiseSchedule(kind, timesteps=1000)
    seq = _sequence(schedule, steps, "karras")
    assert seq[0] == 999 and seq[-1] == 0 and np.all(np.diff(seq) < 0)
    # EDM eq. 5 in σ = √((1 − ᾱ)/ᾱ), ρ = 7, between the schedule's largest and smallest σ.
    ac = schedule.alphas_cumprod
    sigma = np.sqrt((1 - ac) / ac)
    ramp = np.linspace(0, 1, steps)
    targets = (sigma[-1] ** (1 / 7) + ramp * (sigma[0] ** (1 / 7) - sigma[-1] ** (1 / 7))) ** 7
    nearest = np.abs(np.log(sigma)[None, :] - np.log(targets)[:, None]).argmin(1)
    if steps <= 10 and kind == "linear":
        # Few steps: no two targets share an index (the cosine schedule's capped last β
        # makes σ(T − 1) an outlier, whose neighbours' targets collide: pushed down).
        assert np.all(np.diff(nearest) < 0)
    if np.all(np.diff(nearest) < 0):
        np.testing.assert_array_equal(seq, nearest)
    if steps == 10 and kind == "linear":
        # Steps crowd near the data: the last two indices have σ = 0.073 and 0.010;
        # time-uniform ("trailing") stops at σ = 0.34.
        assert sigma[seq[-2]] < 0.08 and sigma[_sequence(schedule, 10, "trailing")[-1]] > 0.3


# ----------------------------------------------------------------------------
# Deterministic samplers against the exact ODE solution
# ----------------------------------------------------------------------------
ODE_MEAN, ODE_STD = 0.2, 0.5
ODE_Z = tf.random.stateless_normal((1000, 1, 1, 1), seed=[3, 4], dtype=tf.float64).numpy()


def _ode_errors(kind, sampler, spacing, nfes, order=2, prediction_type="epsilon", schedule=None):
    """Max |error| per NFE against (exact x_0, exact path denoised at the last index).

    The samplers' last step returns x̂_0 at the last visited index, so the
    second reference isolates the integration error from that final denoise.
    """
    schedule = schedule or NoiseSchedule(kind, timesteps=1000)
    oracle = GaussianOracleLayer(schedule, ODE_MEAN, ODE_STD, prediction_type)
    run = tf.function(
        lambda x, steps: samplers.sample(
            lambda x_t, t: oracle([x_t, t]), x, schedule, sampler=sampler, steps=steps,
            timestep_spacing=spacing,
            order=order if sampler in samplers.takers("order") else None,
            prediction_type=prediction_type, clip=False,
        )
    )
    true_errors, path_errors = [], []
    for nfe in nfes:
        sequence = _sequence(schedule, nfe, spacing)
        x_start = exact_ode_solution(schedule, ODE_MEAN, ODE_STD, ODE_Z, sequence[0])
        out = run(tf.constant(x_start, tf.float32), tf.constant(nfe)).numpy()
        x_last = exact_ode_solution(schedule, ODE_MEAN, ODE_STD, ODE_Z, sequence[-1])
        reference = exact_x0_estimate(schedule, ODE_MEAN, ODE_STD, x_last, sequence[-1])
        true_errors.append(np.abs(out - (ODE_MEAN + ODE_STD * ODE_Z)).max())
        path_errors.append(np.abs(out - reference).max())
    # Steps are a runtime input: one trace served every NFE.
    assert run.experimental_get_tracing_count() == 1
    return np.array(true_errors), np.array(path_errors)


def _slope(nfes, errors):
    return -np.polyfit(np.log(nfes), np.log(errors), 1)[0]


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_ddim_converges_at_first_order(kind):
    nfes = (25, 50, 100)
    true_errors, path_errors = _ode_errors(kind, "ddim", "linspace", nfes)
    assert np.all(np.diff(true_errors) < 0)
    assert 0.9 < _slope(nfes, path_errors) < 1.15


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_dpm_solver_2m_converges_at_second_order(kind):
    nfes = (25, 50, 100)
    true_errors, path_errors = _ode_errors(kind, "dpm_solver", "logsnr", nfes)
    assert np.all(np.diff(true_errors) < 0)
    assert 1.8 < _slope(nfes, path_errors) < 2.3
    assert true_errors[-1] < 3e-3


def test_dpm_solver_3m_converges_at_third_order():
    nfes = (25, 50)
    true_errors, path_errors = _ode_errors("cosine", "dpm_solver", "logsnr", nfes, order=3)
    assert _slope(nfes, path_errors) > 2.8
    # First order DPM-Solver++ is DDIM, step for step.
    schedule = NoiseSchedule("linear", timesteps=1000)
    first, _ = _ode_errors("linear", "dpm_solver", "trailing", (20,), order=1, schedule=schedule)
    ddim, _ = _ode_errors("linear", "ddim", "trailing", (20,), schedule=schedule)
    np.testing.assert_allclose(first, ddim, rtol=1e-3)


def test_fast_deterministic_target_at_20_nfe():
    true_errors, _ = _ode_errors("linear", "dpm_solver", "logsnr", (20,), order=3)
    assert true_errors[0] <= 5e-3


def test_ipndm_first_order_is_ddim():
    schedule = NoiseSchedule("linear", timesteps=1000)
    first, _ = _ode_errors("linear", "ipndm", "karras", (10,), order=1, schedule=schedule)
    ddim, _ = _ode_errors("linear", "ddim", "karras", (10,), schedule=schedule)
    np.testing.assert_allclose(first, ddim, rtol=1e-3)


@pytest.mark.parametrize("order, low, high", [(1, 0.9, 1.1), (2, 1.7, 2.1), (3, 2.2, 2.6), (4, 2.4, 2.9)])
def test_ipndm_convergence_orders(order, low, high):
    # Adams–Bashforth's fixed weights on the uneven σ steps of "karras": orders 1 and
    # 2 as on equal steps, 3 and 4 between 2 and their own (measured 2.36 and 2.60).
    # iPNDM's last step integrates to σ = 0: the error is against the exact x_0.
    nfes = (25, 50, 100)
    true_errors, _ = _ode_errors("linear", "ipndm", "karras", nfes, order=order)
    assert np.all(np.diff(true_errors) < 0)
    assert low < _slope(nfes, true_errors) < high


def test_ipndm_with_karras_steps_beats_dpm_solver_at_few_steps():
    # Issue 38: at 10 NFE no worse than DPM-Solver++(2M) at 20; at 5 NFE at most half of
    # DPM-Solver++(3M) at 5 (measured 0.0216 against 0.0240, and 0.054 against 0.46).
    ipndm, _ = _ode_errors("linear", "ipndm", "karras", (5, 10), order=3)
    dpm_2m, _ = _ode_errors("linear", "dpm_solver", "logsnr", (20,), order=2)
    dpm_3m, _ = _ode_errors("linear", "dpm_solver", "logsnr", (5,), order=3)
    assert ipndm[1] <= dpm_2m[0]
    assert ipndm[0] <= 0.5 * dpm_3m[0]


def test_unipc_matches_diffusers():
    # diffusers' UniPCMultistepScheduler (B(h) = e^{-h} - 1, lower-order final steps) on the
    # same oracle, schedule and "trailing" steps (tests/fixtures/diffusers/make_unipc_reference.py):
    # float32 torch against float64 scalars here differ by up to 1.6e-6.
    reference = np.load(os.path.join(FIXTURES, "unipc_reference.npz"))
    schedule = NoiseSchedule("linear", timesteps=1000)
    oracle = GaussianOracleLayer(schedule, ODE_MEAN, ODE_STD)
    for order in (1, 2, 3):
        for steps in (5, 10, 25):
            out = samplers.unipc_sample(
                lambda x, t: oracle([x, t]), reference["x_T"], schedule, steps=steps, order=order,
                timestep_spacing="trailing", clip=False,
            )
            expected = reference[f"bh2/order{order}/steps{steps}"]
            np.testing.assert_allclose(out.numpy(), expected, atol=1e-5, err_msg=f"{order=} {steps=}")


@pytest.mark.parametrize("kind, order, low, high", [("linear", 1, 1.85, 2.2), ("cosine", 2, 2.7, 3.3)])
def test_unipc_corrector_raises_the_order(kind, order, low, high):
    # UniP of order p with UniC converges at order p + 1 (measured 2.01 and 2.91), and its
    # order-2 predictor alone is DPM-Solver++(2M): the corrector is what lowers the error.
    nfes = (25, 50, 100)
    true_errors, path_errors = _ode_errors(kind, "unipc", "logsnr", nfes, order=order)
    assert np.all(np.diff(true_errors) < 0)
    assert low < _slope(nfes, path_errors) < high
    predictor, _ = _ode_errors(kind, "dpm_solver", "logsnr", nfes, order=order)
    assert np.all(true_errors < predictor) and true_errors[-1] < 0.25 * predictor[-1]


def test_ipndm_dominates_unipc_at_ten_steps():
    # Issue 38: UniPC or iPNDM, the better one shown. At 10 NFE iPNDM(3) with "karras" steps
    # (0.022) beats UniPC at its best order and spacing (order 2, "logsnr": 0.084; order 3
    # swings between 0.18 and 0.76 there), which is even behind DPM-Solver++(2M) (0.052).
    ipndm, _ = _ode_errors("linear", "ipndm", "karras", (10,), order=3)
    unipc = [
        _ode_errors("linear", "unipc", spacing, (10,), order=order)[0][0]
        for order in (2, 3) for spacing in ("logsnr", "karras")
    ]
    assert ipndm[0] < 0.5 * min(unipc)


@pytest.mark.parametrize("sampler", ["ddim", "dpm_solver", "ipndm", "unipc"])
def test_deterministic_samplers_agree_across_prediction_types(sampler):
    reference, _ = _ode_errors("linear", sampler, "trailing", (15,))
    for prediction_type in ("v", "x0"):
        errors, _ = _ode_errors("linear", sampler, "trailing", (15,), prediction_type=prediction_type)
        np.testing.assert_allclose(errors, reference, rtol=1e-2)


@pytest.mark.parametrize(
    "sampler, prediction_type",
    [("ddim", "v"), ("dpm_solver", "x0"), ("ipndm", "v"), ("unipc", "x0"), ("ddpm", "v")],
)
def test_zero_terminal_snr_samples_from_pure_noise(sampler, prediction_type):
    schedule = NoiseSchedule("linear", timesteps=1000, rescale_zero_terminal_snr=True)
    oracle = GaussianOracleLayer(schedule, ODE_MEAN, ODE_STD, prediction_type)
    # At ᾱ_T = 0 the marginal is exactly N(0, 1): x_T = z.
    out = samplers.sample(
        lambda x, t: oracle([x, t]), ODE_Z.astype("float32"), schedule, sampler=sampler,
        steps=50, prediction_type=prediction_type, clip=False,
    ).numpy()
    assert np.isfinite(out).all()
    if sampler != "ddpm":
        assert np.abs(out - (ODE_MEAN + ODE_STD * ODE_Z)).max() < 0.15
    with pytest.raises(ValueError, match=r"epsilon.*zero-terminal-SNR.*'v' or 'x0'"):
        samplers.sample(lambda x, t: x, ODE_Z, schedule, sampler=sampler, steps=5)


# ----------------------------------------------------------------------------
# Stochastic samplers against their exact output moments
# ----------------------------------------------------------------------------
def _stochastic(schedule, sampler, steps, eta=0.0, variance="fixed_small", spacing="trailing"):
    oracle = GaussianOracleLayer(schedule, MEAN, STD)
    noise = tf.random.stateless_normal(SHAPE, seed=[7, 0])
    run = tf.function(
        lambda x, steps, eta: samplers.sample(
            lambda x_t, t: oracle([x_t, t]), x, schedule, sampler=sampler, steps=steps,
            eta=eta, timestep_spacing=spacing, variance=variance, seed=(2, 0), clip=False,
        )
    )
    return run(noise, tf.constant(steps), tf.constant(eta, tf.float32)).numpy()


def _check_moments(samples, expected, wrong):
    mean, std = expected
    mean_tol, std_tol = _tolerances(std)
    assert abs(samples.mean() - mean) < mean_tol
    assert abs(samples.std() - std) < std_tol
    for wrong_mean, wrong_std in wrong:
        assert abs(wrong_mean - mean) > 2 * mean_tol or abs(wrong_std - std) > 2 * std_tol


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("variance", samplers.VARIANCES)
def test_respaced_ancestral_sampling_has_the_exact_distribution(kind, variance):
    schedule = NoiseSchedule(kind, timesteps=1000)
    steps = 25
    sequence = _sequence(schedule, steps, "trailing")
    expected = respaced_output_moments(schedule, MEAN, STD, sequence, variance=variance)
    # 25 steps keep the mean; for this narrow data they shrink the spread (a
    # property of the sampler, which the exact moments account for).
    assert abs(expected[0] - MEAN) < 1e-3
    # Wrong: the un-respaced per-timestep variance β̃_τ or β_τ (a classic bug),
    # or the other variance choice.
    table = np.exp(samplers.log_variance_table(schedule, variance))
    unrespaced = np.append(table[sequence[:-1]], 0.0)
    other = "fixed_large" if variance == "fixed_small" else "fixed_small"
    wrong = [
        respaced_output_moments(schedule, MEAN, STD, sequence, variances=unrespaced),
        respaced_output_moments(schedule, MEAN, STD, sequence, variance=other),
    ]
    _check_moments(_stochastic(schedule, "ddpm", steps, variance=variance), expected, wrong)


@pytest.mark.parametrize("eta", [0.5, 1.0])
def test_ddim_with_eta_has_the_exact_distribution(eta):
    schedule = NoiseSchedule("linear", timesteps=1000)
    steps = 25
    sequence = _sequence(schedule, steps, "trailing")
    expected = respaced_output_moments(schedule, MEAN, STD, sequence, eta=eta)
    # Wrong: σ without the √((1 − ᾱ_prev)/(1 − ᾱ_t)) factor (which also makes
    # the last step noisy), or σ_t put where σ_t² belongs.
    ac = np.append(schedule.alphas_cumprod[sequence], 1.0)
    no_factor = eta**2 * (1.0 - ac[:-1] / ac[1:])
    right = no_factor * (1.0 - ac[1:]) / (1.0 - ac[:-1])
    wrong = [
        respaced_output_moments(schedule, MEAN, STD, sequence, eta=eta, variances=no_factor),
        respaced_output_moments(schedule, MEAN, STD, sequence, eta=eta, variances=np.sqrt(right)),
    ]
    _check_moments(_stochastic(schedule, "ddim", steps, eta=eta), expected, wrong)
    # η = 1 is the respaced ancestral sampler (fixed_small) in distribution.
    if eta == 1.0:
        ancestral = respaced_output_moments(schedule, MEAN, STD, sequence)
        np.testing.assert_allclose(expected, ancestral, rtol=1e-9)


def test_full_length_ancestral_run_is_the_step_by_step_chain():
    schedule = NoiseSchedule("linear", timesteps=30)
    oracle = GaussianOracleLayer(schedule, MEAN, STD)
    x = tf.random.stateless_normal((64, 2, 2, 1), seed=[1, 0])
    out = samplers.ddpm_sample(lambda x_t, t: oracle([x_t, t]), x, schedule, tf.constant([0, 0]), clip=False)
    for i in range(30):
        t = np.full((64,), 29 - i, "int32")
        z = rng.normal(rng.fold_in(rng.image_keys(tf.constant([0, 0]), 0, 64), i), (2, 2, 1))
        x = samplers.ddpm_step(schedule, x, t, oracle([x, t]), z, clip=False)
    np.testing.assert_allclose(out.numpy(), x.numpy(), atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"sampler": "euler"}, ValueError, r"sampler='euler'.*'ddpm', 'ddim', 'dpm_solver'"),
        ({"timestep_spacing": "uniform"}, ValueError, r"timestep_spacing='uniform'.*'leading'"),
        ({"steps": 0}, ValueError, r"\[1, 10\].*steps=0"),
        ({"steps": 11}, ValueError, r"\[1, 10\].*steps=11"),
        ({"steps": 2.5}, TypeError, r"steps=2.5"),
        ({"sampler": "ddim", "eta": 1.5}, ValueError, r"\[0, 1\].*eta=1.5"),
        ({"sampler": "ddim", "eta": -0.1}, ValueError, r"\[0, 1\].*eta=-0.1"),
        ({"sampler": "ddpm", "eta": 0.5}, ValueError, r"eta.*only applies to sampler='ddim'"),
        ({"sampler": "dpm_solver", "order": 4}, ValueError, r"\[1, 2, 3\].*order=4"),
        ({"sampler": "dpm_solver", "order": 0}, ValueError, r"order=0"),
        ({"sampler": "ddim", "order": 3}, ValueError, r"order.*only applies to the samplers \['dpm_solver', 'ipndm', 'unipc'\]"),
        ({"sampler": "ipndm", "order": 5}, ValueError, r"\[1, 2, 3, 4\].*order=5"),
        ({"sampler": "ipndm", "timestep_spacing": "edm"}, ValueError, r"timestep_spacing='edm'.*karras"),
    ],
)
def test_bad_sampler_arguments_name_the_value(kwargs, error, message):
    schedule = NoiseSchedule("linear", timesteps=10)
    with pytest.raises(error, match=message):
        samplers.sample(lambda x, t: x, np.zeros((1, 2, 2, 1), "float32"), schedule, **kwargs)
