"""keras_ddpm: denoising diffusion probabilistic models for Keras 3 / TensorFlow.

Public names only; each lives in the module named after what it holds.
"""

import os as _os

# The package is built on TensorFlow (tf.GradientTape, tf.function, SavedModel).
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from keras_ddpm import callbacks  # noqa: E402
from keras_ddpm import data  # noqa: E402
from keras_ddpm import export  # noqa: E402
from keras_ddpm import metrics  # noqa: E402
from keras_ddpm import objectives  # noqa: E402
from keras_ddpm import samplers  # noqa: E402
from keras_ddpm import utils  # noqa: E402
from keras_ddpm.model import DDPM  # noqa: E402
from keras_ddpm.saving import load_model  # noqa: E402
from keras_ddpm.schedules import NoiseSchedule  # noqa: E402
from keras_ddpm.unet import UNet  # noqa: E402
from keras_ddpm.version import __version__  # noqa: E402
