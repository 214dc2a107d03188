"""Packaging for keras_ddpm."""

import pathlib

from setuptools import find_packages
from setuptools import setup

HERE = pathlib.Path(__file__).parent


def _version():
    for line in (HERE / "keras_ddpm" / "version.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split("=")[1].strip().strip('"')
    raise RuntimeError("keras_ddpm/version.py has no __version__")


setup(
    name="keras-ddpm",
    version=_version(),
    description=(
        "Denoising diffusion probabilistic models (DDPM) for Keras 3 "
        "(TensorFlow, JAX, PyTorch): train with model.fit, sample with generate()."
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["keras_ddpm", "keras_ddpm.*"]),
    package_data={"keras_ddpm": ["assets/*.npz", "assets/*.txt"]},
    include_package_data=True,
    install_requires=[
        # The releases the suite passes (README, "Keras and TensorFlow versions"): an older
        # pair ran into changed internals and numerics, a newer one is untested.
        "tensorflow>=2.21,<2.22",
        "keras>=3.15,<3.16",
        "tensorflow-datasets",
        # TFDS 4.9's download manager imports it and does not declare it (issue 36).
        "importlib_resources",
        "numpy",
        "pillow",
        # SampleGrid's image summaries and the CLI's logs use tf.summary.
        "tensorboard",
        # Reading and writing diffusers checkpoints without PyTorch (keras_ddpm.pretrained).
        "safetensors",
    ],
    entry_points={
        "console_scripts": ["keras-ddpm = keras_ddpm.cli:main"],
    },
    extras_require={
        # JAX and PyTorch run the cross-backend tests (tests/test_backends.py) on the CPU.
        # torch is pinned to the release whose CPU-only wheel the CI machines hold (a newer
        # one from PyPI is a CUDA build of several GB).
        "test": ["pytest>=7", "pytest-xdist>=3", "jax>=0.6", "torch==2.13.0"],
        # Keras' JAX backend (KERAS_BACKEND=jax): training and sampling on JAX's devices.
        "jax": ["jax>=0.6"],
        # Keras' PyTorch backend (KERAS_BACKEND=torch).
        "torch": ["torch>=2.4"],
        # Hub ids such as "google/ddpm-cifar10-32" in DDPM.from_pretrained and the CLI.
        "hub": ["huggingface_hub"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
