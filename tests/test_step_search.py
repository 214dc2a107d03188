"""`DDPM.optimize_steps` (issue 38): the searched steps against exact answers, saved with the model."""

import itertools

import numpy as np
import pytest

import keras_ddpm
from keras_ddpm import NoiseSchedule
from keras_ddpm.samplers import step_search
from networks import conv_network
from oracles import exact_ode_solution
from oracles import gaussian_oracle_model

pytestmark = pytest.mark.backends

MEAN, STD = 0.2, 0.5


def test_the_dynamic_program_finds_the_cheapest_path_of_each_length():
    rng = np.random.default_rng(0)
    nodes = 7
    costs = np.where(np.triu(np.ones((nodes, nodes)), 1) > 0, rng.uniform(0, 1, (nodes, nodes)), np.inf)
    for steps in range(1, nodes):
        path, cost = step_search.cheapest_path(costs, steps)
        # Every path 0 < … < 6 of `steps` jumps, by brute force.
        best = min(
            sum(costs[a, b] for a, b in zip((0, *inner), (*inner, nodes - 1)))
            for inner in itertools.combinations(range(1, nodes - 1), steps - 1)
        )
        assert path[0] == 0 and path[-1] == nodes - 1 and len(path) == steps + 1
        assert np.all(np.diff(path) > 0)
        np.testing.assert_allclose(cost, best)
        np.testing.assert_allclose(sum(costs[a, b] for a, b in zip(path, path[1:])), best)


def test_the_jump_prices_are_the_rms_errors_of_one_ddim_step():
    """The expanded, matrix-product prices equal the direct mean over every image and pixel."""
    rng = np.random.default_rng(2)
    schedule = NoiseSchedule("linear", timesteps=100)
    grid = [99, 80, 61, 40, 22, 9, 3]
    size, images, pixels = len(grid), 5, 12
    x0 = rng.uniform(-1, 1, (size, images, pixels))
    epsilon = rng.standard_normal((size, images, pixels))
    states = rng.standard_normal((size + 1, images, pixels))
    alpha_bar = np.append(schedule.alphas_cumprod[grid], 1.0)
    costs = step_search.jump_costs(schedule, grid, states, x0, epsilon)
    for i, j in itertools.product(range(size + 1), repeat=2):
        if i >= j or i == size:
            assert costs[i, j] == np.inf
            continue
        step = np.sqrt(alpha_bar[j]) * x0[i] + np.sqrt(1 - alpha_bar[j]) * epsilon[i]
        np.testing.assert_allclose(costs[i, j], np.sqrt(np.mean((step - states[j]) ** 2)), rtol=1e-9)
    # A state reached exactly costs 0 (no negative rounding under the square root).
    states[3] = np.sqrt(alpha_bar[3]) * x0[1] + np.sqrt(1 - alpha_bar[3]) * epsilon[1]
    assert step_search.jump_costs(schedule, grid, states, x0, epsilon)[1, 3] < 1e-6


@pytest.fixture(scope="module")
def oracle():
    schedule = NoiseSchedule("linear", timesteps=1000)
    model = gaussian_oracle_model(schedule, (4, 4, 1), MEAN, STD)
    z = np.random.default_rng(1).standard_normal((256, 4, 4, 1))
    # x_T on the exact probability-flow ODE path of z, whose end is MEAN + STD·z.
    x_start = exact_ode_solution(schedule, MEAN, STD, z, 999).astype("float32")
    return model, x_start, MEAN + STD * z


def _error(model, x_start, exact, **kwargs):
    images = model.generate(len(x_start), initial_noise=x_start, clip=False, verbose=0, **kwargs)
    return np.abs(images - exact).max()


def test_optimized_steps_beat_every_fixed_spacing_on_the_exact_ode(oracle):
    model, x_start, exact = oracle
    fixed_10 = _error(model, x_start, exact, sampler="ipndm", steps=10, timestep_spacing="karras")
    dpm_2m_20 = _error(model, x_start, exact, sampler="dpm_solver", steps=20)
    dpm_3m_5 = _error(model, x_start, exact, sampler="dpm_solver", steps=5, order=3)
    indices = model.optimize_steps(num_steps=10, num_samples=128)
    assert len(indices) == 10 and indices[0] == 999 and np.all(np.diff(indices) < 0)
    assert model.schedule.optimized_timesteps == indices
    optimized_10 = _error(model, x_start, exact, sampler="ipndm", steps="optimized")
    # Measured: 0.011 against 0.026 ("karras") and 0.024 (DPM-Solver++(2M), 20 steps).
    assert optimized_10 <= 0.6 * fixed_10 and optimized_10 <= 0.6 * dpm_2m_20
    model.optimize_steps(num_steps=5, num_samples=128)
    optimized_5 = _error(model, x_start, exact, sampler="ipndm", steps="optimized")
    # Measured: 0.063 against DPM-Solver++(3M)'s 0.46 at 5 steps.
    assert optimized_5 <= 0.5 * dpm_3m_5
    # The same steps by name, with any sampler.
    np.testing.assert_array_equal(
        model.generate(4, sampler="ddim", steps=5, timestep_spacing="optimized", seed=0, verbose=0),
        model.generate(4, sampler="ddim", steps="optimized", seed=0, verbose=0),
    )


def test_optimized_steps_are_saved_with_the_model(tmp_path):
    schedule = NoiseSchedule("linear", timesteps=20)  # conv_network's timesteps
    model = keras_ddpm.DDPM(conv_network(), schedule=schedule, seed=0)
    indices = model.optimize_steps(num_steps=4, num_samples=16, grid_size=10)
    assert schedule.optimized_timesteps is None  # the model's own copy changed
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras_ddpm.load_model(path)
    assert loaded.schedule.optimized_timesteps == indices
    np.testing.assert_array_equal(
        loaded.generate(3, sampler="ipndm", steps="optimized", seed=2, verbose=0),
        model.generate(3, sampler="ipndm", steps="optimized", seed=2, verbose=0),
    )


def test_optimized_steps_errors_name_the_value():
    schedule = NoiseSchedule("linear", timesteps=50)
    model = gaussian_oracle_model(schedule, (4, 4, 1), MEAN, STD)
    with pytest.raises(ValueError, match=r"optimize_steps\(\)` found, and this model has none"):
        model.generate(2, steps="optimized", verbose=0)
    with pytest.raises(ValueError, match=r"\[1, 20\].*num_steps=21"):
        model.optimize_steps(num_steps=21, num_samples=4, grid_size=20)
    model.optimize_steps(num_steps=4, num_samples=8, grid_size=20)
    with pytest.raises(ValueError, match=r"optimized steps are 4; received steps=6"):
        model.generate(2, steps=6, timestep_spacing="optimized", verbose=0)
    with pytest.raises(ValueError, match=r"steps='fast'"):
        model.generate(2, steps="fast", verbose=0)
    with pytest.raises(ValueError, match=r"from 49 .*optimized_timesteps=\[30, 10\]"):
        NoiseSchedule("linear", timesteps=50, optimized_timesteps=[30, 10])
