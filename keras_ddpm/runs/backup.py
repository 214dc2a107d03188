"""`RunBackup`: a `BackupAndRestore` whose backups survive a kill at any instant.

Keras' `BackupAndRestore` writes `latest.weights.h5` in place and then a
separate `training_metadata.json`: a kill during the first write leaves a
truncated file (every re-run then fails in h5py), and a kill between the two
pairs epoch k+1's weights with epoch k's counter. Here each backup is one
folder, `checkpoint-NNNNNN/` (the weights, which hold the optimizer, EMA and
noise-RNG state of a `DDPM`, and `state.json`), written under a temporary name
and renamed into place, so a named checkpoint is always complete. The newest
`keep` are kept; on restore the newest that reads is used, an unreadable one
is reported (never deleted), and a folder in Keras' own layout, written by
`BackupAndRestore`, is restored as Keras would.

A batch-level backup (`save_freq=N`) records how many batches of its epoch
were trained. On restore the epoch starts again from its first batch, and
the batches already trained are read and passed over without training
(`SkipTrainedBatches`). On a loader of `keras_ddpm.data` (or any input
whose order is a function of the epoch) the run then goes on from the very
next batch, as if it had not stopped.
"""

import json
import os
import re
import shutil
import warnings

import keras

from keras_ddpm import backend
from keras_ddpm.runs import atomic
from keras_ddpm import checks
from keras_ddpm.backend import internals
from keras_ddpm.runs.weights_file import WeightsFileWriter

WEIGHTS_FILE = "model.weights.h5"
STATE_FILE = "state.json"
_NAME = re.compile(r"^checkpoint-(\d{6,})$")


def checkpoints(backup_dir):
    """The complete checkpoint folders of `backup_dir`, newest first."""
    if not os.path.isdir(backup_dir):
        return []
    found = [(int(m.group(1)), name) for name in os.listdir(backup_dir) if (m := _NAME.match(name))]
    return [os.path.join(backup_dir, name) for _, name in sorted(found, reverse=True)]


class RunBackup(keras.callbacks.BackupAndRestore):
    """Backs up training every epoch (or every `save_freq` batches) so that a killed run resumes.

    Use it like `keras.callbacks.BackupAndRestore`: pass it to `fit`, and run
    the same script again after a crash; training restarts from the last
    backup with the same weights, EMA weights, optimizer state and training
    noise. Unlike Keras' callback, a kill *during* a backup's write never costs
    the backup: each one is written under a temporary name and renamed into
    place, and the previous one is kept until the new one is complete. If the
    newest backup cannot be read (a damaged disk, a copied folder), the one
    before it is used with a warning; if none can be read, `fit` stops with one
    `ValueError` naming the folder. Each backup holds the file of
    `keras.Model.save_weights`; after the first, it is written without Keras'
    walk over the model's objects (`keras_ddpm.runs.weights_file`), which is most of
    a save's time.

    Args:
        backup_dir: str, the folder of the backups (created when needed).
        save_freq: `"epoch"` or an int number of batches. Defaults to `"epoch"`.
            A batch-level backup resumes at the batch after it: the batches
            of its epoch trained before the backup are read again and passed
            over, not trained twice (Keras' own callback trains them again).
        keep: int >= 1, complete backups kept. Defaults to `2`.
        delete_checkpoint: remove `backup_dir` when `fit` ends. Defaults to
            `True`. Pass `False` to keep it until the trained model is safely
            saved elsewhere, then call `delete()` (what `keras-ddpm train` does).

    Example:

    ```python
    backup = keras_ddpm.callbacks.RunBackup("runs/mine/backup", delete_checkpoint=False)
    model.fit(dataset, epochs=100, callbacks=[backup])
    model.save("runs/mine/model.keras")   # written atomically
    backup.delete()                       # only now: a kill before this loses nothing
    ```
    """

    def __init__(self, backup_dir, save_freq="epoch", keep=2, delete_checkpoint=True):
        super().__init__(backup_dir, save_freq=save_freq, delete_checkpoint=delete_checkpoint)
        # Keras' private state used below; a Keras without it is an error here, not a backup
        # that silently stops being atomic.
        internals.check_backup_and_restore(self)
        self.keep = checks.positive_int("keep", keep)
        self._serial = 0
        self._batches_done = 0  # batches of the current epoch trained
        self._resumed_at = 0  # batches of the resumed epoch trained before the restore
        # save_weights' file, without walking the model's objects at every backup.
        self._writer = WeightsFileWriter()

    # --- restore -------------------------------------------------------------
    def on_train_begin(self, logs=None):
        SkipTrainedBatches.remove(self.model)
        self._batches_done = self._resumed_at = 0
        atomic.remove_partials(self.backup_dir)
        found = checkpoints(self.backup_dir)
        if not found:
            if os.path.exists(self._weights_path):  # Keras' own layout, from BackupAndRestore
                self._restore_keras_layout()
            return
        self._serial = int(_NAME.match(os.path.basename(found[0])).group(1))
        failures = []
        for folder in found:
            try:
                self._restore(folder)
            except Exception as error:  # noqa: BLE001 - h5py, JSON, shape mismatches alike.
                failures.append(f"{os.path.basename(folder)}: {checks.first_line(error)}")
                continue
            if failures:
                warnings.warn(
                    f"Skipped unreadable backups in {self.backup_dir!r} ({'; '.join(failures)}); "
                    f"resumed from {os.path.basename(folder)}.",
                    stacklevel=2,
                )
            return
        raise ValueError(
            f"No backup in {self.backup_dir!r} can be read ({'; '.join(failures)}). Move that "
            "folder aside to start the run over, or restore it from a copy."
        )

    def _restore(self, folder):
        with open(os.path.join(folder, STATE_FILE), encoding="utf-8") as file:
            state = json.load(file)
        epoch = int(state["epoch"])
        done = int(state.get("batches_done", 0))  # absent from backups before batch resume
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(folder, WEIGHTS_FILE))
        internals.set_initial_epoch(self.model, epoch)
        internals.set_backup_position(self, epoch)
        if done:
            SkipTrainedBatches.install(self.model, done)
            self._resumed_at = self._batches_done = done
            # Keras counts batches to the next save from here.
            internals.set_backup_position(self, epoch, last_batch=done - 1)

    def _restore_keras_layout(self):
        try:
            super().on_train_begin()
        except Exception as error:  # noqa: BLE001
            raise ValueError(
                f"Cannot read the backup in {self.backup_dir!r} ({checks.first_line(error)}). "
                "Move that folder aside to start the run over, or restore it from a copy."
            ) from None

    # --- save ----------------------------------------------------------------
    def on_epoch_begin(self, epoch, logs=None):
        internals.set_backup_position(self, epoch)  # Keras only sets it at an epoch's end

    def on_train_batch_end(self, batch, logs=None):
        if batch < self._resumed_at:
            return  # a batch trained before the restore, passed over
        self._batches_done = batch + 1
        super().on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._batches_done = self._resumed_at = 0
        super().on_epoch_end(epoch, logs)

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        self._serial += 1
        final = os.path.join(self.backup_dir, f"checkpoint-{self._serial:06d}")
        with atomic.atomic_write(final) as tmp:
            os.makedirs(tmp)
            self._writer.write(self.model, os.path.join(tmp, WEIGHTS_FILE))
            with open(os.path.join(tmp, STATE_FILE), "w", encoding="utf-8") as file:
                json.dump(self._state(), file)
        for old in checkpoints(self.backup_dir)[self.keep:]:
            shutil.rmtree(old, ignore_errors=True)

    def _state(self):
        """Where training stands: `epoch` to start from and `batches_done` of it."""
        epoch, last_batch = internals.backup_position(self)
        done = self._batches_done
        steps = (self.params or {}).get("steps")
        if done and steps and done >= steps:  # the epoch's last batch: resume at the next epoch
            epoch, done = epoch + 1, 0
        # `batch` as Keras' callback writes it, for readers of its layout.
        return {"epoch": epoch, "batch": last_batch, "batches_done": done}

    # --- end -----------------------------------------------------------------
    def on_train_end(self, logs=None):
        SkipTrainedBatches.remove(self.model)
        if self.delete_checkpoint:
            self.delete()

    def delete(self):
        """Removes the backup folder (call it once the trained model is saved)."""
        if os.path.exists(self.backup_dir):
            shutil.rmtree(self.backup_dir)


class SkipTrainedBatches:
    """A train function that reads the next `batches` batches without training, then trains.

    `RunBackup` puts it in place of `model.train_function` when it restores a
    backup made in the middle of an epoch, so that the restored epoch (which
    Keras starts at its first batch) passes over the batches trained before
    the backup: they are read from the input, in its order, but the weights,
    the optimizer, the metrics and the random state are untouched. Callbacks
    still see those batches' indices, so batch counts match the uninterrupted
    run; their logs hold the epoch's metrics so far (zero).
    """

    def __init__(self, model, batches):
        self.model = model
        self.train_function = model.train_function
        self.remaining = int(batches)

    @classmethod
    def install(cls, model, batches):
        cls.remove(model)
        if not callable(getattr(model, "train_function", None)):
            # Keras builds it before `on_train_begin`, where RunBackup restores.
            internals.changed("keras.Model.train_function being built before on_train_begin")
        model.train_function = cls(model, batches)

    @staticmethod
    def remove(model):
        """Puts the model's own train function back (a no-op when none is installed)."""
        function = getattr(model, "train_function", None)
        if isinstance(function, SkipTrainedBatches):
            model.train_function = function.train_function

    def __call__(self, *args):
        # (iterator) on TensorFlow, (state, iterator) on JAX, (batches) on PyTorch: the
        # backend room answers.
        if self.remaining <= 0:
            return self.train_function(*args)
        room = backend.room()
        room.skip_batches(self.model, args[-1])
        self.remaining -= self.model.steps_per_execution
        if self.remaining <= 0:
            self.remove(self.model)
        return room.untrained_step(self.model, *args[:-1])
