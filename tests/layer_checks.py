"""`check_layer`: what every keras_ddpm layer must do, in one call (after keras-hub's layer tests).

The checks, in order: the config round trip (`from_config(get_config())` gives the same config
and, with the same weights, the same outputs), a `.keras` file round trip inside a model, build
and an eager call of the expected shape, a symbolic call on `keras.Input`s of the same shape, a
`fit` step that changes every trainable weight, and a call under `mixed_float16` whose output
is finite and of the policy's compute dtype (or of `mixed_output_dtype`).
"""

import keras
import numpy as np


def _inputs(data):
    """`keras.Input`s shaped like `data` (an array or a list of arrays) without the batch axis."""
    if isinstance(data, (list, tuple)):
        return [_inputs(item) for item in data]
    return keras.Input(shape=data.shape[1:], dtype=str(data.dtype))


def _call(layer, data):
    return layer(list(data) if isinstance(data, (list, tuple)) else data)


def check_layer(cls, init_kwargs, data, expected_shape, mixed_output_dtype="float16",
                tmp_path=None, zero_gradient=()):
    """Runs every check of the module docstring on `cls(**init_kwargs)` called on `data`.

    Args:
        cls: the layer class.
        init_kwargs: its constructor arguments.
        data: a NumPy array or a list of them, the layer's call input.
        expected_shape: the output's shape.
        mixed_output_dtype: the output dtype under `mixed_float16`. Defaults to `"float16"`.
        tmp_path: a folder for the `.keras` round trip; `None` skips it.
        zero_gradient: endings of weight paths whose gradient is zero by the
            layer's maths; the fit step must leave exactly those unchanged.
    """
    # 1. Build and an eager call.
    layer = cls(**init_kwargs)
    output = keras.ops.convert_to_numpy(_call(layer, data))
    assert output.shape == tuple(expected_shape), (output.shape, expected_shape)
    assert np.all(np.isfinite(output))
    assert layer.built
    # 2. Config round trip: the same config, and the same outputs with the same weights.
    config = layer.get_config()
    for name, value in init_kwargs.items():
        assert config[name] == value or list(np.atleast_1d(config[name])) == list(
            np.atleast_1d(value)), (name, config[name], value)
    copy = cls.from_config(config)
    assert copy.get_config() == config
    _call(copy, data)
    for weight in copy.weights:  # a weight that starts at zero would hide a wiring mistake
        weight.assign(np.random.default_rng(len(weight.path)).normal(
            0, 0.3, weight.shape).astype(weight.dtype))
    layer.set_weights(copy.get_weights())
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(_call(copy, data)),
        keras.ops.convert_to_numpy(_call(layer, data)), rtol=1e-6, atol=1e-6,
    )
    # 3. A symbolic call, and the functional model's output on data.
    inputs = _inputs(data)
    symbolic = _call(cls(**init_kwargs), inputs)
    assert tuple(symbolic.shape[1:]) == tuple(expected_shape[1:])
    model = keras.Model(inputs, symbolic)
    model.layers[-1].set_weights(copy.get_weights())
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(data)),
        keras.ops.convert_to_numpy(_call(copy, data)), rtol=1e-5, atol=1e-5,
    )
    # 4. The .keras file round trip: the same outputs after loading.
    if tmp_path is not None:
        path = str(tmp_path / f"{cls.__name__}.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(loaded(data)),
            keras.ops.convert_to_numpy(model(data)), rtol=1e-6, atol=1e-6,
        )
    # 5. A fit step moves every trainable weight.
    if model.trainable_weights:
        before = [w.numpy().copy() for w in model.trainable_weights]
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        target = np.random.default_rng(1).normal(size=expected_shape).astype("float32")
        model.fit(data if not isinstance(data, tuple) else list(data), target, epochs=1,
                  batch_size=len(target), verbose=0)
        unchanged = sorted(w.path for w, old in zip(model.trainable_weights, before)
                           if np.array_equal(w.numpy(), old))
        expected = sorted(w.path for w in model.trainable_weights
                          if w.path.endswith(tuple(zero_gradient)))
        assert unchanged == expected, (unchanged, expected)
    # 6. Mixed precision: float16 compute, finite output.
    mixed = cls(**init_kwargs, dtype="mixed_float16")
    output = _call(mixed, data)
    assert keras.backend.standardize_dtype(output.dtype) == mixed_output_dtype, output.dtype
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(output).astype("float32")))
    assert all(w.dtype == "float32" for w in mixed.weights)
