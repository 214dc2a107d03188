"""The TensorFlow backend's room: `tf.function` loops, float64 coefficients, own gradients."""

import numpy as np
import tensorflow as tf
from keras import ops

from keras_ddpm.backend import graph_lifetime
from keras_ddpm.backend import room_defaults
from keras_ddpm import rng
from keras_ddpm.backend.step_functions import make_step_function  # noqa: F401 - offered
from keras_ddpm.backend.tensorflow_gradients import conv2d_3x3  # noqa: F401 - offered kernel
from keras_ddpm.backend.tensorflow_gradients import group_normalization

fused_group_normalization = group_normalization


def precise_float():
    """The dtype of the schedule's coefficient arithmetic: float64."""
    return "float64"


def accelerator_present():
    """Whether TensorFlow sees a GPU or a TPU."""
    return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def compile_loop(function, signature, jit_compile):
    """`function` as a `tf.function` of a fixed signature, XLA if asked, no AutoGraph.

    The samplers build their while loops themselves, so AutoGraph's source conversion
    changes nothing in the graph but takes most of the tracing time (figures: the README's
    "Measurements behind the design"). The loop's graph is freed with the loop
    (`graph_lifetime.GraphReleasingFunction`).

    Args:
        function: the loop's Python function.
        signature: its inputs' `(shape, dtype)` pairs, `None` for an unknown dimension.
        jit_compile: compile with XLA.
    """
    specs = [tf.TensorSpec(shape, dtype) for shape, dtype in signature]
    trace = tf.function(
        input_signature=specs, jit_compile=bool(jit_compile), reduce_retracing=True,
        autograph=False,
    )
    graph_lifetime.quiet_cached_loop_retracing()  # one loop per sampler choice, by design
    return graph_lifetime.GraphReleasingFunction(trace(function))


def traced_once(function):
    """`function` (of tensors only) as a `tf.function` traced once a process, not once a graph.

    A graph that calls it holds one call op where the function's own ops would be, so each
    new training step or reverse loop skips their tracing (for the Threefry cipher of
    `keras_ddpm.rng`, a few hundred integer ops a draw: about a quarter of a tiny U-Net's
    training-step trace). Grappler inlines the call, so the graph runs as before. Each input
    shape (`None` where the caller's graph does not know a dimension) is its own trace, as
    `keras.ops` needs every input's rank.
    """
    if function not in _TRACED_ONCE:
        _TRACED_ONCE[function] = tf.function(function, autograph=False)
    return _TRACED_ONCE[function]


# Python function -> its process-wide `tf.function` (`traced_once`).
_TRACED_ONCE = {}


# What a failed `checked_in_step` raises out of a traced step (its message inside).
STEP_CHECK_ERRORS = (tf.errors.InvalidArgumentError,)


def checked_in_step(value, condition, message):
    """`value`, once the boolean scalar `condition` holds: else the step stops with `message`.

    An in-graph assertion; `inputs.batch_error` turns its error into one line.
    """
    check = tf.debugging.Assert(condition, [message])
    with tf.control_dependencies([check]):
        return tf.identity(value)


def replicas():
    """The number of replicas the gradients are summed over (a `tf.distribute` strategy's)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def replica_key(key):
    """`key` folded with the global replica id under a strategy with several replicas.

    The model's `SeedGenerator` state is mirrored, the same on every replica; the id
    (`replica_id_in_sync_group`) counts the replicas of every worker.
    """
    replica = tf.distribute.get_replica_context()
    if replica is None or replica.num_replicas_in_sync == 1:
        return key
    return rng.fold_in(key, replica.replica_id_in_sync_group)


def skip_on_any_replica(applied, gradients):
    """`(applied, gradients)` such that a step skipped on one replica is skipped on all.

    The loss-scale optimizer checks each replica's own gradients before they are summed.
    With one replica they come back unchanged; otherwise the replicas sum their skips, and
    where any replica skipped, every replica's gradients are poisoned with NaN so that the
    loss-scale optimizer skips them (and halves the scale) too.
    """
    replica = tf.distribute.get_replica_context()
    if replica is None or replica.num_replicas_in_sync == 1:
        return applied, gradients
    overflows = replica.all_reduce("sum", ops.cast(ops.logical_not(applied), "float32"))
    applied = ops.equal(overflows, 0.0)
    poison = ops.where(applied, 0.0, np.nan)
    return applied, [g if g is None else g + ops.cast(poison, g.dtype) for g in gradients]


def shape_logs(logs):
    """The step's logs shaped for Keras' cross-worker averaging.

    With several workers Keras averages the logs with `strategy.reduce("MEAN", value,
    axis=0)`, which needs an axis (tensorflow/tensorflow#72388): scalars become `[1]`.
    """
    strategy = tf.distribute.get_strategy()
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and (
        strategy.num_replicas_in_sync > len(strategy.extended.worker_devices)
    ):
        return {name: ops.reshape(value, (1,)) for name, value in logs.items()}
    return logs


def loss_and_gradients(losses, weights):
    """`(loss, gradients)`: `losses()` returns `(loss, scaled_loss)`; the gradients are the
    scaled loss's with respect to `weights`, by `tf.GradientTape`."""
    with tf.GradientTape() as tape:
        loss, scaled_loss = losses()
    return loss, tape.gradient(scaled_loss, weights)


def train_step(model, data):
    """Keras' TensorFlow trainer calls `train_step(data)`: the model's step as it is."""
    return model.stateful_train_step(data)


def test_step(model, data):
    """Keras' TensorFlow trainer calls `test_step(data)`: the model's step as it is."""
    return model.stateful_test_step(data)


def apply_gradients(optimizer, gradients, weights):
    """`optimizer.apply_gradients` (a `LossScaleOptimizer` skips non-finite steps itself)."""
    optimizer.apply_gradients(zip(gradients, weights))


def apply_if_finite(optimizer, gradients, weights, finite):
    """`optimizer.apply_gradients` when `finite`, nothing otherwise (float32 training).

    Keras' Adam runs as one fused kernel a weight (`adam_step`). With several replicas the
    condition is evaluated in cross-replica context, as Keras' `LossScaleOptimizer` does: a
    branch that all-reduces gradients cannot sit in a replica-context `cond`.
    """
    from keras_ddpm.backend import adam_step

    def apply(gradients):
        adam_step.apply_gradients(optimizer, gradients, weights)

    if tf.__internal__.distribute.strategy_supports_no_merge_call():
        tf.cond(finite, lambda: apply(gradients), lambda: None)
        return

    # Each replica's gradients reach the merge as arguments (a closure would hold only one
    # replica's), and go back to their replica to be applied.
    def cross_replica(distribution, finite, gradients):
        finite = distribution.experimental_local_results(finite)[0]

        def apply_everywhere():
            distribution.extended.call_for_each_replica(apply, args=(gradients,))

        tf.cond(finite, apply_everywhere, lambda: None)

    tf.distribute.get_replica_context().merge_call(cross_replica, args=(finite, list(gradients)))


def __getattr__(name):
    """What this room does not define, `room_defaults` answers."""
    return getattr(room_defaults, name)
