"""Tests for group normalisation: the `keras.ops` maths and TensorFlow's hand-written gradient.

Both `keras_ddpm.normalization.group_normalization` and
`keras_ddpm.backend.tensorflow_gradients.group_normalization` are checked. The reference is `keras.layers.GroupNormalization` differentiated by TensorFlow and a float64
NumPy evaluation of the definition; values and all three gradients must agree to rounding.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_ddpm import normalization
from keras_ddpm.backend import tensorflow_gradients

# The maths (any backend) and TensorFlow's closed-form gradient: the same function.
IMPLEMENTATIONS = pytest.mark.parametrize(
    "group_normalization",
    [normalization.group_normalization, tensorflow_gradients.group_normalization],
    ids=["keras_ops", "tensorflow_gradient"],
)


def _float64_reference(x, gamma, beta, groups, epsilon):
    """Group norm of channels-last `x` from the definition, in float64."""
    batch, channels = x.shape[0], x.shape[-1]
    grouped = x.astype("float64").reshape(batch, -1, groups, channels // groups)
    mean = grouped.mean(axis=(1, 3), keepdims=True)
    var = grouped.var(axis=(1, 3), keepdims=True)
    normed = ((grouped - mean) / np.sqrt(var + epsilon)).reshape(x.shape)
    return normed * gamma + beta


def _values_and_gradients(norm_fn, x, gamma, beta, upstream):
    """`norm_fn(x, gamma, beta)` and the gradients of `sum(upstream * output)`."""
    x, gamma, beta = (tf.constant(v) for v in (x, gamma, beta))
    with tf.GradientTape() as tape:
        tape.watch([x, gamma, beta])
        y = norm_fn(x, gamma, beta)
        objective = tf.reduce_sum(y * upstream)
    return [y.numpy()] + [g.numpy() for g in tape.gradient(objective, [x, gamma, beta])]


def _keras_norm(groups, epsilon):
    """`(x, gamma, beta) -> keras.layers.GroupNormalization` with those weights."""

    def norm(x, gamma, beta):
        layer = keras.layers.GroupNormalization(groups=groups, epsilon=epsilon)
        layer.build(x.shape)
        # Use the tensors themselves so the tape sees gamma and beta.
        layer.gamma, layer.beta = gamma, beta
        return layer._apply_normalization(layer._reshape_into_groups(x), x.shape)

    def reshaped(x, gamma, beta):
        return tf.reshape(norm(x, gamma, beta), tf.shape(x))

    return reshaped


@pytest.mark.parametrize(
    "shape, groups",
    [((3, 5, 4, 16), 4), ((2, 6, 6, 32), 32), ((2, 7, 8), 1), ((4, 2, 2, 8), 2)],
)
@IMPLEMENTATIONS
def test_values_and_gradients_match_keras_group_normalization(shape, groups, group_normalization):
    rng = np.random.default_rng(0)
    channels = shape[-1]
    # An offset and a spread per channel make the statistics non-trivial.
    x = (rng.normal(size=shape) * rng.uniform(0.5, 3, channels) + 2.0).astype("float32")
    gamma = rng.normal(1.0, 0.5, channels).astype("float32")
    beta = rng.normal(0.0, 0.5, channels).astype("float32")
    upstream = tf.constant(rng.normal(size=shape).astype("float32"))
    epsilon = 1e-6

    ours = _values_and_gradients(
        lambda x, g, b: group_normalization(x, g, b, groups, epsilon),
        x, gamma, beta, upstream,
    )
    theirs = _values_and_gradients(_keras_norm(groups, epsilon), x, gamma, beta, upstream)

    np.testing.assert_allclose(ours[0], _float64_reference(x, gamma, beta, groups, epsilon),
                               atol=2e-5)
    for name, a, b in zip(("y", "dx", "dgamma", "dbeta"), ours, theirs):
        scale = np.abs(b).max()
        assert np.abs(a - b).max() <= 2e-5 * scale, f"{name}: {np.abs(a - b).max()} vs {scale}"


@IMPLEMENTATIONS
def test_unknown_batch_and_spatial_sizes_give_the_same_values_and_gradients(group_normalization):
    # Traced with only the channel count known: the dynamic-shape path of the function.
    rng = np.random.default_rng(1)
    shape, groups, epsilon = (2, 5, 3, 8), 4, 1e-6
    x = (rng.normal(size=shape) * 2.0 + 1.0).astype("float32")
    gamma = rng.normal(1.0, 0.5, 8).astype("float32")
    beta = rng.normal(0.0, 0.5, 8).astype("float32")
    upstream = tf.constant(rng.normal(size=shape).astype("float32"))
    norm = tf.function(
        lambda x, g, b: group_normalization(x, g, b, groups, epsilon),
        input_signature=[tf.TensorSpec([None, None, None, 8]), tf.TensorSpec([8]),
                         tf.TensorSpec([8])],
    )
    dynamic = _values_and_gradients(norm, x, gamma, beta, upstream)
    static = _values_and_gradients(
        lambda x, g, b: group_normalization(x, g, b, groups, epsilon),
        x, gamma, beta, upstream,
    )
    for a, b in zip(dynamic, static):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(dynamic[0], _float64_reference(x, gamma, beta, groups, epsilon),
                               atol=2e-5)


@IMPLEMENTATIONS
def test_gradient_matches_finite_differences(group_normalization):
    # Central differences in float64 through the NumPy definition, against the float32
    # hand-written gradient of the same objective.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 3, 4))
    gamma, beta = rng.normal(1.0, 0.3, 4), rng.normal(size=4)
    upstream = rng.normal(size=x.shape)
    _, dx, _, _ = _values_and_gradients(
        lambda x, g, b: group_normalization(x, g, b, 2, 1e-6),
        x.astype("float32"), gamma.astype("float32"), beta.astype("float32"),
        tf.constant(upstream.astype("float32")),
    )
    step = 1e-6
    numeric = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += step
        minus[index] -= step
        numeric[index] = np.sum(
            upstream * (_float64_reference(plus, gamma, beta, 2, 1e-6)
                        - _float64_reference(minus, gamma, beta, 2, 1e-6))
        ) / (2 * step)
    np.testing.assert_allclose(dx, numeric, atol=2e-4 * np.abs(numeric).max())


def test_layer_is_a_keras_group_normalization_with_the_same_outputs():
    rng = np.random.default_rng(2)
    x = rng.normal(3.0, 2.0, size=(2, 4, 4, 8)).astype("float32")
    ours = normalization.GroupNormalization(groups=4, epsilon=1e-6)
    theirs = keras.layers.GroupNormalization(groups=4, epsilon=1e-6)
    ours.build(x.shape)
    theirs.build(x.shape)
    for weight in theirs.weights:
        weight.assign(rng.normal(size=weight.shape))
    ours.set_weights(theirs.get_weights())

    assert isinstance(ours, keras.layers.GroupNormalization)
    assert [w.path.split("/")[-1] for w in ours.weights] == ["gamma", "beta"]
    np.testing.assert_allclose(ours(x), theirs(x), atol=1e-5)

    # Configuration round trip, and channels-first falls back to the parent's computation.
    clone = normalization.GroupNormalization.from_config(ours.get_config())
    assert clone.get_config() == ours.get_config()
    first = normalization.GroupNormalization(groups=2, axis=1, epsilon=1e-6)
    reference = keras.layers.GroupNormalization(groups=2, axis=1, epsilon=1e-6)
    x_first = np.moveaxis(x, -1, 1)
    np.testing.assert_allclose(first(x_first), reference(x_first), atol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_half_precision_inputs_are_normalised_in_float32(policy):
    # Large values whose group variance a 16-bit computation would lose entirely.
    x = (1000.0 + np.arange(2 * 4 * 4 * 8).reshape(2, 4, 4, 8) % 7).astype("float32")
    layer = normalization.GroupNormalization(groups=2, epsilon=1e-6, dtype=policy)
    y = layer(x)
    assert y.dtype == policy.split("_")[1]
    reference = _float64_reference(x, np.ones(8), np.zeros(8), 2, 1e-6)
    half_step = 4e-3 if policy == "mixed_float16" else 3e-2  # output rounding only
    np.testing.assert_allclose(np.asarray(y, "float32"), reference, atol=half_step * 2)


@IMPLEMENTATIONS
def test_plain_arrays_are_accepted(group_normalization):
    # NumPy input with float64 scale and offset, as in the docstring example.
    x = np.random.default_rng(3).normal(size=(2, 4, 4, 8)).astype("float32")
    y = group_normalization(x, np.full(8, 2.0), np.ones(8), 4, 1e-6)
    assert y.dtype == "float32"
    np.testing.assert_allclose(y, _float64_reference(x, 2.0, 1.0, 4, 1e-6), atol=1e-5)


@IMPLEMENTATIONS
def test_indivisible_channels_are_refused(group_normalization):
    with pytest.raises(ValueError, match=r"divisible by groups=3.*\(1, 2, 2, 8\)"):
        group_normalization(np.zeros((1, 2, 2, 8), "float32"), 1.0, 0.0, 3, 1e-6)
