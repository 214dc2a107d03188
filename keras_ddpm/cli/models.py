"""Run folders and models for the command line: where a MODEL argument points, and loading it.

A MODEL argument is a `.keras` file, a `train` output folder (`model.keras` beside its
`config.json`), a diffusers folder or a hub id. `resolve_model` decides which without importing
TensorFlow, so that a wrong path fails in one line at once; `load_model` then loads it.
"""

import os

from keras_ddpm.cli.common import UserError
from keras_ddpm.cli.common import import_library
from keras_ddpm.cli.common import user_errors

from keras_ddpm import runs
from keras_ddpm.runs import MODEL_FILE


def read_config(directory):
    """A run folder's config.json as a dict, `None` if there is none; one line if unreadable."""
    try:
        return runs.read_config(directory)
    except ValueError as error:
        raise UserError(f"{error} Delete it or use another --output.") from None


def is_pretrained(path):
    """True if a MODEL argument names a diffusers folder or a hub id (not a keras_ddpm file)."""
    from keras_ddpm.pretrained import files

    return files.is_diffusers_folder(path) or files.looks_like_hub_id(path)


def _check_hub_id(path):
    import importlib.util

    if importlib.util.find_spec("huggingface_hub") is None:
        raise UserError(
            f"model {path!r} does not exist; as a hub id it needs huggingface_hub "
            "(pip install keras-ddpm[hub])"
        )


def resolve_model(path):
    """(path of the .keras file, the run's config or None) for a MODEL argument; no TensorFlow.

    A diffusers folder or a hub id resolves to itself, with no config.
    """
    if is_pretrained(path):
        if not os.path.exists(path):
            _check_hub_id(path)
        return path, None
    if os.path.isdir(path):
        config = read_config(path)
        model_path = os.path.join(path, MODEL_FILE)
        if not os.path.exists(model_path):
            raise UserError(
                f"{path!r} holds no {MODEL_FILE}; has `keras-ddpm train` finished there?"
            )
        return model_path, config
    if not os.path.exists(path):
        raise UserError(f"model {path!r} does not exist")
    if not path.endswith(".keras"):
        raise UserError(f"expected a .keras file or a training output directory; received {path!r}")
    return path, read_config(os.path.dirname(path) or ".")


def load_model(path):
    """The DDPM in `path` (a .keras file, a `train` output directory, a diffusers folder or a
    hub id), and its run config (`None` unless a `train` directory).

    A .keras file is loaded without its optimizer (`compile=False`): the verbs that call this
    sample, edit, evaluate, export or convert, and Adam's two moments would double the weights'
    memory for nothing (`train`, resuming a run, reloads its model with the optimizer).
    """
    model_path, config = resolve_model(path)
    return load_resolved(model_path, policy=(config or {}).get("mixed_precision")), config


def load_resolved(model_path, policy=None):
    """The DDPM at a path from `resolve_model`, without its optimizer; one line if unloadable.

    Args:
        model_path: a .keras file, a diffusers folder or a hub id.
        policy: `None` to leave the global dtype policy as it is (the model's layers keep
            the policies saved with them; a diffusers folder loads in float32), or the
            policy to set first (a run's `mixed_precision`, for the layers built later).
    """
    keras_ddpm = import_library()
    if policy:
        import keras

        keras.mixed_precision.set_global_policy(policy)
    with user_errors():
        if is_pretrained(model_path):
            return keras_ddpm.DDPM.from_pretrained(model_path)
        return keras_ddpm.load_model(model_path, compile=False)
