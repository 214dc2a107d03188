"""DDPM: training mechanics, inputs, EMA, sampling and serialization."""

import contextlib
import math
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_ddpm
from keras_ddpm import DDPM
from keras_ddpm import NoiseSchedule
from keras_ddpm import samplers
from networks import conv_network
from networks import tiny_unet
from oracles import ancestral_output_moments
from oracles import gaussian_oracle
from oracles import gaussian_oracle_model

pytestmark = pytest.mark.backends

SHAPE = (4, 4, 1)


def conv_denoiser(image_shape=SHAPE):
    return conv_network(image_shape, 1000, output_dtype="float32")


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
    model = gaussian_oracle_model(schedule, (8, 8, 1), mean, std)
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
    model = gaussian_oracle_model(schedule, (4, 4, 1), 0.5, 0.6)
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
    assert len(model.reverse_process().loops) == 2  # (clip, no clip)


def test_a_seed_generator_gives_its_sequence_and_set_random_seed_repeats_unseeded_runs():
    model = gaussian_oracle_model(NoiseSchedule("linear", timesteps=20), (4, 4, 1), 0.5, 0.6)

    def run(seed, num=3):
        return model.generate(num, sampler="ddpm", seed=seed, verbose=0)

    # SeedGenerator(s)'s k-th run is seeded s + k·2³²; a new generator repeats the sequence.
    generator = keras.random.SeedGenerator(3)
    first, second = run(generator), run(generator)
    np.testing.assert_array_equal(first, run(3))
    np.testing.assert_array_equal(second, run(3 + 2**32))
    assert not np.allclose(first, second)
    again = keras.random.SeedGenerator(3)
    np.testing.assert_array_equal(run(again), first)
    np.testing.assert_array_equal(run(again), second)
    # An edit takes one seed of the sequence too.
    frames = model.interpolate(num=3, sampler="ddim", steps=4, seed=keras.random.SeedGenerator(3), verbose=0)
    np.testing.assert_array_equal(frames, model.interpolate(num=3, sampler="ddim", steps=4, seed=3, verbose=0))
    # Unseeded runs follow Python's `random`, which set_random_seed seeds.
    keras.utils.set_random_seed(11)
    unseeded = run(None)
    assert not np.allclose(run(None), unseeded)
    keras.utils.set_random_seed(11)
    np.testing.assert_array_equal(run(None), unseeded)
    with pytest.raises(TypeError, match=r"an int, a `keras.random.SeedGenerator` or None\. Received: seed='3'"):
        run("3")


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


@pytest.mark.tensorflow_only  # tf.function traces; tests/test_backends.py counts JAX's
@pytest.mark.parametrize("sampler", ["ddim", "dpm_solver"])
def test_step_count_and_eta_do_not_retrace(sampler):
    mean, std = 0.2, 0.5
    schedule = NoiseSchedule("linear", timesteps=1000)
    model = gaussian_oracle_model(schedule, (4, 4, 1), mean, std)
    kwargs = {"eta": 0.5} if sampler == "ddim" else {"order": 3}
    few = model.generate(8, sampler=sampler, steps=10, seed=0, verbose=0, **kwargs)
    many = model.generate(8, sampler=sampler, steps=20, seed=0, verbose=0, **kwargs)
    if sampler == "ddim":
        model.generate(8, sampler=sampler, steps=15, eta=0.0, seed=0, verbose=0)
    assert not np.allclose(few, many)
    assert len(model.reverse_process().loops) == 1
    (run,) = model.reverse_process().loops.values()
    assert run.experimental_get_tracing_count() == 1


@pytest.mark.parametrize(
    "sampler, prediction_type, jit_compile",
    [
        ("ddim", "epsilon", True), ("dpm_solver", "v", True), ("dpm_solver", "x0", False),
        ("ipndm", "epsilon", True), ("ipndm", "x0", False), ("unipc", "v", True),
        ("ddpm", "v", True),
    ],
)
def test_fast_samplers_in_generate_reach_the_exact_ode_solution(sampler, prediction_type, jit_compile):
    mean, std = 0.2, 0.5
    schedule = NoiseSchedule("linear", timesteps=1000)
    oracle = gaussian_oracle(schedule, (4, 4, 1), mean, std, prediction_type)
    model = DDPM(oracle, schedule=schedule, ema_decay=None, prediction_type=prediction_type)
    # x_T at the first (trailing/logsnr: last) index is on the ODE path of z.
    z = np.random.default_rng(0).standard_normal((64, 4, 4, 1))
    ab = schedule.alphas_cumprod[-1]
    x_t = (np.sqrt(ab) * mean + np.sqrt(ab * std**2 + 1 - ab) * z).astype("float32")
    images = model.generate(
        64, sampler=sampler, steps=50, initial_noise=x_t, clip=False, verbose=0,
        jit_compile=jit_compile,
    )
    if sampler == "ddpm":  # stochastic: only the distribution is right
        from oracles import respaced_output_moments

        sequence = np.asarray(samplers.timestep_sequence(schedule, 50, "trailing"))[:50]
        exact_mean, exact_std = respaced_output_moments(schedule, mean, std, sequence)
        images = model.generate(512, sampler=sampler, steps=50, seed=0, clip=False, verbose=0)
        assert abs(images.mean() - exact_mean) < 4 * exact_std / math.sqrt(images.size)
        assert abs(images.std() - exact_std) < 4 * exact_std / math.sqrt(2 * images.size)
    else:
        # Max errors measured at 50 steps: DDIM ≈ 0.1 (first order), DPM-Solver++ ≈ 4e-3,
        # iPNDM (order 3, "trailing") ≈ 3e-3, UniPC (order 2, "logsnr") ≈ 7e-4.
        atol = 0.15 if sampler == "ddim" else 8e-3
        np.testing.assert_allclose(images, mean + std * z, atol=atol)


def test_generate_with_ddim_eta_matches_its_exact_moments():
    from oracles import respaced_output_moments

    mean, std = 0.3, 0.05
    schedule = NoiseSchedule("cosine", timesteps=1000)
    model = gaussian_oracle_model(schedule, (8, 8, 1), mean, std)
    images = model.generate(1024, sampler="ddim", steps=30, eta=1.0, seed=2, clip=False, verbose=0)
    sequence = np.asarray(samplers.timestep_sequence(schedule, 30, "trailing"))[:30]
    exact_mean, exact_std = respaced_output_moments(schedule, mean, std, sequence, eta=1.0)
    assert abs(images.std() - exact_std) < 4 * exact_std / math.sqrt(2 * images.size)
    assert abs(images.mean() - exact_mean) < 4 * exact_std / math.sqrt(images.size)


# ----------------------------------------------------------------------------
# Training mechanics
# ----------------------------------------------------------------------------
def test_train_step_loss_is_the_noise_mse_and_weights_move():
    model = tiny_model(ema_decay=None)
    images = random_images()
    before = [np.asarray(w) for w in model.network.trainable_weights]
    history = model.fit(images, batch_size=32, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])
    after = [np.asarray(w) for w in model.network.trainable_weights]
    assert any(not np.allclose(a, b) for a, b in zip(before, after))


def test_a_frozen_layer_stays_and_a_frozen_network_trains_nothing_with_a_warning():
    """As Keras' own steps do, on every backend (PyTorch's autograd refused an empty list)."""
    model = tiny_model(ema_decay=0.5)
    images = random_images()
    layer = next(x for x in model.network.layers if isinstance(x, keras.layers.Conv2D))
    layer.trainable = False
    frozen = [np.asarray(w) for w in layer.weights]
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(images, batch_size=32, epochs=1, verbose=0)
    for before, after in zip(frozen, layer.weights):
        np.testing.assert_array_equal(np.asarray(after), before)
    assert model.network.trainable_weights and frozen

    model.network.trainable = False
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = [np.asarray(w) for w in model.network.weights]
    with pytest.warns(UserWarning, match="no trainable weights"):
        history = model.fit(images, batch_size=32, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    for old, new in zip(before, model.network.weights):
        np.testing.assert_array_equal(np.asarray(new), old)


def test_diffusion_loss_formula():
    """diffusion_loss equals the MSE recomputed from the same t and ε."""
    model = tiny_model(ema_decay=None)
    images = keras.ops.convert_to_tensor(random_images(8))
    state = np.asarray(model.seed_generator.state)
    loss = float(keras.ops.convert_to_numpy(model.diffusion_loss(images, training=False)))
    model.seed_generator.state.assign(state)
    t, noise = model.draw_training_noise(images)
    x_t = model.schedule.add_noise(images, noise, t)
    prediction = keras.ops.convert_to_numpy(model.network([x_t, t]))
    expected = np.mean((prediction - keras.ops.convert_to_numpy(noise)) ** 2)
    assert loss == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v", "x0"])
def test_min_snr_loss_formula(prediction_type):
    """diffusion_loss with min_snr is the per-example weighted MSE of the target."""
    model = tiny_model(ema_decay=None, prediction_type=prediction_type, loss_weighting="min_snr", min_snr_gamma=3.0)
    images = keras.ops.convert_to_tensor(random_images(8))
    state = np.asarray(model.seed_generator.state)
    loss = float(keras.ops.convert_to_numpy(model.diffusion_loss(images, training=False)))
    model.seed_generator.state.assign(state)
    t, noise = model.draw_training_noise(images)
    noise = np.asarray(noise)
    x_t = model.schedule.add_noise(images, noise, t)
    ac = model.schedule.alphas_cumprod[np.asarray(t)]
    a, sigma = np.sqrt(ac).reshape(8, 1, 1, 1), np.sqrt(1 - ac).reshape(8, 1, 1, 1)
    x0 = np.asarray(images)
    target = {"epsilon": noise, "x0": x0, "v": a * noise - sigma * x0}[prediction_type]
    snr = ac / (1 - ac)
    weight = {
        "epsilon": np.minimum(snr, 3.0) / snr,
        "x0": np.minimum(snr, 3.0),
        "v": np.minimum(snr, 3.0) / (snr + 1),
    }[prediction_type]
    prediction = keras.ops.convert_to_numpy(model.network([x_t, t]))
    per_example = np.mean((prediction - target) ** 2, axis=(1, 2, 3))
    assert loss == pytest.approx(np.mean(weight * per_example), rel=1e-4)


def test_zero_terminal_snr_needs_v_or_x0():
    schedule = NoiseSchedule("linear", timesteps=1000, rescale_zero_terminal_snr=True)
    with pytest.raises(ValueError, match=r"epsilon.*zero-terminal-SNR.*'v' or 'x0'"):
        DDPM(conv_denoiser(), schedule=schedule)
    model = DDPM(conv_denoiser(), schedule=schedule, prediction_type="v", seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(random_images(16), batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    for sampler in samplers.SAMPLERS:
        images = model.generate(2, sampler=sampler, steps=5, seed=0, verbose=0)
        assert np.isfinite(images).all()


def test_ema_update_follows_its_formula():
    model = tiny_model(ema_decay=0.9, ema_warmup=False)
    start = [np.asarray(w) for w in model.network.weights]
    np.testing.assert_array_equal(np.asarray(model.ema_weights[0]), start[0])
    model.fit(random_images(16), batch_size=16, epochs=1, verbose=0)
    for w0, w, ema in zip(start, model.network.weights, model.ema_weights):
        np.testing.assert_allclose(np.asarray(ema), 0.9 * w0 + 0.1 * np.asarray(w), rtol=1e-5, atol=1e-7)
    assert not model.ema_network.trainable
    assert len(model.trainable_weights) == len(model.network.trainable_weights)


def test_ema_warmup_decay():
    model = tiny_model(ema_decay=0.999)
    start = [np.asarray(w) for w in model.network.weights]
    model.fit(random_images(16), batch_size=16, epochs=1, verbose=0)
    # After n = 1 applied step the warm-up decay is min(0.999, 2 / 11).
    d = 2 / 11
    for w0, w, ema in zip(start, model.network.weights, model.ema_weights):
        np.testing.assert_allclose(np.asarray(ema), d * w0 + (1 - d) * np.asarray(w), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_fit_evaluate_and_generate_with_and_without_xla(jit_compile):
    model = DDPM(conv_denoiser(), schedule=NoiseSchedule("linear", timesteps=20), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit_compile)
    data = tf.data.Dataset.from_tensor_slices(random_images(32)).batch(8)
    history = model.fit(data, epochs=2, verbose=0, validation_data=data)
    assert set(history.history) == {"loss", "skipped_steps", "val_loss"}
    assert history.history["skipped_steps"] == [0.0, 0.0]
    assert np.isfinite(history.history["val_loss"]).all()
    result = model.evaluate(data, verbose=0, return_dict=True)
    assert set(result) == {"loss"} and np.isfinite(result["loss"])
    images = model.generate(3, seed=0, verbose=0)
    assert images.shape == (3,) + SHAPE and np.isfinite(images).all()


@pytest.mark.parametrize("prediction_type", ["v", "x0"])
def test_fit_on_digits_loss_falls_for_v_and_x0(prediction_type):
    keras.utils.set_random_seed(0)
    network = tiny_unet(channel_multipliers=(1, 2))
    model = DDPM(
        network, schedule=NoiseSchedule("linear", timesteps=1000), ema_decay=0.99, seed=0,
        prediction_type=prediction_type, loss_weighting="min_snr",
    )
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    data = keras_ddpm.data.load_digits(batch_size=64, seed=0)
    losses = model.fit(data, epochs=3, verbose=0).history["loss"]
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.8 * losses[0]  # measured: 0.69 (v), 0.33 (x0)


def test_fit_on_digits_loss_falls():
    keras.utils.set_random_seed(0)
    network = tiny_unet(channel_multipliers=(1, 2))
    model = DDPM(network, schedule=NoiseSchedule("linear", timesteps=1000), ema_decay=0.99, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    data = keras_ddpm.data.load_digits(batch_size=64, seed=0)
    losses = model.fit(data, epochs=4, verbose=0).history["loss"]
    # The zero-initialised output predicts ε̂ = 0, a loss of E[ε²] = 1, at the start.
    assert losses[0] < 0.9
    assert losses[-1] < 0.5 * losses[0]  # measured: 0.29
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
        tf.data.Dataset.from_tensor_slices({"image": uint8, "label": labels}).batch(8),
    ):
        history = model.fit(data, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
    model.fit(uint8, batch_size=8, epochs=1, verbose=0)
    # (images, labels) batches would have their labels ignored by this unconditional model.
    with pytest.raises(ValueError, match="unconditional"):
        model.fit(tf.data.Dataset.from_tensor_slices((uint8, labels)).batch(8), verbose=0)


def _batches(batches, form):
    """A Python generator of `batches` as plain arrays, 1-tuples or TFDS-style dicts."""
    for batch in batches:
        yield {"plain": batch, "tuple": (batch,), "dict": {"image": batch}}[form]


def test_a_generator_of_any_accepted_batch_fits_and_evaluates():
    """Keras reads only tuples from a generator; DDPM takes images alone and dicts too, and
    trains on them exactly as on the same batches in tuples."""
    batches = np.split(random_images(16), 4)
    uint8 = np.random.default_rng(1).integers(0, 256, (8,) + SHAPE, dtype=np.uint8)
    initial = tiny_model().network.get_weights()
    trained = {}
    for form in ("tuple", "plain", "dict"):
        model = tiny_model()  # its noise seeded alike
        model.network.set_weights(initial)
        history = model.fit(
            _batches(batches, form), epochs=1, verbose=0,
            validation_data=_batches(batches[:2], form),
        ).history
        assert np.isfinite(history["loss"][0]) and np.isfinite(history["val_loss"][0])
        trained[form] = model.network.get_weights()
    for form in ("plain", "dict"):
        for ours, expected in zip(trained[form], trained["tuple"]):
            np.testing.assert_array_equal(ours, expected)
    assert any(not np.array_equal(a, b) for a, b in zip(trained["tuple"], initial))
    result = model.evaluate(_batches(np.split(uint8, 2), "plain"), verbose=0, return_dict=True)
    assert np.isfinite(result["loss"])
    # A batch the model cannot read is still a one-line error naming what it received.
    with pytest.raises(ValueError, match=r"\(3, 3, 1\).*expects \(4, 4, 1\)"):
        model.fit(_batches([random_images(4, (3, 3, 1))], "plain"), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"^A batch of floating-point training images .*"):
        model.fit(_batches([random_images(4) * 2], "plain"), epochs=1, verbose=0)


def _loader(batches, form):
    """A PyTorch `DataLoader` (in order) of the same batches: its dataset gives single images,
    1-lists (a `TensorDataset`) or TFDS-style dicts, and the default collate stacks them."""
    import torch

    images = torch.from_numpy(np.concatenate(batches))
    if form == "tuple":
        dataset = torch.utils.data.TensorDataset(images)
    else:
        dataset = [image if form == "plain" else {"image": image} for image in images]
    return torch.utils.data.DataLoader(dataset, batch_size=len(batches[0]))


def test_a_torch_data_loader_of_any_accepted_batch_fits_on_every_backend():
    """Keras' DataLoader adapter on TensorFlow and JAX makes a tuple of each batch, splitting
    images alone along the batch axis; DDPM trains on images alone and dicts as on tuples."""
    batches = np.split(random_images(16), 4)
    initial = tiny_model().network.get_weights()
    trained = {}
    for form in ("tuple", "plain", "dict"):
        model = tiny_model()
        model.network.set_weights(initial)
        loader = _loader(batches, form)
        collate = loader.collate_fn
        history = model.fit(
            loader, epochs=1, verbose=0, validation_data=_loader(batches[:2], form)
        ).history
        assert np.isfinite(history["loss"][0]) and np.isfinite(history["val_loss"][0])
        assert loader.collate_fn is collate  # the caller's loader is left as it was
        trained[form] = model.network.get_weights()
    # The same batches as a generator of tuples train to the same weights.
    model = tiny_model()
    model.network.set_weights(initial)
    model.fit(_batches(batches, "tuple"), epochs=1, verbose=0)
    for form in ("tuple", "plain", "dict"):
        for ours, expected in zip(trained[form], model.network.get_weights()):
            np.testing.assert_array_equal(ours, expected)
    assert np.isfinite(model.evaluate(_loader(batches, "plain"), verbose=0))


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
    # In a dataset the values are only seen inside the step: still a one-line ValueError.
    with pytest.raises(ValueError, match=r"^A batch of floating-point training images .* \[-1, 1\]"):
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
        ({"loss_weighting": "snr"}, ValueError, r"loss_weighting='snr'.*'simple', 'min_snr'"),
        ({"min_snr_gamma": 0}, ValueError, r"min_snr_gamma=0"),
    ],
)
def test_bad_constructor_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        DDPM(conv_denoiser(), **kwargs)



def test_compile_refuses_a_keras_loss_or_metric_and_fit_asks_for_compile():
    """A loss or metric failed inside `call` on JAX and PyTorch and went unused on TensorFlow;
    an uncompiled `fit` was an AttributeError on JAX. Each is now one line on every backend."""
    model = DDPM(conv_denoiser(), schedule=NoiseSchedule("linear", timesteps=20), seed=1)
    images = random_images(8)
    before = [np.array(w) for w in model.network.weights]
    for method in (model.fit, model.evaluate):
        with pytest.raises(ValueError, match=r"Call model.compile\(optimizer=...\) before"):
            method(images, verbose=0)
    for args, kwargs, message in [
        (("adam", "mse"), {}, r"no `loss` \(received 'mse'\).*prediction_type"),
        ((), {"optimizer": "adam", "metrics": ["mae"]}, r"no `metrics` \(received \['mae'\]\)"),
        ((), {"optimizer": "adam", "loss_weights": [2.0]}, r"no `loss_weights`"),
    ]:
        with pytest.raises(ValueError, match=message) as caught:
            model.compile(*args, **kwargs)
        assert "\n" not in str(caught.value)
    for before_weight, weight in zip(before, model.network.weights):
        np.testing.assert_array_equal(np.array(weight), before_weight)
    model.compile(optimizer="adam", loss=None, metrics=[])  # Keras' empty defaults pass
    assert np.isfinite(model.fit(images, batch_size=4, verbose=0).history["loss"][0])

def test_jit_compile_on_pytorch_warns_once_of_its_compile_time():
    """Keras' `torch.compile` of the step takes minutes (README, "Backends"); XLA's does not."""
    model = DDPM(conv_network(), NoiseSchedule("linear", 20), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    with pytest.warns() if keras.backend.backend() == "torch" else _no_warning() as caught:
        model.make_train_function()
        model.make_train_function()  # the function is built once
        model.make_test_function()
    if keras.backend.backend() == "torch":
        assert [str(w.message) for w in caught].count(
            keras_ddpm.backend.room().SLOW_COMPILE
        ) == 1


@contextlib.contextmanager
def _no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


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
    bad = [
        ({"sampler": "plms"}, r"sampler='plms'.*'ddpm', 'ddim', 'dpm_solver'"),
        ({"sampler": "ddim", "timestep_spacing": "edm"}, r"timestep_spacing='edm'.*'logsnr'"),
        ({"sampler": "ddim", "steps": 0}, r"\[1, 1000\].*steps=0"),
        ({"sampler": "ddim", "steps": 1001}, r"\[1, 1000\].*steps=1001"),
        ({"sampler": "ddim", "eta": 2.0}, r"\[0, 1\].*eta=2.0"),
        ({"sampler": "dpm_solver", "eta": 0.3}, r"eta.*only applies to sampler='ddim'"),
        ({"sampler": "dpm_solver", "order": 4}, r"\[1, 2, 3\].*order=4"),
        ({"sampler": "ddim", "order": 2}, r"order.*only applies to the samplers \['dpm_solver', 'ipndm', 'unipc'\]"),
    ]
    for kwargs, message in bad:
        with pytest.raises(ValueError, match=message):
            model.generate(2, **kwargs)


# ----------------------------------------------------------------------------
# Serialization
# ----------------------------------------------------------------------------
def test_config_round_trip_and_keras_file(tmp_path):
    model = tiny_model(
        ema_decay=0.9, variance="fixed_large", prediction_type="v",
        loss_weighting="min_snr", min_snr_gamma=3.0,
        schedule=NoiseSchedule("linear", timesteps=1000, rescale_zero_terminal_snr=True),
    )
    model.fit(random_images(16), batch_size=8, epochs=1, verbose=0)
    config = model.get_config()
    clone = DDPM.from_config(config)
    assert clone.schedule == model.schedule and clone.variance == "fixed_large"
    assert clone.schedule.rescale_zero_terminal_snr and clone.prediction_type == "v"
    assert clone.loss_weighting == "min_snr" and clone.min_snr_gamma == 3.0
    assert clone.ema_decay == 0.9 and clone.seed == 1
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored, DDPM)
    for a, b in zip(model.ema_weights, restored.ema_weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(
        restored.generate(4, seed=7, verbose=0), model.generate(4, seed=7, verbose=0)
    )
    assert restored.loss_weighting == "min_snr" and restored.schedule == model.schedule
    # Optimizer state and the training-noise RNG come back too: training goes on identically.
    assert int(restored.optimizer.iterations) == int(model.optimizer.iterations) == 2
    more = random_images(16, seed=1)
    model.fit(more, batch_size=8, epochs=1, verbose=0, shuffle=False)
    restored.fit(more, batch_size=8, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.weights, restored.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
