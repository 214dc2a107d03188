"""Image-to-image (SDEdit): generate(initial_images=x, strength=s), checked against closed forms."""

import numpy as np
import pytest

import keras_ddpm
from keras_ddpm import samplers
from oracles import gaussian_oracle
from oracles import gaussian_oracle_model

MEAN, STD = 0.2, 0.3
SHAPE = (4, 4, 1)


def oracle_model(timesteps=50):
    schedule = keras_ddpm.NoiseSchedule("linear", timesteps=timesteps, beta_start=1e-3, beta_end=0.2)
    return gaussian_oracle_model(schedule, SHAPE, MEAN, STD)


def data(n, seed=0):
    return np.random.default_rng(seed).normal(MEAN, STD, (n,) + SHAPE).clip(-1, 1).astype("float32")


@pytest.fixture(scope="module")
def model():
    return oracle_model()


@pytest.mark.parametrize("sampler, steps", [("ddpm", 8), ("ddim", 8), ("dpm_solver", 8)])
def test_strength_one_is_generate_and_zero_returns_the_images(model, sampler, steps):
    x = data(6)
    plain = model.generate(6, sampler=sampler, steps=steps, seed=3, verbose=0)
    edited = model.generate(6, sampler=sampler, steps=steps, seed=3, verbose=0,
                            initial_images=x, strength=1.0)
    np.testing.assert_array_equal(plain, edited)
    kept = model.generate(6, sampler=sampler, steps=steps, seed=3, initial_images=x, strength=0.0)
    np.testing.assert_array_equal(kept, x)


def ddim_edit_closed_form(schedule, x, eps, steps, strength, spacing):
    """DDIM (η = 0) with the ε-oracle is affine at every step; compose it from the noised images."""
    ac = schedule.alphas_cumprod.astype(np.float64)
    sequence = samplers.timestep_sequence(schedule, steps, spacing).numpy()
    first = steps - int(round(strength * steps))
    a = ac[sequence[first]]
    y = np.sqrt(a) * x.astype(np.float64) + np.sqrt(1 - a) * eps.astype(np.float64)
    for k in range(first, steps):
        t, prev = sequence[k], sequence[k + 1]
        a, a_prev = ac[t], (ac[prev] if prev >= 0 else 1.0)
        v = a * STD**2 + 1 - a
        eps_hat = np.sqrt(1 - a) * (y - np.sqrt(a) * MEAN) / v
        x0_hat = (y - np.sqrt(1 - a) * eps_hat) / np.sqrt(a)
        y = np.sqrt(a_prev) * x0_hat + np.sqrt(1 - a_prev) * eps_hat
    return y


@pytest.mark.parametrize("strength", [0.3, 0.7])
def test_ddim_edit_is_the_composed_affine_map(model, strength):
    x, eps = data(8), np.random.default_rng(1).standard_normal((8,) + SHAPE).astype("float32")
    out = model.generate(8, sampler="ddim", steps=10, timestep_spacing="trailing", clip=False,
                         initial_images=x, strength=strength, initial_noise=eps, verbose=0)
    expected = ddim_edit_closed_form(model.schedule, x, eps, 10, strength, "trailing")
    np.testing.assert_allclose(out, expected, atol=2e-5)


def test_first_order_dpm_solver_edit_equals_ddim(model):
    """DPM-Solver++ of order 1 is DDIM (Lu et al. 2022), so its part-way run must be too."""
    x, eps = data(8), np.random.default_rng(2).standard_normal((8,) + SHAPE).astype("float32")
    common = dict(steps=10, timestep_spacing="trailing", clip=False, initial_images=x,
                  strength=0.6, initial_noise=eps, verbose=0)
    ddim = model.generate(8, sampler="ddim", **common)
    dpm = model.generate(8, sampler="dpm_solver", order=1, **common)
    np.testing.assert_allclose(dpm, ddim, atol=2e-5)


@pytest.mark.parametrize("kwargs, error, fragment", [
    (dict(strength=0.5), ValueError, "needs `initial_images`"),
    (dict(initial_images=np.zeros((2,) + SHAPE, np.float32)), ValueError, "Pass `strength`"),
    (dict(initial_images=np.zeros((2,) + SHAPE, np.float32), strength=1.5), ValueError, "1.5"),
    (dict(initial_images=np.zeros((2,) + SHAPE, np.uint8), strength=0.5), TypeError, "uint8"),
    (dict(initial_images=np.zeros((3,) + SHAPE, np.float32), strength=0.5), ValueError, "(3, 4, 4, 1)"),
    (dict(initial_images=np.full((2,) + SHAPE, 2.0, np.float32), strength=0.5), ValueError, "[2, 2]"),
])
def test_bad_edit_arguments_are_one_line(model, kwargs, error, fragment):
    with pytest.raises(error) as info:
        model.generate(2, sampler="ddim", steps=4, **kwargs)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_ancestral_edit_has_the_law_of_the_affine_gaussian_chain_and_the_exact_posterior():
    """SDEdit with ancestral steps and the oracle: every step is affine plus Gaussian noise.

    Starting from x_τ ~ N(√ᾱ_τ x, 1 − ᾱ_τ), the output's mean and variance
    follow by propagation through the steps. The exact reverse process would
    give the data posterior averaged over x_τ: with a = √ᾱ_τ, σ² = 1 − ᾱ_τ and
    v = a²s² + σ², mean μ + a²s²(x − μ)/v and variance s²σ²(v + a²s²)/v².
    """
    schedule = keras_ddpm.NoiseSchedule("linear", timesteps=1000)
    model = keras_ddpm.DDPM(gaussian_oracle(schedule, SHAPE, MEAN, STD), schedule=schedule,
                            ema_decay=None)
    n, strength = 4096, 0.3
    x = np.linspace(-0.5, 0.8, 16, dtype="float32").reshape(SHAPE)  # one edited image
    out = model.generate(n, sampler="ddpm", steps=1000, seed=0, clip=False, verbose=0,
                         initial_images=np.broadcast_to(x, (n,) + SHAPE), strength=strength)
    ac = schedule.alphas_cumprod.astype(np.float64)
    sequence = samplers.timestep_sequence(schedule, 1000, "trailing").numpy()
    first = 1000 - int(round(strength * 1000))
    a = ac[sequence[first]]
    mean, var = np.sqrt(a) * x.astype(np.float64), np.full(SHAPE, 1 - a)
    for k in range(first, 1000):  # x_prev = c_x0·x̂_0(x_t) + c_xt·x_t + √β̃·z, x̂_0 affine in x_t
        t, prev = sequence[k], sequence[k + 1]
        a_t, a_prev = ac[t], (ac[prev] if prev >= 0 else 1.0)
        beta = 1 - a_t / a_prev
        v = a_t * STD**2 + 1 - a_t
        gain = np.sqrt(a_t) * STD**2 / v  # x̂_0 = gain·x_t + offset
        offset = MEAN - gain * np.sqrt(a_t) * MEAN
        c_x0 = np.sqrt(a_prev) * beta / (1 - a_t)
        c_xt = np.sqrt(1 - beta) * (1 - a_prev) / (1 - a_t)
        slope = c_x0 * gain + c_xt
        mean, var = slope * mean + c_x0 * offset, slope**2 * var + beta * (1 - a_prev) / (1 - a_t)
    empirical_mean, empirical_var = out.mean(0).astype(np.float64), out.var(0).astype(np.float64)
    assert np.all(np.abs(empirical_mean - mean) < 5 * np.sqrt(var / n))
    assert np.all(np.abs(empirical_var - var) < 5 * var * np.sqrt(2 / n))
    # The full chain has the exact reverse process's mean (to 1e-9) and nearly its variance:
    # β̃ is the variance given x_0, a little below the data's (measured 2.5 % low at T = 1000,
    # 5.4 % at T = 200).
    v = a * STD**2 + 1 - a
    exact_mean = MEAN + a * STD**2 * (x - MEAN) / v
    exact_var = STD**2 * (1 - a) * (v + a * STD**2) / v**2
    np.testing.assert_allclose(mean, exact_mean, atol=1e-6)
    np.testing.assert_allclose(var, exact_var, rtol=0.04)


def test_sdedit_takes_the_shape_of_the_images_when_the_network_declares_none():
    """A fully convolutional network (input (None, None, 1)): the images give the shape."""
    import keras

    x_t, t = keras.Input(shape=(None, None, 1)), keras.Input(shape=(), dtype="int32")
    h = keras.layers.Conv2D(4, 3, padding="same")(x_t)
    h = h + keras.layers.Reshape((1, 1, 4))(keras.layers.Embedding(20, 4)(t))
    network = keras.Model([x_t, t], keras.layers.Conv2D(1, 3, padding="same")(h))
    model = keras_ddpm.DDPM(network, schedule=keras_ddpm.NoiseSchedule("linear", 20), seed=0)
    images = np.random.default_rng(0).uniform(-1, 1, (3, 8, 8, 1)).astype("float32")
    edited = model.generate(3, initial_images=images, strength=0.5, sampler="ddpm", seed=1, verbose=0)
    assert edited.shape == images.shape and np.abs(edited - images).max() > 0.01
    with pytest.raises(ValueError, match="does not declare its input shape"):
        model.generate(3)
