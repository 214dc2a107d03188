"""diffusers checkpoints → `UNet` and `DDPM`, and `DDPM` → a diffusers pipeline folder.

The classes come in as arguments (`UNet.from_pretrained` and `DDPM.from_pretrained` pass
their own), so this module imports neither `model` nor `unet` and ties no import circle.
"""

import os
import warnings

from keras_ddpm.pretrained import configs
from keras_ddpm.pretrained import files
from keras_ddpm.pretrained import weights


def load_unet(network_class, source, allow_pickle=False, dtype=None, dropout=None, checkpoint=None):
    """A `network_class` (`UNet`) holding the weights of a diffusers `UNet2DModel`
    (see `UNet.from_pretrained`)."""
    checkpoint = checkpoint or files.locate(source, allow_pickle)
    arguments = configs.unet_arguments(checkpoint.unet_config())
    if dropout is not None:
        arguments["dropout"] = dropout
    tensors = checkpoint.tensors(allow_pickle)
    network = network_class(**arguments, dtype=dtype)
    weights.assign(network, tensors, checkpoint.source)
    return network


def load_ddpm(
    model_class, network_class, source, allow_pickle=False, dtype=None, dropout=None,
    **ddpm_arguments,
):
    """A `model_class` (`DDPM`) around a `network_class` (`UNet`) from a diffusers pipeline
    folder or hub id (see `DDPM.from_pretrained`)."""
    from keras_ddpm.schedules import NoiseSchedule

    checkpoint = files.locate(source, allow_pickle)
    scheduler = checkpoint.scheduler_config()
    if scheduler is None:
        warnings.warn(
            f"{source!r} has no scheduler config; using DDPM's defaults (linear β from 1e-4 "
            "to 0.02 over 1000 steps, epsilon prediction).",
            stacklevel=3,
        )
        scheduler = {}
    schedule_args, model_args, clip_sample = configs.schedule_arguments(scheduler)
    if not clip_sample:
        warnings.warn(
            f"The scheduler of {source!r} does not clip x̂_0 (clip_sample=False): pass "
            "generate(..., clip=False) to sample as it does.",
            stacklevel=3,
        )
    network = load_unet(network_class, source, allow_pickle, dtype, dropout, checkpoint=checkpoint)
    for key, value in model_args.items():
        ddpm_arguments.setdefault(key, value)
    # The EMA copy is made from the loaded weights, so it starts equal to them.
    return model_class(network, schedule=NoiseSchedule(**schedule_args), **ddpm_arguments)


def _prepare_folder(folder, what):
    folder = os.fspath(folder)
    if os.path.isfile(folder):
        raise ValueError(f"{what} writes a folder; {folder!r} is a file.")
    if os.path.isdir(folder) and os.listdir(folder) and not files.is_diffusers_folder(folder):
        raise ValueError(
            f"{folder!r} is a non-empty folder that holds no diffusers checkpoint; choose an "
            "empty or new folder."
        )
    os.makedirs(folder, exist_ok=True)
    return folder


def write_unet(network, folder):
    """Writes a `UNet` as a diffusers model folder (config.json + safetensors); LoRA updates
    are merged into the kernels they adapt (`lora.merged`)."""
    from keras_ddpm import lora  # here: the CLI reads this module before Keras loads

    network = lora.merged(network)
    config = configs.diffusers_unet_config(network.get_config())
    folder = _prepare_folder(folder, "save_pretrained")
    files.write_safetensors(
        os.path.join(folder, files.SAFETENSORS_FILE), weights.state_dict(network)
    )
    files.write_json(os.path.join(folder, files.CONFIG_FILE), config)
    return folder


def save_pipeline(model, folder, network_class, use_ema=True):
    """Writes a `DDPM` whose network is a `network_class` (`UNet`) as a diffusers
    `DDPMPipeline` folder (see `DDPM.save_pretrained`)."""
    network = model.ema_network if use_ema and model.ema_network is not None else model.network
    if not isinstance(network, network_class):
        raise TypeError(
            "save_pretrained converts a keras_ddpm.UNet network; this DDPM's network is a "
            f"{type(network).__name__}."
        )
    # Every refusal comes before anything is written.
    from keras_ddpm import lora

    network = lora.merged(network)
    configs.diffusers_unet_config(network.get_config())
    scheduler = configs.diffusers_scheduler_config(
        model.schedule.get_config(), model.variance, model.prediction_type
    )
    folder = _prepare_folder(folder, "save_pretrained")
    write_unet(network, os.path.join(folder, files.UNET_FOLDER))
    os.makedirs(os.path.join(folder, files.SCHEDULER_FOLDER), exist_ok=True)
    files.write_json(
        os.path.join(folder, files.SCHEDULER_FOLDER, files.SCHEDULER_FILE), scheduler
    )
    files.write_json(os.path.join(folder, files.INDEX_FILE), configs.pipeline_index())
    return folder
