"""Every private TensorFlow and Keras name keras_ddpm uses, each behind a check that fails loudly.

A few features need more than the public API offers: freeing traced graphs, one traced
function per training step, a fast repeated weights file, a fused Adam update, atomic backups
and resuming mid-epoch with `keras.callbacks.BackupAndRestore`. The private names they read
are fetched here and nowhere else. Each accessor checks that the name still exists with the
shape used (a dict, a callable with the expected parameters, an attribute set by Keras) and,
where it does not:

- raises `InternalChanged` when going on would be wrong (a backup that is no longer atomic,
  a resume that starts at the wrong epoch);
- or, where a public path gives the same results more slowly or with more memory, warns once
  (`InternalChangedWarning`) naming the TensorFlow and Keras versions and what runs instead.

Never silently. `tests/test_backend_internals.py` removes each name in turn and shows the
check trips. The public replacements used elsewhere, with what they cost, are listed in the
README's section on Keras and TensorFlow versions.
"""

import inspect
import sys
import warnings


class InternalChanged(RuntimeError):
    """A private TensorFlow or Keras name that keras_ddpm needs is missing or changed."""


class InternalChangedWarning(RuntimeWarning):
    """A private name is missing or changed; a slower public path runs instead."""


_WARNED = set()


def versions():
    """`"TensorFlow X and Keras Y"`, the versions a message about an internal names."""
    import keras
    import tensorflow as tf

    return f"TensorFlow {tf.__version__} and Keras {keras.__version__}"


def changed(what, fallback=None):
    """Reports that the internal `what` is missing or changed.

    Args:
        what: the private name and what keras_ddpm uses it for.
        fallback: what runs instead; `None` when nothing can, and an
            `InternalChanged` error is raised.

    Returns:
        `None` (after warning once per `what`).
    """
    message = f"keras_ddpm relies on {what}, which {versions()} lacks or has changed"
    if fallback is None:
        raise InternalChanged(
            f"{message}. Install the versions setup.py allows, or report this at keras_ddpm's "
            "issue tracker."
        )
    if what not in _WARNED:
        _WARNED.add(what)
        warnings.warn(f"{message}; {fallback} instead.", InternalChangedWarning, stacklevel=3)
    return None


def _takes(function, *names):
    """Whether `function` is callable with parameters called `names`."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return all(name in parameters for name in names)


# ----------------------------------------------------------------------------
# TensorFlow
# ----------------------------------------------------------------------------
def gradient_registry():
    """TensorFlow's name → gradient-function table that `tf.custom_gradient` adds to, or `None`."""
    try:
        from tensorflow.python.framework import ops

        table = ops._gradient_registry._registry
    except (ImportError, AttributeError):
        table = None
    if not isinstance(table, dict):
        return changed(
            "tensorflow.python.framework.ops._gradient_registry._registry (to free traced "
            "graphs)",
            "every traced graph stays in memory until the process ends",
        )
    return table


def onednn_enabled():
    """Whether this TensorFlow runs its oneDNN kernels (`False`, with a warning, if it cannot say)."""
    try:
        from tensorflow.python.util import _pywrap_util_port

        enabled = _pywrap_util_port.IsMklEnabled
    except (ImportError, AttributeError):
        return bool(changed(
            "tensorflow.python.util._pywrap_util_port.IsMklEnabled (to pick the 3x3 kernel "
            "gradient)",
            "TensorFlow's own convolution gradient runs",
        ))
    return bool(enabled())


# ----------------------------------------------------------------------------
# Keras' trainer and saving
# ----------------------------------------------------------------------------
def reduce_per_replica():
    """Keras' reduction of a strategy's per-replica step outputs, or `None`."""
    try:
        from keras.src.backend.tensorflow.trainer import reduce_per_replica as reduce
    except ImportError:
        reduce = None
    if reduce is None or not _takes(reduce, "values", "strategy", "reduction"):
        return changed(
            "keras.src.backend.tensorflow.trainer.reduce_per_replica (one traced function per "
            "training step)",
            "Keras' nested step functions run (more memory at the step's peak)",
        )
    return reduce


def saving_lib():
    """Keras' saving module with the HDF5 store and the object walk, or `None`."""
    try:
        from keras.src.saving import saving_lib as module
    except ImportError:
        module = None
    walk = getattr(module, "_save_state", None)
    if (
        module is None
        or not hasattr(module, "H5IOStore")
        or not _takes(walk, "saveable", "weights_store", "assets_store", "inner_path",
                      "visited_saveables")
        or not hasattr(sys, "_getframe")
    ):
        return changed(
            "keras.src.saving.saving_lib._save_state and H5IOStore (to write a model's weights "
            "file without walking the model each time)",
            "save_weights walks the model at every backup",
        )
    return module


def record_weights_walk(module, model, filepath):
    """Writes `model`'s weights as `save_weights` does and records who wrote each group.

    Returns:
        `[(object, group path, group metadata), ...]` in writing order, or `None`
        where something other than Keras' walk wrote a group.
    """
    records = []
    walk_code = module._save_state.__code__

    class RecordingStore(module.H5IOStore):
        def make(self, path, metadata=None):
            # Keras' walk calls make(...) and then saveable.save_own_variables(store).
            caller = sys._getframe(1)
            saveable = caller.f_locals.get("saveable") if caller.f_code is walk_code else None
            records.append((saveable, path, metadata))
            return super().make(path, metadata=metadata)

    store = RecordingStore(filepath, mode="w")
    try:
        module._save_state(
            model, weights_store=store, assets_store=None, inner_path="",
            visited_saveables=set(),
        )
    finally:
        store.close()
    if any(saveable is None for saveable, _, _ in records):
        return None
    return records


def replay_weights_walk(module, records, filepath):
    """Writes the weights file again from `record_weights_walk`'s records, without the walk."""
    store = module.H5IOStore(filepath, mode="w")
    try:
        for saveable, path, metadata in records:
            saveable.save_own_variables(store.make(path, metadata=metadata))
    finally:
        store.close()


def flatten_layers(model):
    """Every layer inside `model`, itself included (Keras' own walk)."""
    walk = getattr(model, "_flatten_layers", None)
    if callable(walk):
        return list(walk())
    changed(
        "keras.Layer._flatten_layers (to list every nested layer)",
        "only the layers reachable through the public `layers` attribute are looked at",
    )
    found, stack = [], [model]
    while stack:
        layer = stack.pop()
        found.append(layer)
        stack.extend(getattr(layer, "layers", ()))
    return found


# ----------------------------------------------------------------------------
# BackupAndRestore and the model's starting epoch
# ----------------------------------------------------------------------------
_BACKUP_STATE = ("_current_epoch", "_last_batch_seen")


def check_backup_and_restore(callback):
    """Raises `InternalChanged` unless `callback` (a `BackupAndRestore`) has what `RunBackup` sets.

    `RunBackup` overrides `_save_model`, which Keras' `BackupAndRestore` calls whenever it
    saves; if Keras renamed it, the override would never run and backups would silently lose
    their atomic writes.
    """
    import keras

    if "_save_model" not in vars(keras.callbacks.BackupAndRestore):
        changed("keras.callbacks.BackupAndRestore._save_model (atomic backups)")
    missing = [name for name in _BACKUP_STATE if not hasattr(callback, name)]
    if missing:
        changed(f"keras.callbacks.BackupAndRestore's {missing} (resuming mid-epoch)")


def set_backup_position(callback, epoch, last_batch=None):
    """Sets where Keras' `BackupAndRestore` stands: the epoch, and the last batch seen.

    `callback` passed `check_backup_and_restore` when it was made (`RunBackup.__init__`).
    """
    callback._current_epoch = epoch
    if last_batch is not None:
        callback._last_batch_seen = last_batch


def backup_position(callback):
    """`(epoch, last batch seen)` of Keras' `BackupAndRestore` (checked as above)."""
    return callback._current_epoch, callback._last_batch_seen


def set_initial_epoch(model, epoch):
    """Makes the next `model.fit` start at `epoch`, as Keras' `BackupAndRestore` does."""
    if not hasattr(model, "_initial_epoch"):
        changed("keras.Model._initial_epoch (the epoch a restored fit starts at)")
    model._initial_epoch = epoch


# ----------------------------------------------------------------------------
# The Adam optimizer's slots
# ----------------------------------------------------------------------------
_ADAM_INTERNALS = ("_clip_gradients", "_get_variable_index", "_momentums", "_velocities")


def adam_slots_available(optimizer):
    """Whether a built Keras `Adam` exposes its moment slots and gradient clipping as expected."""
    missing = [name for name in _ADAM_INTERNALS if not hasattr(optimizer, name)]
    if missing:
        changed(
            f"keras.optimizers.Adam's {missing} (the fused Adam update)",
            "optimizer.apply_gradients runs",
        )
        return False
    return True


def clip_gradients(optimizer, gradients):
    """`gradients` clipped by the optimizer's `clipnorm`/`clipvalue`/`global_clipnorm`."""
    return optimizer._clip_gradients(gradients)


def adam_moments(optimizer, weight):
    """`(m, v)`: Adam's first and second moment variables of `weight`."""
    index = optimizer._get_variable_index(weight)
    return optimizer._momentums[index], optimizer._velocities[index]


# ----------------------------------------------------------------------------
# Keras applications
# ----------------------------------------------------------------------------
def inception_v3_weights_url():
    """Where Keras downloads its InceptionV3 weights from (for an error message)."""
    try:
        from keras.src.applications import inception_v3

        return inception_v3.WEIGHTS_PATH_NO_TOP
    except (ImportError, AttributeError):
        changed(
            "keras.src.applications.inception_v3.WEIGHTS_PATH_NO_TOP (to name the weights' "
            "address)",
            "the message names the Keras applications storage",
        )
        return "the Keras applications storage"
