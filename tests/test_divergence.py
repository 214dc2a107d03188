"""Diverging runs are caught: non-finite steps skipped in float32, a stop when they persist,
no NaN model written."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_ddpm
from keras_ddpm import cli
from keras_ddpm.divergence import TrainingDiverged
from training_state import training_state
from networks import tiny_unet

pytestmark = pytest.mark.backends

SHAPE = (8, 8, 1)


def tiny_model(optimizer, **kwargs):
    keras.utils.set_random_seed(0)
    network = tiny_unet(SHAPE)
    model = keras_ddpm.DDPM(
        network, keras_ddpm.NoiseSchedule("linear", 20), seed=0, ema_decay=0.9, **kwargs
    )
    model.compile(optimizer=optimizer)
    return model


def images(n=32):
    return np.random.default_rng(0).uniform(-1, 1, (n,) + SHAPE).astype("float32")


def state(model):
    return training_state(model, rng=False)  # the noise RNG advances on skipped steps too


class PoisonedSteps:
    """Multiplies the loss by inf on the chosen (1-based) training steps, inside the graph."""

    def __init__(self, model, steps):
        self.count = tf.Variable(0, dtype="int32")
        self.steps = tf.constant(sorted(steps), dtype="int32")
        loss = model.diffusion_loss

        def poisoned(*args, **kwargs):
            self.count.assign_add(1)
            hit = tf.reduce_any(tf.equal(self.steps, self.count))
            return loss(*args, **kwargs) * tf.where(hit, np.inf, 1.0)

        model.diffusion_loss = poisoned


@pytest.mark.tensorflow_only  # PoisonedSteps counts steps in a tf.Variable
def test_a_non_finite_step_changes_nothing_and_is_counted():
    model = tiny_model(keras.optimizers.Adam(1e-3))
    PoisonedSteps(model, [2])
    states = []
    record = keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: states.append(state(model)),
        on_train_batch_end=lambda batch, logs: states.append(state(model)),
    )
    history = model.fit(images(), batch_size=8, epochs=1, verbose=0, callbacks=[record])
    assert int(np.asarray(model.optimizer.iterations)) == 3  # 4 batches, one skipped
    assert history.history["skipped_steps"] == [1.0]
    assert np.isfinite(history.history["loss"][0])  # the inf loss is left out of the mean
    # Step 2 left weights, EMA weights and Adam's moments and step count bitwise as they were;
    # steps 1 and 3 changed them.
    for before, after in zip(states[1], states[2]):
        np.testing.assert_array_equal(before, after)
    assert any(not np.array_equal(a, b) for a, b in zip(states[0], states[1]))
    assert any(not np.array_equal(a, b) for a, b in zip(states[2], states[3]))


def test_a_diverging_run_stops_with_one_error_and_finite_weights():
    model = tiny_model(keras.optimizers.SGD(1e20), max_skipped_steps=5)
    with pytest.raises(TrainingDiverged) as error:
        model.fit(images(64), batch_size=8, epochs=3, verbose=0)
    message = str(error.value)
    assert "\n" not in message
    assert "last 5 steps" in message and "learning rate 1e+20" in message
    assert "lower the learning rate" in message
    names = [w.path for w in model.network.trainable_weights]
    assert any(f"first at {name}," in message for name in names)
    for weight in model.network.weights + model.ema_weights:
        assert np.all(np.isfinite(np.asarray(weight)))
    assert int(np.asarray(model.optimizer.iterations)) == 1  # only the first step was finite
    # max_skipped_steps=None never stops: every step is skipped and counted.
    model = tiny_model(keras.optimizers.SGD(1e20), max_skipped_steps=None)
    history = model.fit(images(64), batch_size=8, epochs=2, verbose=0)
    assert history.history["skipped_steps"] == [7.0, 15.0]


def test_max_skipped_steps_is_checked_and_kept_in_the_config(tmp_path):
    with pytest.raises(ValueError, match="max_skipped_steps"):
        tiny_model(keras.optimizers.Adam(), max_skipped_steps=0)
    model = tiny_model(keras.optimizers.Adam(), max_skipped_steps=7)
    path = str(tmp_path / "m.keras")
    model.save(path)
    assert keras_ddpm.load_model(path).max_skipped_steps == 7


def test_non_finite_weights_are_not_saved_unless_asked(tmp_path):
    model = tiny_model(keras.optimizers.Adam())
    path = str(tmp_path / "m.keras")
    model.save(path)
    weight = model.network.trainable_weights[0]
    weight.assign(np.full(weight.shape, np.nan, "float32"))
    with pytest.raises(ValueError) as error:
        model.save(path)
    assert weight.path in str(error.value) and "\n" not in str(error.value)
    assert np.all(np.isfinite(np.asarray(keras_ddpm.load_model(path).network.trainable_weights[0])))
    model.save(str(tmp_path / "nan.keras"), allow_non_finite=True)
    assert os.path.exists(tmp_path / "nan.keras")


@pytest.mark.tensorflow_only  # PoisonedSteps counts steps in a tf.Variable
def test_train_that_diverges_exits_2_in_one_line_without_a_model(tmp_path, capsys, monkeypatch):
    original = keras_ddpm.DDPM.compile

    def poisoned_compile(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PoisonedSteps(self, range(1, 1000))

    monkeypatch.setattr(keras_ddpm.DDPM, "compile", poisoned_compile)
    output = tmp_path / "run"
    code = cli.main([
        "train", "--output", str(output), "--epochs", "2", "--batch-size", "64",
        "--base-channels", "8", "--channel-multipliers", "1", "--attention-resolutions", "",
        "--norm-groups", "4", "--timesteps", "20", "--verbose", "0",
    ])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Training diverged" in err
    assert not (output / "model.keras").exists()
