"""The keras-ddpm command: every verb end to end on tiny settings, resuming, user errors."""

import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

import keras_ddpm
from keras_ddpm import cli

# A tiny U-Net and a 20-step schedule: seconds per epoch on the digits.
TINY = [
    "--base-channels",
    "8",
    "--channel-multipliers",
    "1",
    "--num-res-blocks",
    "1",
    "--attention-resolutions",
    "",
    "--norm-groups",
    "4",
    "--timesteps",
    "20",
    "--batch-size",
    "64",
    "--num-samples",
    "4",
    "--verbose",
    "0",
    "--jit-compile",
    "false",
]
# Sampling without XLA: compiling costs more than it saves on these tiny runs.
NO_XLA = ["--jit-compile", "false", "--no-progress"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One finished 2-epoch run on the digits, shared by the sample/evaluate tests."""
    keras.mixed_precision.set_global_policy("float32")
    output = str(tmp_path_factory.mktemp("run"))
    assert (
        cli.main(["train", "--output", output, "--epochs", "2", "--sample-every", "1", *TINY]) == 0
    )
    return output


def test_train_writes_model_config_grids_and_logs(run_dir):
    assert sorted(os.listdir(os.path.join(run_dir, "samples"))) == [
        "epoch_0001.png",
        "epoch_0002.png",
    ]
    assert not os.path.exists(os.path.join(run_dir, "backup"))  # removed once training ended
    config = json.load(open(os.path.join(run_dir, "config.json")))
    assert config["epochs_completed"] == 2 and config["base_channels"] == 8
    assert config["channel_multipliers"] == [1] and config["attention_resolutions"] == []
    assert any(
        name.startswith("events")
        for _, _, files in os.walk(os.path.join(run_dir, "logs"))
        for name in files
    )
    model = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    assert isinstance(model, keras_ddpm.DDPM) and model.schedule.timesteps == 20
    assert int(model.optimizer.iterations.numpy()) == 2 * 29  # 1797 digits / 64
    # The last grid: the trained model's DPM-Solver++ samples (the grids' default) of the seed.
    written = np.asarray(Image.open(os.path.join(run_dir, "samples", "epoch_0002.png")))
    images = model.generate(4, sampler="dpm_solver", seed=config["seed"], verbose=0,
                            jit_compile=False)
    grid = keras_ddpm.utils.make_image_grid(images)[..., 0]
    scale = written.shape[0] // grid.shape[0]
    np.testing.assert_array_equal(written[::scale, ::scale], grid)


def test_rerun_continues_a_finished_run_and_refuses_other_settings(run_dir, tmp_path, capsys):
    # Same command, same epochs: nothing to do (spelling out a default changes nothing).
    assert cli.main(["train", "--output", run_dir, "--epochs", "2", "--dropout", "0.0", *TINY]) == 0
    assert "already trained for 2 epochs" in capsys.readouterr().out
    # A different network in the same directory is a user error.
    assert (
        cli.main(["train", "--output", run_dir, "--epochs", "3", *TINY, "--base-channels", "16"])
        == 2
    )
    assert "--base-channels" in capsys.readouterr().err


def test_rerun_continues_a_run_written_before_fine_tuning_existed(run_dir, tmp_path, capsys):
    # A run folder from before `--from` and LoRA: its config.json names none of their keys.
    output = str(tmp_path / "old_run")
    shutil.copytree(run_dir, output)
    config_path = os.path.join(output, "config.json")
    config = json.load(open(config_path))
    new_keys = ("from_model", "lora_rank", "lora_alpha", "lora_layers")
    assert all(key in config for key in new_keys)
    old = {key: value for key, value in config.items() if key not in new_keys}
    assert (old["schedule"], old["ema_decay"], old["class_dropout"]) == ("linear", 0.999, 0.1)
    with open(config_path, "w") as file:
        json.dump(old, file)

    assert cli.main(["train", "--output", output, "--epochs", "3", *TINY]) == 0
    assert "other settings" not in capsys.readouterr().err
    assert json.load(open(config_path))["epochs_completed"] == 3
    model = keras.saving.load_model(os.path.join(output, "model.keras"))
    assert int(model.optimizer.iterations.numpy()) == 3 * 29  # one more epoch of 29 steps


@pytest.mark.slow  # 30 s: three runs; backups resuming exactly are tested in test_backup
def test_interrupted_run_resumes_from_the_backup_with_ema_optimizer_and_rng(tmp_path, capsys):
    output = str(tmp_path / "run")

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    # Train 2 of 3 epochs, then "crash": BackupAndRestore keeps the epoch-2 state.
    original_fit = keras_ddpm.DDPM.fit
    states = {}

    def crashing_fit(self, *args, callbacks=(), **kwargs):
        try:
            return original_fit(self, *args, callbacks=[*callbacks, Interrupt()], **kwargs)
        finally:
            states["ema"] = [w.numpy().copy() for w in self.ema_weights]
            states["iterations"] = int(self.optimizer.iterations.numpy())
            states["rng"] = self.seed_generator.state.numpy().copy()
            states["adam"] = [v.numpy().copy() for v in self.optimizer.variables]

    keras_ddpm.DDPM.fit = crashing_fit
    try:
        code = cli.main(
            ["train", "--output", output, "--epochs", "3", "--sample-every", "5", *TINY]
        )
    finally:
        keras_ddpm.DDPM.fit = original_fit
    # Ctrl-C: one line saying where, exit status 130 (128 + SIGINT), no traceback.
    assert code == 130
    assert capsys.readouterr().err.strip().splitlines() == [
        "keras-ddpm train: interrupted at epoch 2, batch 29; run the same command to continue "
        "from the backup"
    ]
    assert os.path.isdir(os.path.join(output, "backup")) and not os.path.exists(
        os.path.join(output, "model.keras")
    )

    # The re-run restores the state of epoch 2 before training epoch 3.
    restored = {}

    def checking_fit(self, *args, callbacks=(), **kwargs):
        class Check(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                model = self.model
                restored.setdefault("epoch", epoch)
                restored.setdefault("ema", [w.numpy().copy() for w in model.ema_weights])
                restored.setdefault("iterations", int(model.optimizer.iterations.numpy()))
                restored.setdefault("rng", model.seed_generator.state.numpy().copy())
                restored.setdefault("adam", [v.numpy().copy() for v in model.optimizer.variables])

        return original_fit(self, *args, callbacks=[*callbacks, Check()], **kwargs)

    keras_ddpm.DDPM.fit = checking_fit
    try:
        assert (
            cli.main(["train", "--output", output, "--epochs", "3", "--sample-every", "5", *TINY])
            == 0
        )
    finally:
        keras_ddpm.DDPM.fit = original_fit
    assert restored["epoch"] == 2 and restored["iterations"] == states["iterations"] == 2 * 29
    for saved, loaded in zip(
        states["ema"] + states["adam"], restored["ema"] + restored["adam"], strict=True
    ):
        np.testing.assert_array_equal(saved, loaded)
    np.testing.assert_array_equal(states["rng"], restored["rng"])
    # Only the end-of-training grid: epoch 3 (1-based, counted from the resumed epoch).
    assert os.listdir(os.path.join(output, "samples")) == ["epoch_0003.png"]
    assert json.load(open(os.path.join(output, "config.json")))["epochs_completed"] == 3

    # A finished run continues from model.keras when --epochs grows.
    assert (
        cli.main(["train", "--output", output, "--epochs", "4", "--sample-every", "5", *TINY]) == 0
    )
    model = keras.saving.load_model(os.path.join(output, "model.keras"))
    assert int(model.optimizer.iterations.numpy()) == 4 * 29
    assert sorted(os.listdir(os.path.join(output, "samples"))) == [
        "epoch_0003.png",
        "epoch_0004.png",
    ]


def test_train_on_an_image_folder_with_options(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(10):
        Image.fromarray(rng.integers(0, 255, (12, 10), dtype=np.uint8)).save(
            folder / f"{index}.png"
        )
    output = str(tmp_path / "run")
    args = [
        "train",
        "--output",
        output,
        "--dataset",
        f"folder:{folder}",
        "--image-size",
        "8",
        "--channels",
        "1",
        "--random-flip",
        "--epochs",
        "1",
        "--learning-rate",
        "1e-3",
        "--warmup-steps",
        "10",
        "--clipnorm",
        "1.0",
        "--schedule",
        "cosine",
        "--ema-decay",
        "0.9",
        "--dropout",
        "0.1",
        "--seed",
        "3",
        *TINY,
    ]
    assert cli.main(args) == 0
    model = keras.saving.load_model(os.path.join(output, "model.keras"))
    assert model.image_shape == (8, 8, 1) and model.schedule.kind == "cosine"
    assert model.ema_decay == 0.9 and model.network.dropout == 0.1
    assert model.optimizer.global_clipnorm == 1.0
    # One step of a 10-step linear warm-up to 1e-3.
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-4)


def test_train_on_tfds_with_mixed_precision_and_a_preset(tmp_path):
    output = str(tmp_path / "run")
    with tfds.testing.mock_data(num_examples=8, policy=tfds.testing.MockPolicy.USE_CODE):
        args = [
            "train",
            "--output",
            output,
            "--dataset",
            "tfds:mnist",
            "--image-size",
            "8",
            "--preset",
            "digits",
            "--mixed-precision",
            "mixed_bfloat16",
            "--epochs",
            "1",
            *TINY,
        ]
        assert cli.main(args) == 0
    model = keras.saving.load_model(os.path.join(output, "model.keras"))
    assert model.network.base_channels == 8 and model.network.dtype_policy.name == "mixed_bfloat16"


def test_sample_to_a_grid_an_array_and_a_folder(run_dir, tmp_path):
    grid = tmp_path / "grid.png"
    assert cli.main(["sample", run_dir, "--num", "4", "--out", str(grid), *NO_XLA]) == 0
    assert Image.open(grid).size[0] >= 256
    array = tmp_path / "a" / "images.npy"
    assert (
        cli.main(
            [
                "sample",
                os.path.join(run_dir, "model.keras"),
                "--num",
                "3",
                "--seed",
                "1",
                "--batch-size",
                "2",
                "--out",
                str(array),
                *NO_XLA,
            ]
        )
        == 0
    )
    images = np.load(array)
    assert images.shape == (3, 8, 8, 1) and images.min() >= -1 and images.max() <= 1
    model = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    expected = model.generate(3, seed=1, batch_size=2, verbose=0, jit_compile=False)
    np.testing.assert_allclose(images, expected, atol=1e-5)
    # The verbs load the model without its optimizer: no Adam moments beside the weights.
    loaded, _ = cli.models.load_model(run_dir)
    assert getattr(loaded, "optimizer", None) is None
    assert len(model.optimizer.variables) > 2 * len(model.network.trainable_weights)
    folder = tmp_path / "pngs"
    assert cli.main(["sample", run_dir, "--num", "3", "--out", str(folder), *NO_XLA]) == 0
    assert sorted(os.listdir(folder)) == ["00000.png", "00001.png", "00002.png"]


def test_sample_passes_sampler_and_steps_only_when_given(run_dir, tmp_path, monkeypatch, capsys):
    calls = []
    original = keras_ddpm.DDPM.generate
    # A real run with another sampler, and an unknown name refused in one line (argparse's
    # choices come from the sampler registry).
    grid = str(tmp_path / "ddim.png")
    argv = ["sample", run_dir, "--num", "2", "--out", grid, "--sampler", "ddim", "--steps", "5"]
    assert cli.main([*argv, *NO_XLA]) == 0 and os.path.exists(grid)
    with pytest.raises(SystemExit) as info:
        cli.main(["sample", run_dir, "--sampler", "nope", "--out", grid])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "'nope'" in err and err.count("\n") == 1
    # A sampler's options and the spacing reach generate.
    array = str(tmp_path / "ipndm.npy")
    argv = ["sample", run_dir, "--num", "2", "--out", array, "--sampler", "ipndm", "--steps", "4",
            "--order", "4", "--timestep-spacing", "logsnr", "--seed", "5"]
    assert cli.main([*argv, *NO_XLA]) == 0
    model = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    expected = model.generate(
        2, sampler="ipndm", steps=4, order=4, timestep_spacing="logsnr", seed=5, verbose=0
    )
    np.testing.assert_allclose(np.load(array), expected, atol=1e-5)
    default = model.generate(2, sampler="ipndm", steps=4, order=4, seed=5, verbose=0)
    assert np.abs(default - expected).max() > 1e-3  # the spacing was not ignored

    def generate(self, num_images, sampler=None, steps=None, **kwargs):
        calls.append((sampler, steps))
        return original(self, num_images, **kwargs)

    monkeypatch.setattr(keras_ddpm.DDPM, "generate", generate)
    out = str(tmp_path / "x.npy")
    assert cli.main(["sample", run_dir, "--num", "2", "--out", out, *NO_XLA]) == 0
    assert cli.main(["sample", run_dir, "--num", "2", "--out", out, "--steps", "5", *NO_XLA]) == 0
    assert calls == [(None, None), (None, 5)]


def test_optimize_steps_writes_a_model_that_samples_its_steps(run_dir, tmp_path):
    tuned = str(tmp_path / "tuned.keras")
    argv = ["optimize-steps", run_dir, "--out", tuned, "--num-steps", "3", "--samples", "8",
            "--grid-size", "10"]
    assert cli.main(argv) == 0
    model = keras.saving.load_model(tuned)
    indices = model.schedule.optimized_timesteps
    assert len(indices) == 3 and indices[0] == model.schedule.timesteps - 1
    array = str(tmp_path / "x.npy")
    argv = ["sample", tuned, "--num", "2", "--out", array, "--sampler", "ipndm", "--steps",
            "optimized", "--seed", "1"]
    assert cli.main([*argv, *NO_XLA]) == 0
    expected = model.generate(2, sampler="ipndm", steps="optimized", seed=1, verbose=0)
    np.testing.assert_allclose(np.load(array), expected, atol=1e-5)
    # The run folder's own model is untouched.
    original = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    assert original.schedule.optimized_timesteps is None


def test_evaluate_with_the_pixel_extractor(run_dir, tmp_path, capsys):
    out = tmp_path / "results.json"
    args = [
        "evaluate",
        run_dir,
        "--feature-extractor",
        "pixels",
        "--num",
        "40",
        "--kid-subsets",
        "5",
        "--kid-subset-size",
        "20",
        "--bpd-images",
        "8",
        "--out",
        str(out),
        *NO_XLA,
    ]
    assert cli.main(args) == 0
    results = json.load(open(out))
    assert results["num_real_images"] == results["num_generated_images"] == 40
    assert results["fid"] > 0 and np.isfinite(results["kid"]) and results["bpd_images"] == 8
    assert 0 < results["bits_per_dim"] < 50
    assert json.loads(capsys.readouterr().out.split("\n", 2)[-1]) == results
    # One metric, another dataset of the wrong size: a user error.
    assert (
        cli.main(
            [
                "evaluate",
                run_dir,
                "--metrics",
                "fid",
                "--feature-extractor",
                "pixels",
                "--image-size",
                "16",
                "--num",
                "10",
            ]
        )
        == 2
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--dataset", "imagenet", "--epochs", "1"], "unknown --dataset 'imagenet'"),
        (["train", "--dataset", "folder:/nonexistent", "--image-size", "8"], "does not exist"),
        (["train", "--dataset", "folder:/tmp"], "needs --image-size"),
        (["train", "--random-flip"], "--random-flip does not apply"),
        (["train", "--preset", "nope"], "unknown --preset 'nope'"),
        (["train", "--preset", "ddpm_cifar10"], "is for (32, 32, 3) images"),
        (["train", "--ema-decay", "2"], "ema_decay=2.0"),
        (["train", "--timesteps", "20", "--sample-steps", "50"],
         "`steps` must be in [1, 20] (the schedule's timesteps). Received: steps=50."),
        (["sample", "/nonexistent.keras"], "does not exist"),
        (["sample", "{tmp}"], "holds no model.keras"),
        (["sample", "{tmp}/x.keras", "--out", "grid.jpg"], "--out must end in .png"),
        (["evaluate", "/nonexistent"], "does not exist"),
    ],
)
def test_user_errors_are_one_line_with_status_2(argv, message, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if argv[0] == "train":
        argv += ["--output", str(tmp_path / "out")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--epochs", "0"],
        ["train", "--channel-multipliers", "a"],
        ["sample"],
        ["evaluate", "x", "--metrics", "is"],
        ["bogus"],
    ],
)
def test_argparse_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error:" in err and "usage:" not in err


def test_jit_compile_choices():
    assert [cli.common.jit_compile(v) for v in ("auto", "true", "false")] == ["auto", True, False]
    args = cli.build_parser().parse_args(["train", "--jit-compile", "true"])
    assert args.jit_compile == "true"


def _installed_command():
    """The installed console script when there is one, else `python -m keras_ddpm`."""
    script = os.path.join(os.path.dirname(sys.executable), "keras-ddpm")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "keras_ddpm"]


def test_console_script_and_python_m_help():
    command = _installed_command()
    done = subprocess.run(
        [*command, "evaluate", "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "usage: keras-ddpm evaluate" in done.stdout


def test_python_m_runs_main(monkeypatch, capsys):
    import runpy

    monkeypatch.setattr(sys, "argv", ["keras-ddpm", "--version"])
    with pytest.raises(SystemExit) as info:
        runpy.run_module("keras_ddpm", run_name="__main__")
    assert info.value.code == 0 and keras_ddpm.__version__ in capsys.readouterr().out


def test_conditional_train_and_labelled_sampling(run_dir, tmp_path, capsys):
    output = str(tmp_path / "conditional")
    argv = ["train", "--output", output, "--epochs", "1", "--conditional", "--guidance", "2", *TINY]
    assert cli.main(argv) == 0
    model = keras.saving.load_model(os.path.join(output, "model.keras"))
    assert model.num_classes == 10 and model.class_dropout == 0.1  # the digits' classes
    array = str(tmp_path / "sevens.npy")
    sample = ["sample", output, "--num", "3", "--steps", "4", "--sampler", "ddim", *NO_XLA]
    assert cli.main([*sample, "--label", "7", "--guidance", "3", "--out", array]) == 0
    expected = model.generate(3, sampler="ddim", steps=4, seed=0, labels=7, guidance_scale=3.0,
                              jit_compile=False, verbose=0)
    np.testing.assert_array_equal(np.load(array), expected)
    # One line, exit status 2: a class out of range, a count mismatch, labels on an
    # unconditional model, --num-classes without --conditional.
    assert cli.main([*sample, "--label", "10", "--out", array]) == 2
    assert "must lie in [0, 10)" in capsys.readouterr().err
    assert cli.main([*sample, "--label", "1,2", "--out", array]) == 2
    assert "--label lists 2 classes for --num 3" in capsys.readouterr().err
    assert cli.main(["sample", run_dir, "--label", "1", "--out", array, *NO_XLA]) == 2
    assert "need a class-conditional model" in capsys.readouterr().err
    assert cli.main(["train", "--output", str(tmp_path / "x"), "--num-classes", "3", *TINY]) == 2
    assert "--num-classes needs --conditional" in capsys.readouterr().err


# ----------------------------------------------------------------------------
# Start-up: answers before TensorFlow loads, and no TensorFlow logs unless asked
# ----------------------------------------------------------------------------
_PROBE = """
import sys
argv = sys.argv[1:]
sys.argv = ["keras-ddpm", *argv]  # as the console script starts
from keras_ddpm.cli import main
try:
    code = main(argv)
except SystemExit as exit:
    code = exit.code
print("tensorflow loaded:", "tensorflow" in sys.modules, "status:", code, file=sys.__stdout__)
"""


def _clean_env():
    return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


@pytest.mark.parametrize(
    "argv, status",
    [
        (["--help"], 0),
        (["sample", "--help"], 0),
        (["sample", "missing.keras"], 2),
        (["train", "--epochs", "0"], 2),
        (["train", "--dataset", "imagenet"], 2),
        (["train", "--from", "missing.keras", "--lora-rank", "2"], 2),
        (["sample", "missing.keras", "--sampler", "ddim", "--eta", "2"], 2),
        (["export", "missing.keras", "out", "--order", "5"], 2),
        (["edit", "--help"], 0),
        (["inpaint", "missing.keras", "--image", "x.png", "--mask", "bottom", "--out", "o.png"], 2),
        (["interpolate", "missing.keras", "--out", "rows.jpg"], 2),
    ],
)
def test_help_and_user_errors_come_before_tensorflow_loads(argv, status, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, timeout=60,
        env=_clean_env(), cwd=str(tmp_path),
    )
    assert f"tensorflow loaded: False status: {status}" in done.stdout, done.stderr
    if status == 2:
        assert done.stderr.count("\n") == 1 and "error:" in done.stderr, done.stderr


def test_tensorflow_logs_are_hidden_unless_verbose(run_dir, tmp_path):
    command = _installed_command()
    argv = ["sample", run_dir, "--num", "1", "--steps", "1", "--jit-compile", "false",
            "--no-progress", "--out", str(tmp_path / "one.npy")]
    quiet = subprocess.run([*command, *argv], capture_output=True, text=True, timeout=300,
                           env=_clean_env())
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    loud = subprocess.run([*command, "--verbose", *argv], capture_output=True, text=True,
                          timeout=300, env=_clean_env())
    assert loud.returncode == 0 and "I0000" in loud.stderr


@pytest.mark.slow  # 9 s: two more processes loading TensorFlow
def test_tensorflow_log_level_variable_is_obeyed(run_dir, tmp_path):
    command = _installed_command()
    # The usual way to silence TensorFlow keeps it silent (its start-up INFO lines come before
    # TensorFlow reads the variable); level 0 asks for every log, start-up lines included.
    errors = ["evaluate", run_dir, "--dataset", "folder:" + str(tmp_path), "--num", "4"]
    for level, shown in (("3", False), ("0", True)):
        done = subprocess.run([*command, *errors], capture_output=True, text=True, timeout=300,
                              env={**_clean_env(), "TF_CPP_MIN_LOG_LEVEL": level})
        assert done.returncode == 2 and ("I0000" in done.stderr) == shown, done.stderr
        assert done.stderr.splitlines()[-1].startswith("keras-ddpm evaluate: error:")
        if not shown:
            assert done.stderr.count("\n") == 1, done.stderr


def test_a_kill_while_the_final_grid_is_written_is_finished_by_the_rerun(tmp_path, capsys):
    """Killed inside the last grid's write: the partial PNG goes, and the re-run, with no epoch
    left to train, writes the grid and model.keras."""
    from keras_ddpm import utils
    from keras_ddpm.runs import atomic

    output = str(tmp_path / "run")
    original = utils.save_image_grid

    def killed_mid_write(images, path, **kwargs):
        if path.endswith("epoch_0002.png"):  # a SIGKILL: the partial file stays, nothing cleans
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(atomic.partial_path(path), "wb") as file:
                file.write(b"\x89PNG half")
            raise KeyboardInterrupt
        return original(images, path, **kwargs)

    utils.save_image_grid = killed_mid_write
    try:
        args = ["train", "--output", output, "--epochs", "2", "--sample-every", "5", *TINY]
        assert cli.main(args) == 130
    finally:
        utils.save_image_grid = original
    samples = os.path.join(output, "samples")
    assert [n for n in os.listdir(samples) if n.startswith(".partial-")]  # what a kill leaves
    assert not os.path.exists(os.path.join(output, "model.keras"))
    capsys.readouterr()
    assert cli.main(args) == 0
    assert os.listdir(samples) == ["epoch_0002.png"]
    assert os.path.exists(os.path.join(output, "model.keras"))
    assert capsys.readouterr().out.strip().endswith(os.path.join(samples, "epoch_0002.png"))
