"""Mixed precision: loss scaling under mixed_float16 (a non-finite step changes nothing and
training goes on), mixed_bfloat16 training, and the parts that stay float32 under both."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_ddpm
from networks import tiny_unet


# A batch whose first pixel holds this value gets an infinite loss.
POISON = 0.875


class PoisonedDDPM(keras_ddpm.DDPM):
    """A DDPM whose loss is infinite on batches marked with `POISON`."""

    def diffusion_loss(self, images, *args, **kwargs):
        loss = super().diffusion_loss(images, *args, **kwargs)
        # Multiplying by a factor (rather than tf.where on two losses) keeps the
        # gradient finite on unmarked batches.
        factor = tf.where(tf.equal(images[0, 0, 0, 0], POISON), np.inf, 1.0)
        return loss * factor


def _model():
    keras.mixed_precision.set_global_policy("mixed_float16")
    network = tiny_unet(channel_multipliers=(1, 2), attention_resolutions=(4,))
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
    network = tiny_unet()
    model = keras_ddpm.DDPM(network, schedule=keras_ddpm.NoiseSchedule("linear", timesteps=20), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    images = np.random.default_rng(1).uniform(-1, 1, (32, 8, 8, 1)).astype("float32")
    history = model.fit(images, batch_size=8, epochs=1, verbose=0)
    # Four batches; at least the later ones are applied once the scale has settled.
    assert int(model.optimizer.iterations) >= 2
    assert np.isfinite(history.history["loss"][0])
    assert model.network.compute_dtype == "float16" and model.network.output.dtype == "float32"
    images = model.generate(2, sampler="ddim", steps=5, seed=0, verbose=0, jit_compile=False)
    assert images.dtype == np.float32


def _tiny_unet():
    return tiny_unet(channel_multipliers=(1, 2), attention_resolutions=(4,))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_schedule_loss_group_norm_and_output_stay_float32(policy):
    keras.mixed_precision.set_global_policy(policy)
    half = policy.split("_")[1]
    model = keras_ddpm.DDPM(
        _tiny_unet(), schedule=keras_ddpm.NoiseSchedule("linear", timesteps=20), seed=0
    )
    images = np.random.default_rng(2).uniform(-1, 1, (4, 8, 8, 1)).astype("float32")
    # The network computes in the half type but returns float32.
    layers = list(model.network._flatten_layers())
    assert model.network.compute_dtype == half
    assert any(isinstance(l, keras.layers.Conv2D) and l.compute_dtype == half for l in layers)
    assert model.network.output.dtype == "float32"
    # GroupNorm statistics are taken in float32, on float32 variables.
    norms = [l for l in layers if isinstance(l, keras.layers.GroupNormalization)]
    assert norms and all(l.compute_dtype == "float32" for l in norms)
    assert all(w.dtype == "float32" for l in norms for w in l.weights)
    # The training noise, the schedule lookups and the loss are float32.
    t, noise = model.draw_training_noise(images)
    assert t.dtype == "int32" and noise.dtype == "float32"
    for rate in model.schedule.signal_and_noise_rates(t, 4):
        assert rate.dtype == "float32"
    assert model.schedule.add_noise(images, noise, t).dtype == "float32"
    loss = model.diffusion_loss(images)
    assert loss.dtype == "float32" and np.isfinite(float(loss))


@pytest.mark.parametrize(
    "jit_compile", [False, pytest.param(True, marks=pytest.mark.slow)]  # XLA, as on a TPU
)
def test_mixed_bfloat16_trains_without_loss_scaling(jit_compile):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    # bfloat16 is emulated on a CPU: the smallest U-Net keeps this quick.
    network = tiny_unet()
    model = keras_ddpm.DDPM(
        network, schedule=keras_ddpm.NoiseSchedule("linear", timesteps=20), seed=0
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit_compile)
    # bfloat16 has float32's range: no loss scaling is needed, none is added.
    assert not isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    before = _values(model.network.trainable_weights)
    images = np.random.default_rng(3).uniform(-1, 1, (16, 8, 8, 1)).astype("float32")
    history = model.fit(images, batch_size=8, epochs=1, verbose=0)
    assert int(model.optimizer.iterations) == 2
    assert np.isfinite(history.history["loss"]).all()
    # Trainable weights stay float32 and move; the EMA follows.
    after = model.network.trainable_weights
    assert all(w.dtype == "float32" for w in after + model.ema_weights)
    # (Not all of them yet: the zero-initialised output convolutions pass no
    # gradient upstream on the first step.)
    assert any(not np.array_equal(w.numpy(), b) for w, b in zip(after, before))
    assert all(np.isfinite(w.numpy()).all() for w in after + model.ema_weights)
    images = model.generate(2, sampler="ddim", steps=3, seed=0, verbose=0, jit_compile=jit_compile)
    assert images.dtype == np.float32 and np.isfinite(images).all()
