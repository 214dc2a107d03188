"""keras_ddpm: denoising diffusion probabilistic models for Keras 3 / TensorFlow.

Public names only; each lives in the module named after what it holds.
"""

import os as _os
import platform as _platform
import sys as _sys

# The package is built on TensorFlow (tf.GradientTape, tf.function, SavedModel).
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")
if "tensorflow" not in _sys.modules and _platform.machine().lower() in ("x86_64", "amd64"):
    # TensorFlow enables its oneDNN kernels by default only on x86 CPUs with AVX-512-class
    # features; on an AVX2 CPU (AMD Zen 3) they trained the benchmark U-Net at 23 % more img/s
    # (benchmarks/benchmark_speed.py). Read once, when TensorFlow loads: importing
    # keras_ddpm first turns them on; TF_ENABLE_ONEDNN_OPTS=0 keeps them off.
    _os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from keras_ddpm import callbacks  # noqa: E402
from keras_ddpm import convolution  # noqa: E402
from keras_ddpm import data  # noqa: E402
from keras_ddpm import export  # noqa: E402
from keras_ddpm import metrics  # noqa: E402
from keras_ddpm import normalization  # noqa: E402
from keras_ddpm import objectives  # noqa: E402
from keras_ddpm import samplers  # noqa: E402
from keras_ddpm import utils  # noqa: E402
from keras_ddpm.model import DDPM  # noqa: E402
from keras_ddpm.saving import load_model  # noqa: E402
from keras_ddpm.schedules import NoiseSchedule  # noqa: E402
from keras_ddpm.unet import UNet  # noqa: E402
from keras_ddpm.version import __version__  # noqa: E402
