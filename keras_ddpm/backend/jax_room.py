"""The JAX backend's room: `jax.jit` loops in float64, and the stateless training step.

Keras' JAX trainer calls `train_step(state, data)` and wants `(logs, state)` back. The model's
step is written once, statefully (`DDPM.stateful_train_step`); here it runs inside a
`keras.StatelessScope` that maps every variable to its value in `state`, its gradient comes
from `jax.value_and_grad`, and the assignments it makes become the new state.
"""

import contextlib
import functools

import jax
import jax.numpy as jnp
import keras
from keras import ops

from keras_ddpm.backend import room_defaults


def _float64_enabled():
    """A context in which JAX traces float64 (`jax.enable_x64`; older releases: experimental)."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64  # JAX before 0.7

    return enable_x64(True)


fused_group_normalization = None  # XLA fuses the keras.ops maths itself
conv2d_3x3 = None


def precise_float():
    """float64 where JAX has it (in `compile_loop`'s loops, or `jax_enable_x64` on), else float32."""
    return "float64" if jax.config.jax_enable_x64 else "float32"


def accelerator_present():
    """Whether JAX's default device is a GPU or a TPU."""
    return jax.default_backend() != "cpu"


def compile_loop(function, signature, jit_compile):
    """`function` under `jax.jit`, traced with float64 enabled, whatever `jit_compile`.

    Its inputs are arrays whose values are traced: a new step count, η or guidance scale
    reuses the compiled loop; a new batch or image shape compiles one more. The schedule's
    coefficients are float64 inside (as on TensorFlow), the images float32.
    """
    del signature, jit_compile
    jitted = jax.jit(function)

    @functools.wraps(function)
    def run(*args):
        with _float64_enabled():
            return jitted(*args)

    return run


# What a failed `checked_in_step` raises out of a call, its message inside (between steps).
STEP_CHECK_ERRORS = (ValueError,)


# The conditions of the step being traced (`checked_in_step`), and the messages of those that
# failed when a step ran (appended on the host by the step's `jax.debug.callback`).
_STEP_CHECKS = []
_FAILED_CHECKS = []


def checked_in_step(value, condition, message):
    """`value`, checked: a false `condition` makes the call raise `ValueError(message)`.

    Outside a jitted step it raises at once. Inside one it cannot: Keras' trainer has handed
    the step the variables' buffers (donated), and a step that raised would take them along
    (the model left without weights). There the step's loss and gradients turn NaN
    (`loss_and_gradients`), so that it is skipped as a non-finite step and changes nothing,
    and a `jax.debug.callback` records `message` on the host; `raise_failed_check` raises it
    from between steps, where the state is whole.
    """
    if not isinstance(condition, jax.core.Tracer):
        if not bool(condition):
            raise ValueError(message)
        return value

    def record(holds):
        if not bool(holds):
            _FAILED_CHECKS.append(message)

    jax.debug.callback(record, condition)
    _STEP_CHECKS.append(condition)
    return value


def raise_failed_check(wait=False):
    """Raises the first failed `checked_in_step` of a step that ran, as a `ValueError`.

    Args:
        wait: wait for the steps dispatched so far to have run their checks first.
    """
    if wait:
        jax.effects_barrier()
    if _FAILED_CHECKS:
        message = _FAILED_CHECKS[0]
        _FAILED_CHECKS.clear()
        raise ValueError(message)


# Under `keras.distribution` (JAX) one program sees the global batch and its global
# gradients, so the replica questions of `tf.distribute` have nothing to do here:
# `room_defaults` answers them (`__getattr__` below), and `make_step_function` and
# `skip_batches` too.


def _state_variables(model, training):
    """The variables Keras' JAX trainer threads through a step, in its order."""
    groups = [model.trainable_variables, model.non_trainable_variables]
    if training:
        groups.append(model.optimizer.variables)
    return groups + [model.metrics_variables]


class _FirstStep(keras.callbacks.Callback):
    """Holds the values a call started from until one of its steps has finished, and raises
    a batch check that failed in a step (`raise_failed_check`) before the next step or at
    the call's end."""

    def __init__(self, values):
        super().__init__()
        self.values = values

    def _step_finished(self, batch, logs=None):
        self.values = None  # Keras keeps the newer state now; the old values may be donated

    def _next_step(self, batch, logs=None):
        raise_failed_check()

    def _call_ended(self, logs=None):
        raise_failed_check(wait=True)

    on_train_batch_end = on_test_batch_end = on_predict_batch_end = _step_finished
    on_train_batch_begin = on_test_batch_begin = _next_step
    on_train_end = on_test_end = _call_ended


@contextlib.contextmanager
def state_kept(model):
    """Leaves the model's variables whole when `fit`, `evaluate` or `predict` raises.

    Keras' JAX trainer takes every variable's value out of the variable while a
    call runs (to hold one copy of the weights) and puts the newest back at its
    end. Where the call raises before a step has finished (a batch that cannot
    be read, inputs the network refuses), or anywhere in `evaluate` or
    `predict` (a `KeyboardInterrupt` included), it did not put them back: the
    variables then read as freshly initialised weights, or fail with "'NoneType'
    object is not callable". Here the newest state is put back in every case:
    the values the call started from until a step finished, Keras' own after.

    Yields:
        The callback to add to the call's callbacks (it sees the first step end).
    """
    groups = _state_variables(model, training=getattr(model, "optimizer", None) is not None)
    variables = list({id(v): v for group in groups for v in group}.values())
    first_step = _FirstStep([v.value for v in variables])
    _FAILED_CHECKS.clear()  # those of an earlier call that stopped before raising them
    try:
        yield first_step
    except BaseException:
        model.jax_state_sync()  # the state of the last finished step, if Keras holds one
        if first_step.values is not None:
            for variable, value in zip(variables, first_step.values):
                if not value.is_deleted():
                    variable.assign(value)
        raise


# `(keras.StatelessScope, its variables)` of the step being traced (steps do not nest).
_STEP_SCOPES = []


def _step_scope():
    """The step's scope and the variables it maps."""
    if not _STEP_SCOPES:
        raise RuntimeError("keras_ddpm's JAX gradient step runs only inside its train_step.")
    return _STEP_SCOPES[-1]


def _stateless(model, state, step, data):
    """Runs the stateful `step(data)` on `state`'s values; returns `(logs, new state)`.

    Every variable reads its value from `state` and every assignment is recorded
    (`keras.StatelessScope`), so the one step of the model serves TensorFlow's trainer and
    JAX's, which wants `(logs, state) = train_step(state, data)`.
    """
    groups = _state_variables(model, training=len(state) == 4)  # evaluation: no optimizer
    mapping = [(v, x) for group, values in zip(groups, state) for v, x in zip(group, values)]
    with keras.StatelessScope(state_mapping=mapping) as scope:
        _STEP_SCOPES.append((scope, [v for v, _ in mapping]))
        _STEP_CHECKS.clear()
        try:
            logs = step(data)
        finally:
            _STEP_SCOPES.pop()
            _STEP_CHECKS.clear()
    return logs, tuple([scope.get_current_value(v) for v in group] for group in groups)


def train_step(model, state, data):
    """Keras' JAX trainer calls `train_step(state, data)`: the model's step, made stateless."""
    return _stateless(model, state, model.stateful_train_step, data)


def test_step(model, state, data):
    """Keras' JAX trainer calls `test_step(state, data)`: the model's step, made stateless."""
    return _stateless(model, state, model.stateful_test_step, data)


def untrained_step(model, state):
    """What a train function returns for a batch passed over untrained: `(metrics so far,
    state)`, the metrics read from `state` (the variables themselves hold none mid-epoch)."""
    with keras.StatelessScope(state_mapping=list(zip(model.metrics_variables, state[-1]))):
        logs = model.get_metrics_result()
    return logs, state


def loss_and_gradients(losses, weights):
    """`(loss, gradients)` by `jax.value_and_grad`, inside the step's `keras.StatelessScope`.

    `losses()` returns `(loss, scaled_loss)` and reads `weights` as traced values; what it
    assigns meanwhile (the noise generator's state) is assigned in the step's scope. A batch
    check of the step that fails (`checked_in_step`) makes both, and so every gradient, NaN.
    """
    outer, variables = _step_scope()
    weight_ids = {id(w) for w in weights}
    others = [v for v in variables if id(v) not in weight_ids]
    changed = []

    def scaled_loss(values):
        mapping = [(v, outer.get_current_value(v)) for v in others] + list(zip(weights, values))
        with keras.StatelessScope(state_mapping=mapping) as inner:
            before = [inner.get_current_value(v) for v in others]
            loss, scaled = losses()
        if _STEP_CHECKS:
            passed = functools.reduce(jnp.logical_and, _STEP_CHECKS)
            factor = jnp.where(passed, 1.0, jnp.nan).astype(loss.dtype)
            loss, scaled = loss * factor, scaled * factor.astype(scaled.dtype)
        changed[:] = [
            v for v, old in zip(others, before) if inner.get_current_value(v) is not old
        ]
        return scaled, (loss, [inner.get_current_value(v) for v in changed])

    values = [outer.get_current_value(w) for w in weights]
    (_, (loss, updates)), gradients = jax.value_and_grad(scaled_loss, has_aux=True)(values)
    for variable, value in zip(changed, updates):
        variable.assign(value)
    return loss, gradients


def apply_gradients(optimizer, gradients, weights):
    """`optimizer.stateless_apply` on the step's values of `weights` and of its own variables,
    assigned back in the step's scope (a `LossScaleOptimizer` skips non-finite steps itself)."""
    scope, _ = _step_scope()
    variables = list(optimizer.variables)
    new_weights, new_variables = optimizer.stateless_apply(
        [scope.get_current_value(v) for v in variables],
        gradients,
        [scope.get_current_value(w) for w in weights],
    )
    for variable, value in zip(list(weights) + variables, list(new_weights) + list(new_variables)):
        variable.assign(value)


def apply_if_finite(optimizer, gradients, weights, finite):
    """`apply_gradients` when `finite`; else weights and optimizer state keep their values
    (both are computed; `where` picks one)."""
    scope, _ = _step_scope()
    touched = list(weights) + list(optimizer.variables)
    before = [scope.get_current_value(v) for v in touched]
    apply_gradients(optimizer, gradients, weights)
    for variable, old in zip(touched, before):
        variable.assign(ops.where(finite, scope.get_current_value(variable), old))


def __getattr__(name):
    """What this room does not define, `room_defaults` answers."""
    return getattr(room_defaults, name)
