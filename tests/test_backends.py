"""The same model on every Keras backend (issue 37): files cross backends, samples agree.

The suite runs on TensorFlow; each test here saves a model, loads it in a subprocess under
another backend (`tests/backend_worker.py`) and compares what both sample from the same
`initial_noise` and the same seed (`backend_worker.outputs`: every sampler, SDEdit, inpainting,
encoding, interpolation). Deterministic samplers must agree within 1e-4 (float rounding of two compilers),
and the seeded ones too: the noise is counter-based (`keras_ddpm.rng`), the same numbers on
every backend.
"""

import json
import os
import pathlib
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest

import keras_ddpm
from backend_worker import PARTS
from backend_worker import divergence_outputs
from backend_worker import outputs
from backend_worker import training_outputs
from networks import tiny_unet

WORKER = pathlib.Path(__file__).with_name("backend_worker.py")
NO_TENSORFLOW_WORKER = pathlib.Path(__file__).with_name("no_tensorflow_worker.py")
DATA_PARALLEL_WORKER = pathlib.Path(__file__).with_name("data_parallel_worker.py")
LEGACY = pathlib.Path(__file__).with_name("legacy")
# JAX and PyTorch are test dependencies (setup.py's "test" extra).
BACKENDS = ["jax", "torch"]
# Subprocess checks of 15-60 s a backend run with the slow tests (CI's slow step); the
# backends' own suites run in-process under KERAS_BACKEND=jax and KERAS_BACKEND=torch.
SLOW_BACKENDS = [pytest.param(b, marks=pytest.mark.slow) for b in BACKENDS]
# Those whose reverse loop is compiled (PyTorch's runs eagerly: nothing to recompile).
COMPILING = {"jax"}


def _environment(backend):
    # One thread per process, as conftest sets for TensorFlow: two xdist workers share 2 cores.
    return dict(os.environ, KERAS_BACKEND=backend, XLA_FLAGS="--xla_cpu_multi_thread_eigen=false")


def _run_code(code, backend):
    """What `python -c code` printed under `backend` (it must succeed)."""
    done = subprocess.run(
        [sys.executable, "-c", code], env=_environment(backend), capture_output=True, text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _run_on(backend, model_path, inputs, tmp_path, parts=PARTS):
    out_path = tmp_path / f"{backend}.npz"
    inputs_path = "seeded"
    if inputs is not None:
        inputs_path = tmp_path / "inputs.npz"
        np.savez(inputs_path, **inputs)
    done = subprocess.run(
        [sys.executable, str(WORKER), str(model_path), str(inputs_path), str(out_path),
         ",".join(parts)],
        env=_environment(backend), capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return np.load(out_path)


def _model(num_classes=None):
    keras.utils.set_random_seed(0)  # the same weights in every run
    network = tiny_unet(num_classes=num_classes, attention_resolutions=(8,))
    # Weights away from their initial values, so that every layer shapes the samples.
    rng = np.random.default_rng(0)
    network.set_weights([w + rng.normal(0, 0.05, w.shape) for w in network.get_weights()])
    # A well-conditioned schedule, so that the comparison measures the two compilers'
    # rounding: with the cosine schedule's ᾱ_T ≈ 1e-6 the first step's x̂0 carries the
    # network's rounding times 1/√ᾱ_T ≈ 1000 (1.8e-4 and 3.2e-4 were seen), here 1.3.
    return keras_ddpm.DDPM(network, keras_ddpm.NoiseSchedule("linear", 50), ema_decay=0.9)


@pytest.mark.parametrize("backend", SLOW_BACKENDS)
@pytest.mark.parametrize(
    "num_classes",
    [None, pytest.param(3, marks=pytest.mark.slow)],  # guided: 75 s more of compiling
    ids=["unconditional", "conditional"],
)
def test_a_tensorflow_model_samples_the_same_images_on_another_backend(
    backend, num_classes, tmp_path
):
    model, path, inputs = _saved_model_and_inputs(num_classes, tmp_path)
    theirs = _run_on(backend, path, inputs, tmp_path, parts=("sampling",))
    assert str(theirs["backend"]) == backend
    # Measured: at most 7.7e-7 (guided w = 2 included).
    for name, ours in outputs(model, inputs).items():
        difference = np.abs(theirs[name] - ours).max()
        assert difference <= 1e-4, f"{name}: {difference}"
        assert np.abs(ours).max() > 0.1  # not a trivial agreement (all zeros)
    # Steps, η and the guidance scale are traced values: three runs, no new trace.
    if backend in COMPILING:
        assert int(theirs["traces"]) == 0
    assert "keras-ddpm export MODEL OUT" in str(theirs["export_error"])


@pytest.mark.slow  # 20-30 s a backend of compiling a training step and an EMA update
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_tensorflow_model_trains_on_another_backend_as_on_tensorflow(backend, tmp_path):
    """Training from the same weights on the same batches draws the same t and ε
    (counter-based), so the losses and the weights follow TensorFlow's to rounding."""
    _, path, inputs = _saved_model_and_inputs(None, tmp_path)
    theirs = _run_on(backend, path, inputs, tmp_path, parts=("training",))
    ours = training_outputs(path, inputs)
    np.testing.assert_allclose(theirs["fit_loss"], ours["fit_loss"], rtol=1e-3)
    assert theirs["fit_loss"][-1] < 0.9 * theirs["fit_loss"][0]  # it learns
    np.testing.assert_allclose(theirs["evaluate_loss"], ours["evaluate_loss"], rtol=1e-3)
    assert int(theirs["fit_iterations"]) == int(ours["fit_iterations"]) == 8
    assert theirs["fit_skipped"].tolist() == [0, 0]
    weights = [name for name in ours if name.startswith("weight_")]
    for name in weights:
        np.testing.assert_allclose(theirs[name], ours[name], atol=1e-3, err_msg=name)


@pytest.mark.slow  # 37 s on JAX, 15 s on PyTorch (four more training steps compiled)
@pytest.mark.parametrize("backend", BACKENDS)
def test_divergence_and_mixed_precision_on_another_backend(backend, tmp_path):
    _, path, inputs = _saved_model_and_inputs(None, tmp_path)
    theirs = _run_on(backend, path, inputs, tmp_path, parts=("robustness",))
    # Mixed precision trains there too; float16 with loss scaling.
    for policy in ("mixed_float16", "mixed_bfloat16"):
        losses = theirs[f"{policy}_loss"]
        assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], (policy, losses)
    assert bool(theirs["mixed_float16_loss_scaled"])
    assert not bool(theirs["mixed_bfloat16_loss_scaled"])
    # Two non-finite steps in a row stop the run, with the same one-line error.
    assert "the last 2 steps" in str(theirs["diverged"])
    assert str(theirs["diverged"]) == str(divergence_outputs(path, inputs)["diverged"])


def _saved_model_and_inputs(num_classes, tmp_path):
    """`(model, path, inputs)`: `_model` saved under `tmp_path`, and the worker's inputs."""
    model = _model(num_classes)
    path = tmp_path / "model.keras"
    model.save(path)
    rng = np.random.default_rng(1)
    inputs = {
        "initial_noise": rng.normal(size=(3, 8, 8, 1)).astype("float32"),
        "images": rng.uniform(-1, 1, size=(3, 8, 8, 1)).astype("float32"),
        # Smooth images (a gradient and its sign flipped), so that the network can learn them.
        "train_images": np.linspace(-1, 1, 64, dtype="float32").reshape(1, 8, 8, 1)
        * rng.choice([-1.0, 1.0], size=(16, 1, 1, 1)).astype("float32"),
    }
    if num_classes:
        inputs["labels"] = np.array([0, 2, 1])
        inputs["train_labels"] = (inputs["train_images"][:, 0, 0, 0] > 0).astype("int32")
    return model, path, inputs


@pytest.mark.slow  # 40 s a backend (six loops compiled); CI's slow step runs it
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_legacy_keras_file_gives_its_recorded_seeded_images_on_another_backend(
    backend, tmp_path
):
    """The file written at 66f14d3 (TensorFlow) loads there and gives the images recorded on
    TensorFlow for seed 3 (`tests/legacy/counter_rng_outputs.npz`), EMA and raw weights."""
    theirs = _run_on(backend, LEGACY / "unconditional.keras", None, tmp_path)
    with np.load(LEGACY / "counter_rng_outputs.npz") as recorded:
        assert sorted(theirs.files) == sorted(recorded.files)
        for name in recorded.files:
            difference = np.abs(theirs[name] - recorded[name]).max()
            assert difference <= 1e-4, f"{name}: {difference}"


@pytest.mark.slow  # 40 s of two processes; CI's slow step runs it
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_command_line_trains_there_and_its_model_samples_here(backend, tmp_path):
    """`KERAS_BACKEND=jax keras-ddpm train`: the run folder (model, sample grids) as on
    TensorFlow, and its `.keras` file loads and samples on TensorFlow."""
    run = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "keras_ddpm", "train", "--output", str(run), "--epochs", "2",
         "--base-channels", "8", "--channel-multipliers", "1", "--attention-resolutions", "",
         "--norm-groups", "4", "--timesteps", "50", "--sample-every", "1", "--num-samples", "4",
         "--sample-steps", "5", "--verbose", "0"],
        env=_environment(backend), capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(os.listdir(run / "samples")) == ["epoch_0001.png", "epoch_0002.png"]
    model = keras_ddpm.load_model(run / "model.keras")
    assert int(np.asarray(model.optimizer.iterations)) > 0
    images = model.generate(2, sampler="ddim", steps=5, seed=0, verbose=0)
    assert images.shape == (2, 8, 8, 1) and np.all(np.isfinite(images))


def _without_tensorflow(backend, part, tmp_path):
    """What `tests/no_tensorflow_worker.py` (which refuses TensorFlow's import) saved after
    running `part` under `backend`; TensorFlow was never loaded."""
    done = subprocess.run(
        [sys.executable, str(NO_TENSORFLOW_WORKER), str(tmp_path), part],
        env=_environment(backend), capture_output=True, text=True, timeout=600,
        cwd=pathlib.Path(__file__).parent,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    theirs = np.load(tmp_path / "outputs.npz")
    assert not bool(theirs["tensorflow_loaded"])
    return theirs


@pytest.mark.parametrize("backend", SLOW_BACKENDS)  # 13-29 s a backend
def test_without_tensorflow_installed_it_fits_samples_saves_and_loads(backend, tmp_path):
    """As on the GPU machines, which have no TensorFlow: the package imports, fits NumPy
    arrays, samples, inpaints, saves, loads and evaluates the bound without it, and the file
    it writes samples the same images and has the same bits/dim on TensorFlow."""
    theirs = _without_tensorflow(backend, "package", tmp_path)
    assert "KERAS_BACKEND=tensorflow keras-ddpm export MODEL OUT" in str(theirs["export_error"])
    assert "keras_ddpm.data.load_digits needs the package 'tensorflow'" in str(
        theirs["loader_error"]
    )
    assert "tensorboard_dir" in str(theirs["tensorboard_error"])
    assert theirs["loss"][-1] < 0.9 * theirs["loss"][0]  # it learns
    np.testing.assert_array_equal(theirs["generate_loaded"], theirs["generate"])
    assert theirs["inpaint"].shape == (2, 8, 8, 1) and np.all(np.isfinite(theirs["inpaint"]))
    loaded = keras_ddpm.load_model(tmp_path / "model.keras")
    ours = loaded.generate(2, sampler="dpm_solver", steps=5, seed=0, verbose=0)
    assert np.abs(ours - theirs["generate"]).max() <= 1e-4
    assert np.abs(ours).max() > 0.1  # not a trivial agreement
    # The same x_t draws (counter-based) and float64 coefficients: the same bound.
    ramp = np.linspace(-1, 1, 64, dtype="float32").reshape(1, 8, 8, 1)
    images = ramp * np.array([1.0, -1.0] * 2, "float32").reshape(4, 1, 1, 1)
    ours = keras_ddpm.metrics.bits_per_dim(loaded, images, verbose=0)
    assert float(theirs["bits_per_dim"]) == pytest.approx(ours, rel=1e-5)


# 30-45 s a backend of training and compiling runs: with the slow tests. The default suite
# runs the command line on TensorFlow (`tests/test_cli.py`) and the package without
# TensorFlow (above).
@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_without_tensorflow_installed_the_command_line_trains_samples_and_edits(
    backend, tmp_path
):
    """The command line on a machine without TensorFlow: PNG grids instead of TensorBoard,
    the digits' labels read without `tf.data`, a folder of PNGs, and TensorFlow's datasets
    and export refused in one line each, creating nothing."""
    theirs = _without_tensorflow(backend, "command_line", tmp_path)
    # The command line: a class-conditional run on the digits (PNG grids, no TensorBoard
    # logs), its samples, its bound; a run on a folder of PNGs; a TFDS dataset is refused in
    # one line, nothing created.
    assert int(theirs["cli_train_exit"]) == 0
    assert keras_ddpm.load_model(tmp_path / "run" / "model.keras").num_classes == 10
    assert {"model.keras", "config.json", "samples"} <= set(theirs["cli_run_files"].tolist())
    assert "logs" not in theirs["cli_run_files"].tolist()
    assert theirs["cli_grids"].tolist() == ["epoch_0002.png"]
    assert int(theirs["cli_sample_exit"]) == 0 and theirs["cli_sampled"].shape == (3, 8, 8, 1)
    assert int(theirs["cli_evaluate_exit"]) == 0 and 0 < float(theirs["cli_bits_per_dim"]) < 50
    assert int(theirs["cli_folder_exit"]) == 0
    assert {"model.keras", "samples"} <= set(theirs["cli_folder_files"].tolist())
    assert keras_ddpm.load_model(tmp_path / "folder_run" / "model.keras").image_shape == (8, 8, 1)
    assert int(theirs["cli_edit_exit"]) == 0 and theirs["cli_edited_size"].tolist() == [8, 8]
    assert int(theirs["cli_tfds_exit"]) == 2
    tfds_error = str(theirs["cli_tfds_error"])
    assert "'tfds:mnist' needs TensorFlow" in tfds_error and tfds_error.count("\n") == 1
    assert not (tmp_path / "tfds_run").exists()
    assert int(theirs["cli_export_exit"]) == 2
    export_error = str(theirs["cli_export_error"])
    assert export_error.count("\n") == 1 and "pip install tensorflow" in export_error
    assert "KERAS_BACKEND=tensorflow keras-ddpm export MODEL OUT" in export_error
    assert not (tmp_path / "cli_exported").exists()


@pytest.mark.slow  # 14 s: two subprocesses on JAX
def test_tensorflow_only_verbs_on_another_backend_are_one_line_saying_how(tmp_path):
    """With TensorFlow installed but KERAS_BACKEND=jax, `keras-ddpm export` (and
    `export_saved_model`) answer in one line how to export, instead of a traceback after
    loading the model, and `train --strategy mirrored` refuses instead of training on one
    device under a strategy JAX ignores."""
    path = tmp_path / "model.keras"
    _model().save(path)
    for argv, says, made in (
        (["export", str(path), str(tmp_path / "out")], "KERAS_BACKEND=tensorflow keras-ddpm export",
         tmp_path / "out"),
        (["train", "--output", str(tmp_path / "run"), "--strategy", "mirrored"],
         "--strategy mirrored is tf.distribute's", tmp_path / "run"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "keras_ddpm", *argv], env=_environment("jax"),
            capture_output=True, text=True, timeout=300,
        )
        assert done.returncode == 2, done.stderr[-3000:]
        assert done.stderr.count("\n") == 1 and says in done.stderr, done.stderr
        assert not made.exists()


def test_importing_the_package_on_jax_leaves_tensorflow_unloaded():
    """With TensorFlow installed, `import keras_ddpm` on JAX does not load it (Keras itself
    loads it when it serialises an object, e.g. `save` or the EMA copy's config)."""
    done = subprocess.run(
        [sys.executable, "-c", "import sys, keras_ddpm; print('tensorflow' in sys.modules)"],
        env=_environment("jax"), capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == "False"


@pytest.mark.parametrize("running, grows", [("jax", True), ("torch", True), ("tensorflow", False)])
def test_tensorflow_beside_another_backend_takes_gpu_memory_only_as_needed(
    monkeypatch, running, grows
):
    """On JAX or PyTorch, the TensorFlow of the tf.data loaders, TensorBoard's writer and the
    2015 Inception graph grows its GPU memory instead of reserving it all at its first op;
    a GPU already set up keeps its settings (RuntimeError). On TensorFlow nothing changes."""
    import tensorflow as tf

    from keras_ddpm import backend

    calls = []

    def set_memory_growth(device, enable):
        calls.append((device, enable))
        if device == "GPU:1":
            raise RuntimeError("Physical devices cannot be modified after being initialized")

    monkeypatch.setattr(backend, "name", lambda: running)
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: ["GPU:0", "GPU:1"] if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "set_memory_growth", set_memory_growth)
    backend.import_tensorflow.cache_clear()
    try:
        assert backend.import_tensorflow() is tf
        assert backend.import_tensorflow() is tf  # once a process
    finally:
        backend.import_tensorflow.cache_clear()
    assert calls == ([("GPU:0", True), ("GPU:1", True)] if grows else [])


def test_the_tf_data_loaders_on_jax_load_tensorflow_through_import_tensorflow():
    """Every `tf.data` loader imports `pipeline`, which asks `import_tensorflow` first."""
    code = (
        "from keras_ddpm import backend, data; calls = []; real = backend.import_tensorflow; "
        "backend.import_tensorflow = lambda: calls.append(1) or real(); "
        "batch = next(iter(data.load_digits(4, seed=0))); print(len(calls), batch.shape)"
    )
    assert _run_code(code, "jax").split("\n")[-2] == "1 (4, 8, 8, 1)"


@pytest.mark.slow  # 60 s: inductor compiles the step on the CPU; CI's slow step runs it
def test_torch_compile_trains_the_unet_as_the_eager_step_does():
    """`compile(jit_compile=True)` on PyTorch is Keras' `torch.compile`: the U-Net's step
    compiles (for each batch shape it meets) and trains as the eager step does, from the same
    weights on the same batches, dropping the same units (the U-Net's dropout is seeded)."""
    code = (
        "import sys, numpy as np, keras, keras_ddpm\n"
        f"sys.path.insert(0, {str(pathlib.Path(__file__).parent)!r})\n"
        "from networks import tiny_unet\n"
        "keras.utils.set_random_seed(0)\n"
        "weights = tiny_unet().get_weights()\n"
        "images = np.random.default_rng(0).uniform(-1, 1, (16, 8, 8, 1)).astype('float32')\n"
        "for jit_compile in (True, False):\n"
        "    keras.utils.set_random_seed(1)  # the same dropout seeds\n"
        "    network = tiny_unet(dropout=0.3)\n"
        "    model = keras_ddpm.DDPM(network, keras_ddpm.NoiseSchedule('cosine', 20), seed=0)\n"
        "    model.network.set_weights(weights)\n"
        "    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit_compile)\n"
        "    losses = model.fit(images, batch_size=8, epochs=2, shuffle=False, verbose=0)\n"
        "    print(model.jit_compile, *losses.history['loss'])\n"
    )
    printed = _run_code(code, "torch")
    compiled, eager = (line.split() for line in printed.strip().split("\n")[-2:])
    assert compiled[0] == "True" and eager[0] == "False"
    np.testing.assert_allclose(np.float64(compiled[1:]), np.float64(eager[1:]), rtol=1e-5)


@pytest.mark.slow  # 14 s: a PyTorch subprocess trains and saves
def test_a_model_trained_on_torch_trains_on_here_with_its_optimizer_state(tmp_path):
    """On PyTorch, `keras.optimizers.Adam(...)` is PyTorch's own subclass, and Keras saves its
    module: loaded here, that file trained with PyTorch's update on TensorFlow's tensors
    ("expected Tensor as element 0"). Today's files name `keras.optimizers`; both today's and
    an earlier version's file load with the public Adam and its state, and train on."""
    files = {"today": tmp_path / "today.keras", "earlier": tmp_path / "earlier.keras"}  # in order
    code = (
        "import sys, numpy as np, keras, keras_ddpm\n"
        f"sys.path.insert(0, {str(pathlib.Path(__file__).parent)!r})\n"
        "from networks import tiny_unet\n"
        "model = keras_ddpm.DDPM(tiny_unet(), keras_ddpm.NoiseSchedule('linear', 20))\n"
        "model.compile(optimizer=keras.optimizers.Adam(1e-3))\n"
        "images = np.random.default_rng(0).uniform(-1, 1, (16, 8, 8, 1)).astype('float32')\n"
        "model.fit(images, batch_size=8, epochs=1, verbose=0)\n"
        f"model.save({str(files['today'])!r})\n"
        "keras_ddpm.DDPM.get_compile_config = keras.Model.get_compile_config  # as before\n"
        f"model.save({str(files['earlier'])!r})\n"
        f"np.savez({str(tmp_path / 'state.npz')!r}, "
        "*[keras.ops.convert_to_numpy(v) for v in model.optimizer.variables])\n"
        "print(type(model.optimizer).__module__)\n"
    )
    assert _run_code(code, "torch").split()[-1] == "keras.src.backend.torch.optimizers.torch_adam"
    state = np.load(tmp_path / "state.npz")
    images = np.random.default_rng(1).uniform(-1, 1, (16, 8, 8, 1)).astype("float32")
    for when, path in files.items():
        with zipfile.ZipFile(path) as archive:
            saved = json.loads(archive.read("config.json"))["compile_config"]["optimizer"]
        expected = "keras.optimizers" if when == "today" else "keras.src.backend.torch.optimizers"
        assert saved["module"].startswith(expected), (when, saved["module"])
        model = keras_ddpm.load_model(path)
        assert type(model.optimizer) is keras.optimizers.Adam, when
        assert len(model.optimizer.variables) == len(state.files) > 2
        for variable, name in zip(model.optimizer.variables, state.files):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), state[name])
    # The earlier file's optimizer trains here (today's loads through the same class).
    loss = model.fit(images, batch_size=8, epochs=1, verbose=0).history["loss"][0]
    assert np.isfinite(loss) and int(model.optimizer.iterations) == 4


_FULL_GRAPH = (
    "import numpy as np, torch, keras_ddpm\n"
    "from keras_ddpm import convolution, normalization\n"
    "inputs = {inputs}\n"
    "eager = {call}\n"
    "compiled = torch.compile(lambda *inputs: {call}, fullgraph=True, backend='eager')\n"
    "print(float((compiled(*inputs) - eager).abs().max()))\n"
)


def test_torch_compile_traces_the_room_asking_layers_in_one_graph():
    """The group normalization and convolution ask the backend's room for their kernels
    (`backend.room()`): `torch.compile` traces that without a graph break (`fullgraph=True`
    raises at one); `importlib.import_module`, which it once called each time, broke the graph."""
    code = _FULL_GRAPH.format(
        inputs="[torch.tensor(np.random.default_rng(0).normal(size=(2, 4, 4, 4)), "
        "dtype=torch.float32)]; norm = normalization.GroupNormalization(groups=2); "
        "conv = convolution.Conv2D(4, 3, padding='same')",
        call="conv(norm(inputs[0]))",
    )
    assert float(_run_code(code, "torch").split()[-1]) == 0.0


@pytest.mark.slow  # 21 s: Dynamo traces every layer of the U-Net
def test_torch_compile_traces_the_unet_in_one_graph():
    """The whole U-Net (schedule-free: images and timesteps in, ε out) is one graph."""
    code = (
        f"import sys; sys.path.insert(0, {str(pathlib.Path(__file__).parent)!r})\n"
        "from networks import tiny_unet\n"
    ) + _FULL_GRAPH.format(
        inputs="[torch.tensor(np.random.default_rng(0).normal(size=(2, 8, 8, 1)), "
        "dtype=torch.float32), torch.tensor([3, 7])]; network = tiny_unet()",
        call="network(list(inputs))",
    )
    assert float(_run_code(code, "torch").split()[-1]) == 0.0


@pytest.mark.slow  # 30 s; CI's slow step runs it
def test_a_data_parallel_step_on_two_devices_equals_the_one_device_step(tmp_path):
    """`keras.distribution.DataParallel` on JAX over two host devices: one SGD step on the same
    global batch updates every weight as the single-device step does (the t and ε of each
    example are keyed by its place in the global batch, whichever device holds it)."""
    env = _environment("jax")
    env["XLA_FLAGS"] += " --xla_force_host_platform_device_count=2"
    out_path = tmp_path / "steps.npz"
    done = subprocess.run(
        [sys.executable, str(DATA_PARALLEL_WORKER), str(out_path)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    steps = np.load(out_path)
    assert int(steps["devices"]) == 2
    assert int(steps["one_devices"]) == 1 and int(steps["two_devices"]) == 2  # replicated
    np.testing.assert_allclose(steps["two_loss"], steps["one_loss"], rtol=1e-5)
    updates = sorted(name[4:] for name in steps.files if name[4:].isdigit())
    assert len(updates) > 10
    for i in updates:
        one, two = steps[f"one_{i}"], steps[f"two_{i}"]
        # Measured: 3e-8 at most, the largest update being 0.38.
        np.testing.assert_allclose(two, one, atol=1e-6, err_msg=f"weight {i}")
    assert max(np.abs(steps[f"one_{i}"]).max() for i in updates) > 0.01  # a real step


@pytest.mark.slow  # 80 s: four processes compiling on the CPU
def test_the_gpu_benchmark_script_runs_its_jax_parts_without_tensorflow(tmp_path):
    """`benchmarks/gpu/benchmark_gpu.py --quick` (tiny sizes) runs on JAX, as on the GPU
    machine (no TensorFlow: a `sitecustomize` calls `no_tensorflow_worker.refuse_tensorflow`)."""
    script = pathlib.Path(__file__).parents[1] / "benchmarks" / "gpu" / "benchmark_gpu.py"
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "from no_tensorflow_worker import refuse_tensorflow\nrefuse_tensorflow()\n"
    )
    env = _environment("jax")
    env["PYTHONPATH"] = os.pathsep.join([str(hook), str(pathlib.Path(__file__).parent)])
    output = tmp_path / "gpu.json"
    done = subprocess.run(
        [sys.executable, str(script), "--quick", "--parts", "jax float32,jax sample,jax folder",
         "--output", str(output)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = {result["part"]: result for result in json.loads(output.read_text())["results"]}
    assert "error" not in results["jax float32"], results["jax float32"]["error"]
    assert results["jax float32"]["images_per_second"] > 0
    assert np.isfinite(results["jax float32"]["loss"])
    assert results["jax float32"]["tensorflow_loaded"] is False
    assert results["jax sample"]["finite"] and results["jax sample"]["seconds"] > 0
    assert "| jax float32 | cpu" in done.stdout
    folder = results["jax folder"]
    assert "error" not in folder, folder["error"]
    assert folder["images_per_second"] > 0 and folder["read_images_per_second"] > 0
    assert np.isfinite(folder["loss"]) and "jax folder: decoding alone" in done.stdout
