"""Tests for what importing keras_ddpm sets up in a fresh process."""

import os
import platform
import subprocess
import sys

import pytest


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 only")
def test_import_before_tensorflow_enables_onednn_unless_told_otherwise():
    script = (
        "import keras_ddpm, os\n"
        "from tensorflow.python.util import _pywrap_util_port\n"
        "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], _pywrap_util_port.IsMklEnabled())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    output = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert output == ["1", "True"]
    env["TF_ENABLE_ONEDNN_OPTS"] = "0"  # an explicit choice is kept
    output = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert output == ["0", "False"]
