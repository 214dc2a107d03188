"""Tiny denoisers for tests: time-conditioned functional networks, far cheaper to trace than a UNet."""

import keras


def conv_network(image_shape=(8, 8, 1), timesteps=20):
    """Conv -> + timestep embedding -> conv, with the UNet calling convention `[x_t, t]`."""
    x_t = keras.Input(shape=image_shape, name="x_t")
    t = keras.Input(shape=(), dtype="int32", name="t")
    h = keras.layers.Conv2D(4, 3, padding="same", activation="silu")(x_t)
    h = h + keras.layers.Reshape((1, 1, 4))(keras.layers.Embedding(timesteps, 4)(t))
    return keras.Model([x_t, t], keras.layers.Conv2D(image_shape[-1], 3, padding="same")(h))
