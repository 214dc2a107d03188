"""The TFDS examples run as written, in smoke mode on mock data (no download)."""

import importlib.util
import os

import pytest
import tensorflow_datasets as tfds

import keras_ddpm

EXAMPLES = os.path.join(os.path.dirname(__file__), os.pardir, "examples")


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "name, shape", [("train_mnist", (32, 32, 1)), ("train_cifar10", (32, 32, 3))]
)
def test_example_runs_in_smoke_mode(name, shape, tmp_path):
    example = load_example(name)
    with tfds.testing.mock_data(num_examples=8, policy=tfds.testing.MockPolicy.USE_CODE):
        model = example.main(["--smoke", "--output", str(tmp_path)])
    assert isinstance(model, keras_ddpm.DDPM) and model.image_shape == shape
    assert os.listdir(tmp_path / "samples") == ["epoch_0001.png"]
    assert os.path.exists(tmp_path / "model.keras")


def test_class_conditional_example_runs_in_smoke_mode(tmp_path):
    model = load_example("class_conditional_digits").main(
        ["--smoke", "--output", str(tmp_path), "--per-class", "2"]
    )
    assert model.num_classes == 10
    assert sorted(os.listdir(tmp_path)) == ["conditional_digits.keras", "digits_by_class.png"]


def test_export_and_serve_runs_in_smoke_mode(tmp_path, capsys):
    example = load_example("export_and_serve")
    loaded = example.main(["--smoke", "--steps", "5", "--output", str(tmp_path)])
    assert sorted(os.listdir(tmp_path)) == ["grid.png", "savedmodel"]
    images = loaded.generate(num_images=2, steps=3, seed=0).numpy()
    assert images.shape == (2, 8, 8, 1) and images.dtype == "uint8"
    assert "saved_model_cli run --dir" in capsys.readouterr().out
