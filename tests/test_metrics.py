"""KID, FID and bits/dim against closed forms and direct NumPy computations (no downloads).

KID, FID and the bound run on every backend (the module is `backends`-marked).
"""

import math

import keras
import numpy as np
import pytest

import keras_ddpm
from keras_ddpm import metrics
from keras_ddpm import samplers
from oracles import gaussian_oracle
from oracles import gaussian_oracle_model

pytestmark = pytest.mark.backends


def gaussian(n, mean, std, seed):
    rng = np.random.default_rng(seed)
    return mean + std * rng.standard_normal((n, len(std)))


# ----------------------------------------------------------------------------
# FID
# ----------------------------------------------------------------------------
def test_fid_of_identical_sets_is_zero():
    images = np.random.default_rng(0).uniform(-1, 1, (200, 4, 4, 1)).astype(np.float32)
    fid = metrics.FID(feature_extractor="pixels")
    fid.update_state(images, images)
    assert abs(fid.result()) < 1e-8


def test_fid_of_shifted_gaussians_is_the_squared_shift():
    d, n = 8, 20_000
    shift = np.full(d, 0.25)
    real = gaussian(n, np.zeros(d), np.full(d, 0.3), seed=1)
    generated = gaussian(n, shift, np.full(d, 0.3), seed=2)
    fid = metrics.FID(feature_extractor="pixels", batch_size=5000)
    # Batches of features accumulate: two updates equal one.
    fid.update_features(real[: n // 2], generated[: n // 2])
    fid.update_features(real[n // 2 :], None)
    fid.update_features(None, generated[n // 2 :])
    assert fid.result() == pytest.approx(np.sum(shift**2), abs=0.01)  # 0.5
    fid.reset_state()
    with pytest.raises(ValueError, match="at least 2 real"):
        fid.result()


def test_fid_statistics_are_np_cov_of_all_features_however_batched():
    # Features with a large mean and a small spread: sums of raw outer products
    # would lose digits here; the merged centred sums keep np.cov's precision.
    features = 1000.0 + gaussian(300, np.zeros(4), np.full(4, 1e-3), seed=12)
    fid = metrics.FID(feature_extractor="pixels")
    for begin, end in ((0, 7), (7, 8), (8, 150), (150, 300)):
        fid.update_features(None, features[begin:end])
    mean, covariance = fid.statistics("generated")
    np.testing.assert_allclose(mean, features.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(covariance, np.cov(features, rowvar=False), rtol=1e-6, atol=1e-15)
    assert metrics.feature_statistics(features)[1] == pytest.approx(covariance, rel=1e-6)
    with pytest.raises(ValueError, match="side='fake'"):
        fid.statistics("fake")


def test_frechet_distance_with_diagonal_covariances_matches_its_closed_form():
    # For diagonal Σ1, Σ2: Tr(Σ1 + Σ2 − 2(Σ1Σ2)^½) = Σ_i (s1_i − s2_i)².
    rng = np.random.default_rng(3)
    mean1, mean2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 2.0, 6), rng.uniform(0.1, 2.0, 6)
    expected = np.sum((mean1 - mean2) ** 2) + np.sum((s1 - s2) ** 2)
    value = metrics.frechet_distance(mean1, np.diag(s1**2), mean2, np.diag(s2**2))
    assert value == pytest.approx(expected, rel=1e-10)
    # A rotation of both leaves the distance alone (the square root is a true one).
    rotation, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    rotated = metrics.frechet_distance(
        rotation @ mean1,
        rotation @ np.diag(s1**2) @ rotation.T,
        rotation @ mean2,
        rotation @ np.diag(s2**2) @ rotation.T,
    )
    assert rotated == pytest.approx(expected, rel=1e-8)


def test_fid_from_samples_with_different_diagonal_covariances():
    d, n = 4, 50_000
    s1, s2 = np.array([0.2, 0.5, 1.0, 0.3]), np.array([0.4, 0.5, 0.6, 0.9])
    fid = metrics.FID(feature_extractor="pixels", batch_size=n)
    fid.update_features(gaussian(n, np.zeros(d), s1, 4), gaussian(n, np.zeros(d), s2, 5))
    assert fid.result() == pytest.approx(np.sum((s1 - s2) ** 2), abs=0.01)  # 0.56


# ----------------------------------------------------------------------------
# KID
# ----------------------------------------------------------------------------
def numpy_kid(x, y, num_subsets, subset_size, seed):
    rng = np.random.default_rng(seed)
    d, m = x.shape[1], subset_size
    values = []
    for _ in range(num_subsets):
        a = x[rng.choice(len(x), m, replace=False)]
        b = y[rng.choice(len(y), m, replace=False)]
        total = 0.0
        for i in range(m):
            for j in range(m):
                if i != j:
                    total += (a[i] @ a[j] / d + 1) ** 3 / (m * (m - 1))
                    total += (b[i] @ b[j] / d + 1) ** 3 / (m * (m - 1))
                total -= 2 * (a[i] @ b[j] / d + 1) ** 3 / m**2
        values.append(total)
    return np.mean(values)


def test_kid_matches_a_direct_computation_of_the_estimator():
    x = gaussian(60, np.zeros(5), np.ones(5), 6)
    y = gaussian(50, np.full(5, 0.5), np.ones(5), 7)
    kid = metrics.KID(feature_extractor="pixels", num_subsets=3, subset_size=20, seed=11)
    kid.update_features(x, y)
    expected = numpy_kid(x, y, 3, 20, 11)
    assert kid.result() == pytest.approx(expected, rel=1e-5)
    assert kid.result_std() >= 0


def test_kid_of_identical_distributions_is_near_zero():
    images = np.random.default_rng(8).uniform(-1, 1, (300, 4, 4, 1)).astype(np.float32)
    kid = metrics.KID(feature_extractor="pixels", num_subsets=20, subset_size=100)
    kid.update_state(images, images)
    assert abs(kid.result()) < 0.01
    other = metrics.KID(feature_extractor="pixels", num_subsets=20, subset_size=100)
    other.update_state(images, np.clip(images + 0.5, -1, 1))
    assert other.result() > 10 * abs(kid.result())


def test_custom_extractor_gets_resized_three_channel_inputs_in_its_range():
    # A model that only accepts 16x16x3: 8x8 grayscale images must be resized and
    # repeated; the per-channel means show the [-1, 1] -> [0, 255] mapping.
    inputs = keras.Input((16, 16, 3))
    extractor = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    fid = metrics.FID(extractor, input_range=(0.0, 255.0))
    images = np.stack([np.full((8, 8, 1), -1.0), np.full((8, 8, 1), 1.0)]).astype(np.float32)
    np.testing.assert_allclose(fid.features(images), [[0, 0, 0], [255, 255, 255]], atol=1e-3)


def test_a_custom_extractor_sees_images_shrunk_through_an_antialiasing_filter():
    # Halving the size, bilinear with antialiasing averages each pixel's neighbourhood with the
    # weights (1, 3, 3, 1)/8 along each axis (renormalised at the border), on every backend.
    inputs = keras.Input((8, 8, 1))
    extractor = keras.Model(inputs, keras.layers.Flatten()(inputs))
    images = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 1)).astype(np.float32)

    def halve(array, axis):
        array = np.moveaxis(array, axis, 0)
        rows = []
        for i in range(len(array) // 2):
            taps = {k: w for k, w in zip(range(2 * i - 1, 2 * i + 3), (1, 3, 3, 1))}
            taps = {k: w for k, w in taps.items() if 0 <= k < len(array)}
            rows.append(sum(w * array[k] for k, w in taps.items()) / sum(taps.values()))
        return np.moveaxis(np.stack(rows), 0, axis)

    expected = halve(halve(images, 1), 2).reshape(2, -1)
    np.testing.assert_allclose(metrics.FID(extractor).features(images), expected, atol=1e-6)


@pytest.mark.parametrize(
    "build, error, message",
    [
        (lambda: metrics.FID("vgg"), ValueError, "'vgg'"),
        (lambda: metrics.FID(3), TypeError, "Received: 3"),
        (lambda: metrics.KID("pixels", subset_size=1), ValueError, "subset_size=1"),
        (lambda: metrics.KID("pixels", num_subsets=0), ValueError, "num_subsets=0"),
        (lambda: metrics.FID("pixels", input_range=(1, 0)), ValueError, "input_range"),
        (
            lambda: metrics.FID("pixels").update_state(np.zeros((2, 4, 4))),
            ValueError,
            r"\(2, 4, 4\)",
        ),
        (lambda: metrics.KID("pixels").result(), ValueError, "received 0 and 0"),
    ],
)
def test_bad_arguments(build, error, message):
    with pytest.raises(error, match=message):
        build()


# ----------------------------------------------------------------------------
# Bits per dimension
# ----------------------------------------------------------------------------
MEAN, STD = 0.3, 0.05


def oracle_model(timesteps=20, variance="fixed_small"):
    schedule = keras_ddpm.NoiseSchedule(
        "linear", timesteps=timesteps, beta_start=1e-3, beta_end=0.3
    )
    return gaussian_oracle_model(schedule, (4, 4, 1), MEAN, STD, variance=variance)


def expected_terms(schedule, variance, x0, rng, draws=64):
    """E over x_t of the bound's terms for the ε-oracle, in nats per pixel, shape (N, T).

    With the oracle, the model mean is affine in x_t, μ_θ = A·x_t + B, so for
    t ≥ 1 the expected KL has a closed form; L_0 is averaged over `draws` draws.
    """
    ac = schedule.alphas_cumprod
    log_model = samplers.log_variance_table(schedule, variance)
    columns = []
    for t in range(schedule.timesteps):
        a, sigma = math.sqrt(ac[t]), math.sqrt(1 - ac[t])
        var = a * a * STD**2 + sigma**2
        eps_slope, eps_offset = sigma / var, -sigma * a * MEAN / var
        x0_slope, x0_offset = (1 - sigma * eps_slope) / a, -sigma * eps_offset / a
        c1, c2 = schedule.posterior_mean_coef1[t], schedule.posterior_mean_coef2[t]
        slope, offset = c1 * x0_slope + c2, c1 * x0_offset  # μ_θ = slope·x_t + offset
        if t == 0:
            eps = rng.standard_normal((draws,) + x0.shape)
            x_t = a * x0 + sigma * eps
            means = slope * x_t + offset
            scale = math.exp(0.5 * log_model[0])
            cdf = lambda z: 0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))  # noqa: E731
            upper = np.where(x0 > 0.999, 1.0, cdf((x0 - means + 1 / 255) / scale))
            lower = np.where(x0 < -0.999, 0.0, cdf((x0 - means - 1 / 255) / scale))
            columns.append(-np.log(np.maximum(upper - lower, 1e-12)).mean(axis=0))
            continue
        # μ_q − μ_θ = (c2 − slope)·x_t + c1·x0 − offset, with x_t = a·x0 + σ·ε.
        diff_mean = ((c2 - slope) * a + c1) * x0 - offset
        diff_var = ((c2 - slope) * sigma) ** 2
        log_q, log_p = schedule.posterior_log_variance_clipped[t], log_model[t]
        columns.append(
            0.5
            * (
                log_p
                - log_q
                + math.exp(log_q - log_p)
                + (diff_mean**2 + diff_var) * math.exp(-log_p)
                - 1
            )
        )
    return np.stack(columns, axis=1)  # (N·pixels, T)


@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large"])
def test_bound_of_the_oracle_matches_a_numpy_computation_of_eq5(variance):
    model = oracle_model(variance=variance)
    schedule = model.schedule
    rng = np.random.default_rng(10)
    images = np.clip(MEAN + STD * rng.standard_normal((256, 4, 4, 1)), -1, 1).astype(np.float32)
    result = metrics.variational_bound_terms(model, images, seed=0)
    assert result["terms"].shape == (256, schedule.timesteps)

    # The prior term is exact: KL(N(√ᾱ_T x0, 1 − ᾱ_T) ‖ N(0, 1)) summed over pixels.
    ac_t = schedule.alphas_cumprod[-1]
    x0 = images.reshape(256, -1).astype(np.float64)
    prior = 0.5 * (ac_t * x0**2 + (1 - ac_t) - 1 - math.log(1 - ac_t)).sum(axis=1)
    np.testing.assert_allclose(result["prior"], prior, rtol=1e-10)

    # Every diffusion term, averaged over images, equals its expectation over x_t.
    expected = (
        expected_terms(schedule, variance, x0.reshape(-1), rng).reshape(256, 16, -1).sum(axis=1)
    )
    np.testing.assert_allclose(
        result["terms"].mean(axis=0), expected.mean(axis=0), rtol=0.05, atol=1e-3
    )
    np.testing.assert_allclose(result["total"], result["prior"] + result["terms"].sum(axis=1))

    # bits/dim = mean total / (D ln 2), from a dataset in two batches: image i draws the
    # same x_t however the images are batched, so it is the same number.
    bpd = metrics.bits_per_dim(model, [images[:100], images[100:]], verbose=0)
    direct = (result["prior"] + result["terms"].sum(axis=1)).mean() / (16 * math.log(2))
    assert bpd == pytest.approx(direct, rel=1e-6)
    first = result["total"][:100].mean() / (16 * math.log(2))
    assert metrics.bits_per_dim(model, images, num_images=100, verbose=0) == pytest.approx(
        first, rel=1e-6
    )


def test_a_better_model_has_a_lower_bound():
    rng = np.random.default_rng(12)
    images = np.clip(MEAN + STD * rng.standard_normal((64, 4, 4, 1)), -1, 1).astype(np.float32)
    oracle = oracle_model()
    schedule = oracle.schedule
    wrong = keras_ddpm.DDPM(
        gaussian_oracle(schedule, (4, 4, 1), -MEAN, STD), schedule=schedule, ema_decay=None
    )
    assert metrics.bits_per_dim(oracle, images, verbose=0) < metrics.bits_per_dim(
        wrong, images, verbose=0
    )


class _ClassOracle(keras.layers.Layer):
    """The exact ε-prediction for class c ~ N(means[c], STD²); the null label reads means[-1]."""

    def __init__(self, schedule, means, **kwargs):
        super().__init__(**kwargs)
        self.schedule, self.means = schedule, means

    def call(self, inputs):
        x_t, t, labels = inputs
        mean = keras.ops.reshape(keras.ops.take(keras.ops.convert_to_tensor(self.means), labels), (-1, 1, 1, 1))
        a, sigma = self.schedule.signal_and_noise_rates(t, 4)
        return sigma * (x_t - a * mean) / (a * a * STD**2 + sigma * sigma)


def test_the_bound_of_a_conditional_model_uses_its_labels():
    schedule = oracle_model().schedule
    x_t = keras.Input((4, 4, 1))
    t = keras.Input((), dtype="int32")
    labels = keras.Input((), dtype="int32")
    network = keras.Model([x_t, t, labels], _ClassOracle(schedule, [MEAN, -MEAN, 0.0])([x_t, t, labels]))
    network.num_classes = 2
    model = keras_ddpm.DDPM(network, schedule=schedule, ema_decay=None)
    rng = np.random.default_rng(3)
    images = np.clip(MEAN + STD * rng.standard_normal((32, 4, 4, 1)), -1, 1).astype(np.float32)
    zeros, ones = np.zeros(32, np.int32), np.ones(32, np.int32)
    # With the right label the conditional model is the class's unconditional oracle, to the bit.
    right = metrics.variational_bound_terms(model, images, seed=4, labels=zeros)["total"]
    oracle = metrics.variational_bound_terms(oracle_model(), images, seed=4)["total"]
    np.testing.assert_allclose(right, oracle, rtol=1e-6)
    wrong = metrics.variational_bound_terms(model, images, seed=4, labels=ones)["total"]
    assert wrong.mean() > 2 * right.mean()
    # A labelled dataset is evaluated with its labels; an unlabelled one on the null label.
    labelled = [(images[:16], zeros[:16]), (images[16:], zeros[16:])]
    assert metrics.bits_per_dim(model, labelled, verbose=0) == pytest.approx(
        metrics.bits_per_dim(oracle_model(), images, verbose=0), rel=0.05
    )
    assert metrics.bits_per_dim(model, images, verbose=0) > metrics.bits_per_dim(
        model, labelled, verbose=0
    )


def test_the_bound_traces_one_function_for_every_timestep(monkeypatch):
    from keras_ddpm import generation

    calls = []
    denoiser = generation.ReverseProcess.denoiser

    def counting(self, *args):  # called once per trace (TensorFlow, JAX), per call on PyTorch
        calls.append(1)
        return denoiser(self, *args)

    monkeypatch.setattr(generation.ReverseProcess, "denoiser", counting)
    model = oracle_model()
    images = np.full((2, 4, 4, 1), MEAN, np.float32)
    metrics.variational_bound_terms(model, images, seed=0)
    metrics.variational_bound_terms(model, images + 0.1, seed=1)  # other images, no new trace
    timesteps = model.schedule.timesteps
    eager = keras.backend.backend() == "torch"
    assert len(calls) == (2 * timesteps if eager else 1)


def test_the_bound_takes_a_dataset_of_batches_and_refuses_anything_else():
    model = oracle_model()
    images = np.full((3, 4, 4, 1), MEAN, np.float32)
    assert metrics.bits_per_dim(model, iter([images[:2], images[2:]]), verbose=0) == pytest.approx(
        metrics.bits_per_dim(model, images, verbose=0), rel=1e-6
    )
    with pytest.raises(TypeError, match="iterable of batches.*Received: int"):
        metrics.bits_per_dim(model, 3, verbose=0)
    with pytest.raises(ValueError, match="holds no images"):
        metrics.bits_per_dim(model, [], verbose=0)
