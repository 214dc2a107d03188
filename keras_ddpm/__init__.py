"""keras_ddpm: denoising diffusion probabilistic models for Keras 3 (TensorFlow, JAX).

Public names only; each lives in the module named after what it holds.

`import keras_ddpm` loads the whole package (and Keras' backend), so that
every class a saved model names is registered with Keras; what needs
TensorFlow on any backend (`data` loaders, `export`, the `metrics`) loads on
first use. The one exception is the
`keras-ddpm` command (and `python -m keras_ddpm`): it loads the package on
demand, after its arguments are parsed, so that `--help` and a wrong argument
are answered before TensorFlow's import time. The names below then load on
first use, as they do for `from keras_ddpm import X` anywhere.
"""

import importlib as _importlib
import os as _os
import platform as _platform
import sys as _sys

# TensorFlow stays the default backend (Keras' own default too); KERAS_BACKEND=jax picks JAX.
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")
if "tensorflow" not in _sys.modules and _platform.machine().lower() in ("x86_64", "amd64"):
    # TensorFlow enables its oneDNN kernels by default only on x86 CPUs with AVX-512-class
    # features; on an AVX2 CPU (AMD Zen 3) they trained the benchmark U-Net at 23 % more img/s
    # (benchmarks/benchmark_speed.py). Read once, when TensorFlow loads: importing
    # keras_ddpm first turns them on; TF_ENABLE_ONEDNN_OPTS=0 keeps them off.
    _os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from keras_ddpm.version import __version__  # noqa: E402

# Public name -> the module that defines it.
_NAMES = {
    "DDPM": "keras_ddpm.model",
    "load_model": "keras_ddpm.saving",
    "NoiseSchedule": "keras_ddpm.schedules",
    "UNet": "keras_ddpm.unet",
}
_SUBMODULES = (
    "callbacks", "convolution", "data", "export", "generation", "metrics", "normalization",
    "objectives", "pretrained", "samplers", "utils",
)


def import_all():
    """Loads every module and binds the public names (what `import keras_ddpm` does)."""
    for name in _SUBMODULES:
        globals()[name] = _importlib.import_module(f"keras_ddpm.{name}")
    for name, module in _NAMES.items():
        globals()[name] = getattr(_importlib.import_module(module), name)


def __getattr__(name):
    if name in _SUBMODULES:  # Also what `from keras_ddpm import samplers` asks first.
        return _importlib.import_module(f"keras_ddpm.{name}")
    if name in _NAMES:
        import_all()
        return globals()[name]
    raise AttributeError(f"module 'keras_ddpm' has no attribute {name!r}")


def _launched_as_command():
    """True while `keras-ddpm` or `python -m keras_ddpm[...]` starts (argv[0] is "-m" then)."""
    launcher = _os.path.basename(_sys.argv[0]) if _sys.argv else ""
    return launcher in ("keras-ddpm", "keras-ddpm.exe", "keras-ddpm-script.py", "-m")


if not _launched_as_command():
    import_all()
