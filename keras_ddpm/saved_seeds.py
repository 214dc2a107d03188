"""The random state a `DDPM` saves beside its weights, so that a loaded model or a restored
backup draws what the original would have drawn next.

Two kinds: the training-noise `SeedGenerator`'s state (t and ε of every step), and the states of
the network's own `SeedGenerator`s (its dropout layers'), which Keras' `Layer.save_own_variables`
leaves out. Files saved before the second was kept lack it, and load as before.
"""

import numpy as np

# The keys under which `DDPM.save_own_variables` keeps them.
NOISE_STATE_KEY = "noise_seed_state"
NETWORK_SEEDS_KEY = "network_seed_states"  # one row a SeedGenerator, in layer order


def network_seed_states(network):
    """The state variables of `network`'s `keras.random.SeedGenerator`s, in layer order.

    These are its dropout layers' seeds: Keras' `Layer.variables` lists them beside the
    weights, and a layer's `save_own_variables` leaves them out.
    """
    weights = {id(weight) for weight in network.weights}
    return [variable for variable in network.variables if id(variable) not in weights]


def save(model, store):
    """Writes `model`'s noise state and its network's seed states into `store`."""
    store[NOISE_STATE_KEY] = model.seed_generator.state.numpy()
    seeds = network_seed_states(model.network)
    if seeds:
        store[NETWORK_SEEDS_KEY] = np.stack([seed.numpy() for seed in seeds])


def load(model, store):
    """Restores what `save` wrote (what a file holds of it); returns the rest of `store`.

    A network rebuilt with another dropout rate (fine-tuning) has other seeds, and keeps its own.
    """
    keys = list(store.keys())
    if NOISE_STATE_KEY in keys:
        model.seed_generator.state.assign(store[NOISE_STATE_KEY])
    if NETWORK_SEEDS_KEY in keys:
        saved = np.asarray(store[NETWORK_SEEDS_KEY])
        seeds = network_seed_states(model.network)
        if len(saved) == len(seeds):
            for seed, state in zip(seeds, saved):
                seed.assign(state.astype(seed.dtype))
    return {key: store[key] for key in keys if key not in (NOISE_STATE_KEY, NETWORK_SEEDS_KEY)}
