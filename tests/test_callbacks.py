"""SampleGrid: files follow Keras' epochs, frames share their noise, TensorBoard gets images."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import keras_ddpm
from keras_ddpm.backend import hardware
from keras_ddpm import samplers
from keras_ddpm.callbacks import SampleGrid
from networks import tiny_unet


@pytest.fixture(scope="module")
def trained_model():
    """One tiny model for the whole file: its training step is traced once."""
    schedule = keras_ddpm.NoiseSchedule("linear", timesteps=20, beta_start=1e-3, beta_end=0.2)
    network = tiny_unet()
    model = keras_ddpm.DDPM(network, schedule=schedule, ema_decay=0.9, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


def small_data(n=32):
    images, _ = keras_ddpm.data.load_digits_arrays()
    return keras_ddpm.data.from_array(images[:n], batch_size=16, shuffle=False)


def test_grid_files_follow_keras_epochs_and_resume(trained_model, tmp_path):
    model = trained_model
    grids = SampleGrid(
        tmp_path / "grids",
        every_n_epochs=2,
        num_images=4,
        seed=3,
        tensorboard_dir=tmp_path / "tb",
        jit_compile=False,
    )
    model.fit(small_data(), epochs=3, callbacks=[grids], verbose=0)
    # Epoch 2 by the schedule, epoch 3 because training ended there.
    assert sorted(os.listdir(tmp_path / "grids")) == ["epoch_0002.png", "epoch_0003.png"]
    assert grids.last_path == os.path.join(tmp_path / "grids", "epoch_0003.png")
    model.fit(small_data(), epochs=6, initial_epoch=3, callbacks=[grids], verbose=0)
    assert sorted(os.listdir(tmp_path / "grids")) == [
        "epoch_0002.png",
        "epoch_0003.png",
        "epoch_0004.png",
        "epoch_0006.png",
    ]
    # The last grid is not written twice when the schedule already wrote it.
    assert grids._written_epoch == 6
    assert tensorboard_image_steps(tmp_path / "tb") == [2, 3, 4, 6]


def tensorboard_image_steps(folder):
    steps = []
    for name in sorted(os.listdir(folder)):
        for record in tf.data.TFRecordDataset(os.path.join(folder, name)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            steps += [event.step for value in event.summary.value if value.tag == "samples"]
    return steps


@pytest.mark.parametrize(
    "grid_kwargs, generate_kwargs",
    [
        # By default DPM-Solver++ in its own default steps draws the grids.
        ({}, {"sampler": "dpm_solver"}),
        # sampler=None passes no sampler: generate's own default (ancestral, T steps).
        ({"sampler": None}, {}),
        ({"sampler": "ddim", "steps": 5}, {"sampler": "ddim", "steps": 5}),
    ],
)
def test_grid_uses_ema_weights_and_the_same_noise_every_time(
    trained_model, tmp_path, grid_kwargs, generate_kwargs
):
    model = trained_model
    grids = SampleGrid(tmp_path, num_images=4, seed=5, jit_compile=False, **grid_kwargs)
    model.fit(small_data(), epochs=1, callbacks=[grids], verbose=0)
    written = np.asarray(Image.open(tmp_path / "epoch_0001.png"))
    expected = model.generate(
        4, seed=5, use_ema=True, verbose=0, jit_compile=False, **generate_kwargs
    )
    grid = keras_ddpm.utils.make_image_grid(expected)[..., 0]
    scale = written.shape[0] // grid.shape[0]
    np.testing.assert_array_equal(written[::scale, ::scale], grid)
    # Another sampler gives other images from the same seed: the comparison above can fail.
    other = {"sampler": "ddpm"} if generate_kwargs.get("sampler") else {"sampler": "dpm_solver"}
    different = model.generate(4, seed=5, verbose=0, jit_compile=False, **other)
    assert not np.array_equal(keras_ddpm.utils.make_image_grid(different)[..., 0], grid)


def test_generate_kwargs_pass_through_only_when_given(trained_model, tmp_path, monkeypatch):
    calls = []

    model = trained_model
    original = model.generate

    def generate(num_images, sampler="ddpm", seed=None, verbose="auto", batch_size=None,
                 steps=None):
        calls.append({"sampler": sampler, "batch_size": batch_size, "steps": steps})
        return original(
            num_images, seed=seed, verbose=verbose, batch_size=batch_size, jit_compile=False
        )

    monkeypatch.setattr(model, "generate", generate)
    model.fit(
        small_data(),
        epochs=1,
        verbose=0,
        callbacks=[SampleGrid(tmp_path / "a", num_images=2, batch_size=1)],
    )
    model.fit(
        small_data(),
        epochs=1,
        verbose=0,
        callbacks=[SampleGrid(tmp_path / "b", num_images=2, steps=7)],
    )
    model.fit(
        small_data(),
        epochs=1,
        verbose=0,
        callbacks=[SampleGrid(tmp_path / "d", num_images=2, sampler=None)],
    )
    assert calls == [
        {"sampler": "dpm_solver", "batch_size": 1, "steps": None},
        {"sampler": "dpm_solver", "batch_size": None, "steps": 7},
        {"sampler": "ddpm", "batch_size": None, "steps": None},  # not passed: generate's own
    ]
    # An argument this generate does not take is refused before training starts.
    with pytest.raises(TypeError, match="eta"):
        model.fit(
            small_data(),
            epochs=1,
            verbose=0,
            callbacks=[SampleGrid(tmp_path / "c", num_images=2, eta=0.5)],
        )


def test_a_run_of_several_grids_resolves_auto_as_for_repeated_calls(trained_model, tmp_path,
                                                                    monkeypatch):
    # generate's "auto" weighs one call against XLA's compile time; a run's grids reuse the loop.
    monkeypatch.setattr(hardware, "accelerator_present", lambda: False)
    monkeypatch.setattr(hardware, "XLA_CPU_MIN_EVALUATIONS", 10**9)  # no single call pays
    model = trained_model
    process = model.reverse_process()
    assert process.auto_jit("auto", 2, evaluations=3) is False
    assert process.auto_jit("auto", 2) is True  # a small step: XLA for a loop run many times

    def compiled_with_xla(epochs, every_n_epochs=1):
        process.loops.clear()
        folder = tmp_path / f"{epochs}_{every_n_epochs}"
        grids = SampleGrid(folder, every_n_epochs=every_n_epochs, num_images=2, sampler="ddim",
                           steps=3)
        model.fit(small_data(), epochs=epochs, verbose=0, callbacks=[grids])
        written = len(os.listdir(folder))
        return written, sorted({key[3] for key in process.loops})

    assert compiled_with_xla(1) == (1, [False])  # one grid: generate's own "auto"
    assert compiled_with_xla(2) == (2, [True])
    assert compiled_with_xla(2, every_n_epochs=2) == (1, [False])
    assert compiled_with_xla(3, every_n_epochs=2) == (2, [True])  # epoch 2, and 3 at the end
    process.loops.clear()
    # A jit_compile passed by the user wins.
    model.fit(small_data(), epochs=2, verbose=0, callbacks=[SampleGrid(
        tmp_path / "off", num_images=2, sampler="ddim", steps=3, jit_compile=False)])
    assert sorted({key[3] for key in process.loops}) == [False]


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"every_n_epochs": 0}, ValueError, "every_n_epochs=0"),
        ({"num_images": 2.5}, ValueError, "num_images=2.5"),
        ({"seed": "a"}, TypeError, "seed='a'"),
        ({"steps": -1}, ValueError, "steps=-1"),
        ({"verbose": 1}, TypeError, "verbose"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        SampleGrid(tmp_path, **kwargs)


def test_refuses_a_model_without_generate(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(TypeError, match="generate"):
        model.fit(np.zeros((4, 2)), np.zeros((4, 1)), verbose=0, callbacks=[SampleGrid(tmp_path)])


def test_cosine_decay_gives_the_ddpm_warmup():
    # The recipe of the module docstring: linear warm-up, then constant.
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=1, alpha=1.0, warmup_target=2e-4, warmup_steps=5000
    )
    values = [float(schedule(step)) for step in (0, 2500, 5000, 10_000, 100_000)]
    np.testing.assert_allclose(values, [0.0, 1e-4, 2e-4, 2e-4, 2e-4], rtol=1e-6, atol=1e-12)


def test_the_command_line_and_sample_grid_draw_grids_with_the_registry_grid_sampler():
    from keras_ddpm.cli import build_parser
    from keras_ddpm.samplers import GRID_SAMPLER

    args = build_parser().parse_args(["train", "--dataset", "digits"])
    grid = SampleGrid("unused", num_images=2)
    assert args.sampler == grid.generate_kwargs["sampler"] == GRID_SAMPLER
    assert GRID_SAMPLER in samplers.sampler_names()


def test_a_generate_without_samplers_is_told_how_to_pass_none(trained_model, tmp_path,
                                                              monkeypatch):
    model = trained_model
    original = model.generate
    monkeypatch.setattr(model, "generate", lambda num_images, seed=None, verbose="auto": original(
        num_images, seed=seed, verbose=verbose, jit_compile=False))
    with pytest.raises(TypeError, match=r"passes sampler='dpm_solver' unless sampler=None"):
        model.fit(small_data(), epochs=1, verbose=0, callbacks=[SampleGrid(tmp_path / "a")])
    model.fit(small_data(), epochs=1, verbose=0,
              callbacks=[SampleGrid(tmp_path / "b", num_images=2, sampler=None)])
    assert os.listdir(tmp_path / "b") == ["epoch_0001.png"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"steps": 50}, r"`steps` must be in \[1, 20\].*steps=50"),
        ({"sampler": "dpm_solver", "eta": 0.5}, "`eta` only applies to sampler='ddim'"),
        # No sampler passed: checked as generate's own default ("ddpm", whose steps <= T).
        ({"sampler": None, "steps": 50}, r"`steps` must be in \[1, 20\].*steps=50"),
        ({"steps": "optimized"}, r"optimize_steps\(\)` found, and this model has none"),
        ({"timestep_spacing": "optimized"}, r"optimize_steps\(\)` found, and this model has none"),
    ],
)
def test_sampler_settings_that_do_not_fit_the_model_stop_before_training(
    trained_model, tmp_path, kwargs, message
):
    model = trained_model  # T = 20
    steps_before = int(model.optimizer.iterations.numpy())
    with pytest.raises(ValueError, match=message):
        model.fit(small_data(), epochs=1, verbose=0,
                  callbacks=[SampleGrid(tmp_path, num_images=2, **kwargs)])
    assert int(model.optimizer.iterations.numpy()) == steps_before  # not one batch trained
    assert not os.path.exists(tmp_path) or os.listdir(tmp_path) == []


def test_grids_can_draw_with_the_models_optimized_steps(tmp_path):
    schedule = keras_ddpm.NoiseSchedule("linear", timesteps=20, beta_start=1e-3, beta_end=0.2)
    model = keras_ddpm.DDPM(tiny_unet(), schedule=schedule, seed=0)
    model.optimize_steps(num_steps=3, num_samples=8, grid_size=10)
    grids = SampleGrid(tmp_path, num_images=4, sampler="ipndm", steps="optimized", jit_compile=False)
    grids.set_model(model)
    grids.check_model()
    grids.write_grid(1)
    images = model.generate(4, sampler="ipndm", steps="optimized", seed=0, verbose=0)
    keras_ddpm.utils.save_image_grid(images, tmp_path / "expected.png")
    np.testing.assert_array_equal(
        np.asarray(Image.open(grids.last_path)), np.asarray(Image.open(tmp_path / "expected.png"))
    )
