"""Files saved by an earlier keras_ddpm load with today's code and give the same images.

The files in tests/legacy/ were written at commit 66f14d3 (see its README):
a `.keras` model and its SavedModel export, with the images they produced
then for fixed seeds; `counter_rng_outputs.npz` holds the `.keras` model's
images for a seed since the noise became counter-based. Users' trained models
are their data.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

import keras_ddpm
from keras_ddpm import utils

LEGACY = os.path.join(os.path.dirname(__file__), "legacy")


@pytest.fixture(scope="module")
def recorded():
    with np.load(os.path.join(LEGACY, "unconditional_outputs.npz")) as archive:
        return dict(archive)


@pytest.fixture(scope="module")
def legacy_model():
    return keras_ddpm.load_model(os.path.join(LEGACY, "unconditional.keras"))


@pytest.fixture(scope="module")
def recorded_counter_rng():
    with np.load(os.path.join(LEGACY, "counter_rng_outputs.npz")) as archive:
        return dict(archive)


def _x_t_of_66f14d3(seed, shape):
    """x_T as 66f14d3 drew it: TensorFlow's stateless kernel, eagerly, under split([seed, 0])."""
    pair = tf.constant([seed % 2**31, 0], tf.int32)
    noise_seed = tf.random.experimental.stateless_split(pair, 2)[0]
    return tf.random.stateless_normal(shape, seed=noise_seed).numpy()


@pytest.mark.parametrize("sampler", ["ddim", "dpm_solver"])
def test_old_keras_file_gives_the_recorded_images_from_the_recorded_noise(
    legacy_model, recorded, sampler
):
    """The deterministic samplers from 66f14d3's x_T: its network and maths are unchanged.

    (Its seeded noise is not: see the README's changelog, "counter-based noise".)
    """
    x_t = _x_t_of_66f14d3(3, (4,) + legacy_model.image_shape)
    for use_ema, suffix in ((True, ""), (False, "_raw")):
        images = legacy_model.generate(
            4, sampler=sampler, initial_noise=x_t, use_ema=use_ema, verbose=0
        )
        expected = recorded[f"generate_{sampler}{suffix}"]
        np.testing.assert_array_equal(utils.to_uint8(images), utils.to_uint8(expected))
        np.testing.assert_allclose(images, expected, atol=1e-5)


# 10-13 s a sampler: the stochastic one (the noise of every step) in the default suite, the
# deterministic ones with the slow tests.
@pytest.mark.parametrize(
    "sampler", ["ddpm", pytest.param("ddim", marks=pytest.mark.slow),
                pytest.param("dpm_solver", marks=pytest.mark.slow)]
)
def test_old_keras_file_gives_the_same_images_for_a_seed_in_every_compile_mode(
    legacy_model, recorded_counter_rng, sampler
):
    """The default call, XLA and plain TensorFlow all give the images recorded when the noise
    became counter-based; so does the same call split into chunks of 3 and 1."""
    for use_ema, suffix in ((True, ""), (False, "_raw")):
        expected = recorded_counter_rng[f"generate_{sampler}{suffix}"]
        for options in ({}, {"jit_compile": True}, {"jit_compile": False}, {"batch_size": 3}):
            images = legacy_model.generate(
                4, sampler=sampler, seed=3, use_ema=use_ema, verbose=0, **options
            )
            np.testing.assert_array_equal(utils.to_uint8(images), utils.to_uint8(expected))
            np.testing.assert_allclose(images, expected, atol=1e-5, err_msg=str(options))


def test_old_keras_file_keeps_weights_optimizer_and_rng(legacy_model, recorded):
    prediction = legacy_model.ema_network([recorded["denoise_x_t"], recorded["denoise_t"]])
    np.testing.assert_allclose(prediction.numpy(), recorded["denoise_ema"], atol=1e-6)
    # 2 epochs of 64 images in batches of 32: four applied steps, and the RNG moved on.
    assert int(legacy_model.optimizer.iterations.numpy()) == 4
    assert legacy_model.seed_generator.state.numpy().tolist() != [0, 0]


def test_old_savedmodel_loads_and_gives_the_same_images(recorded):
    loaded = tf.saved_model.load(os.path.join(LEGACY, "unconditional_savedmodel"))
    images = loaded.generate(num_images=tf.constant(4), steps=tf.constant(10), seed=tf.constant(3))
    np.testing.assert_array_equal(images.numpy(), recorded["savedmodel_generate"])
    ddpm = loaded.generate_with_sampler(
        num_images=tf.constant(4), steps=tf.constant(0), seed=tf.constant(3),
        sampler=tf.constant("ddpm"), eta=tf.constant(0.0),
    )
    np.testing.assert_array_equal(ddpm.numpy(), recorded["savedmodel_ddpm"])
    prediction = loaded.denoise(x_t=recorded["denoise_x_t"], t=recorded["denoise_t"])
    np.testing.assert_allclose(prediction.numpy(), recorded["denoise_ema"], atol=1e-6)


@pytest.mark.slow  # 14 s: the default suite loads and samples the old files; this trains on
def test_old_keras_file_trains_on_with_one_step_function():
    """Resuming an old model goes through today's step function (keras_ddpm.backend.step_functions)
    and gives the weights Keras' own nested functions give from the same file."""
    import keras

    from keras_ddpm.backend.step_functions import OneFunctionStep

    path = os.path.join(LEGACY, "unconditional.keras")
    ours, theirs = keras_ddpm.load_model(path), keras_ddpm.load_model(path)
    keras.Model.make_train_function(theirs, force=True)  # Keras' two nested functions
    images = np.random.default_rng(0).uniform(-1, 1, (8, *ours.image_shape)).astype("float32")
    for model in (ours, theirs):
        model.fit(tf.data.Dataset.from_tensor_slices(images).batch(4), epochs=1, verbose=0)
    assert isinstance(ours.train_function, OneFunctionStep)
    assert not isinstance(theirs.train_function, OneFunctionStep)
    assert int(ours.optimizer.iterations) == int(theirs.optimizer.iterations) == 4 + 2
    for a, b in zip(ours.weights, theirs.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)
