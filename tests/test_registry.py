"""The sampler registry: one record per sampler, read by generate, export, the CLI and SampleGrid.

A toy sampler registered here (x ← gain · x, once per step, after one network
call that it ignores) must appear everywhere a sampler can be chosen, with its
defaults and its runtime option, without editing any other module.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_ddpm
from keras_ddpm import cli
from keras_ddpm import samplers
from keras_ddpm import utils
from keras_ddpm.samplers.loop import run_steps

SHAPE = (4, 4, 1)


def toy_sampler(denoise_fn, x, schedule, *, seed, steps, timestep_spacing, prediction_type,
                clip, variance, start=0, stop=None, gain=1.0):
    del seed, timestep_spacing, prediction_type, clip, variance
    batch = tf.shape(x)[0]

    def body(k, x):
        denoise_fn(x, tf.fill([batch], schedule.timesteps - 1))  # the one network call
        return x * tf.cast(gain, tf.float32)

    return run_steps(body, x, tf.cast(steps, tf.int32), start, stop)


TOY = samplers.Sampler(
    "toy", toy_sampler, default_steps=3, default_spacing="linspace",
    options=(samplers.SamplerOption("gain", 1.0, runtime=True, bounds=(0, 2), neutral=1.0,
                                    help="the toy's factor per step"),),
    description="a test sampler",
)


@pytest.fixture
def toy():
    samplers.register_sampler(TOY)
    yield TOY
    samplers.unregister_sampler("toy")


def tiny_model():
    x_t = keras.Input(shape=SHAPE)
    t = keras.Input(shape=(), dtype="int32")
    network = keras.Model([x_t, t], keras.layers.Conv2D(1, 1)(x_t))
    return keras_ddpm.DDPM(network, schedule=keras_ddpm.NoiseSchedule(timesteps=10), ema_decay=None)


def test_the_registry_holds_the_built_in_records_and_refuses_clashes(toy):
    assert samplers.sampler_names() == ("ddpm", "ddim", "dpm_solver", "ipndm", "unipc", "toy")
    assert samplers.get_sampler("ddim").steps_for(1000) == 50
    assert samplers.get_sampler("ddpm").steps_for(1000) == 1000
    assert samplers.get_sampler("dpm_solver").steps_for(10) == 10  # capped at T
    with pytest.raises(ValueError, match="'toy' is registered already"):
        samplers.register_sampler(TOY)
    with pytest.raises(ValueError, match="built-in sampler 'ddim' cannot be removed"):
        samplers.unregister_sampler("ddim")
    record, steps, spacing, options = samplers.resolve("toy", 10)
    assert (record, steps, spacing, options) == (TOY, 3, "linspace", {"gain": 1.0})
    with pytest.raises(ValueError, match=r"`gain` only applies to sampler='toy'.*sampler='ddim'"):
        samplers.resolve("ddim", 10, gain=1.5)
    with pytest.raises(ValueError, match=r"gain.*\[0, 2\].*gain=3"):
        samplers.resolve("toy", 10, gain=3)


def test_generate_runs_a_registered_sampler_with_its_defaults_and_option(toy):
    model = tiny_model()
    noise = np.random.default_rng(0).normal(size=(2,) + SHAPE).astype("float32")
    out = model.generate(2, sampler="toy", initial_noise=noise, clip=False, gain=1.5, verbose=0)
    np.testing.assert_allclose(out, noise * 1.5**3, rtol=1e-6)  # default_steps = 3
    out = model.generate(2, sampler="toy", steps=2, initial_noise=noise, clip=False, verbose=0)
    np.testing.assert_allclose(out, noise, rtol=1e-6)  # gain defaults to 1
    with pytest.raises(ValueError, match="gain.*only applies to sampler='toy'"):
        model.generate(2, sampler="ddpm", gain=1.5)


def test_the_savedmodel_switch_case_and_inputs_include_it(toy, tmp_path):
    model = tiny_model()
    loaded = tf.saved_model.load(model.export(str(tmp_path / "sm"), verbose=False))
    signature = loaded.signatures["generate_with_sampler"]
    assert {"sampler", "eta", "gain"} <= set(signature.structured_input_signature[1])
    images = loaded.generate_with_sampler(
        num_images=tf.constant(2), steps=tf.constant(0), seed=tf.constant(5),
        sampler=tf.constant("toy"), eta=tf.constant(0.0), gain=tf.constant(0.5),
    )
    expected = model.generate(2, sampler="toy", seed=5, gain=0.5, jit_compile=False, verbose=0)
    np.testing.assert_array_equal(images.numpy(), utils.to_uint8(expected))
    with pytest.raises(tf.errors.InvalidArgumentError, match="gain only applies to sampler toy"):
        loaded.generate_with_sampler(
            num_images=tf.constant(2), steps=tf.constant(0), seed=tf.constant(5),
            sampler=tf.constant("ddim"), eta=tf.constant(0.0), gain=tf.constant(0.5),
        )


def test_the_command_line_offers_it(toy, capsys):
    parser = cli.build_parser()
    args = parser.parse_args(["sample", "run", "--sampler", "toy", "--gain", "0.5"])
    assert (args.sampler, args.gain) == ("toy", 0.5)
    with pytest.raises(SystemExit):
        parser.parse_args(["sample", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "toy (a test sampler; default 3 steps)" in help_text and "--gain" in help_text
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["sample", "run", "--sampler", "nope"])
    assert info.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_sample_grid_accepts_it_and_refuses_unknown_names(toy, tmp_path):
    grids = keras_ddpm.callbacks.SampleGrid(tmp_path, num_images=2, sampler="toy", gain=0.5)
    grids.set_model(tiny_model())
    path = grids.write_grid(1)
    assert path.endswith("epoch_0001.png")
    with pytest.raises(ValueError, match=r"Unknown sampler='euler'.*'toy'"):
        keras_ddpm.callbacks.SampleGrid(tmp_path, sampler="euler")


def test_export_and_its_command_take_any_registered_option(toy, tmp_path, capsys):
    everywhere = samplers.resolve_everywhere("toy", 10, gain=0.5, order=3)
    assert everywhere["toy"] == {"gain": 0.5}
    assert everywhere["dpm_solver"] == {"order": 3}  # a trace-time option serves every taker
    assert everywhere["ddim"] == {"eta": 0.0}
    with pytest.raises(ValueError, match="`gain` only applies to sampler='toy'"):
        samplers.resolve_everywhere("ddim", 10, gain=0.5)
    with pytest.raises(TypeError, match="Unknown sampler option shift=1"):
        samplers.resolve_everywhere("toy", 10, shift=1)
    model = tiny_model()
    loaded = tf.saved_model.load(
        model.export(str(tmp_path / "sm"), sampler="toy", gain=0.5, verbose=False)
    )
    images = loaded.generate(num_images=tf.constant(2), steps=tf.constant(0), seed=tf.constant(3))
    expected = model.generate(2, sampler="toy", seed=3, gain=0.5, jit_compile=False, verbose=0)
    np.testing.assert_array_equal(images.numpy(), utils.to_uint8(expected))
    assert np.abs(expected).max() > 0  # the gain was applied to real noise, not to zeros
    parser = cli.build_parser()
    args = parser.parse_args(["export", "m.keras", str(tmp_path / "out"), "--sampler", "ddpm",
                              "--gain", "0.5"])
    assert cli.main(["export", "m.keras", str(tmp_path / "out"), "--sampler", "ddpm",
                     "--gain", "0.5"]) == 2
    assert "`gain` only applies to sampler='toy'" in capsys.readouterr().err
    assert args.gain == 0.5


def test_the_sampler_functions_default_to_their_records():
    ddim = samplers.get_sampler("ddim")
    schedule = keras_ddpm.NoiseSchedule(timesteps=10)
    noise = tf.random.stateless_normal((2,) + SHAPE, seed=(1, 2))
    calls = []

    def denoise(x, t):
        calls.append(t)
        return tf.zeros_like(x)

    try:
        samplers.register_sampler(
            samplers.Sampler(ddim.name, ddim.run, default_steps=4, options=ddim.options,
                             inverse=ddim.inverse, step=ddim.step),
            overwrite=True,
        )
        default = samplers.ddim_sample(denoise, noise, schedule, tf.constant([0, 0]))
        four = samplers.ddim_sample(denoise, noise, schedule, tf.constant([0, 0]), steps=4)
        np.testing.assert_array_equal(default.numpy(), four.numpy())
        assert len(calls) == 8  # eager: one call a step, 4 steps twice
    finally:
        samplers.register_sampler(ddim, overwrite=True)
    assert samplers.get_sampler("ddim").steps_for(1000) == 50
