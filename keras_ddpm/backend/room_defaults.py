"""What a room offers where its backend needs nothing of its own.

A room's module-level `__getattr__` hands every name it does not define to this module, so
that each answer is written once. The replica names suit a backend whose one program sees the
global batch: under `keras.distribution` on JAX the batch's gradient is the mean already and
every example draws its own noise; Keras' PyTorch trainer runs one replica a process.
"""

import contextlib


def replicas():
    """1: the gradients of the global batch are not summed over replicas afterwards."""
    return 1


def replica_key(key):
    """The step's key as it is: every example of the global batch has its own already."""
    return key


def skip_on_any_replica(applied, gradients):
    """`(applied, gradients)` as they are: the finiteness check sees the global gradients."""
    return applied, gradients


def shape_logs(logs):
    """The logs as they are (nothing averages them across workers)."""
    return logs


def make_step_function(model, kind, make_keras_function, step_function, force):
    """Keras' own `{kind}_function` (on JAX, its trainer jits the stateless step)."""
    del step_function
    make_keras_function(force=force)
    return getattr(model, f"{kind}_function")


def traced_once(function):
    """`function` itself: its ops join the trace (or the eager run) of whatever calls it."""
    return function


def skip_batches(model, iterator):
    """Reads one call's batches from `iterator` without training on them."""
    for _ in range(model.steps_per_execution):
        next(iterator)  # StopIteration at the input's end reaches fit, as Keras expects


def untrained_step(model):
    """What a train function returns for a batch passed over untrained: the metrics so far."""
    return model.get_metrics_result()


@contextlib.contextmanager
def state_kept(model):
    """Nothing to do: the variables keep their values while `fit` and the others run."""
    del model
    yield None
