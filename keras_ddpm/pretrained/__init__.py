"""diffusers-format checkpoints in and out: the DDPM authors' trained models for Keras.

`DDPM.from_pretrained` and `UNet.from_pretrained` read a diffusers pipeline or
model folder, or a hub id such as `"google/ddpm-cifar10-32"` (with
`pip install keras-ddpm[hub]`); `DDPM.save_pretrained` writes a folder that
`diffusers.DDPMPipeline.from_pretrained` loads. Weights are read and written
with the safetensors NumPy API, so no PyTorch is needed.

Layout: `files` (finding folders, hub downloads, safetensors and JSON),
`configs` (config dicts both ways, no TensorFlow), `weights` (tensor names and
layouts), `convert` (the two directions, built on the three).

References:
    - Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models",
      NeurIPS 2020 (the google/ddpm-* checkpoints).
    - von Platen et al., "Diffusers: State-of-the-art diffusion models",
      https://github.com/huggingface/diffusers (the format).
"""

from keras_ddpm.pretrained.configs import diffusers_scheduler_config
from keras_ddpm.pretrained.configs import diffusers_unet_config
from keras_ddpm.pretrained.configs import schedule_arguments
from keras_ddpm.pretrained.configs import unet_arguments
from keras_ddpm.pretrained.convert import load_ddpm
from keras_ddpm.pretrained.convert import load_unet
from keras_ddpm.pretrained.convert import save_pipeline
from keras_ddpm.pretrained.convert import write_unet
from keras_ddpm.pretrained.files import is_diffusers_folder
from keras_ddpm.pretrained.files import looks_like_hub_id
