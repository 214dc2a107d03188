"""WeightsFileWriter: the file of `save_weights`, without walking the model after the first."""

import h5py
import keras
import numpy as np
import pytest
from keras.src.saving import saving_lib

import keras_ddpm
from keras_ddpm.runs.weights_file import WeightsFileWriter
from networks import tiny_unet


def tiny_model():
    network = tiny_unet()
    schedule = keras_ddpm.NoiseSchedule("linear", timesteps=20, beta_start=1e-3, beta_end=0.2)
    model = keras_ddpm.DDPM(network, schedule=schedule, ema_decay=0.9, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


def train(model, steps=2):
    images = np.random.default_rng(0).uniform(-1, 1, (16 * steps, 8, 8, 1)).astype("float32")
    model.fit(images, batch_size=16, epochs=1, verbose=0, shuffle=False)


def contents(path):
    """Every group's attributes and every dataset's value in an HDF5 file, by name."""
    found = {}
    with h5py.File(path, "r") as file:
        def visit(name, item):
            if isinstance(item, h5py.Dataset):
                found[name] = (np.asarray(item), dict(item.attrs))
            else:
                found[name] = dict(item.attrs)
        file.visititems(visit)
    return found


def assert_same_file(actual, expected):
    a, b = contents(actual), contents(expected)
    assert sorted(a) == sorted(b)
    for name, value in b.items():
        if isinstance(value, tuple):
            np.testing.assert_array_equal(a[name][0], value[0], err_msg=name)
            assert a[name][0].dtype == value[0].dtype and a[name][1] == value[1], name
        else:
            assert a[name] == value, name


def test_later_writes_equal_save_weights_without_walking_the_model(tmp_path, monkeypatch):
    model = tiny_model()
    writer = WeightsFileWriter()
    writer.write(model, tmp_path / "first.weights.h5")
    assert_same_file(tmp_path / "first.weights.h5", save_weights(model, tmp_path))

    train(model)  # new values: weights, EMA, Adam's moments, the step count, the noise RNG
    walks = []
    original = saving_lib._save_state
    monkeypatch.setattr(
        saving_lib, "_save_state", lambda *a, **k: walks.append(1) or original(*a, **k)
    )
    writer.write(model, tmp_path / "second.weights.h5")
    assert walks == []  # written from the records
    monkeypatch.setattr(saving_lib, "_save_state", original)
    expected = save_weights(model, tmp_path)
    assert_same_file(tmp_path / "second.weights.h5", expected)
    assert not np.array_equal(  # the values did change between the two writes
        contents(tmp_path / "first.weights.h5")["optimizer/vars/0"][0],
        contents(tmp_path / "second.weights.h5")["optimizer/vars/0"][0],
    )

    # A fresh model loads it to the same weights, optimizer state and training noise.
    restored = tiny_model()
    restored.load_weights(tmp_path / "second.weights.h5")
    for mine, theirs in zip(model.variables, restored.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(mine),
                                      keras.ops.convert_to_numpy(theirs))
    np.testing.assert_array_equal(model.seed_generator.state.numpy(),
                                  restored.seed_generator.state.numpy())


def save_weights(model, folder):
    path = folder / "keras.weights.h5"
    keras.Model.save_weights(model, path)
    return path


def test_new_variables_are_walked_again(tmp_path):
    model = tiny_model()
    writer = WeightsFileWriter()
    writer.write(model, tmp_path / "a.weights.h5")
    # A new optimizer: other variables than the ones recorded.
    model.compile(optimizer=keras.optimizers.SGD(1e-2, momentum=0.9))
    train(model, steps=1)
    writer.write(model, tmp_path / "b.weights.h5")
    assert_same_file(tmp_path / "b.weights.h5", save_weights(model, tmp_path))


class Counter(keras.layers.Layer):
    """A layer that writes a copy of a Python value, taken when it is saved."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.count = 0

    def call(self, x):
        return x

    def save_own_variables(self, store):
        store["count"] = np.array(self.count)

    def load_own_variables(self, store):
        self.count = int(store["count"][()])


def test_a_replay_asks_each_object_for_its_values_of_now(tmp_path, monkeypatch):
    inputs = keras.Input((2,))
    counter = Counter()
    model = keras.Model(inputs, keras.layers.Dense(1)(counter(inputs)))
    writer = WeightsFileWriter()
    writer.write(model, tmp_path / "a.weights.h5")
    counter.count = 7
    monkeypatch.setattr(saving_lib, "_save_state", None)  # no walk: the records only
    writer.write(model, tmp_path / "b.weights.h5")
    assert contents(tmp_path / "a.weights.h5")["layers/counter/vars/count"][0] == 0
    assert contents(tmp_path / "b.weights.h5")["layers/counter/vars/count"][0] == 7


def test_other_file_names_are_keras_own(tmp_path):
    with pytest.raises(ValueError, match="weights.h5"):
        WeightsFileWriter().write(tiny_model(), tmp_path / "model.h5")
