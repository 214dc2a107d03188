"""Finding and reading diffusers checkpoints: folders, hub ids, safetensors, config files.

No TensorFlow here. A `source` is

- a model folder: `config.json` + `diffusion_pytorch_model.safetensors` (what
  `UNet2DModel.save_pretrained` writes);
- a pipeline folder: `model_index.json`, `unet/` (a model folder) and
  `scheduler/scheduler_config.json` (what `DDPMPipeline.save_pretrained` writes), or the
  older flat layout of the `google/ddpm-*` repositories, with the model files and
  `scheduler_config.json` beside `model_index.json`;
- a hub id such as `"google/ddpm-cifar10-32"`, downloaded once by `huggingface_hub`
  (`pip install keras-ddpm[hub]`) into its cache.
"""

import json
import os

from keras_ddpm import checks
from keras_ddpm.runs import atomic

SAFETENSORS_FILE = "diffusion_pytorch_model.safetensors"
PICKLE_FILE = "diffusion_pytorch_model.bin"
CONFIG_FILE = "config.json"
INDEX_FILE = "model_index.json"
SCHEDULER_FILE = "scheduler_config.json"
UNET_FOLDER = "unet"
SCHEDULER_FOLDER = "scheduler"


class Checkpoint:
    """The files of one diffusers checkpoint: the U-Net's folder and the scheduler config.

    Attributes:
        source: what the user passed (a path or a hub id), for messages.
        unet_folder: the folder holding `config.json` and the weights.
        scheduler_path: the scheduler config file, or `None` for a bare model folder.
    """

    def __init__(self, source, unet_folder, scheduler_path):
        self.source = source
        self.unet_folder = unet_folder
        self.scheduler_path = scheduler_path

    def unet_config(self):
        return read_json(os.path.join(self.unet_folder, CONFIG_FILE))

    def scheduler_config(self):
        return None if self.scheduler_path is None else read_json(self.scheduler_path)

    def tensors(self, allow_pickle=False):
        return read_weights(self.unet_folder, allow_pickle)


def looks_like_hub_id(source):
    """True for `"owner/name"` strings that are not an existing path."""
    parts = str(source).split("/")
    return (
        not os.path.exists(source)
        and len(parts) == 2
        and all(parts)
        and not str(source).startswith((".", "~"))
        and not str(source).endswith((".keras", ".json", ".safetensors"))
    )


def is_diffusers_folder(path):
    """True if `path` is a folder in one of diffusers' layouts (no files are read)."""
    return os.path.isdir(path) and (
        os.path.isfile(os.path.join(path, INDEX_FILE))
        or (
            os.path.isfile(os.path.join(path, CONFIG_FILE))
            and any(
                os.path.isfile(os.path.join(path, name)) for name in (SAFETENSORS_FILE, PICKLE_FILE)
            )
        )
    )


def locate(source, allow_pickle=False):
    """The `Checkpoint` of a folder or hub id (downloading a hub id's files once).

    Raises:
        ValueError: a missing folder, a folder in no diffusers layout, or a hub
            id without `huggingface_hub` installed, each in one line.
    """
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            "`source` must be a folder in diffusers' layout or a hub id such as "
            f"'google/ddpm-cifar10-32'. Received: {source!r}"
        )
    source = os.fspath(source)
    folder = download(source, allow_pickle) if looks_like_hub_id(source) else source
    if not os.path.exists(folder):
        raise ValueError(
            f"No diffusers checkpoint at {source!r}: the folder does not exist. Expected a "
            "model folder (config.json + diffusion_pytorch_model.safetensors), a pipeline "
            "folder (model_index.json, unet/, scheduler/) or a hub id."
        )
    if not os.path.isdir(folder):
        raise ValueError(f"Expected a folder in diffusers' layout; {source!r} is a file.")
    if os.path.isfile(os.path.join(folder, INDEX_FILE)):
        subfolder = os.path.join(folder, UNET_FOLDER)
        if os.path.isfile(os.path.join(subfolder, CONFIG_FILE)):
            scheduler = os.path.join(folder, SCHEDULER_FOLDER, SCHEDULER_FILE)
            return Checkpoint(source, subfolder, scheduler if os.path.isfile(scheduler) else None)
        flat_scheduler = os.path.join(folder, SCHEDULER_FILE)
        if os.path.isfile(os.path.join(folder, CONFIG_FILE)):
            return Checkpoint(
                source, folder, flat_scheduler if os.path.isfile(flat_scheduler) else None
            )
        raise ValueError(
            f"The pipeline folder {source!r} has no {UNET_FOLDER}/{CONFIG_FILE} (keras_ddpm "
            "converts unconditional DDPM pipelines: a UNet2DModel and its scheduler)."
        )
    if os.path.isfile(os.path.join(folder, CONFIG_FILE)):
        return Checkpoint(source, folder, None)
    raise ValueError(
        f"{source!r} is not in diffusers' layout: it has neither {INDEX_FILE} (a pipeline) nor "
        f"{CONFIG_FILE} (a model folder)."
    )


def download(repo_id, allow_pickle=False):
    """A hub repository's configs and weights in huggingface_hub's cache; returns the folder."""
    try:
        import huggingface_hub
    except ImportError:
        raise ValueError(
            f"Loading the hub id {repo_id!r} needs huggingface_hub: pip install keras-ddpm[hub] "
            "(or download the repository and pass its folder)."
        ) from None
    patterns = ["*.json", "*.safetensors"] + (["*.bin"] if allow_pickle else [])
    try:
        return huggingface_hub.snapshot_download(repo_id, allow_patterns=patterns)
    except Exception as error:  # noqa: BLE001 - offline, unknown repo, auth: all one line.
        raise ValueError(
            f"Could not download {repo_id!r} from the Hugging Face hub: "
            f"{type(error).__name__}: {checks.first_line(error)} (offline? download it "
            "elsewhere and pass its folder)"
        ) from None


def read_json(path):
    """A JSON object from `path`, or one-line errors for a missing or malformed file."""
    try:
        with open(path, encoding="utf-8") as file:
            value = json.load(file)
    except FileNotFoundError:
        raise ValueError(f"Missing {path!r} (a diffusers checkpoint needs it).") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"Cannot read {path!r}: {checks.first_line(error)}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path!r} does not hold a JSON object.")
    return value


write_json = atomic.write_json  # configs are written in one rename, as every keras_ddpm file


def read_weights(folder, allow_pickle=False):
    """`{name: float32 NumPy array}` of the weights in a model folder.

    Reads `diffusion_pytorch_model.safetensors` with the safetensors NumPy API
    (no PyTorch). A folder with only the pickled `.bin` is refused unless
    `allow_pickle=True`, because unpickling a file can run arbitrary code.
    """
    safetensors_path = os.path.join(folder, SAFETENSORS_FILE)
    pickle_path = os.path.join(folder, PICKLE_FILE)
    if os.path.isfile(safetensors_path):
        return read_safetensors(safetensors_path)
    if os.path.isfile(pickle_path):
        if not allow_pickle:
            raise ValueError(
                f"{folder!r} holds only the pickled {PICKLE_FILE}; unpickling can run "
                "arbitrary code, so it is not read by default. Convert it to "
                f"{SAFETENSORS_FILE}, or pass allow_pickle=True (needs PyTorch) if you trust "
                "its author."
            )
        return _read_pickle(pickle_path)
    raise ValueError(f"{folder!r} has no {SAFETENSORS_FILE} (nor {PICKLE_FILE}).")


def read_safetensors(path):
    """`{name: float32 array}` of a `.safetensors` file; a damaged file is one line."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(
            f"Cannot read {path!r} ({checks.first_line(error)}); the file is damaged or "
            "incomplete: download or copy it again."
        ) from None
    return {name: _as_float32(name, array, path) for name, array in tensors.items()}


def _as_float32(name, array, path):
    if array.dtype.kind != "f":
        raise ValueError(f"{path!r}: tensor {name!r} has dtype {array.dtype}; expected floats.")
    return array.astype("float32")


def _read_pickle(path):
    try:
        import torch
    except ImportError:
        raise ValueError(
            f"allow_pickle=True reads {path!r} with PyTorch, which is not installed "
            "(pip install torch)."
        ) from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # noqa: BLE001 - damaged or foreign: name the file, in one line
        raise ValueError(
            f"{path!r} is not a readable PyTorch checkpoint ({checks.first_line(error)})."
        ) from None
    return {name: value.float().numpy() for name, value in state.items()}


def write_safetensors(path, tensors):
    """Writes `{name: array}` to `path` atomically, in diffusers' PyTorch (`pt`) format."""
    from safetensors.numpy import save_file

    with atomic.atomic_write(path) as tmp:
        save_file(tensors, tmp, metadata={"format": "pt"})
