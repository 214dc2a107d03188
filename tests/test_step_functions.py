"""fit and evaluate trace each step as one function (keras_ddpm.backend.step_functions).

The results are Keras' own."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_ddpm
from keras_ddpm.backend.graph_lifetime import GraphReleasingFunction
from keras_ddpm.backend.step_functions import OneFunctionStep
from networks import conv_network
from networks import tiny_unet


def _model(**compile_kwargs):
    keras.utils.set_random_seed(0)
    model = keras_ddpm.DDPM(
        conv_network(), keras_ddpm.NoiseSchedule("linear", timesteps=20), ema_decay=0.9, seed=3
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2), **compile_kwargs)
    return model


def _dataset(batches=3, batch_size=4):
    images = np.random.default_rng(1).uniform(-1, 1, (batches * batch_size, 8, 8, 1))
    return tf.data.Dataset.from_tensor_slices(images.astype("float32")).batch(batch_size)


def _use_keras_functions(model):
    """Puts Keras' own nested functions in place of the model's."""
    keras.Model.make_train_function(model, force=True)
    keras.Model.make_test_function(model, force=True)
    assert not isinstance(model.train_function, OneFunctionStep)


def test_fit_and_evaluate_use_one_function_by_default():
    model = _model()
    model.fit(_dataset(), epochs=1, verbose=0)
    model.evaluate(_dataset(), verbose=0)
    assert isinstance(model.train_function, OneFunctionStep)
    assert isinstance(model.test_function, OneFunctionStep)
    # One trace serves every batch of every epoch (all batches have the same shape).
    model.fit(_dataset(), epochs=2, verbose=0)
    assert model.train_function.step_on_iterator.experimental_get_tracing_count() == 1


def test_training_matches_keras_nested_functions():
    ours, theirs = _model(), _model()
    for a, b in zip(ours.weights, theirs.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    initial = [w.numpy() for w in ours.network.trainable_weights]
    _use_keras_functions(theirs)
    history_ours = ours.fit(_dataset(), epochs=2, verbose=0).history
    history_theirs = theirs.fit(_dataset(), epochs=2, verbose=0).history
    # Every batch of both epochs was trained (the input's end closes each epoch).
    assert int(ours.optimizer.iterations) == int(theirs.optimizer.iterations) == 6
    np.testing.assert_allclose(history_ours["loss"], history_theirs["loss"], rtol=1e-5)
    moved = max(float(np.max(np.abs(w.numpy() - w0)))
                for w, w0 in zip(ours.network.trainable_weights, initial))
    assert moved > 1e-3  # the comparison below can see a difference
    for a, b in zip(ours.weights, theirs.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)
    np.testing.assert_array_equal(ours.seed_generator.state.numpy(),
                                  theirs.seed_generator.state.numpy())
    # Evaluation draws the same noise from the same RNG state, so the losses agree.
    loss_ours = ours.evaluate(_dataset(), verbose=0)
    loss_theirs = theirs.evaluate(_dataset(), verbose=0)
    np.testing.assert_allclose(loss_ours, loss_theirs, rtol=1e-5)


@pytest.mark.parametrize(
    "compile_kwargs", [{"jit_compile": True}, {"steps_per_execution": 2}, {"run_eagerly": True}]
)
def test_keras_own_function_where_one_function_does_not_apply(compile_kwargs):
    model = _model(**compile_kwargs)
    model.make_train_function()
    model.make_test_function()
    assert not isinstance(model.train_function, OneFunctionStep)
    assert not isinstance(model.test_function, OneFunctionStep)
    # Keras' function, whose traces are freed with it (keras_ddpm.backend.graph_lifetime).
    assert isinstance(model.train_function, GraphReleasingFunction)
    assert isinstance(model.test_function, GraphReleasingFunction)


def test_steps_per_execution_still_trains_every_batch():
    model = _model(steps_per_execution=2)
    model.fit(_dataset(batches=5), epochs=1, verbose=0)
    assert int(model.optimizer.iterations) == 5


def test_recompiling_rebuilds_the_function():
    model = _model()
    model.fit(_dataset(), epochs=1, verbose=0)
    first = model.train_function
    model.compile(optimizer=keras.optimizers.Adam(1e-3), steps_per_execution=3)
    model.fit(_dataset(batches=4), epochs=1, verbose=0)
    assert model.train_function is not first
    assert not isinstance(model.train_function, OneFunctionStep)


def test_other_iterators_go_to_keras_function():
    model = _model()
    model.make_train_function()
    calls = []
    model.train_function.fallback = lambda iterator: calls.append(iterator) or {"loss": 0.0}
    python_iterator = iter([np.zeros((4, 8, 8, 1), "float32")])
    assert model.train_function(python_iterator) == {"loss": 0.0}
    assert calls == [python_iterator]
    assert int(model.optimizer.iterations) == 0


def test_the_heap_is_handed_back_once_per_trace(monkeypatch):
    import keras_ddpm.backend.step_functions as step_functions

    releases = []
    monkeypatch.setattr(step_functions, "release_free_heap", lambda: releases.append(1))
    model = _model()
    model.fit(_dataset(), epochs=2, verbose=0)
    assert len(releases) == 1  # one trace: after the first step only
    # Input of another element spec (uint8 images) is a second trace and release.
    images = np.zeros((6, 8, 8, 1), "uint8")
    model.fit(tf.data.Dataset.from_tensor_slices(images).batch(3), epochs=2, verbose=0)
    traces = model.train_function.step_on_iterator.experimental_get_tracing_count()
    assert len(releases) == traces == 2


def test_release_free_heap_hands_back_freed_heap_and_says_false_without_glibc(monkeypatch):
    import ctypes
    import platform

    from keras_ddpm.backend.step_functions import release_free_heap

    if platform.libc_ver()[0] == "glibc":  # CI's Linux: freed blocks below the mmap threshold
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc.restype = ctypes.c_void_p
        libc.free.argtypes = [ctypes.c_void_p]
        blocks = [libc.malloc(64 * 1024) for _ in range(256)]  # 16 MB on the heap
        for block in blocks:
            libc.free(block)
        assert release_free_heap() is True
    monkeypatch.setattr(ctypes, "CDLL", lambda name: (_ for _ in ()).throw(OSError(name)))
    assert release_free_heap() is False


@pytest.mark.slow  # 15-18 s; the same claim on a small network:
# test_training_matches_keras_nested_functions
def test_unet_fit_matches_keras_nested_functions():
    def fitted(keras_functions):
        keras.utils.set_random_seed(0)
        network = tiny_unet()
        network.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
        if keras_functions:
            keras.Model.make_train_function(network, force=True)
        rng = np.random.default_rng(0)
        inputs = [rng.normal(size=(8, 8, 8, 1)).astype("float32"), np.arange(8, dtype="int32")]
        history = network.fit(inputs, np.ones((8, 8, 8, 1), "float32"), batch_size=4,
                              epochs=2, shuffle=False, verbose=0).history
        return network, history["loss"]

    ours, loss_ours = fitted(False)
    theirs, loss_theirs = fitted(True)
    assert isinstance(ours.train_function, OneFunctionStep)
    assert not isinstance(theirs.train_function, OneFunctionStep)
    assert int(ours.optimizer.iterations) == int(theirs.optimizer.iterations) == 4
    np.testing.assert_allclose(loss_ours, loss_theirs, rtol=1e-5)
    for a, b in zip(ours.weights, theirs.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)
