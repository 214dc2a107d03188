"""Each private TensorFlow/Keras name behind `keras_ddpm.backend.internals` fails loudly when gone.

Every test removes (or reshapes) one internal as a future release might, then checks that the
package raises `InternalChanged` or warns once with `InternalChangedWarning` naming the
versions, and that the public fallback still gives the right result.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_ddpm
from keras_ddpm.backend import adam_step
from keras_ddpm.backend import graph_lifetime
from keras_ddpm.backend import step_functions
from keras_ddpm.backend import internals
from keras_ddpm.runs.backup import RunBackup
from keras_ddpm.runs.weights_file import WeightsFileWriter

VERSIONS = rf"TensorFlow {tf.__version__} and Keras {keras.__version__}"


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(internals, "_WARNED", set())


def test_today_every_internal_is_found():
    assert isinstance(internals.gradient_registry(), dict)
    assert internals.reduce_per_replica() is not None
    assert internals.saving_lib() is not None
    assert internals.inception_v3_weights_url().startswith("https://")
    internals.check_backup_and_restore(RunBackup("unused"))


def test_without_the_gradient_registry_traces_are_kept_with_a_warning(monkeypatch):
    from tensorflow.python.framework import ops

    monkeypatch.delattr(ops._gradient_registry, "_registry")
    with pytest.warns(internals.InternalChangedWarning, match=VERSIONS + ".*stays in memory"):
        with graph_lifetime.release_traced_graphs():
            value = tf.function(lambda x: x * 2.0)(tf.constant(3.0))
    assert float(value) == 6.0
    assert internals.gradient_registry() is None  # once warned, quiet


def test_without_the_onednn_probe_the_plain_gradient_is_used_with_a_warning(monkeypatch):
    from tensorflow.python.util import _pywrap_util_port

    monkeypatch.delattr(_pywrap_util_port, "IsMklEnabled")
    with pytest.warns(internals.InternalChangedWarning, match="IsMklEnabled"):
        assert internals.onednn_enabled() is False


def test_a_changed_reduce_per_replica_falls_back_to_keras_step_functions(monkeypatch):
    from keras.src.backend.tensorflow import trainer

    monkeypatch.setattr(trainer, "reduce_per_replica", lambda outputs: outputs)
    model = keras_ddpm.DDPM(_tiny_network(), schedule=keras_ddpm.NoiseSchedule(timesteps=10),
                            ema_decay=None)
    model.compile(optimizer="adam")

    def keras_function(iterator):
        return "keras"

    with pytest.warns(internals.InternalChangedWarning, match="reduce_per_replica"):
        function = step_functions.one_function(model, model.train_step, keras_function)
    assert function(None) == "keras"


def test_a_changed_saving_walk_writes_with_save_weights(monkeypatch, tmp_path):
    from keras.src.saving import saving_lib

    original = saving_lib._save_state

    def _save_state(trackable, weights_store, assets_store, inner_path, visited_saveables):
        return original(trackable, weights_store, assets_store, inner_path, visited_saveables)

    monkeypatch.setattr(saving_lib, "_save_state", _save_state)  # its parameter renamed
    network = _tiny_network()
    with pytest.warns(internals.InternalChangedWarning, match="_save_state"):
        WeightsFileWriter().write(network, tmp_path / "a.weights.h5")
    copy = _tiny_network()
    copy.load_weights(tmp_path / "a.weights.h5")
    for mine, theirs in zip(network.weights, copy.weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


def test_without_flatten_layers_the_public_layers_are_walked_with_a_warning():
    class Layer:
        def __init__(self, *layers):
            self.layers = list(layers)

    inner = Layer()
    outer = Layer(Layer(inner))
    with pytest.warns(internals.InternalChangedWarning, match="_flatten_layers"):
        found = internals.flatten_layers(outer)
    assert inner in found and outer in found and len(found) == 3


def test_a_backup_and_restore_without_save_model_is_an_error(monkeypatch):
    monkeypatch.delattr(keras.callbacks.BackupAndRestore, "_save_model")
    with pytest.raises(internals.InternalChanged, match="_save_model.*" + VERSIONS):
        RunBackup("unused")


def test_a_backup_and_restore_without_its_position_is_an_error(monkeypatch):
    original = keras.callbacks.BackupAndRestore.__init__

    def without_position(self, *args, **kwargs):
        original(self, *args, **kwargs)
        del self._last_batch_seen

    monkeypatch.setattr(keras.callbacks.BackupAndRestore, "__init__", without_position)
    with pytest.raises(internals.InternalChanged, match="_last_batch_seen"):
        RunBackup("unused")


def test_a_model_without_initial_epoch_cannot_be_resumed():
    with pytest.raises(internals.InternalChanged, match="_initial_epoch"):
        internals.set_initial_epoch(object(), 3)


def test_an_adam_without_its_slots_updates_unfused_with_a_warning(monkeypatch):
    weights = [keras.Variable(np.ones((3,), "float32")), keras.Variable(np.zeros((2,), "float32"))]
    gradients = [tf.constant([0.5, -1.0, 2.0]), tf.constant([1.0, 1.0])]
    fused, plain = keras.optimizers.Adam(0.1), keras.optimizers.Adam(0.1)
    fused.build(weights)
    reference = [keras.Variable(w.numpy()) for w in weights]
    plain.build(reference)
    plain.apply_gradients(zip(gradients, reference))
    # As if a Keras release had renamed Adam's first moments.
    monkeypatch.setattr(internals, "_ADAM_INTERNALS", ("_clip_gradients", "_first_moments"))
    with pytest.warns(internals.InternalChangedWarning, match="_first_moments"):
        adam_step.apply_gradients(fused, gradients, weights)
    for mine, expected in zip(weights, reference):
        np.testing.assert_allclose(mine.numpy(), expected.numpy(), rtol=1e-6)
        assert not np.array_equal(mine.numpy(), np.ones_like(mine.numpy()))


def test_without_the_inception_address_the_message_names_the_storage(monkeypatch):
    from keras.src.applications import inception_v3

    monkeypatch.delattr(inception_v3, "WEIGHTS_PATH_NO_TOP")
    with pytest.warns(internals.InternalChangedWarning, match="WEIGHTS_PATH_NO_TOP"):
        assert internals.inception_v3_weights_url() == "the Keras applications storage"


def _tiny_network():
    x_t = keras.Input(shape=(4, 4, 1))
    t = keras.Input(shape=(), dtype="int32")
    return keras.Model([x_t, t], keras.layers.Conv2D(1, 1)(x_t))
