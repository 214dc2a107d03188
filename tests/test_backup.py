"""Nothing lost: atomic writes, backups that survive a kill, and the end of a `train` run."""

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import warnings

import keras
import numpy as np
import pytest

import keras_ddpm
from keras_ddpm import cli
from keras_ddpm import fit_order
from keras_ddpm import sample_weights
from keras_ddpm.saved_seeds import network_seed_states
from keras_ddpm.runs import atomic
from keras_ddpm.runs import backup
from training_state import assert_same_state
from training_state import training_state as state
from networks import conv_network
from networks import tiny_unet

pytestmark = pytest.mark.backends

SHAPE = (8, 8, 1)
T = 20


def tiny_model():
    keras.utils.set_random_seed(0)  # the same initial weights every time, as in a new process
    # Dropout: its seed is part of what a backup restores. (Seeded: Keras' unseeded dropout on
    # PyTorch draws from torch's global generator, which no checkpoint holds.)
    network = conv_network(SHAPE, T, extra_layer=keras.layers.Dropout(0.25, seed=5))
    model = keras_ddpm.DDPM(
        network, schedule=keras_ddpm.NoiseSchedule("linear", timesteps=T), seed=0, ema_decay=0.9
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    return model


def images(n=32):
    return np.random.default_rng(0).uniform(-1, 1, (n,) + SHAPE).astype("float32")


# ----------------------------------------------------------------------------
# Atomic writes
# ----------------------------------------------------------------------------
def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_write(path) as tmp:
            assert os.path.dirname(tmp) == str(tmp_path) and tmp.endswith("notes.txt")
            open(tmp, "w").write("half")
            raise RuntimeError("killed")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["notes.txt"]
    with atomic.atomic_write(path) as tmp:
        open(tmp, "w").write("new")
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["notes.txt"]
    # What a SIGKILL leaves (the partial file) is cleared by remove_partials.
    (tmp_path / f"{atomic.PARTIAL_PREFIX}99-model.keras").write_bytes(b"PK")
    atomic.remove_partials(tmp_path)
    assert os.listdir(tmp_path) == ["notes.txt"]


def test_the_next_write_of_a_target_clears_what_a_killed_writer_left(tmp_path):
    """A killed export or save leaves `.partial-PID-name`; the next write of `name` removes it,
    but not a live process's partial of it, nor partials of other names."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"{atomic.PARTIAL_PREFIX}{dead.pid}-savedmodel"
    stale.mkdir()
    (stale / "saved_model.pb").write_bytes(b"half")
    live = tmp_path / f"{atomic.PARTIAL_PREFIX}{os.getppid()}-savedmodel"
    live.mkdir()
    other = tmp_path / f"{atomic.PARTIAL_PREFIX}{dead.pid}-model.keras"
    other.write_bytes(b"PK")
    with atomic.atomic_write(tmp_path / "savedmodel") as tmp:
        os.makedirs(tmp)
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, other.name, "savedmodel"])


def test_a_save_that_dies_midway_keeps_the_previous_model(tmp_path, monkeypatch):
    model = tiny_model()
    model.fit(images(), batch_size=16, epochs=1, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    before = state(keras_ddpm.load_model(path))

    def dies_midway(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as file:
            file.write(b"PK\x03\x04 half an archive")
        raise KeyboardInterrupt  # the user's Ctrl-C, or a kill, during the write

    monkeypatch.setattr(keras.Model, "save", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        model.save(path)
    monkeypatch.undo()
    after = keras_ddpm.load_model(path)  # still the whole previous file
    assert_same_state(before, state(after))
    assert os.listdir(tmp_path) == ["model.keras"]
    # save_weights (ModelCheckpoint(save_weights_only=True)) is atomic too.
    weights = str(tmp_path / "w.weights.h5")
    model.save_weights(weights)
    monkeypatch.setattr(keras.Model, "save_weights", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        model.save_weights(weights)
    monkeypatch.undo()
    tiny_model().load_weights(weights)


def test_image_grids_are_written_atomically(tmp_path, monkeypatch):
    from PIL import Image

    path = tmp_path / "grid.png"
    keras_ddpm.utils.save_image_grid(np.zeros((4, 8, 8, 1), "float32"), path)

    def dies(self, filepath, *args, **kwargs):
        open(filepath, "wb").write(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", dies)
    with pytest.raises(KeyboardInterrupt):
        keras_ddpm.utils.save_image_grid(np.ones((4, 8, 8, 1), "float32"), path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["grid.png"]
    # Still the first grid: its tiles are 0.0 in uint8, not the second grid's 255.
    zero = keras_ddpm.utils.to_uint8(np.zeros((1, 1, 1, 1), "float32")).max()
    assert np.asarray(Image.open(path)).max() == zero < 255


# ----------------------------------------------------------------------------
# RunBackup
# ----------------------------------------------------------------------------
def test_run_backup_keeps_whole_checkpoints_and_resumes_exactly(tmp_path):
    folder = str(tmp_path / "backup")
    data = images()
    uninterrupted = tiny_model()
    uninterrupted.fit(data, batch_size=16, epochs=3, shuffle=False, verbose=0)

    first = tiny_model()
    first.fit(data, batch_size=16, epochs=2, shuffle=False, verbose=0,
              callbacks=[backup.RunBackup(folder, delete_checkpoint=False, keep=2)])
    found = backup.checkpoints(folder)
    assert [os.path.basename(f) for f in found] == ["checkpoint-000002", "checkpoint-000001"]
    assert json.load(open(os.path.join(found[0], backup.STATE_FILE)))["epoch"] == 2
    # A write killed mid-way leaves a partial folder: ignored and cleared.
    os.makedirs(os.path.join(folder, f"{atomic.PARTIAL_PREFIX}7-checkpoint-000003"))

    resumed = tiny_model()  # a new process would build the same model
    seen = []
    resumed.fit(data, batch_size=16, epochs=3, shuffle=False, verbose=0, callbacks=[
        backup.RunBackup(folder, keep=2),
        keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(epoch)),
    ])
    assert seen == [2]
    assert_same_state(state(uninterrupted), state(resumed))
    assert not os.path.exists(folder)  # delete_checkpoint=True (the default) removes it


def test_the_unets_dropout_masks_come_from_the_seeds_a_backup_keeps():
    """Restoring the U-Net's seed states (as `DDPM.load_own_variables` does) repeats its
    dropout masks on every backend: on PyTorch too they are not drawn from torch's global
    generator, which no backup holds (this module's resume tests cover the saving)."""
    network = tiny_unet(SHAPE, dropout=0.5)
    rng = np.random.default_rng(0)  # weights that let dropout change the output (not zero-init)
    network.set_weights(
        [rng.normal(0, 0.3, w.shape).astype(w.dtype) for w in network.get_weights()]
    )
    seeds = network_seed_states(network)
    assert len(seeds) == 5  # one per residual block
    saved = [seed.numpy() for seed in seeds]
    x_t, t = images(4), np.array([0, 5, 10, T - 1], "int32")
    first = keras.ops.convert_to_numpy(network([x_t, t], training=True))
    for seed, value in zip(seeds, saved):
        seed.assign(value)
    again = keras.ops.convert_to_numpy(network([x_t, t], training=True))
    np.testing.assert_array_equal(again, first)
    later = keras.ops.convert_to_numpy(network([x_t, t], training=True))  # the seeds moved on
    assert not np.array_equal(later, first)


class _UsersBatches(keras.utils.PyDataset):
    """A user's own PyDataset of four batches, counting its passes (read by `workers`
    processes with `use_multiprocessing`)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.passes = 0

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return images()[8 * index : 8 * (index + 1)]

    def on_epoch_end(self):
        self.passes += 1


def test_fit_orders_arrays_and_pydatasets_by_seed_and_epoch():
    """Where Keras would shuffle with the process's RNG, `fit` draws each pass from (seed,
    epoch): passes differ, and a new process's pass of an epoch is the same one."""
    data = images(32)

    def one_pass(ordered, epoch):
        ordered.epoch_counter.assign(epoch)
        return np.concatenate([ordered[i] for i in range(len(ordered))])

    def ordered_arrays():
        arguments = {"x": data, "batch_size": 8}
        ordered = fit_order.epoch_ordered(arguments)
        assert arguments == {"x": ordered, "shuffle": False} and len(ordered) == 4
        ordered.seed = 5  # OrderSeed's, from the model
        return ordered

    first, second = one_pass(ordered_arrays(), 0), one_pass(ordered_arrays(), 1)
    assert not np.array_equal(first, second)
    for shuffled in (first, second):  # a permutation of the images
        np.testing.assert_array_equal(np.sort(shuffled, axis=0), np.sort(data, axis=0))
    np.testing.assert_array_equal(one_pass(ordered_arrays(), 1), second)
    users = _UsersBatches()
    ordered = fit_order.epoch_ordered({"x": users})
    ordered.seed = 5
    passes = [one_pass(ordered, epoch) for epoch in range(4)]
    assert any(not np.array_equal(passes[0], other) for other in passes[1:])
    ordered.on_epoch_end()
    assert users.passes == 1 and ordered.epoch_counter.value == 4
    # Keras' order stays where it is not its process-RNG shuffle, or where only Keras' array
    # path takes an argument.
    for arguments in (
        {"x": data, "shuffle": False}, {"x": data, "shuffle": "batch"},
        {"x": data, "steps_per_epoch": 2},
        {"x": data, "y": np.zeros(32), "sample_weight": np.ones(32), "class_weight": {0: 2.0}},
        {"x": keras_ddpm.data.from_array_batches(data, seed=0)}, {"x": iter([data])},
    ):
        assert fit_order.epoch_ordered(dict(arguments)) is None
    # Weights without labels, which Keras would drop, go along in dict batches: in the arrays'
    # order where `shuffle=False`.
    weights = np.arange(32, dtype="float32")
    arguments = {"x": data, "sample_weight": weights, "shuffle": False, "batch_size": 8}
    batch = fit_order.epoch_ordered(arguments)[1]
    np.testing.assert_array_equal(batch["image"], data[8:16])
    np.testing.assert_array_equal(batch["sample_weight"], weights[8:16])


def test_labels_and_sample_weights_keep_to_their_images_in_the_seeded_order():
    """`fit(images, labels, sample_weight=...)` is ordered by (seed, epoch) too, so that a
    resumed weighted run is the uninterrupted one; the held-out part keeps its weights."""
    data = images(40)
    labels = np.arange(40) % 10
    weights = np.arange(40, dtype="float32")  # example i weighs i
    arguments = {"x": data, "y": labels, "sample_weight": weights, "batch_size": 8,
                 "validation_split": 0.2}
    ordered = fit_order.epoch_ordered(arguments)
    unweighted = fit_order.epoch_ordered({"x": data, "y": labels, "batch_size": 8,
                                          "validation_split": 0.2})
    for dataset in (ordered, unweighted):
        dataset.seed = 5
        dataset.epoch_counter.assign(1)
    held_images, held_labels, held_weights = arguments["validation_data"]
    np.testing.assert_array_equal(held_images, data[32:])
    np.testing.assert_array_equal(held_weights, weights[32:])
    np.testing.assert_array_equal(held_labels, labels[32:])
    seen = []
    for index in range(len(ordered)):
        batch_images, batch_labels, batch_weights = ordered[index]
        np.testing.assert_array_equal(batch_images, unweighted[index][0])  # the same order
        rows = batch_weights.astype(int)
        np.testing.assert_array_equal(batch_images, data[rows])
        np.testing.assert_array_equal(batch_labels, labels[rows])
        seen.extend(rows)
    assert sorted(seen) == list(range(32)) and seen != list(range(32))  # shuffled, all there
    with pytest.raises(ValueError, match=r"^`sample_weight` holds 39 values for 40 images"):
        fit_order.epoch_ordered({"x": data, "y": labels, "sample_weight": weights[:39]})



def test_class_weights_keep_the_seeded_order_and_weigh_the_training_part_only():
    """`fit(images, labels, class_weight=...)` was left to Keras' process-RNG shuffle; it is
    ordered by (seed, epoch) with each training image weighed by its class, by Keras' rule
    (1 for a class the dict leaves out), and the held-out part unweighted, as in Keras."""
    data = images(40)
    labels = np.arange(40) % 4
    class_weight = {0: 0.5, 1: 2.0, 3: 4.0}  # class 2 left out
    arguments = {"x": data, "y": labels, "class_weight": class_weight, "batch_size": 8,
                 "validation_split": 0.2}
    ordered = fit_order.epoch_ordered(arguments)
    unweighted = fit_order.epoch_ordered({"x": data, "y": labels, "batch_size": 8,
                                          "validation_split": 0.2})
    assert "class_weight" not in arguments and len(arguments["validation_data"]) == 2
    expected = {0: 0.5, 1: 2.0, 2: 1.0, 3: 4.0}
    for dataset in (ordered, unweighted):
        dataset.seed = 5
        dataset.epoch_counter.assign(1)
    for index in range(len(ordered)):
        batch_images, batch_labels, batch_weights = ordered[index]
        np.testing.assert_array_equal(batch_images, unweighted[index][0])  # the same order
        np.testing.assert_array_equal(batch_weights,
                                      [expected[int(label)] for label in batch_labels])
    one_hot = np.eye(4)[labels]
    np.testing.assert_array_equal(sample_weights.from_class_weight(one_hot, class_weight),
                                  sample_weights.from_class_weight(labels[:, None], class_weight))

@pytest.mark.parametrize("form", ["arrays", "validation_split", "pydataset"])
def test_a_run_resumed_on_shuffled_arrays_or_a_pydataset_is_the_uninterrupted_run(tmp_path, form):
    """Keras would shuffle these with the process's RNG, so that a new process's resumed
    epochs would see other batches; `fit` orders them by (noise seed, epoch)."""
    folder = str(tmp_path / "backup")

    def fit(model, epochs, callbacks):
        if form == "pydataset":
            data = dict(x=_UsersBatches())
        else:
            data = dict(x=images(), batch_size=8)
            if form == "validation_split":
                data["validation_split"] = 0.25
        return model.fit(**data, epochs=epochs, verbose=0, callbacks=callbacks).history

    uninterrupted = tiny_model()
    history = fit(uninterrupted, 3, [])
    assert ("val_loss" in history) == (form == "validation_split")
    fit(tiny_model(), 2, [backup.RunBackup(folder, delete_checkpoint=False)])
    resumed = tiny_model()  # seeds every RNG as a new process would
    fit(resumed, 3, [backup.RunBackup(folder)])
    assert_same_state(state(uninterrupted), state(resumed))


def test_ordered_batches_pickle_as_keras_worker_processes_need_them():
    """Where Keras' worker processes are spawned (macOS, Windows, Python 3.14 on Linux) they
    receive the dataset pickled: an ordered PyDataset crosses with its seed and epoch and
    gives that pass's batches there (its lock made it unpicklable before)."""
    ordered = fit_order.epoch_ordered({"x": _UsersBatches(workers=2, use_multiprocessing=True)})
    assert ordered.use_multiprocessing and ordered.workers == 2
    loader = keras_ddpm.data.from_array_batches(images(), batch_size=8, random_flip=True, seed=3)
    for dataset in (ordered, loader):
        dataset.seed = 5
        dataset.epoch_counter.assign(2)
        expected = [dataset[i] for i in range(len(dataset))]  # drawn before pickling
        copy = pickle.loads(pickle.dumps(dataset))
        assert copy.epoch_counter.value == 2
        for index, batch in enumerate(expected):
            np.testing.assert_array_equal(copy[index], batch)
        copy.epoch_counter.assign(3)  # and it draws the next pass as the original does
        dataset.epoch_counter.assign(3)
        np.testing.assert_array_equal(copy[0], dataset[0])


@pytest.mark.slow  # 16-17 s: Keras spawns worker processes, which import Keras, every pass
def test_a_run_resumed_on_a_pydataset_read_by_spawned_processes_is_the_uninterrupted_run(
    tmp_path, monkeypatch
):
    import multiprocessing

    from keras.src.trainers.data_adapters import py_dataset_adapter

    # As on macOS: Keras' pool and its worker-id queue from the spawn context.
    spawn = multiprocessing.get_context("spawn")
    monkeypatch.setattr(multiprocessing, "Pool", spawn.Pool)
    monkeypatch.setattr(py_dataset_adapter, "_WORKER_ID_QUEUE", spawn.Queue())
    folder = str(tmp_path / "backup")

    def fit(model, epochs, callbacks):
        data = _UsersBatches(workers=2, use_multiprocessing=True)
        model.fit(data, epochs=epochs, verbose=0, callbacks=callbacks)

    uninterrupted = tiny_model()
    fit(uninterrupted, 2, [])
    fit(tiny_model(), 1, [backup.RunBackup(folder, delete_checkpoint=False)])
    resumed = tiny_model()
    fit(resumed, 2, [backup.RunBackup(folder)])
    assert_same_state(state(uninterrupted), state(resumed))


def test_loader_order_depends_on_the_epoch_not_on_the_process():
    """A new dataset object (as in a restarted process) started at epoch k gives epoch k's
    batches: shuffle and flips are functions of (seed, epoch)."""
    data = images(20)

    def passes(dataset, start, count):
        getattr(dataset, keras_ddpm.data.pipeline.EPOCH_COUNTER).assign(start)
        return [np.concatenate([b.numpy() for b in dataset]) for _ in range(count)]

    make = lambda: keras_ddpm.data.from_array(data, batch_size=8, random_flip=True, seed=3)
    first = make()
    assert first.cardinality() == 3
    uninterrupted = passes(first, 0, 3)
    assert not np.array_equal(uninterrupted[0], uninterrupted[1])  # reshuffled each epoch
    restarted = passes(make(), 2, 1)
    np.testing.assert_array_equal(restarted[0], uninterrupted[2])


def test_a_run_resumed_on_a_shuffled_loader_is_the_uninterrupted_run(tmp_path):
    folder = str(tmp_path / "backup")
    make = lambda: keras_ddpm.data.from_array(images(), batch_size=16, random_flip=True, seed=1)
    uninterrupted = tiny_model()
    uninterrupted.fit(make(), epochs=3, verbose=0)
    first = tiny_model()
    first.fit(make(), epochs=2, verbose=0, callbacks=[backup.RunBackup(folder, delete_checkpoint=False)])
    resumed = tiny_model()
    resumed.fit(make(), epochs=3, verbose=0, callbacks=[backup.RunBackup(folder)])
    assert_same_state(state(uninterrupted), state(resumed))


class Interrupt(keras.callbacks.Callback):
    """Stops `fit` with an error after `step` batches in all (a crash, in-process)."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            raise RuntimeError("interrupted")


@pytest.mark.parametrize("crash_after", [4, 8])
def test_a_batch_level_backup_resumes_at_its_batch(tmp_path, crash_after):
    """Five batches an epoch, a backup every three: crashed after batch 4 (epoch 0 resumes after
    its batch 3) or 8 (epoch 1 resumes after its batch 1); the resumed run trains each batch
    once, in the uninterrupted order, and ends bitwise equal."""
    folder = str(tmp_path / "backup")
    make = lambda: keras_ddpm.data.from_array(images(80), batch_size=16, random_flip=True, seed=1)
    uninterrupted = tiny_model()
    uninterrupted.fit(make(), epochs=2, verbose=0)

    crashed = tiny_model()
    with pytest.raises(RuntimeError, match="interrupted"):
        crashed.fit(make(), epochs=2, verbose=0, callbacks=[
            backup.RunBackup(folder, save_freq=3), Interrupt(crash_after)])
    saved = json.load(open(os.path.join(backup.checkpoints(folder)[0], backup.STATE_FILE)))
    expected_state = {4: {"epoch": 0, "batches_done": 3}, 8: {"epoch": 1, "batches_done": 1}}
    assert {k: saved[k] for k in ("epoch", "batches_done")} == expected_state[crash_after]

    resumed = tiny_model()
    trained = []
    steps = keras.callbacks.LambdaCallback()  # its `model` holds the step's state on every backend
    steps.on_train_batch_end = lambda batch, logs: trained.append(
        (batch, int(steps.model.optimizer.iterations.numpy())))
    resumed.fit(make(), epochs=2, verbose=0, callbacks=[backup.RunBackup(folder, save_freq=3), steps])
    saved_at = 3 if crash_after == 4 else 6  # optimizer steps in the backup
    # Callbacks see every batch index of the resumed epoch; the passed-over ones train nothing.
    assert trained == [(b, max(saved_at, 5 * epoch + b + 1))
                       for epoch in range(saved_at // 5, 2) for b in range(5)]
    assert_same_state(state(uninterrupted), state(resumed))
    assert not os.path.exists(folder)


def test_a_backup_at_an_epochs_last_batch_resumes_at_the_next_epoch(tmp_path):
    folder = str(tmp_path / "backup")
    model = tiny_model()
    with pytest.raises(RuntimeError):
        model.fit(images(), batch_size=16, epochs=3, shuffle=False, verbose=0,
                  callbacks=[backup.RunBackup(folder, save_freq=2), Interrupt(3)])
    saved = json.load(open(os.path.join(backup.checkpoints(folder)[0], backup.STATE_FILE)))
    assert (saved["epoch"], saved["batches_done"]) == (1, 0)


def test_an_unreadable_backup_falls_back_then_fails_in_one_line(tmp_path):
    folder = str(tmp_path / "backup")
    model = tiny_model()
    model.fit(images(), batch_size=16, epochs=2, verbose=0,
              callbacks=[backup.RunBackup(folder, delete_checkpoint=False)])
    newest, older = backup.checkpoints(folder)
    weights = os.path.join(newest, backup.WEIGHTS_FILE)
    data = open(weights, "rb").read()
    open(weights, "wb").write(data[: len(data) // 2])  # a damaged disk or a bad copy

    seen = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tiny_model().fit(images(), batch_size=16, epochs=2, verbose=0, callbacks=[
            backup.RunBackup(folder, delete_checkpoint=False),
            keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(epoch)),
        ])
    assert seen == [1]  # resumed from the older backup (epoch 1)
    assert any("checkpoint-000002" in str(w.message) for w in caught)
    assert os.path.exists(newest)  # reported, never silently deleted... until it is rotated out

    for path in backup.checkpoints(folder):
        open(os.path.join(path, backup.WEIGHTS_FILE), "wb").write(b"not hdf5")
    with pytest.raises(ValueError) as error:
        tiny_model().fit(images(), batch_size=16, epochs=3, verbose=0,
                         callbacks=[backup.RunBackup(folder)])
    message = str(error.value)
    assert "\n" not in message and folder in message and "Move that folder aside" in message


def test_a_keras_backup_folder_still_restores(tmp_path):
    """Runs backed up by keras.callbacks.BackupAndRestore (earlier `train` versions) resume."""
    folder = str(tmp_path / "backup")
    model = tiny_model()
    model.fit(images(), batch_size=16, epochs=1, verbose=0, callbacks=[
        keras.callbacks.BackupAndRestore(folder, delete_checkpoint=False)
    ])
    seen = []
    tiny_model().fit(images(), batch_size=16, epochs=2, verbose=0, callbacks=[
        backup.RunBackup(folder),
        keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(epoch)),
    ])
    assert seen == [1]


# ----------------------------------------------------------------------------
# `keras-ddpm train` killed at the end of a run
# ----------------------------------------------------------------------------
TRAIN_ARGS = [
    "train", "--epochs", "2", "--batch-size", "256", "--base-channels", "8",
    "--norm-groups", "4", "--timesteps", "20", "--sample-every", "100", "--num-samples", "4",
    "--verbose", "0",
]

# Runs `keras-ddpm train` and SIGKILLs itself at KILL_AT (a test harness, not package code).
KILLER = textwrap.dedent(
    """
    import os, signal, sys
    import keras
    import keras_ddpm
    from keras_ddpm import cli, utils

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    point = os.environ.get("KILL_AT")
    if point in ("mid_epoch", "after_batch_backup"):
        # Epoch 2 (of 8 batches of the 1,797 digits) after its third batch; or, backed up
        # every 3 batches, after its fifth (one batch past the backup after its fourth).
        stop = 8 + 3 if point == "mid_epoch" else 8 + 5
        def on_train_batch_end(self, batch, logs=None):
            if self.model.optimizer.iterations.numpy() == stop:
                die()
        keras_ddpm.callbacks.SampleGrid.on_train_batch_end = on_train_batch_end
    elif point == "backup_write":  # epoch 2's backup: weights written, not yet renamed
        # RunBackup writes its weights with WeightsFileWriter (save_weights only the first time).
        from keras_ddpm.runs.weights_file import WeightsFileWriter
        original = WeightsFileWriter.write
        calls = []
        def write(self, *args, **kwargs):
            original(self, *args, **kwargs)
            calls.append(1)
            if len(calls) == 2:
                die()
        WeightsFileWriter.write = write
    elif point == "final_grid":
        utils.save_image_grid = lambda *args, **kwargs: die()
    elif point == "final_save":
        def half_written(self, filepath, *args, **kwargs):
            open(filepath, "wb").write(b"PK\\x03\\x04 half")
            die()
        keras.Model.save = half_written
    sys.exit(cli.main(sys.argv[1:]))
    """
)


@pytest.mark.slow
def test_train_killed_at_any_point_resumes_to_the_uninterrupted_run(tmp_path):
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}

    def train(output, kill_at=None, epochs="2"):
        args = [a if a != "2" or i != 2 else epochs for i, a in enumerate(TRAIN_ARGS)]
        if str(output).endswith("after_batch_backup"):
            args += ["--backup-every", "3"]
        return subprocess.run(
            [sys.executable, str(script), *args, "--output", str(output)],
            env={**env, "KILL_AT": kill_at or ""}, capture_output=True, text=True, timeout=600,
        )

    reference = train(tmp_path / "reference")
    assert reference.returncode == 0, reference.stderr[-2000:]
    expected = state(keras_ddpm.load_model(str(tmp_path / "reference" / "model.keras")))
    for point in ("mid_epoch", "after_batch_backup", "backup_write", "final_grid", "final_save"):
        run = tmp_path / point
        killed = train(run, point)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        # The backup outlived the kill: epoch 1's (killed in epoch 2) or epoch 2's.
        assert backup.checkpoints(str(run / "backup"))
        if point == "after_batch_backup":  # resumes after epoch 2's fourth batch
            newest = backup.checkpoints(str(run / "backup"))[0]
            saved = json.load(open(os.path.join(newest, backup.STATE_FILE)))
            assert (saved["epoch"], saved["batches_done"]) == (1, 4)
        again = train(run)
        assert again.returncode == 0, again.stderr[-2000:]
        assert not os.path.exists(run / "backup")
        assert not [n for n in os.listdir(run) if n.startswith(atomic.PARTIAL_PREFIX)]
        final = state(keras_ddpm.load_model(str(run / "model.keras")))
        assert_same_state(expected, final)
    # A finished run continued with more epochs and killed in its save keeps the old model.
    run = tmp_path / "final_save"
    killed = train(run, "final_save", epochs="3")
    assert killed.returncode == -signal.SIGKILL
    old = state(keras_ddpm.load_model(str(run / "model.keras")))
    assert_same_state(expected, old)
    assert train(run, epochs="3").returncode == 0
    assert json.load(open(run / "config.json"))["epochs_completed"] == 3


# ----------------------------------------------------------------------------
# Run folders: one writer at a time, nothing left by a failed start
# ----------------------------------------------------------------------------
def test_run_lock_refuses_a_live_holder_and_takes_over_a_stale_one(tmp_path):
    from keras_ddpm.runs import LOCK_FILE
    from keras_ddpm.runs.lock import RunLocked
    from keras_ddpm.runs.lock import run_lock

    path = tmp_path / LOCK_FILE
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket

        path.write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname()}))
        with pytest.raises(RunLocked) as error:  # a RuntimeError a Python fit can catch
            with run_lock(str(tmp_path)):
                pass
        assert f"PID {holder.pid}" in str(error.value) and "\n" not in str(error.value)
        assert json.loads(path.read_text())["pid"] == holder.pid  # untouched
    finally:
        holder.kill()
        holder.wait()
    # The holder is gone: its lock is stale and taken over, then released.
    with run_lock(str(tmp_path)):
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert not path.exists() and sorted(os.listdir(tmp_path)) == []


def test_train_on_a_locked_folder_is_one_line_and_changes_nothing(tmp_path, capsys):
    import socket

    output = tmp_path / "run"
    output.mkdir()
    lock = output / ".lock"
    lock.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    code = cli.main(["train", "--output", str(output), *TRAIN_ARGS[1:]])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"PID {os.getppid()}" in err
    assert os.listdir(output) == [".lock"]


def test_a_train_that_fails_at_start_leaves_no_new_folder(tmp_path, capsys, monkeypatch):
    output = tmp_path / "new_run"
    (tmp_path / "no_images").mkdir()  # found empty only after `train` made its folder and lock
    made, original = [], os.makedirs

    def recording_makedirs(path, *args, **kwargs):
        made.append(os.fspath(path))
        return original(path, *args, **kwargs)

    monkeypatch.setattr(os, "makedirs", recording_makedirs)
    code = cli.main([
        "train", "--output", str(output), "--dataset", f"folder:{tmp_path / 'no_images'}",
        "--image-size", "8", *TRAIN_ARGS[1:],
    ])
    monkeypatch.undo()
    assert str(output) in made
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert not output.exists()


# ----------------------------------------------------------------------------
# Continuing a run with other optimizer settings
# ----------------------------------------------------------------------------
@pytest.mark.slow  # three `train` runs, 30 s
def test_a_continued_run_applies_and_announces_changed_optimizer_options(tmp_path, capsys):
    output = str(tmp_path / "run")
    args = ["train", "--output", output, *TRAIN_ARGS[1:], "--channel-multipliers", "1",
            "--attention-resolutions", ""]
    assert cli.main([*args, "--epochs", "1", "--learning-rate", "0.002"]) == 0
    capsys.readouterr()
    assert cli.main([*args, "--epochs", "2", "--learning-rate", "0.0005", "--clipnorm", "1.0"]) == 0
    out = capsys.readouterr().out
    assert "continuing with --learning-rate 0.002 -> 0.0005, --clipnorm None -> 1.0" in out
    model = keras_ddpm.load_model(os.path.join(output, "model.keras"))
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0005)
    assert model.optimizer.global_clipnorm == 1.0
    assert int(model.optimizer.iterations.numpy()) == 2 * 8  # Adam's step count carried on
    assert json.load(open(os.path.join(output, "config.json")))["learning_rate"] == 0.0005
    # A warm-up cannot be added to a run that had none: one line, nothing changed.
    code = cli.main([*args, "--epochs", "3", "--warmup-steps", "10"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--warmup-steps" in err
    assert json.load(open(os.path.join(output, "config.json")))["epochs_completed"] == 2
