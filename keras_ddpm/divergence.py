"""Non-finite training steps: skipped in float32 as in float16, counted, and stopped when they persist.

A step whose loss or gradients hold a NaN or an infinity changes nothing: the
weights, the EMA weights and the optimizer state (its moments and its step
count) stay as they were. In float32 the backend room's `apply_if_finite` does that
with a conditional update; under mixed precision the `LossScaleOptimizer` already
does it (and lowers its loss scale). `DivergenceGuard`, which `DDPM.fit` adds,
stops training with one `TrainingDiverged` error after `max_skipped_steps`
skipped steps in a row, naming the step, the learning rate and the first
weight whose gradient was not finite, and as soon as the epoch's running mean
loss, though finite, exceeds `DIVERGED_LOSS` (100: a model that predicts zero
scores about 1).
"""

import keras
import numpy as np
from keras import ops

# A finite mean training loss above this is divergence. Predicting zero scores E[ε²] = 1 for ε,
# E[v²] = 1 for v and E[x0²] ≤ 1 for x0 prediction; min-SNR weights are at most max(1, γ).
# Diverging runs reach 1e7 and more (a learning rate of 1000: 4.9e11, 1.7e7, 1.1e7 by epoch).
DIVERGED_LOSS = 100.0


class TrainingDiverged(RuntimeError):
    """Training stopped: too many consecutive steps had non-finite losses or gradients."""


def gradient_flags(gradients):
    """A boolean vector, one flag a gradient: it holds no NaN or infinity (`None` counts as finite).

    Computed once a step and shared by `all_finite` and `first_non_finite`: two small ops
    a gradient instead of the five of checking twice (the training graph of the benchmark
    U-Net had 658 `IsFinite` ops; see `benchmarks/benchmark_memory.py`).
    """
    flags = [
        ops.all(ops.isfinite(g)) if g is not None else ops.convert_to_tensor(True)
        for g in gradients
    ]
    return ops.stack(flags) if flags else ops.ones((0,), "bool")


def all_finite(loss, flags):
    """A boolean scalar: the loss is finite and so is every gradient (`gradient_flags`)."""
    return ops.logical_and(ops.all(ops.isfinite(loss)), ops.all(flags))


def first_non_finite(flags):
    """The index of the first gradient holding a NaN or an infinity, or -1 (an int32 scalar).

    Args:
        flags: the boolean vector of `gradient_flags`.
    """
    if flags.shape[0] == 0:
        return ops.convert_to_tensor(-1, "int32")
    bad = ops.logical_not(flags)
    return ops.where(ops.any(bad), ops.cast(ops.argmax(ops.cast(bad, "int32")), "int32"), -1)


def first_non_finite_weight(weights):
    """The first floating-point weight holding a NaN or an infinity, or `None` (checked eagerly)."""
    for weight in weights:
        if keras.backend.is_float_dtype(weight.dtype) and not np.all(
            np.isfinite(ops.convert_to_numpy(weight))
        ):
            return weight
    return None


class DivergenceState:
    """Scalars the training step writes and `DivergenceGuard` reads: consecutive skipped steps,
    skipped steps in all, the step and weight of the last skip. Held outside Keras' tracking
    (they are not part of a saved model)."""

    def __init__(self):
        kwargs = dict(trainable=False, aggregation="only_first_replica")
        variable = keras.Variable
        self.consecutive = variable(0, dtype="int32", name="consecutive_skipped_steps", **kwargs)
        self.total = variable(0, dtype="int32", name="skipped_steps", **kwargs)
        self.bad_weight = variable(-1, dtype="int32", name="first_non_finite_weight", **kwargs)

    @property
    def variables(self):
        """Its variables (the JAX trainer threads them through a step with the metrics')."""
        return [self.consecutive, self.total, self.bad_weight]

    def record(self, finite, flags):
        """Counts the step; returns the number of skipped steps so far (for the logs).

        Args:
            finite: whether the step was applied (a boolean scalar).
            flags: the step's `gradient_flags`.
        """
        skipped = ops.cast(ops.logical_not(finite), "int32")
        self.consecutive.assign(ops.where(finite, ops.zeros((), "int32"), self.consecutive + 1))
        self.total.assign_add(skipped)
        self.bad_weight.assign(ops.where(finite, self.bad_weight.value, first_non_finite(flags)))
        return self.total.value

    def reset(self):
        self.consecutive.assign(0)
        self.total.assign(0)
        self.bad_weight.assign(-1)


class DivergenceGuard(keras.callbacks.Callback):
    """Stops `fit` when `max_skipped_steps` steps in a row were skipped as non-finite.

    `DDPM.fit` adds it by itself; the error names the step, the learning rate
    and the first weight whose gradient was not finite, and suggests a lower
    learning rate.
    """

    def __init__(self, max_skipped_steps):
        super().__init__()
        self.max_skipped_steps = max_skipped_steps

    def on_train_begin(self, logs=None):
        self.model.divergence_state.reset()

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        loss = None if loss is None else float(np.asarray(loss).reshape(-1)[0])
        if loss is not None and loss > DIVERGED_LOSS:  # finite but far above any sane loss
            raise TrainingDiverged(
                f"Training diverged: the mean loss of this epoch is {loss:.3g} after "
                f"{batch + 1} batches, above {DIVERGED_LOSS:g} (predicting zero scores about 1), "
                f"with learning rate {_learning_rate(self.model.optimizer):.3g}; lower the "
                "learning rate (or set a clip norm)."
            )
        state = self.model.divergence_state
        consecutive = int(ops.convert_to_numpy(state.consecutive))
        if consecutive < self.max_skipped_steps:
            return
        step = int(ops.convert_to_numpy(self.model.optimizer.iterations))
        index = int(ops.convert_to_numpy(state.bad_weight))
        weights = self.model.network.trainable_weights
        weight = weights[index].path if 0 <= index < len(weights) else "the loss itself"
        learning_rate = _learning_rate(self.model.optimizer)
        raise TrainingDiverged(
            f"Training diverged: the last {consecutive} steps (up to optimizer step {step}) had "
            f"non-finite losses or gradients and were skipped, first at {weight}, with learning "
            f"rate {learning_rate:.3g}. Weights, EMA and optimizer state are those of the last "
            "finite step; lower the learning rate (or set a clip norm) and resume."
        )


def _learning_rate(optimizer):
    """The learning rate now (Keras evaluates a schedule at the current step)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return float(ops.convert_to_numpy(inner.learning_rate))
