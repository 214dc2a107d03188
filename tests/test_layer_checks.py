"""Every keras_ddpm layer through `layer_checks.check_layer`: config, build, calls, fit, mixed precision."""

import numpy as np
import pytest

from keras_ddpm import convolution
from keras_ddpm import layers
from keras_ddpm import normalization
from keras_ddpm import resampling
from layer_checks import check_layer

RNG = np.random.default_rng(0)
MAPS = RNG.normal(size=(2, 8, 8, 8)).astype("float32")
EMBEDDING = RNG.normal(size=(2, 16)).astype("float32")
TIMESTEPS = np.array([3, 17], "int32")

CASES = {
    "TimestepEmbedding": (
        layers.TimestepEmbedding, {"dim": 16, "flip_sin_to_cos": True, "freq_shift": 0.0},
        TIMESTEPS, (2, 16), "float16",
    ),
    "ResidualBlock": (
        layers.ResidualBlock, {"out_channels": 12, "norm_groups": 4, "dropout": 0.1},
        (MAPS, EMBEDDING), (2, 8, 8, 12), "float16",
    ),
    # The key bias adds q·b to every key's score of a query: softmax ignores it, its gradient is 0.
    "AttentionBlock": (
        layers.AttentionBlock, {"norm_groups": 4}, MAPS, (2, 8, 8, 8), "float16", ("k/bias",),
    ),
    "Downsample": (resampling.Downsample, {"channels": 8}, MAPS, (2, 4, 4, 8), "float16"),
    "Upsample": (resampling.Upsample, {"channels": 4}, MAPS, (2, 16, 16, 4), "float16"),
    "GroupNormalization": (
        normalization.GroupNormalization, {"groups": 4, "epsilon": 1e-6}, MAPS, (2, 8, 8, 8),
        "float16",
    ),
    "Conv2D": (
        convolution.Conv2D, {"filters": 4, "kernel_size": (3, 3), "padding": "same"}, MAPS,
        (2, 8, 8, 4), "float16",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_layer(name, tmp_path):
    cls, kwargs, data, shape, mixed_dtype, *zero_gradient = CASES[name]
    check_layer(cls, kwargs, data, shape, mixed_output_dtype=mixed_dtype, tmp_path=tmp_path,
                zero_gradient=zero_gradient[0] if zero_gradient else ())


def test_every_registered_layer_is_checked():
    import keras

    import keras_ddpm  # noqa: F401 - registers the package's serializables

    registered = {
        name.split(">")[1] for name in keras.saving.get_custom_objects()
        if name.startswith("keras_ddpm>")
    }
    layer_classes = {
        name for name in registered
        if isinstance(keras.saving.get_registered_object(f"keras_ddpm>{name}"), type)
        and issubclass(keras.saving.get_registered_object(f"keras_ddpm>{name}"), keras.layers.Layer)
        and not issubclass(keras.saving.get_registered_object(f"keras_ddpm>{name}"), keras.Model)
    }
    assert layer_classes == set(CASES), layer_classes ^ set(CASES)
