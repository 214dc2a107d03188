"""`keras-ddpm train --from MODEL`: fine-tuning a trained model, all of it or with LoRA."""

import json
import os

import keras
import numpy as np
import pytest

import keras_ddpm
from keras_ddpm import cli
from keras_ddpm import lora
from networks import tiny_unet

pytestmark = pytest.mark.backends

# Training options only: with --from, the network, schedule and EMA are the model's.
FIT = ["--batch-size", "600", "--num-samples", "4", "--verbose", "0", "--jit-compile", "false"]


def _source(folder, kind):
    """A tiny DDPM on 8x8 digits (20 steps) with random weights (none zero, as after
    training), saved as `kind`; its path and the model (as loaded from a diffusers folder)."""
    network = tiny_unet(num_classes=10 if kind == "conditional" else None)
    draw = np.random.default_rng(7)
    for weight in network.weights:
        weight.assign(draw.normal(0, 0.2, weight.shape).astype("float32"))
    model = keras_ddpm.DDPM(network, schedule=keras_ddpm.NoiseSchedule("cosine", 20), seed=1)
    if kind == "diffusers":
        path = str(folder / "source")
        model.save_pretrained(path)
        return path, keras_ddpm.DDPM.from_pretrained(path)
    path = str(folder / "source.keras")
    model.save(path)
    return path, model


def _weights(network):
    return {weight.path: weight.numpy() for weight in network.weights}


@pytest.mark.parametrize("kind", ["keras", "diffusers", "conditional"])
def test_fine_tuning_starts_from_the_model(kind, tmp_path):
    path, source = _source(tmp_path, kind)
    output = str(tmp_path / "tuned")
    # A learning rate of 0: Adam moves no weight, so the result must be the source's weights.
    argv = ["train", "--from", path, "--output", output, "--epochs", "1", *FIT]
    assert cli.main([*argv, "--learning-rate", "0", "--seed", "3"]) == 0
    tuned = keras.saving.load_model(os.path.join(output, "model.keras"))
    assert tuned.schedule.kind == "cosine" and tuned.schedule.timesteps == 20
    assert tuned.seed == 3 and tuned.num_classes == source.num_classes
    assert int(tuned.optimizer.iterations.numpy()) == 3  # it trained: 1797 digits / 600
    expected = _weights(source.network)
    assert _weights(tuned.network).keys() == expected.keys()
    for name, value in _weights(tuned.network).items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)
    for ema, weight in zip(tuned.ema_network.weights, source.ema_network.weights):
        np.testing.assert_allclose(ema.numpy(), weight.numpy(), atol=1e-6, err_msg=ema.path)
    config = json.load(open(os.path.join(output, "config.json")))
    assert config["from_model"] == path and config["timesteps"] is None


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_a_float32_model_fine_tunes_in_mixed_precision(policy, tmp_path):
    path, source = _source(tmp_path, "keras")
    output = str(tmp_path / "tuned")
    argv = ["train", "--from", path, "--output", output, "--epochs", "1", *FIT]
    assert cli.main([*argv, "--mixed-precision", policy]) == 0
    tuned = keras.saving.load_model(os.path.join(output, "model.keras"))
    for network in (tuned.network, tuned.ema_network):
        assert network.dtype_policy.name == policy
        assert all(w.dtype == "float32" for w in network.weights)
    assert isinstance(tuned.optimizer, keras.optimizers.LossScaleOptimizer) == (
        policy == "mixed_float16"
    )
    pairs = zip(tuned.network.weights, source.network.weights)
    moved = [np.abs(w.numpy() - s.numpy()).max() for w, s in pairs]
    assert all(np.isfinite(moved)) and max(moved) > 0


def test_lora_trains_only_the_updates_and_a_rerun_continues(tmp_path, capsys):
    path, source = _source(tmp_path, "keras")
    output = str(tmp_path / "lora")
    argv = ["train", "--from", path, "--output", output, "--lora-rank", "2", *FIT]
    argv += ["--lora-layers", "conv1,conv2", "--learning-rate", "1e-2"]
    assert cli.main([*argv, "--epochs", "1"]) == 0
    tuned = keras.saving.load_model(os.path.join(output, "model.keras"))
    adapted = lora.recorded(tuned.network)
    assert adapted and all(rank == 2 for rank, _ in adapted.values())
    assert {path.rsplit("/", 1)[-1] for path in adapted} == {"conv1", "conv2"}
    trainable = sum(w.numpy().size for w in tuned.network.trainable_weights)
    assert f"LoRA of rank 2 on {len(adapted)} layers: {trainable:,} weights train" in (
        capsys.readouterr().out
    )
    # Every weight of the model but the adapted layers' biases is the source's, bitwise;
    # the updates B (zero at the start) moved.
    expected = _weights(source.network)
    for name, value in _weights(tuned.network).items():
        layer, weight = name.rsplit("/", 1)
        if weight.startswith("lora_"):
            if weight == "lora_kernel_b":
                assert np.abs(value).max() > 0, name
        elif not (layer in adapted and weight == "bias"):
            np.testing.assert_array_equal(value, expected[name], err_msg=name)
    # The same command with more epochs continues the run: the adapted model, its optimizer.
    assert cli.main([*argv, "--epochs", "2"]) == 0
    again = keras.saving.load_model(os.path.join(output, "model.keras"))
    assert lora.recorded(again.network) == adapted
    assert int(again.optimizer.iterations.numpy()) == 2 * 3


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--lora-rank", "2"], "--lora-rank needs --from MODEL"),
        (["--lora-alpha", "4"], "--lora-alpha needs --lora-rank"),
        (["--from", "{tmp}/missing.keras"], "does not exist"),
        (["--from", "{source}", "--base-channels", "8", "--timesteps", "20"],
         "--base-channels, --timesteps cannot be combined with it"),
        (["--from", "{source}", "--conditional"], "--conditional cannot be combined"),
        (["--from", "{source}", "--dropout", "0"], "--dropout cannot be combined"),
        (["--from", "{source}", "--lora-rank", "2", "--lora-alpha", "0"],
         "--lora-alpha must be a finite number > 0"),
        (["--from", "{source}", "--image-size", "16"], "takes (8, 8, 1) images but 'digits' gives"),
        (["--from", "{source}", "--lora-rank", "2", "--lora-layers", "nope"], "match no layer"),
        (["--from", "{source}", "--guidance", "2"], "--guidance needs a conditional model"),
    ],
)
def test_fine_tuning_errors_are_one_line(argv, message, tmp_path, capsys):
    if "{source}" in argv:
        path, _ = _source(tmp_path, "keras")
        argv = [path if a == "{source}" else a for a in argv]
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    output = tmp_path / "out"
    assert cli.main(["train", *argv, "--output", str(output), *FIT]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not output.exists()  # a refused run leaves no folder
