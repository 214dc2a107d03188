"""What depends on one backend or machine, and the one place that picks the backend's room.

Every backend has a room, a module offering the same names: `compile_loop` (how a reverse
loop is compiled), `precise_float` (the dtype of the schedule's coefficient arithmetic) and
the backend's own faster kernels, `None` where it has none (`fused_group_normalization`,
`conv2d_3x3`). The maths (`keras.ops`) asks `room()` and never which backend runs.

The other modules here are TensorFlow's: `internals` (each private TensorFlow/Keras name
behind a check), `adam_step` (the fused Adam) and `tensorflow_gradients` (hand-written
gradients); `hardware` reads the CPU's flags and says whether XLA pays.
"""

import importlib

import keras

# Keras backend name -> its room in this package (the backends keras_ddpm runs on; PyTorch's
# room comes with its port, issue 37).
ROOMS = {"tensorflow": "tensorflow_room", "jax": "jax_room"}


def name():
    """The Keras backend this process runs (`KERAS_BACKEND`, read once when Keras loads)."""
    return keras.backend.backend()


def room():
    """The running backend's room module (a `ValueError` for a backend keras_ddpm lacks)."""
    backend = name()
    if backend not in ROOMS:
        raise ValueError(
            f"keras_ddpm runs on the Keras backends {sorted(ROOMS)}. Received: "
            f"KERAS_BACKEND={backend!r}; set KERAS_BACKEND to one of them before importing Keras."
        )
    return importlib.import_module(f"keras_ddpm.backend.{ROOMS[backend]}")


def require_tensorflow(feature, instead=None):
    """A `ValueError` unless TensorFlow runs: `feature` is not ported to the other backends yet.

    Args:
        feature: what the user called, e.g. `"DDPM.fit"`.
        instead: what to do, one sentence. Defaults to running it on TensorFlow.
    """
    instead = instead or (
        "Run it with KERAS_BACKEND=tensorflow; a .keras file is the same on every backend."
    )
    if name() != "tensorflow":
        raise ValueError(
            f"{feature} runs on the TensorFlow backend only, so far. Received: "
            f"KERAS_BACKEND={name()!r}. {instead}"
        )
