"""Loading saved DDPMs with errors that name the file.

`keras.models.load_model` restores a `.keras` DDPM by itself once keras_ddpm is
imported (every class is registered under the package name "keras_ddpm"), but
for a damaged file it reports "File not found" even when the file exists, and
other failures surface as errors that do not say which file was read.
`load_model` checks the file first and puts its path into every error.
"""

import os
import zipfile

import keras


def load_model(filepath, compile=True, safe_mode=True, custom_objects=None):
    """Loads a `keras_ddpm.DDPM` from a `.keras` file, naming the file in every error.

    The same as `keras.models.load_model(filepath)` for a good file: the
    config, schedule, network, EMA weights, optimizer state and training-noise
    RNG state come back, so `generate(seed=s)` gives the same images and `fit`
    continues where it stopped.

    Args:
        filepath: str or path-like, a `.keras` file written by `model.save`.
        compile: re-compile the model with its saved optimizer and state.
            Pass `False` to only sample, edit or export: the optimizer's
            state (Adam's two moments, twice the weights) is then not
            created. Defaults to `True`.
        safe_mode: refuse files that would run arbitrary Python code (a
            `Lambda` layer's bytecode). Defaults to `True`; only turn it off
            for files you trust.
        custom_objects: optional dict of extra classes the file needs (custom
            layers of your own network). Defaults to `None`.

    Returns:
        The `keras_ddpm.DDPM`.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: it is not a readable `.keras` model (truncated, another
            kind of file, a SavedModel directory, unsafe code under safe mode).
        TypeError: it holds a Keras model that is not a DDPM.

    Example:

    >>> model = keras_ddpm.load_model("digits.keras")
    >>> images = model.generate(16, seed=0)
    """
    from keras_ddpm.model import DDPM

    path = os.fspath(filepath)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No model file {path!r}: it does not exist.")
    if os.path.isdir(path):
        hint = (
            " It looks like a SavedModel export: load it with tf.saved_model.load."
            if os.path.exists(os.path.join(path, "saved_model.pb"))
            else ""
        )
        raise ValueError(f"Cannot load a model from {path!r}: it is a directory, not a .keras file.{hint}")
    if not path.endswith(".keras"):
        raise ValueError(
            f"Cannot load a model from {path!r}: expected a .keras file (written by model.save)."
        )
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"Cannot load a model from {path!r}: it is not a .keras archive (a .keras file is "
            f"a zip file; this one, {os.path.getsize(path)} bytes, is truncated or another "
            "kind of file)."
        )
    try:
        model = keras.saving.load_model(
            path, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode
        )
    except Exception as error:  # noqa: BLE001 - re-raised with the file's name.
        reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise ValueError(f"Cannot load a model from {path!r}: {reason}") from error
    if not isinstance(model, DDPM):
        raise TypeError(
            f"{path!r} holds a {type(model).__name__}, not a keras_ddpm.DDPM."
        )
    return model
