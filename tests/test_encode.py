"""Inversion (`encode`) and interpolation, checked against the Gaussian oracle's closed forms."""

import numpy as np
import pytest

import keras_ddpm
from keras_ddpm import samplers
from oracles import exact_ode_solution
from oracles import gaussian_oracle_model

MEAN, STD = 0.2, 0.3
SHAPE = (4, 4, 1)


@pytest.fixture(scope="module")
def model():
    schedule = keras_ddpm.NoiseSchedule("linear", timesteps=1000)
    return gaussian_oracle_model(schedule, SHAPE, MEAN, STD)


def data(n, seed=0):
    return np.random.default_rng(seed).normal(MEAN, STD, (n,) + SHAPE).clip(-1, 1).astype("float32")


def inverse_closed_form(schedule, x, steps, spacing):
    """The inverse DDIM steps with the exact ε, composed in float64 (ε evaluated at the input, timestep of the output)."""
    ac = schedule.alphas_cumprod.astype(np.float64)
    sequence = samplers.timestep_sequence(schedule, steps, spacing).numpy()
    y = x.astype(np.float64)
    for k in range(steps - 1, -1, -1):
        s, t = sequence[k + 1], sequence[k]
        a_s, a_t = (ac[s] if s >= 0 else 1.0), ac[t]
        eps = np.sqrt(1 - a_t) * (y - np.sqrt(a_t) * MEAN) / (a_t * STD**2 + 1 - a_t)
        x0 = (y - np.sqrt(1 - a_s) * eps) / np.sqrt(a_s)
        y = np.sqrt(a_t) * x0 + np.sqrt(1 - a_t) * eps
    return y


@pytest.mark.parametrize("spacing", ["trailing", "leading"])
def test_encode_is_the_composed_inverse_steps(model, spacing):
    x = data(8)
    latents = model.encode(x, steps=12, timestep_spacing=spacing, verbose=0)
    assert latents.shape == x.shape and latents.dtype == np.float32
    np.testing.assert_allclose(latents, inverse_closed_form(model.schedule, x, 12, spacing), atol=2e-5)


def test_round_trip_error_falls_at_first_order(model):
    """generate(encode(x)) → x, and encode(x) → the exact ODE solution, with error ∝ 1/steps."""
    x = data(32)
    z = (x.astype(np.float64) - MEAN) / STD  # the path's standardized coordinate, kept by the ODE
    round_trip, to_exact = [], []
    for steps in (10, 20, 40, 80):
        latents = model.encode(x, steps=steps, verbose=0)
        again = model.generate(32, sampler="ddim", steps=steps, initial_noise=latents, clip=False,
                               verbose=0)
        first = samplers.timestep_sequence(model.schedule, steps, "trailing").numpy()[0]
        exact = exact_ode_solution(model.schedule, MEAN, STD, z, first)
        round_trip.append(np.sqrt(np.mean((again - x) ** 2)))
        to_exact.append(np.sqrt(np.mean((latents - exact) ** 2)))
    for errors in (round_trip, to_exact):
        ratios = np.array(errors[:-1]) / np.array(errors[1:])
        # Measured: round trip 0.155, 0.086, 0.045, 0.023 (ratios 1.81, 1.92, 1.95); first order → 2.
        assert np.all(ratios > 1.7) and np.all(ratios < 2.3), errors
    assert round_trip[-1] < 0.03


def test_encode_in_chunks_with_progress_equals_one_batch(model, capsys):
    x = data(6)
    whole = model.encode(x, steps=120, verbose=0)
    chunked = model.encode(x, steps=120, batch_size=4, verbose=1)
    np.testing.assert_array_equal(chunked, whole)
    assert "240/240" in capsys.readouterr().out  # one bar: 2 chunks × 120 steps


def test_interpolation_ends_are_reconstructions_and_frames_are_decoded_slerp(model):
    a, b = data(2, seed=5)
    row = model.interpolate(a, b, num=5, steps=10, verbose=0, clip=False)
    assert row.shape == (5,) + SHAPE
    latents = model.encode(np.stack([a, b]), steps=10, verbose=0)
    frames = keras_ddpm.utils.slerp(latents[:1], latents[1:], np.linspace(0, 1, 5))[:, 0]
    expected = model.generate(5, sampler="ddim", steps=10, initial_noise=frames, clip=False,
                              verbose=0)
    np.testing.assert_allclose(row, expected, atol=1e-6)
    # Both ends come back to the images within the 10-step round-trip error (0.155 RMS measured).
    assert np.sqrt(np.mean((row[0] - a) ** 2)) < 0.2 and np.sqrt(np.mean((row[-1] - b) ** 2)) < 0.2


def test_interpolation_of_batches_and_of_drawn_noise(model):
    a, b = data(3, seed=1), data(3, seed=2)
    rows = model.interpolate(a, b, num=4, steps=6, verbose=0)
    assert rows.shape == (3, 4) + SHAPE
    single = model.interpolate(a[1], b[1], num=4, steps=6, verbose=0)
    np.testing.assert_allclose(rows[1], single, atol=1e-6)
    drawn = model.interpolate(num=4, steps=6, seed=7, verbose=0)
    again = model.interpolate(num=4, steps=6, seed=7, verbose=0)
    np.testing.assert_array_equal(drawn, again)
    noise = np.random.default_rng(3).standard_normal((2,) + SHAPE).astype("float32")
    from_noise = model.interpolate(noise[0], noise[1], num=3, inputs="noise", steps=6, verbose=0)
    ends = model.generate(2, sampler="ddim", steps=6, initial_noise=noise, verbose=0)
    np.testing.assert_allclose(from_noise[[0, -1]], ends, atol=1e-6)


@pytest.mark.parametrize("call, error, fragment", [
    (lambda m: m.encode(data(2), sampler="ddpm"), ValueError, "sampler='ddpm'"),
    (lambda m: m.encode(data(2), sampler="dpm_solver"), ValueError, "['ddim']"),
    (lambda m: m.encode(data(2), eta=0.5), ValueError, "eta=0.5"),
    (lambda m: m.encode(np.zeros((2,) + SHAPE, np.uint8)), TypeError, "uint8"),
    (lambda m: m.encode(np.full((2,) + SHAPE, 3.0, np.float32)), ValueError, "[3, 3]"),
    (lambda m: m.encode(np.zeros((2, 5, 5, 1), np.float32)), ValueError, "(2, 4, 4, 1) (N, H, W, C); received shape (2, 5, 5, 1)"),
    (lambda m: m.encode(np.zeros((0,) + SHAPE, np.float32)), ValueError, "at least one"),
    (lambda m: m.interpolate(data(1)[0]), ValueError, "a only"),
    (lambda m: m.interpolate(data(1)[0], data(2)), ValueError, "(4, 4, 1) and (2, 4, 4, 1)"),
    (lambda m: m.interpolate(num=1), ValueError, "num=1"),
    (lambda m: m.interpolate(data(1)[0], data(1)[0], inputs="latents"), ValueError, "latents"),
    (lambda m: m.interpolate(data(1)[0], data(1)[0], sampler="ddpm"), ValueError, "sampler='ddpm'"),
])
def test_bad_encode_and_interpolate_arguments_are_one_line(model, call, error, fragment):
    with pytest.raises(error) as info:
        call(model)
    assert fragment in str(info.value) and "\n" not in str(info.value), str(info.value)
