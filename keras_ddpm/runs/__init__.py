"""The run folder: its layout, named once, and what writes it safely.

A run folder (`keras-ddpm train --output`, or a Python `fit` that wants the same safety)::

    config.json   the run's arguments (`read_config`, `write_config`)
    model.keras   the trained model, written when training ends
    backup/       `backup.RunBackup`'s checkpoints, kept until the model is written
    samples/      the grids of `callbacks.SampleGrid`
    logs/         TensorBoard
    .lock         `lock.run_lock`: one writer at a time

Modules: `atomic` (every file the package writes goes through it: a kill never leaves half a
file), `lock`, `backup` and `weights_file` (`RunBackup`), this face (the names and the config).
Errors are ordinary `ValueError`s and `RuntimeError`s (`lock.RunLocked`). Importing this
package loads no TensorFlow; `backup` and `weights_file` do.
"""

import json
import os

CONFIG_FILE = "config.json"
MODEL_FILE = "model.keras"
BACKUP_DIR = "backup"
SAMPLES_DIR = "samples"
LOGS_DIR = "logs"
LOCK_FILE = ".lock"


def read_config(folder):
    """The run's `config.json` as a dict, or `None` if the folder has none.

    Raises:
        ValueError: the file is not a JSON object (a damaged or foreign file), naming it.
    """
    path = os.path.join(folder, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as file:
            config = json.load(file)
    except (OSError, ValueError) as error:
        raise ValueError(f"Cannot read the run's {path!r}: {error}.") from None
    if not isinstance(config, dict):
        raise ValueError(f"The run's {path!r} holds no JSON object.")
    return config


def write_config(folder, config):
    """Writes the run's `config.json` whole (through `atomic`)."""
    from keras_ddpm.runs import atomic

    atomic.write_json(os.path.join(folder, CONFIG_FILE), config)
