"""Tiny denoisers for tests: time-conditioned functional networks, far cheaper to trace than a UNet."""

import keras


def conv_network(image_shape=(8, 8, 1), timesteps=20, extra_layer=None, output_dtype=None):
    """Conv -> + timestep embedding -> conv, with the UNet calling convention `[x_t, t]`.

    Args:
        image_shape: `(H, W, C)`.
        timesteps: rows of the timestep embedding (T of the schedule).
        extra_layer: a layer applied to the hidden maps before the output conv.
        output_dtype: the output conv's dtype (e.g. `"float32"` under mixed precision).
    """
    x_t = keras.Input(shape=image_shape, name="x_t")
    t = keras.Input(shape=(), dtype="int32", name="t")
    h = keras.layers.Conv2D(4, 3, padding="same", activation="silu")(x_t)
    h = h + keras.layers.Reshape((1, 1, 4))(keras.layers.Embedding(timesteps, 4)(t))
    if extra_layer is not None:
        h = extra_layer(h)
    output = keras.layers.Conv2D(image_shape[-1], 3, padding="same", dtype=output_dtype)(h)
    return keras.Model([x_t, t], output)


TINY_UNET = dict(
    base_channels=8, channel_multipliers=(1,), num_res_blocks=1, attention_resolutions=(),
    dropout=0.0, norm_groups=4,
)


def tiny_unet(image_shape=(8, 8, 1), **overrides):
    """The smallest `keras_ddpm.UNet` the tests train: one level of 8 channels, no attention."""
    import keras_ddpm

    return keras_ddpm.UNet(image_shape, **{**TINY_UNET, **overrides})
