"""What depends on one backend or machine, and the one place that picks the backend's room.

Every backend has a room, a module offering the same names: `compile_loop` (how a reverse
loop is compiled), `precise_float` (the dtype of the schedule's coefficient arithmetic) and
the backend's own faster kernels, `None` where it has none (`fused_group_normalization`,
`conv2d_3x3`). The maths (`keras.ops`) asks `room()` and never which backend runs.

Rooms also hold the training step (`train_step`, `loss_and_gradients`, `apply_if_finite`, ...),
what several replicas need (`replica_key`, `skip_on_any_replica`, `shape_logs`) and the step
functions of `fit` (`make_step_function`, asked by the `StepFunctions` mixin here). Where a
backend needs nothing of its own, its room takes the answer from `room_defaults`.

The other modules here are TensorFlow's: `internals` (each private TensorFlow/Keras name
behind a check), `adam_step` (the fused Adam), `tensorflow_gradients` (hand-written
gradients), `step_functions` and `graph_lifetime` (one traced function a step, traces freed
with their function); `hardware` reads the CPU's flags and says whether XLA pays.
"""

import functools
import importlib
import importlib.util
import inspect

import keras

# Keras backend name -> its room in this package (the backends keras_ddpm runs on).
ROOMS = {"tensorflow": "tensorflow_room", "jax": "jax_room", "torch": "torch_room"}
# Backend name -> its room module, once imported.
_LOADED = {}


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
    if backend not in _LOADED:  # a dict read: `torch.compile` traces it without a graph break
        _LOADED[backend] = importlib.import_module(f"keras_ddpm.backend.{ROOMS[backend]}")
    return _LOADED[backend]


@functools.cache
def import_tensorflow():
    """Imports TensorFlow for a side job (`tf.data`, TensorBoard's writer) and returns it.

    On the TensorFlow backend, TensorFlow as it is. On JAX or PyTorch, its GPUs
    are first set to take memory as they need it (`set_memory_growth`): by
    default TensorFlow reserves almost all of a GPU's memory the first time it
    runs an op, even a `tf.data` op on the CPU, and the backend that trains
    then runs out of memory. Where TensorFlow's devices are already set up
    (the user's own TensorFlow code ran first), their settings stand.
    """
    import tensorflow as tf

    if name() != "tensorflow":
        for gpu in tf.config.list_physical_devices("GPU"):
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError:  # its devices are set up already: the user's settings stand
                pass
    return tf


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


def installed(package):
    """Whether `package` (an import name, e.g. `"tensorflow"`) can be imported here."""
    return importlib.util.find_spec(package) is not None


def require_installed(package, feature, then=None):
    """A `ValueError` unless `package` can be imported: `feature` needs it on every backend.

    Args:
        package: the module's import name, e.g. `"tensorflow"`.
        feature: what the user asked for, e.g. `"SampleGrid(tensorboard_dir=...)"`.
        then: what to do once it is installed (a sentence, e.g. `export.ON_TENSORFLOW`), or
            `None`: the advice is to install it or leave the feature out.
    """
    if not installed(package):
        advice = " or leave it out." if then is None else f"; then {then[:1].lower()}{then[1:]}"
        raise ValueError(
            f"{feature} needs the package {package!r}, which is not installed here "
            f"(KERAS_BACKEND={name()!r}). Install it (pip install {package}){advice}"
        )


class StepFunctions:
    """`keras.Model` mixin: the step functions of `fit`, `evaluate` and `predict` from the room.

    Each function Keras builds goes through the room's `make_step_function` once: TensorFlow's
    reads a batch and runs the step in one traced function and frees its traces with it
    (`keras_ddpm.backend.step_functions`); JAX's keeps Keras' own. Put it before
    `keras.Model` among the bases.

    Example:

    ```python
    class Network(StepFunctions, keras.Model):
        ...
    ```
    """

    def make_train_function(self, force=False):
        return room().make_step_function(
            self, "train", super().make_train_function, self.train_step, force
        )

    def make_test_function(self, force=False):
        return room().make_step_function(
            self, "test", super().make_test_function, self.test_step, force
        )

    def make_predict_function(self, force=False):
        return room().make_step_function(
            self, "predict", super().make_predict_function, None, force
        )


def keras_arguments(method, model, *args, **kwargs):
    """`keras.Model.<method>`'s arguments as a dict by name (a `TypeError` as Keras' for bad
    ones), however they were passed."""
    signature = inspect.signature(getattr(keras.Model, method))
    arguments = dict(signature.bind(model, *args, **kwargs).arguments)
    arguments.pop(next(iter(signature.parameters)))  # self
    for name, parameter in signature.parameters.items():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:  # a later Keras' **kwargs
            arguments.update(arguments.pop(name, {}))
    return arguments


class StateKept:
    """`keras.Model` mixin: `fit`, `evaluate` and `predict` leave the variables whole if they
    raise (the room's `state_kept`: on JAX, Keras' trainer would leave them emptied).

    Put it before `keras.Model` among the bases.
    """

    def fit(self, *args, **kwargs):
        return self._state_kept("fit", args, kwargs)

    def evaluate(self, *args, **kwargs):
        return self._state_kept("evaluate", args, kwargs)

    def predict(self, *args, **kwargs):
        return self._state_kept("predict", args, kwargs)

    def _state_kept(self, method, args, kwargs):
        call = getattr(super(), method)
        arguments = keras_arguments(method, self, *args, **kwargs)
        callbacks = arguments.get("callbacks")
        if isinstance(callbacks, keras.callbacks.CallbackList):
            return call(**arguments)  # `fit`'s own evaluation: its `fit` keeps the state
        with room().state_kept(self) as first_step:
            if first_step is not None:
                arguments["callbacks"] = [*(callbacks or []), first_step]
            return call(**arguments)
