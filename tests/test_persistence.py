"""Saving, checkpoints, resuming after SIGKILL, and damaged or unsafe files, on every backend
(the killed run's script reads a `tf.data` pipeline, which every backend's `fit` takes)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import zipfile

import keras
import numpy as np
import pytest

import keras_ddpm
from keras_ddpm import cli
from training_state import assert_same_state
from training_state import training_state
from networks import conv_network
from networks import tiny_unet

pytestmark = pytest.mark.backends

SHAPE = (8, 8, 1)
T = 20


def conv_denoiser(extra_layer=None):
    return conv_network(SHAPE, T, extra_layer=extra_layer)


def tiny_model(network=None, **kwargs):
    kwargs.setdefault("ema_decay", 0.9)
    model = keras_ddpm.DDPM(
        network or conv_denoiser(), schedule=keras_ddpm.NoiseSchedule("linear", timesteps=T),
        seed=0, **kwargs,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    return model


def images(n=32, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n,) + SHAPE).astype("float32")


# ----------------------------------------------------------------------------
# .keras round trip with the UNet's own layers
# ----------------------------------------------------------------------------
def test_keras_file_round_trip_with_a_unet_under_safe_mode(tmp_path):
    network = tiny_unet(SHAPE, attention_resolutions=(8,), dropout=0.1)
    model = tiny_model(network, prediction_type="v", variance="fixed_large")
    # Some optimizer and RNG state, and EMA weights apart from the raw ones, without a fit.
    model.optimizer.iterations.assign(7)
    model.seed_generator.next()
    for weight in model.network.trainable_weights:
        weight.assign(weight.numpy() + 0.01)
    path = str(tmp_path / "unet.keras")
    model.save(path)
    restored = keras.models.load_model(path)  # safe_mode=True, no custom_objects
    assert isinstance(restored, keras_ddpm.DDPM) and isinstance(restored.network, keras_ddpm.UNet)
    assert restored.get_config() == model.get_config()
    assert restored.schedule == model.schedule and restored.network.dropout == 0.1
    assert_same_state(training_state(restored), training_state(model))
    assert not np.array_equal(restored.ema_weights[0], restored.network.weights[0])
    # The same predictions from both networks (generate's images: tests/test_model.py).
    x_t = images(3)
    t = np.array([0, 5, T - 1], "int32")
    for a, b in ((restored.network, model.network), (restored.ema_network, model.ema_network)):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(a([x_t, t])), keras.ops.convert_to_numpy(b([x_t, t]))
        )


# ----------------------------------------------------------------------------
# Keras checkpoint callbacks
# ----------------------------------------------------------------------------
def test_model_checkpoint_full_and_weights_only_restore_ema_optimizer_and_rng(tmp_path):
    model = tiny_model()
    callbacks = [
        keras.callbacks.ModelCheckpoint(str(tmp_path / "full-{epoch}.keras")),
        keras.callbacks.ModelCheckpoint(
            str(tmp_path / "weights-{epoch}.weights.h5"), save_weights_only=True
        ),
    ]
    model.fit(images(), batch_size=16, epochs=2, verbose=0, shuffle=False, callbacks=callbacks)
    assert sorted(os.listdir(tmp_path)) == [
        "full-1.keras", "full-2.keras", "weights-1.weights.h5", "weights-2.weights.h5",
    ]
    state = training_state(model)
    full = keras_ddpm.load_model(str(tmp_path / "full-2.keras"))
    assert_same_state(training_state(full), state)
    # Weights-only: into a new model of the same config (its optimizer built by compile).
    fresh = tiny_model()
    fresh.load_weights(str(tmp_path / "weights-2.weights.h5"))
    assert_same_state(training_state(fresh), state)
    assert int(fresh.optimizer.iterations) == int(model.optimizer.iterations) == 4
    # Training goes on identically from either.
    more = images(16, seed=1)
    for other in (full, fresh):
        other.fit(more, batch_size=16, epochs=1, verbose=0, shuffle=False)
    model.fit(more, batch_size=16, epochs=1, verbose=0, shuffle=False)
    assert_same_state(training_state(full), training_state(model))
    assert_same_state(training_state(fresh), training_state(model))


# ----------------------------------------------------------------------------
# BackupAndRestore after SIGKILL
# ----------------------------------------------------------------------------
# Trains 5 epochs of 4 batches with BackupAndRestore; the data are shuffled once with a fixed
# seed (reshuffle_each_iteration=False), so that every epoch sees the same order however the
# run was split. With PAUSE_AT=epoch,batch set it stops there until killed.
TRAIN_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import keras, numpy as np, tensorflow as tf
    import keras_ddpm

    output = sys.argv[1]
    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    x_t = keras.Input(shape=(8, 8, 1))
    t = keras.Input(shape=(), dtype="int32")
    h = keras.layers.Conv2D(4, 3, padding="same", activation="silu")(x_t)
    h = h + keras.layers.Reshape((1, 1, 4))(keras.layers.Embedding(20, 4)(t))
    network = keras.Model([x_t, t], keras.layers.Conv2D(1, 3, padding="same")(h))
    model = keras_ddpm.DDPM(
        network, schedule=keras_ddpm.NoiseSchedule("linear", timesteps=20), ema_decay=0.9, seed=0
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    images = np.random.default_rng(0).uniform(-1, 1, (64, 8, 8, 1)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices(images)
    data = data.shuffle(64, seed=0, reshuffle_each_iteration=False).batch(16)
    pause = os.environ.get("PAUSE_AT")

    class Report(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            print(f"epoch {epoch}", flush=True)

        def on_train_batch_end(self, batch, logs=None):
            if pause == f"{self.epoch},{batch}":
                print("paused", flush=True)
                time.sleep(600)

    backup = keras.callbacks.BackupAndRestore(os.path.join(output, "backup"))
    model.fit(data, epochs=5, verbose=0, callbacks=[backup, Report()])
    state = [w.numpy() for w in model.network.weights + model.ema_weights]
    state += [v.numpy() for v in model.optimizer.variables] + [model.seed_generator.state.numpy()]
    np.savez(os.path.join(output, "final.npz"), *state)
    """
)


def test_a_killed_run_resumes_from_its_backup_and_ends_like_an_uninterrupted_one(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}

    def start(output, **extra):
        os.makedirs(output, exist_ok=True)
        return subprocess.Popen(
            [sys.executable, str(script), str(output)], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env={**env, **extra}, cwd=str(tmp_path),
        )

    # The uninterrupted run and the one to be killed run side by side.
    reference = start(tmp_path / "reference")
    victim = start(tmp_path / "run", PAUSE_AT="2,1")
    seen = []
    for line in victim.stdout:
        seen.append(line.strip())
        if line.strip() == "paused":
            break
    # Killed in epoch 2 after two of its four steps; the backup holds epochs 0 and 1.
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL, victim.stderr.read()[-3000:]
    assert seen == ["epoch 0", "epoch 1", "epoch 2", "paused"]
    metadata = json.loads((tmp_path / "run" / "backup" / "training_metadata.json").read_text())
    assert metadata["epoch"] == 2
    # The same command again: it starts at epoch 2 and finishes the five epochs.
    resumed = start(tmp_path / "run")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    assert out.split() == ["epoch", "2", "epoch", "3", "epoch", "4"]
    assert not os.path.exists(tmp_path / "run" / "backup")  # removed when training ended
    out, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err[-3000:]
    assert out.split() == [word for epoch in range(5) for word in ("epoch", str(epoch))]
    # Bitwise the same weights, EMA weights, Adam moments, step count and noise RNG state.
    final = np.load(tmp_path / "run" / "final.npz")
    expected = np.load(tmp_path / "reference" / "final.npz")
    assert len(final.files) == len(expected.files) > 10
    for name in expected.files:
        np.testing.assert_array_equal(final[name], expected[name], err_msg=name)


# ----------------------------------------------------------------------------
# Damaged, foreign and unsafe files
# ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved")
    path = str(folder / "model.keras")
    tiny_model().save(path)
    return folder, path


def test_damaged_or_foreign_files_are_one_clear_error_naming_the_file(saved, tmp_path):
    _, path = saved
    data = open(path, "rb").read()
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(data[: len(data) // 2])
    text = tmp_path / "notes.keras"
    text.write_text("not a model")
    # What Keras itself says: it names the file, but calls an existing one "not found".
    with pytest.raises(ValueError, match=r"File not found: filepath=.*truncated.keras"):
        keras.models.load_model(str(truncated))
    for bad in (truncated, text):
        with pytest.raises(ValueError, match=rf"'{bad}': it is not a .keras archive .*truncated"):
            keras_ddpm.load_model(bad)
    with pytest.raises(FileNotFoundError, match=r"'.*missing.keras': it does not exist"):
        keras_ddpm.load_model(tmp_path / "missing.keras")
    with pytest.raises(ValueError, match=r"'.*model.txt': expected a .keras file"):
        (tmp_path / "model.txt").write_text("")
        keras_ddpm.load_model(tmp_path / "model.txt")
    # A zip that is no Keras model, and a Keras model that is no DDPM.
    with zipfile.ZipFile(tmp_path / "other.keras", "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match=r"Cannot load a model from '.*other.keras': "):
        keras_ddpm.load_model(tmp_path / "other.keras")
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save(tmp_path / "dense.keras")
    with pytest.raises(TypeError, match=r"'.*dense.keras' holds a Sequential, not a keras_ddpm.DDPM"):
        keras_ddpm.load_model(tmp_path / "dense.keras")


def test_cli_reports_a_damaged_model_in_one_line(saved, tmp_path, capsys):
    _, path = saved
    truncated = tmp_path / "model.keras"
    truncated.write_bytes(open(path, "rb").read()[:1000])
    for verb in (["sample", str(truncated)], ["export", str(truncated), str(tmp_path / "out")]):
        assert cli.main(verb) == 2
        err = capsys.readouterr().err
        assert f"'{truncated}': it is not a .keras archive" in err and err.count("\n") == 1, err


def test_a_lambda_layer_is_refused_under_safe_mode(tmp_path):
    model = tiny_model(conv_denoiser(keras.layers.Lambda(lambda h: h * 2.0)), ema_decay=None)
    path = str(tmp_path / "lambda.keras")
    model.save(path)
    unsafe = r"deserialization of a `Lambda` layer whose `function` is a Python lambda"
    with pytest.raises(ValueError, match=unsafe + r".*arbitrary code execution.*safe_mode=False"):
        keras.models.load_model(path)
    with pytest.raises(ValueError, match=rf"Cannot load a model from '{path}': Requested the {unsafe}"):
        keras_ddpm.load_model(path)
    # The file is otherwise sound: trusting it loads it.
    trusted = keras_ddpm.load_model(path, safe_mode=False)
    np.testing.assert_array_equal(
        trusted.generate(2, sampler="ddim", steps=3, seed=0, verbose=0, jit_compile=False),
        model.generate(2, sampler="ddim", steps=3, seed=0, verbose=0, jit_compile=False),
    )


def test_backend_optimizer_classes_are_named_by_their_public_class_at_any_depth():
    """What Keras 3.15 writes on PyTorch for `mixed_float16` and Adam: the loss-scale wrapper
    is public, its inner Adam PyTorch's own; every other module stays as it is."""
    from keras_ddpm.compile_configs import public_optimizers

    torch_adam = {"module": "keras.src.backend.torch.optimizers.torch_adam", "class_name": "Adam",
                  "config": {"learning_rate": 0.001}, "registered_name": None}
    schedule = {"module": "keras.optimizers.schedules", "class_name": "CosineDecay",
                "config": {"initial_learning_rate": 0.001, "decay_steps": 10},
                "registered_name": None}
    compile_config = {
        "optimizer": {"module": "keras.optimizers", "class_name": "LossScaleOptimizer",
                      "config": {"inner_optimizer": torch_adam}, "registered_name": None},
        "loss": None, "schedules": [schedule], "jit_compile": True,
    }
    public = public_optimizers(compile_config)
    assert public["optimizer"]["config"]["inner_optimizer"] == {**torch_adam,
                                                                "module": "keras.optimizers"}
    assert public["schedules"] == [schedule] and public["jit_compile"] is True
    assert torch_adam["module"].startswith("keras.src.backend.torch")  # a copy, not in place
    # A backend's class that Keras does not export keeps its module.
    unknown = {**torch_adam, "class_name": "TorchParallelOptimizer"}
    assert public_optimizers(unknown) == unknown
    optimizer = keras.saving.deserialize_keras_object(public)["optimizer"]
    assert isinstance(optimizer.inner_optimizer, keras.optimizers.Adam)


def test_a_saved_compile_config_with_an_unused_keras_loss_loads_with_a_warning():
    """Before `compile` refused them, a model compiled with `loss="mse"` on TensorFlow saved it
    (unused); such a file's compile config loads, the loss left out with a warning."""
    model = keras_ddpm.DDPM(tiny_unet(), keras_ddpm.NoiseSchedule("linear", 20), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    config = {**model.get_compile_config(), "loss": "mse", "metrics": ["mae"]}
    loaded = keras_ddpm.DDPM(tiny_unet(), keras_ddpm.NoiseSchedule("linear", 20), seed=0)
    with pytest.warns(UserWarning, match="names loss, metrics, which a DDPM does not use"):
        loaded.compile_from_config(config)
    assert isinstance(loaded.optimizer, keras.optimizers.Adam)
    assert float(loaded.optimizer.learning_rate) == pytest.approx(2e-3)
