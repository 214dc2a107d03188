"""Shared test configuration: quiet TensorFlow, one intra-op thread, a clean dtype policy.

The suite runs as two pytest-xdist workers on two cores. With TensorFlow's default of one
intra-op thread per core, each worker (and each CLI or distribute subprocess it starts) had
two threads, four or more on the two cores: a test of one eager loss call took 1.1 s alone and
51 s in the suite (the worst of several such stalls). With one intra-op thread per process,
inherited by the subprocesses through the environment, no test stalled in the two runs timed per
test, and the suite took 360-472 s in four runs (384-509 s in seven before; 2-core AMD EPYC,
the same 663 tests): the machine's load moves it more than this does.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _reset_keras_state():
    """Every test starts and ends with the float32 policy and fresh Keras names."""
    keras.mixed_precision.set_global_policy("float32")
    keras.backend.clear_session(free_memory=False)
    yield
    keras.mixed_precision.set_global_policy("float32")
