"""keras_ddpm.rng: counter-based draws, the same under XLA, plain TensorFlow and any chunking."""

import numpy as np
import pytest
import tensorflow as tf

import keras_ddpm
from keras_ddpm import rng
from keras_ddpm import sampling_inputs
from keras_ddpm.backend import tensorflow_room
from networks import tiny_unet


def words(*values):
    """uint32 words (as the Random123 files spell them) as the int32 bits the module uses."""
    return np.array(values, np.uint32).view(np.int32)


# Threefry-2x32-20 known answers of the Random123 library: (key, counter) -> output words.
KNOWN_ANSWERS = [
    ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
]


@pytest.mark.parametrize("key, counter, expected", KNOWN_ANSWERS)
def test_threefry_matches_the_reference_implementation(key, counter, expected):
    key, counter = words(*key), words(*counter)
    for run in (lambda f: f(), tf.function(lambda f: f()), tf.function(lambda f: f(), jit_compile=True)):
        x0, x1 = run(lambda: rng.threefry2x32(
            (tf.constant(key[0]), tf.constant(key[1])), (tf.constant(counter[0]), tf.constant(counter[1]))
        ))
        np.testing.assert_array_equal([int(x0), int(x1)], words(*expected))
    # The cipher's own ops, as JAX and PyTorch run them (TensorFlow calls their one trace).
    x0, x1 = rng._threefry2x32(*(tf.constant(w) for w in (*key, *counter)))
    np.testing.assert_array_equal([int(x0), int(x1)], words(*expected))


def test_every_graph_that_draws_calls_one_trace_of_the_cipher():
    cipher = tensorflow_room.traced_once(rng._threefry2x32)
    keys = rng.image_keys(rng.seed_key(3), 0, 4)

    def draw(keys):
        return rng.normal(keys, (6, 5, 3))

    first = tf.function(draw)(keys)
    traces = cipher.experimental_get_tracing_count()
    graph = tf.function(draw).get_concrete_function(keys).graph  # a new graph, same shapes
    assert cipher.experimental_get_tracing_count() == traces  # nothing traced again
    types = [op.type for op in graph.get_operations()]
    assert "BitwiseXor" not in types and types.count("PartitionedCall") == 1, types
    np.testing.assert_array_equal(tf.function(draw)(keys), first)


def draws(keys):
    return (
        rng.normal(keys, (6, 5, 3)), rng.uniform(keys, (7,)), rng.randint(keys, 1000, (4,)),
        rng.fold_in(keys, 9),
    )


def test_draws_agree_eagerly_in_a_graph_and_under_xla():
    keys = rng.image_keys(rng.seed_key(12345), 0, 64)
    eager = [v.numpy() for v in draws(keys)]
    for jit_compile in (False, True):
        compiled = [v.numpy() for v in tf.function(draws, jit_compile=jit_compile)(keys)]
        np.testing.assert_allclose(compiled[0], eager[0], atol=2e-6)  # log and cos: a few ulps
        np.testing.assert_allclose(compiled[1], eager[1], atol=1e-7)
        np.testing.assert_array_equal(compiled[2], eager[2])
        np.testing.assert_array_equal(compiled[3], eager[3])


def test_an_image_draws_the_same_numbers_in_any_chunk():
    key = rng.seed_key(7)
    whole = rng.normal(rng.image_keys(key, 0, 10), (4, 4, 2)).numpy()
    parts = [rng.normal(rng.image_keys(key, b, e - b), (4, 4, 2)).numpy() for b, e in ((0, 3), (3, 4), (4, 10))]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    noise, loop = sampling_inputs.image_seeds(7, 2, 5)
    all_noise, all_loop = sampling_inputs.image_seeds(7, 0, 5)
    np.testing.assert_array_equal(noise.numpy(), all_noise.numpy()[2:])
    np.testing.assert_array_equal(loop.numpy(), all_loop.numpy()[2:])
    assert not np.array_equal(all_noise.numpy(), all_loop.numpy())


def test_seed_keys_of_python_ints_and_int64_tensors_agree():
    for seed in (0, 3, -1, 2**31 - 1, 2**31, 2**40 + 3, -(2**40)):
        np.testing.assert_array_equal(
            rng.seed_key(seed).numpy(), rng.seed_key(tf.constant(seed, tf.int64)).numpy()
        )
    assert not np.array_equal(rng.seed_key(1).numpy(), rng.seed_key(2**32 + 1).numpy())


def test_the_distributions_are_the_named_ones():
    keys = rng.image_keys(rng.seed_key(0), 0, 200)
    z = rng.normal(keys, (25, 20)).numpy().ravel()  # 100,000 normals
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01
    assert abs(np.mean(z**4) - 3.0) < 0.06  # Gaussian kurtosis
    assert np.abs(z).max() < 5.9  # Box–Muller from 24-bit uniforms
    # Images are independent: neighbouring images' noise uncorrelated.
    per_image = rng.normal(keys, (500,)).numpy()
    assert abs(np.corrcoef(per_image[:-1].ravel(), per_image[1:].ravel())[0, 1]) < 0.01
    u = rng.uniform(keys, (500,)).numpy()
    assert 0.0 < u.min() and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.005
    counts = np.bincount(rng.randint(keys, 10, (500,)).numpy().ravel(), minlength=10)
    chi2 = np.sum((counts - counts.mean()) ** 2 / counts.mean())
    assert counts.size == 10 and chi2 < 30  # 9 degrees of freedom: p ≈ 4e-4


def test_training_draws_agree_with_and_without_xla():
    model = keras_ddpm.DDPM(tiny_unet(), schedule=keras_ddpm.NoiseSchedule("linear", 50), seed=4)
    images = tf.zeros((8, 8, 8, 1))
    state = model.seed_generator.state.numpy()
    t, noise = model.draw_training_noise(images)
    model.seed_generator.state.assign(state)
    t_xla, noise_xla = tf.function(model.draw_training_noise, jit_compile=True)(images)
    np.testing.assert_array_equal(t.numpy(), t_xla.numpy())
    np.testing.assert_allclose(noise.numpy(), noise_xla.numpy(), atol=2e-6)
    assert len(set(t.numpy().tolist())) > 4 and abs(float(np.std(noise))) > 0.5


@pytest.fixture(scope="module")
def model():
    return keras_ddpm.DDPM(tiny_unet(), schedule=keras_ddpm.NoiseSchedule("linear", 20), seed=0)


# RePaint's loop in every mode (11-15 s of compiling) with the slow tests; in the default suite,
# `tests/test_inpaint.py` checks its seeds and chunks in one mode.
@pytest.mark.parametrize(
    "method", ["generate", "sdedit", pytest.param("inpaint", marks=pytest.mark.slow)]
)
def test_stochastic_sampling_is_the_same_in_every_mode_and_chunking(model, method):
    images = np.random.default_rng(0).uniform(-1, 1, (5, 8, 8, 1)).astype("float32")
    mask = np.zeros((8, 8, 1), "float32")
    mask[:, :4] = 1.0
    calls = {
        "generate": lambda **o: model.generate(5, sampler="ddpm", seed=11, verbose=0, **o),
        "sdedit": lambda **o: model.generate(
            5, sampler="ddim", eta=1.0, initial_images=images, strength=0.6, seed=11, verbose=0, **o
        ),
        "inpaint": lambda **o: model.inpaint(
            images, mask, sampler="ddpm", steps=10, resample_steps=2, jump_length=3, seed=11,
            verbose=0, **o,
        ),
    }
    reference = calls[method](jit_compile=False)
    for options in ({}, {"jit_compile": True}, {"batch_size": 2}, {"batch_size": 1, "jit_compile": True}):
        np.testing.assert_allclose(calls[method](**options), reference, atol=1e-5, err_msg=str(options))
    other_seed = {"generate": lambda: model.generate(5, sampler="ddpm", seed=12, verbose=0)}
    if method in other_seed:
        assert np.abs(other_seed[method]() - reference).max() > 0.1
