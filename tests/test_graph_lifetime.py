"""Graphs this package traces are freed with their function (keras_ddpm.backend.graph_lifetime)."""

import gc
import weakref

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_ddpm
from keras_ddpm.backend import graph_lifetime
from keras_ddpm.backend import internals
from keras_ddpm.backend import tensorflow_room
from keras_ddpm.backend.step_functions import OneFunctionStep
from networks import tiny_unet


def _unet_model():
    schedule = keras_ddpm.NoiseSchedule("linear", timesteps=20)
    network = tiny_unet()
    model = keras_ddpm.DDPM(network, schedule=schedule, ema_decay=0.9, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


def _record_traced_graphs(monkeypatch):
    """Weak references to every graph in which the U-Net's group normalisation is traced."""
    graphs = []
    original = tensorflow_room.fused_group_normalization

    def recording(*args, **kwargs):
        graph = tf.compat.v1.get_default_graph()
        if not any(ref() is graph for ref in graphs):
            graphs.append(weakref.ref(graph))
        return original(*args, **kwargs)

    monkeypatch.setattr(tensorflow_room, "fused_group_normalization", recording)
    return graphs


def _alive(graphs):
    gc.collect()
    return sum(ref() is not None for ref in graphs)


def _custom_gradient_square():
    """x² with a deliberately wrong gradient, 3x: a result of 3x shows the custom one ran."""
    @tf.custom_gradient
    def square(x):
        return x * x, lambda dy: 3.0 * x * dy

    return square


def test_release_drops_the_custom_gradients_its_block_traced():
    square = _custom_gradient_square()
    graphs = []

    def body(x):
        graphs.append(weakref.ref(tf.compat.v1.get_default_graph()))
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.reduce_sum(square(x))
        return tape.gradient(y, x)

    function = tf.function(body)
    with graph_lifetime.release_traced_graphs():
        gradient = function(tf.constant([1.0, -3.0]))
    # The tape used the custom gradient while tracing: 3x, not the derivative 2x.
    np.testing.assert_allclose(gradient.numpy(), [3.0, -9.0])
    # The traced function still runs after its registry entries are gone.
    np.testing.assert_allclose(function(tf.constant([0.5, 2.0])).numpy(), [1.5, 6.0])
    assert _alive(graphs) == 1
    del function
    assert _alive(graphs) == 0


def test_release_keeps_entries_registered_before_the_block():
    square = _custom_gradient_square()
    outside = tf.function(lambda x: square(x))
    outside.get_concrete_function(tf.TensorSpec([2]))  # registers an entry, kept
    table = internals.gradient_registry()
    before = dict(table)
    with graph_lifetime.release_traced_graphs():
        tf.function(lambda x: square(x) + 1.0)(tf.constant([1.0, 2.0]))
    assert dict(table) == before


@pytest.mark.slow  # 9 s: two training graphs traced
def test_a_recompiled_model_frees_its_earlier_training_graph(monkeypatch):
    graphs = _record_traced_graphs(monkeypatch)
    model = _unet_model()
    images = np.random.default_rng(0).uniform(-1, 1, (8, 8, 8, 1)).astype("float32")
    model.fit(images, batch_size=4, epochs=1, verbose=0)
    assert _alive(graphs) == 1  # the training step's trace, held by model.train_function
    first_loss = float(model.evaluate(images, batch_size=4, verbose=0))
    assert _alive(graphs) == 2  # and the evaluation step's
    model.compile(optimizer=keras.optimizers.Adam(1e-3))  # new step functions
    history = model.fit(images, batch_size=4, epochs=3, verbose=0).history
    # Only the new training step's trace is left: the old ones went with their functions.
    assert len(graphs) == 3
    assert _alive(graphs) == 1 and graphs[2]() is not None
    # The released graphs trained as before: the loss is finite and fell from the first fit's.
    assert np.all(np.isfinite(history["loss"]))
    assert history["loss"][-1] < first_loss


def test_a_deleted_model_frees_its_training_and_sampling_graphs(monkeypatch):
    graphs = _record_traced_graphs(monkeypatch)
    model = _unet_model()
    images = np.random.default_rng(0).uniform(-1, 1, (8, 8, 8, 1)).astype("float32")
    model.fit(images, batch_size=4, epochs=1, verbose=0)
    samples = model.generate(2, sampler="dpm_solver", steps=3, seed=0, verbose=0)
    again = model.generate(2, sampler="dpm_solver", steps=3, seed=0, verbose=0)
    np.testing.assert_array_equal(samples, again)  # the loop runs on after its release
    assert samples.shape == (2, 8, 8, 1) and np.all(np.isfinite(samples))
    model.generate(2, sampler="ddim", steps=3, seed=0, verbose=0)
    assert _alive(graphs) == 3  # training step, two sampling loops
    network = weakref.ref(model.network)
    del model
    assert _alive(graphs) == 0
    assert network() is None  # nor do the graphs keep the network's weights


@pytest.mark.slow  # 13 s: an export of every endpoint
def test_an_export_keeps_no_traced_graph(monkeypatch, tmp_path):
    graphs = _record_traced_graphs(monkeypatch)
    model = _unet_model()
    model.export(str(tmp_path / "savedmodel"), verbose=False)
    # The endpoints (one reverse loop per sampler, the denoise call) were traced for the
    # file and went with the saved module: the model caches no loop of the export.
    assert len(graphs) >= 4
    assert _alive(graphs) == 0
    assert model.reverse_process().loops == {}
    samples = model.generate(2, sampler="ddim", steps=3, seed=0, verbose=0)
    assert samples.shape == (2, 8, 8, 1) and _alive(graphs) == 1  # generate's own loop


@pytest.mark.slow  # 13 s: the U-Net's fit, evaluate and predict functions traced
def test_the_unets_own_keras_functions_free_their_traces(monkeypatch):
    graphs = _record_traced_graphs(monkeypatch)
    network = _unet_model().network
    inputs = [np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype("float32"),
              np.arange(4, dtype="int32")]
    first = network.predict(inputs, verbose=0)
    network.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    history = network.fit(inputs, np.ones((4, 8, 8, 1), "float32"), epochs=3, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]  # Keras' fit on the U-Net still trains
    assert isinstance(network.train_function, OneFunctionStep)  # as DDPM's (StepFunctions)
    # The predict function's trace and the train function's (two: the step's first trace
    # creates Adam's slots, a second runs without creating them).
    assert _alive(graphs) == len(graphs) == 3
    network.make_predict_function(force=True)
    network.make_train_function(force=True)
    assert _alive(graphs) == 0  # went with the functions they were traced for
    again = network.predict(inputs, verbose=0)
    assert again.shape == first.shape and not np.allclose(again, first)  # trained since
    assert _alive(graphs) == 1


def test_sampler_settings_do_not_warn_about_retracing(caplog):
    """Each sampler choice is one cached loop by design: no "retracing" warning reaches a user."""
    import logging

    import keras_ddpm
    from networks import conv_network

    model = keras_ddpm.DDPM(conv_network(), schedule=keras_ddpm.NoiseSchedule("linear", 20), seed=0)
    settings = [
        {"sampler": "ddpm"}, {"sampler": "ddim"}, {"sampler": "ddim", "eta": 0.5},
        {"sampler": "dpm_solver"}, {"sampler": "dpm_solver", "order": 3},
        {"sampler": "ddim", "timestep_spacing": "trailing"}, {"sampler": "ddpm", "clip": False},
    ]
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        for options in settings:
            model.generate(2, steps=3, verbose=0, jit_compile=False, **options)
    # Five loops (η and ddim's default spacing share one): enough for TensorFlow's detector,
    # which warns from the fifth trace of one Python function on.
    assert len(model.reverse_process().loops) == 5
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]
