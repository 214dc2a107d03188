"""Tests for keras_ddpm.convolution: 3x3 convolutions with a matmul kernel gradient.

The reference is TensorFlow's own convolution and its gradients; ours must agree to rounding.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_ddpm import convolution
from keras_ddpm.backend import tensorflow_gradients


def _gradients(fn, x, kernel, upstream):
    x, kernel = tf.constant(x), tf.constant(kernel)
    with tf.GradientTape() as tape:
        tape.watch([x, kernel])
        y = fn(x, kernel)
        objective = tf.reduce_sum(y * upstream)
    return [y.numpy()] + [g.numpy() for g in tape.gradient(objective, [x, kernel])]


@pytest.mark.parametrize("shape, out_channels", [((2, 8, 8, 4), 6), ((3, 5, 7, 2), 3)])
def test_values_and_gradients_match_tensorflow_convolution(shape, out_channels):
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape).astype("float32")
    kernel = rng.normal(size=(3, 3, shape[-1], out_channels)).astype("float32")
    upstream = rng.normal(size=shape[:-1] + (out_channels,)).astype("float32")
    ours = _gradients(tensorflow_gradients.conv2d_3x3, x, kernel, upstream)
    theirs = _gradients(lambda x, k: tf.nn.conv2d(x, k, 1, "SAME"), x, kernel, upstream)
    for name, a, b in zip(("y", "dx", "dkernel"), ours, theirs):
        assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max(), name


def _layer_pair(filters=32, **kwargs):
    ours = convolution.Conv2D(filters, 3, padding="same", **kwargs)
    theirs = keras.layers.Conv2D(filters, 3, padding="same", **kwargs)
    return ours, theirs


@pytest.fixture(autouse=True)
def cpu_without_avx512(monkeypatch):
    """The matmul gradient is for CPUs without AVX-512; these tests pretend to be one."""
    monkeypatch.setattr(convolution, "_avx512_present", lambda: False)


def test_cpus_with_avx512_keep_tensorflow_gradient(monkeypatch):
    monkeypatch.setattr(convolution, "onednn_enabled", lambda: True)
    layer = convolution.Conv2D(32, 3, padding="same")
    x = tf.zeros((2, 8, 8, 32))
    assert layer._uses_matmul_gradient(x)
    monkeypatch.undo()  # the fixture's stand-in too: the real check reads the flags
    monkeypatch.setattr(convolution, "onednn_enabled", lambda: True)
    monkeypatch.setattr(convolution.hardware, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    assert not layer._uses_matmul_gradient(x)
    monkeypatch.setattr(convolution.hardware, "cpu_flags", lambda: frozenset({"avx2"}))
    assert layer._uses_matmul_gradient(x)


def test_layer_matches_keras_conv2d_and_uses_the_matmul_gradient(monkeypatch):
    monkeypatch.setattr(convolution, "onednn_enabled", lambda: True)
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=(2, 8, 8, 32)).astype("float32"))
    ours, theirs = _layer_pair()
    ours.build(x.shape)
    theirs.build(x.shape)
    theirs.set_weights([rng.normal(size=w.shape) * 0.1 for w in theirs.get_weights()])
    ours.set_weights(theirs.get_weights())
    assert ours._uses_matmul_gradient(x)

    results = []
    for layer in (ours, theirs):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            objective = tf.reduce_sum(y * y)
        grads = tape.gradient(objective, [x] + list(layer.trainable_weights))
        results.append([y.numpy()] + [g.numpy() for g in grads])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, atol=2e-5 * np.abs(b).max())
    clone = convolution.Conv2D.from_config(ours.get_config())
    assert clone.get_config() == ours.get_config()


@pytest.mark.parametrize(
    "shape, kwargs",
    [
        ((2, 4, 4, 32), {}),  # too few positions
        ((2, 8, 8, 16), {}),  # too few input channels
        ((2, 8, 8, 32), {"strides": 2}),
        ((2, 8, 8, 32), {"dilation_rate": 2}),
        ((2, 8, 8, 32), {"padding": "valid"}),
    ],
)
def test_other_convolutions_keep_tensorflow_gradient(monkeypatch, shape, kwargs):
    monkeypatch.setattr(convolution, "onednn_enabled", lambda: True)
    options = {"padding": "same", **kwargs}
    layer = convolution.Conv2D(32, 3, **options)
    assert not layer._uses_matmul_gradient(tf.zeros(shape))


def test_narrow_outputs_and_1x1_kernels_keep_tensorflow_gradient(monkeypatch):
    monkeypatch.setattr(convolution, "onednn_enabled", lambda: True)
    x = tf.zeros((2, 8, 8, 32))
    assert not convolution.Conv2D(16, 3, padding="same")._uses_matmul_gradient(x)
    assert not convolution.Conv2D(32, 1)._uses_matmul_gradient(x)


def test_accelerators_and_eigen_kernels_keep_tensorflow_gradient(monkeypatch):
    layer = convolution.Conv2D(32, 3, padding="same")
    x = tf.zeros((2, 8, 8, 32))
    monkeypatch.setattr(convolution, "onednn_enabled", lambda: True)
    assert layer._uses_matmul_gradient(x)
    monkeypatch.setattr(convolution, "_accelerator_present", lambda: True)
    assert not layer._uses_matmul_gradient(x)
    monkeypatch.setattr(convolution, "_accelerator_present", lambda: False)
    monkeypatch.setattr(convolution, "onednn_enabled", lambda: False)
    assert not layer._uses_matmul_gradient(x)


def test_mixed_precision_gradient_is_in_the_compute_dtype(monkeypatch):
    monkeypatch.setattr(convolution, "onednn_enabled", lambda: True)
    layer = convolution.Conv2D(32, 3, padding="same", dtype="mixed_float16")
    x = tf.constant(np.random.default_rng(2).normal(size=(2, 8, 8, 32)).astype("float16"))
    with tf.GradientTape() as tape:
        y = layer(x)
        objective = tf.reduce_sum(tf.cast(y, "float32") ** 2)
    kernel_grad, bias_grad = tape.gradient(objective, layer.trainable_weights)
    assert y.dtype == "float16" and kernel_grad.dtype == "float32"

    reference = keras.layers.Conv2D(32, 3, padding="same")
    reference.build(x.shape)
    reference.set_weights(layer.get_weights())
    x32 = tf.cast(x, "float32")
    with tf.GradientTape() as tape:
        objective = tf.reduce_sum(reference(x32) ** 2)
    expected = tape.gradient(objective, reference.trainable_weights)[0].numpy()
    np.testing.assert_allclose(kernel_grad, expected, atol=1e-2 * np.abs(expected).max())
