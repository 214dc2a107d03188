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
