"""Every array that decides how training goes on, for tests that compare runs bitwise."""

import numpy as np

from keras_ddpm.saved_seeds import network_seed_states


def training_state(model, rng=True):
    """Weights, EMA weights, optimizer variables and (with `rng`) the training-noise RNG state
    and the network's dropout seeds.

    The RNGs advance on every step, skipped or not; `rng=False` leaves them out.
    """
    return (
        [w.numpy() for w in model.network.weights]
        + [w.numpy() for w in model.ema_weights]
        + [v.numpy() for v in model.optimizer.variables]
        + ([model.seed_generator.state.numpy()] if rng else [])
        + ([seed.numpy() for seed in network_seed_states(model.network)] if rng else [])
    )


def assert_same_state(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
