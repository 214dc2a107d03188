"""Loss scaling under mixed_float16: a non-finite step changes nothing and training goes on."""

import keras
import numpy as np
import tensorflow as tf

import keras_ddpm


# A batch whose first pixel holds this value gets an infinite loss.
POISON = 0.875


class PoisonedDDPM(keras_ddpm.DDPM):
    """A DDPM whose loss is infinite on batches marked with `POISON`."""

    def diffusion_loss(self, images, training=True):
        loss = super().diffusion_loss(images, training)
        # Multiplying by a factor (rather than tf.where on two losses) keeps the
        # gradient finite on unmarked batches.
        factor = tf.where(tf.equal(images[0, 0, 0, 0], POISON), np.inf, 1.0)
        return loss * factor


def _model():
    keras.mixed_precision.set_global_policy("mixed_float16")
    network = keras_ddpm.UNet(
        image_shape=(8, 8, 1), base_channels=8, channel_multipliers=(1, 2),
        num_res_blocks=1, attention_resolutions=(4,), dropout=0.0, norm_groups=4,
    )
    model = PoisonedDDPM(
        network, schedule=keras_ddpm.NoiseSchedule("linear", timesteps=100),
        ema_decay=0.5, ema_warmup=False, seed=0,
    )
    # A fixed, modest initial scale: only the poisoned batch may overflow.
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-3), initial_scale=128.0)
    model.compile(optimizer=optimizer)
    return model


def _values(weights):
    return [w.numpy().copy() for w in weights]


def test_non_finite_step_is_skipped_including_the_ema():
    model = _model()
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    images = np.random.default_rng(0).uniform(-0.5, 0.5, (8, 8, 8, 1)).astype("float32")
    batch = tf.data.Dataset.from_tensors(images)
    poisoned = images.copy()
    poisoned[0, 0, 0, 0] = POISON

    model.fit(batch, epochs=1, verbose=0)  # finite: applied
    assert int(model.optimizer.iterations) == 1
    weights, ema = _values(model.network.weights), _values(model.ema_weights)
    scale = float(model.optimizer.dynamic_scale)

    model.fit(tf.data.Dataset.from_tensors(poisoned), epochs=1, verbose=0)  # skipped
    assert int(model.optimizer.iterations) == 1
    for before, after in zip(weights, model.network.weights):
        np.testing.assert_array_equal(after.numpy(), before)
    for before, after in zip(ema, model.ema_weights):
        np.testing.assert_array_equal(after.numpy(), before)
    assert float(model.optimizer.dynamic_scale) == scale / 2  # the loss scale backs off

    history = model.fit(batch, epochs=1, verbose=0)  # finite again: applied
    assert int(model.optimizer.iterations) == 2
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(a.numpy(), b) for a, b in zip(model.network.weights, weights))
    assert all(np.isfinite(w.numpy()).all() for w in model.network.weights + model.ema_weights)


def test_default_compile_wraps_the_optimizer_and_applies_steps():
    keras.mixed_precision.set_global_policy("mixed_float16")
    network = keras_ddpm.UNet(
        image_shape=(8, 8, 1), base_channels=8, channel_multipliers=(1, 2),
        num_res_blocks=1, attention_resolutions=(4,), dropout=0.0, norm_groups=4,
    )
    model = keras_ddpm.DDPM(network, schedule=keras_ddpm.NoiseSchedule("linear", timesteps=100), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    images = np.random.default_rng(1).uniform(-1, 1, (32, 8, 8, 1)).astype("float32")
    history = model.fit(images, batch_size=8, epochs=1, verbose=0)
    # Four batches; at least the later ones are applied once the scale has settled.
    assert int(model.optimizer.iterations) >= 2
    assert np.isfinite(history.history["loss"][0])
    assert model.network.compute_dtype == "float16" and model.network.output.dtype == "float32"
    assert model.generate(2, sampler="ddim", steps=5, seed=0, verbose=0).dtype == np.float32
