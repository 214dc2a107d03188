"""DDPM: training mechanics, inputs, EMA, sampling and serialization."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_ddpm
from keras_ddpm import DDPM
from keras_ddpm import NoiseSchedule
from keras_ddpm import samplers
from oracles import ancestral_output_moments
from oracles import gaussian_oracle

SHAPE = (4, 4, 1)


def conv_denoiser(image_shape=SHAPE):
    """A tiny time-conditioned network with the UNet calling convention."""
    x_t = keras.Input(shape=image_shape, name="x_t")
    t = keras.Input(shape=(), dtype="int32", name="t")
    time = keras.layers.Embedding(1000, 4)(t)
    h = keras.layers.Conv2D(4, 3, padding="same", activation="silu")(x_t)
    h = h + keras.layers.Reshape((1, 1, 4))(time)
    out = keras.layers.Conv2D(image_shape[-1], 3, padding="same", dtype="float32")(h)
    return keras.Model([x_t, t], out)


def tiny_model(**kwargs):
    kwargs.setdefault("schedule", NoiseSchedule("linear", timesteps=1000))
    model = DDPM(conv_denoiser(), seed=1, **kwargs)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    return model


def random_images(n=32, shape=SHAPE, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n,) + shape).astype("float32")


# ----------------------------------------------------------------------------
# Sampling with the exact network
# ----------------------------------------------------------------------------
def test_generate_reproduces_gaussian_data_with_the_oracle():
    mean, std = 0.3, 0.05
    schedule = NoiseSchedule("linear", timesteps=1000)
    model = DDPM(gaussian_oracle(schedule, (8, 8, 1), mean, std), schedule=schedule, ema_decay=None)
    images = model.generate(2048, seed=0, clip=False, verbose=0)
    assert images.shape == (2048, 8, 8, 1) and images.dtype == np.float32
    exact_mean, exact_std = ancestral_output_moments(
        schedule, mean, std, schedule.posterior_log_variance_clipped
    )
    n = images.size
    assert abs(images.mean() - exact_mean) < 4 * exact_std / math.sqrt(n)
    assert abs(images.std() - exact_std) < 4 * exact_std / math.sqrt(2 * n)


def test_generate_seeds_chunks_initial_noise_and_clipping():
    schedule = NoiseSchedule("linear", timesteps=50)
    model = DDPM(gaussian_oracle(schedule, (4, 4, 1), 0.5, 0.6), schedule=schedule, ema_decay=None)
    first = model.generate(10, seed=3, verbose=0)
    np.testing.assert_array_equal(model.generate(10, seed=3, verbose=0), first)
    assert not np.allclose(model.generate(10, seed=4, verbose=0), first)
    # Chunked generation: same shape, same distribution family, deterministic.
    chunked = model.generate(10, seed=3, batch_size=4, verbose=1)
    assert chunked.shape == (10, 4, 4, 1)
    np.testing.assert_array_equal(model.generate(10, seed=3, batch_size=4, verbose=0), chunked)
    # clip=True keeps everything in [-1, 1]; clip=False leaves values alone
    # (N(0.5, 0.6²) data puts about 20 % of values above 1).
    assert first.min() >= -1.0 and first.max() <= 1.0
    unclipped = model.generate(10, seed=3, clip=False, verbose=0)
    assert unclipped.max() > 1.0
    # initial_noise replaces the drawn x_T.
    noise = np.random.default_rng(0).standard_normal((10, 4, 4, 1)).astype("float32")
    a = model.generate(10, seed=1, initial_noise=noise, clip=False, verbose=0)
    b = model.generate(10, seed=1, initial_noise=noise * 2, clip=False, verbose=0)
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(model.generate(10, seed=1, initial_noise=noise, clip=False, verbose=0), a)
    # One traced loop per (weights, clip) choice, reused across calls.
    assert len(model._sampling_functions) == 2  # (clip, no clip)


def test_generate_with_fixed_large_variance_matches_its_exact_moments():
    mean, std = 0.3, 0.05
    schedule = NoiseSchedule("cosine", timesteps=1000)
    oracle = gaussian_oracle(schedule, (8, 8, 1), mean, std)
    model = DDPM(oracle, schedule=schedule, ema_decay=None, variance="fixed_large")
    images = model.generate(1024, seed=1, clip=False, verbose=0)
    table = samplers.log_variance_table(schedule, "fixed_large")
    exact_mean, exact_std = ancestral_output_moments(schedule, mean, std, table)
    assert abs(images.std() - exact_std) < 4 * exact_std / math.sqrt(2 * images.size)
    assert abs(images.mean() - exact_mean) < 4 * exact_std / math.sqrt(images.size)


# ----------------------------------------------------------------------------
# Training mechanics
# ----------------------------------------------------------------------------
def test_train_step_loss_is_the_noise_mse_and_weights_move():
    model = tiny_model(ema_decay=None)
    images = random_images()
    before = [w.numpy() for w in model.network.trainable_weights]
    history = model.fit(images, batch_size=32, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])
    after = [w.numpy() for w in model.network.trainable_weights]
    assert any(not np.allclose(a, b) for a, b in zip(before, after))


def test_diffusion_loss_formula():
    """diffusion_loss equals the MSE recomputed from the same t and ε."""
    model = tiny_model(ema_decay=None)
    images = tf.constant(random_images(8))
    state = model.seed_generator.state.numpy()
    loss = float(model.diffusion_loss(images, training=False))
    model.seed_generator.state.assign(state)
    t = keras.random.randint((8,), 0, 1000, dtype="int32", seed=model.seed_generator)
    noise = keras.random.normal(images.shape, seed=model.seed_generator)
    x_t = model.schedule.add_noise(images, noise, t)
    expected = np.mean((model.network([x_t, t]).numpy() - noise.numpy()) ** 2)
    assert loss == pytest.approx(expected, rel=1e-5)


def test_ema_update_follows_its_formula():
    model = tiny_model(ema_decay=0.9, ema_warmup=False)
    start = [w.numpy() for w in model.network.weights]
    np.testing.assert_array_equal(model.ema_weights[0].numpy(), start[0])
    model.fit(random_images(16), batch_size=16, epochs=1, verbose=0)
    for w0, w, ema in zip(start, model.network.weights, model.ema_weights):
        np.testing.assert_allclose(ema.numpy(), 0.9 * w0 + 0.1 * w.numpy(), rtol=1e-5, atol=1e-7)
    assert not model.ema_network.trainable
    assert len(model.trainable_weights) == len(model.network.trainable_weights)


def test_ema_warmup_decay():
    model = tiny_model(ema_decay=0.999)
    start = [w.numpy() for w in model.network.weights]
    model.fit(random_images(16), batch_size=16, epochs=1, verbose=0)
    # After n = 1 applied step the warm-up decay is min(0.999, 2 / 11).
    d = 2 / 11
    for w0, w, ema in zip(start, model.network.weights, model.ema_weights):
        np.testing.assert_allclose(ema.numpy(), d * w0 + (1 - d) * w.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_fit_evaluate_and_generate_with_and_without_xla(jit_compile):
    model = DDPM(conv_denoiser(), schedule=NoiseSchedule("linear", timesteps=20), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit_compile)
    data = tf.data.Dataset.from_tensor_slices(random_images(32)).batch(8)
    history = model.fit(data, epochs=2, verbose=0, validation_data=data)
    assert set(history.history) == {"loss", "val_loss"}
    assert np.isfinite(history.history["val_loss"]).all()
    result = model.evaluate(data, verbose=0, return_dict=True)
    assert set(result) == {"loss"} and np.isfinite(result["loss"])
    images = model.generate(3, seed=0, verbose=0)
    assert images.shape == (3,) + SHAPE and np.isfinite(images).all()


def test_mixed_float16_fit_keeps_a_finite_float32_loss():
    keras.mixed_precision.set_global_policy("mixed_float16")
    network = keras_ddpm.UNet(
        image_shape=(8, 8, 1), base_channels=8, channel_multipliers=(1, 2),
        num_res_blocks=1, attention_resolutions=(4,), dropout=0.0, norm_groups=4,
    )
    model = DDPM(network, schedule=NoiseSchedule("linear", timesteps=100), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    history = model.fit(random_images(32, (8, 8, 1)), batch_size=16, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert model.network.output.dtype == "float32"
    assert model.generate(2, seed=0, verbose=0).dtype == np.float32


def test_fit_on_digits_loss_falls():
    keras.utils.set_random_seed(0)
    network = keras_ddpm.UNet(
        image_shape=(8, 8, 1), base_channels=16, channel_multipliers=(1, 2),
        num_res_blocks=1, attention_resolutions=(4,), dropout=0.0, norm_groups=4,
    )
    model = DDPM(network, schedule=NoiseSchedule("linear", timesteps=1000), ema_decay=0.99, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    data = keras_ddpm.data.load_digits(batch_size=64, seed=0)
    losses = model.fit(data, epochs=6, verbose=0).history["loss"]
    # The zero-initialised output predicts ε̂ = 0, a loss of E[ε²] = 1, at the start.
    assert losses[0] < 0.9
    assert losses[-1] < 0.6 * losses[0]
    assert all(np.isfinite(losses))


# ----------------------------------------------------------------------------
# What fit accepts
# ----------------------------------------------------------------------------
def test_uint8_tuple_and_dict_batches_are_accepted():
    model = tiny_model()
    uint8 = np.random.default_rng(0).integers(0, 256, (16,) + SHAPE, dtype=np.uint8)
    labels = np.arange(16, dtype="int32")
    for data in (
        tf.data.Dataset.from_tensor_slices(uint8).batch(8),
        tf.data.Dataset.from_tensor_slices((uint8, labels)).batch(8),
        tf.data.Dataset.from_tensor_slices({"image": uint8, "label": labels}).batch(8),
    ):
        history = model.fit(data, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
    model.fit(uint8, batch_size=8, epochs=1, verbose=0)


def test_uint8_is_mapped_to_minus_one_one():
    from keras_ddpm.inputs import images_from_batch

    batch = tf.constant(np.array([0, 255, 51], np.uint8).reshape(3, 1, 1, 1))
    np.testing.assert_allclose(np.ravel(images_from_batch(batch)), [-1.0, 1.0, 51 / 127.5 - 1], rtol=1e-6)


def test_wrong_image_shape_names_both_shapes():
    model = tiny_model()
    with pytest.raises(ValueError, match=r"\(5, 5, 1\).*expects \(4, 4, 1\)"):
        model.fit(random_images(8, (5, 5, 1)), epochs=1, verbose=0)
    data = tf.data.Dataset.from_tensor_slices(random_images(8, (4, 4, 3))).batch(4)
    with pytest.raises(ValueError, match=r"\(4, 4, 3\).*expects \(4, 4, 1\)"):
        model.fit(data, epochs=1, verbose=0)


def test_float_data_outside_minus_one_one_is_refused():
    model = tiny_model()
    images = random_images(8) * 127.5 + 127.5  # 0..255 floats
    with pytest.raises(ValueError, match=r"\[-1, 1\].*Received values in \[0\.\d+, 25\d\.\d+\]"):
        model.fit(images, epochs=1, verbose=0)
    # In a dataset the values are only seen inside the step: still a clear error.
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"must lie in \[-1, 1\]"):
        model.fit(tf.data.Dataset.from_tensor_slices(images).batch(4), epochs=1, verbose=0)


def test_bad_dtype_and_dict_key():
    model = tiny_model()
    with pytest.raises(TypeError, match="Received dtype int32"):
        model.fit(np.zeros((4,) + SHAPE, "int32"), epochs=1, verbose=0)
    data = tf.data.Dataset.from_tensor_slices({"img": random_images(4)}).batch(2)
    with pytest.raises(ValueError, match=r"key 'image'.*\['img'\]"):
        model.fit(data, epochs=1, verbose=0)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"ema_decay": 1.5}, ValueError, r"ema_decay=1.5"),
        ({"variance": "learned"}, ValueError, r"variance='learned'.*fixed_small"),
        ({"prediction_type": "score"}, ValueError, r"prediction_type='score'"),
        ({"schedule": "linear"}, TypeError, r"NoiseSchedule.*'linear'"),
        ({"seed": 1.5}, TypeError, r"seed=1.5"),
    ],
)
def test_bad_constructor_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        DDPM(conv_denoiser(), **kwargs)


def test_bad_generate_arguments():
    model = tiny_model()
    with pytest.raises(ValueError, match="num_images=0"):
        model.generate(0)
    with pytest.raises(ValueError, match="batch_size=-2"):
        model.generate(2, batch_size=-2)
    with pytest.raises(ValueError, match=r"\(2, 4, 4, 1\).*Received shape \(2, 4, 4\)"):
        model.generate(2, initial_noise=np.zeros((2, 4, 4)))
    with pytest.raises(TypeError, match="seed='a'"):
        model.generate(2, seed="a")


# ----------------------------------------------------------------------------
# Serialization
# ----------------------------------------------------------------------------
def test_config_round_trip_and_keras_file(tmp_path):
    model = tiny_model(ema_decay=0.9, variance="fixed_large")
    model.fit(random_images(16), batch_size=8, epochs=1, verbose=0)
    config = model.get_config()
    clone = DDPM.from_config(config)
    assert clone.schedule == model.schedule and clone.variance == "fixed_large"
    assert clone.ema_decay == 0.9 and clone.seed == 1
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored, DDPM)
    for a, b in zip(model.ema_weights, restored.ema_weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(
        restored.generate(4, seed=7, verbose=0), model.generate(4, seed=7, verbose=0)
    )
    # Optimizer state and the training-noise RNG come back too: training goes on identically.
    assert int(restored.optimizer.iterations) == int(model.optimizer.iterations) == 2
    more = random_images(16, seed=1)
    model.fit(more, batch_size=8, epochs=1, verbose=0, shuffle=False)
    restored.fit(more, batch_size=8, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.weights, restored.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)
