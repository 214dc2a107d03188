"""tf.distribute without GPUs: two logical CPU devices and a two-worker cluster on 127.0.0.1.

Logical devices and collective ops must be configured before TensorFlow
initialises, so every check runs `tests/distribute_worker.py` in fresh
processes and asserts on what they report (see that script for the runs).
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "distribute_worker.py")
# Generous for a shared 2-core machine; a hung collective fails instead of blocking.
TIMEOUT = 600
# float32 round-off of a few SGD steps; an unaveraged (summed) gradient would
# move the weights by about the whole update, which the tests require > 1e-3.
TOLERANCE = 1e-6


def _environment(**extra):
    """This process's environment without its TF_CONFIG, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow", **extra)
    return env


def _failure(name, process, log):
    with open(log, encoding="utf-8", errors="replace") as file:
        tail = file.read()[-3000:]
    return f"{name} exited with status {process.returncode}:\n{tail}"


def _run_processes(commands, tmp_path):
    """Runs the commands (args, env) at once; kills all of them if one fails or hangs."""
    processes, logs = [], []
    try:
        for index, (args, env) in enumerate(commands):
            log = tmp_path / f"process_{index}.log"
            logs.append(log)
            with open(log, "w", encoding="utf-8") as file:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, WORKER, *args], env=env, stdout=file,
                        stderr=subprocess.STDOUT,
                    )
                )
        for index, process in enumerate(processes):
            try:
                process.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                pytest.fail(f"process {index} did not finish in {TIMEOUT} s (hung collective?)")
            if process.returncode != 0:
                pytest.fail(_failure(f"process {index}", process, logs[index]))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


# ----------------------------------------------------------------------------
# MirroredStrategy over two logical CPU devices
# ----------------------------------------------------------------------------
def _run_mirrored(mode, tmp_path):
    """What one run of `distribute_worker.py MODE` measured."""
    out = tmp_path / f"{mode}.json"
    _run_processes([([mode, str(out)], _environment())], tmp_path)
    with open(out, encoding="utf-8") as file:
        return json.load(file)


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    return _run_mirrored("mirrored", tmp_path_factory.mktemp("mirrored"))


@pytest.mark.slow  # 25 s: a subprocess with two logical CPUs trains under tf.distribute
def test_mirrored_steps_match_one_device_on_the_same_noise(mirrored):
    assert mirrored["replicas"] == 2
    assert mirrored["iterations_single"] == mirrored["iterations_mirrored"] == 3
    # fit traced the steps as one function per step (keras_ddpm.backend.step_functions), and Keras'
    # reduction of per-replica outputs gave the same weights as one device.
    assert mirrored["train_function_mirrored"] == "OneFunctionStep"
    # The comparison can see a scaling error: the steps moved the weights.
    assert mirrored["max_update"] > 1e-3
    assert mirrored["max_weight_difference"] < TOLERANCE
    assert mirrored["max_ema_difference"] < TOLERANCE


@pytest.mark.slow  # shares the 25 s mirrored subprocess with the test above
def test_mirrored_replicas_split_the_global_batch_and_stay_in_sync(mirrored):
    # One device sees the 8 images of each of 3 steps; each replica 4 of them.
    assert mirrored["local_batch_sizes_single"] == [8, 8, 8]
    assert mirrored["local_batch_sizes_mirrored"] == [4] * 6
    # Mirrored weights and EMA weights are identical on both replicas.
    assert mirrored["replica_weight_spread"] == 0.0
    assert mirrored["replica_ema_spread"] == 0.0


def test_mirrored_loss_metric_is_the_global_mean(mirrored):
    # The single device's loss is the mean over whole global batches.
    assert mirrored["loss_mirrored"] == pytest.approx(mirrored["loss_single"], rel=1e-6)
    assert mirrored["history_loss_mirrored"] == pytest.approx(
        mirrored["history_loss_single"], rel=1e-6
    )


def test_each_replica_draws_its_own_t_and_noise(mirrored):
    assert mirrored["replica_ids"] == [0, 1]
    t0, t1 = mirrored["draws_t"]
    assert len(t0) == len(t1) == 4 and t0 != t1
    assert all(0 <= t < 20 for t in t0 + t1)
    # Independent standard normals, not one draw repeated.
    assert mirrored["draws_noise_difference"] > 1.0
    assert all(0.5 < std < 1.5 for std in mirrored["draws_noise_std"])
    # The generator advanced by one state (one key for t and ε), equally on both replicas.
    assert mirrored["seed_state_advance"] == [0, 1]
    assert mirrored["seed_state_spread"] == 0.0


def test_each_replica_drops_its_own_class_labels(mirrored):
    # class_dropout=0.5 over 64 labels per replica: two different masks, each near half.
    assert not mirrored["dropped_masks_equal"]
    assert all(0.25 < share < 0.75 for share in mirrored["dropped_shares"])


def test_generate_works_on_a_model_trained_under_the_strategy(mirrored):
    # With XLA outside the scope and without inside it, as the one-device model.
    assert mirrored["generate_finite"]
    assert mirrored["generate_difference"] < 1e-4
    assert mirrored["generate_scope_difference"] < 1e-4


@pytest.mark.slow  # 20 s of its own process; the skip on one device: test_mixed_precision
def test_mirrored_loss_scaling_skips_a_step_that_overflows_on_one_replica(tmp_path):
    mirrored = _run_mirrored("mirrored_loss_scaling", tmp_path)
    # Three steps; the second has an infinite loss on the second replica only.
    # It is skipped on both: no iteration, weights and EMA unchanged, scale halved.
    assert mirrored["skip_iterations"] == [1, 1, 2]
    assert mirrored["skip_weight_change"] == 0.0
    assert mirrored["skip_ema_change"] == 0.0
    assert mirrored["skip_scale_ratio"] == 0.5
    # The third step trains on, in sync, to finite weights.
    assert mirrored["after_weight_change"] > 0.0
    assert mirrored["after_finite"]
    assert mirrored["after_replica_spread"] == 0.0


# ----------------------------------------------------------------------------
# MultiWorkerMirroredStrategy: two worker processes on 127.0.0.1
# ----------------------------------------------------------------------------
def _run_cluster(tmp_path, *flags):
    """Both workers' reports and arrays, after training on 127.0.0.1."""
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    commands = []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        out = str(tmp_path / f"worker_{index}.npz")
        commands.append((["multiworker", out, *flags], _environment(TF_CONFIG=json.dumps(config))))
    _run_processes(commands, tmp_path)
    arrays = [dict(np.load(tmp_path / f"worker_{index}.npz")) for index in range(2)]
    reports = [json.loads(str(a.pop("results"))) for a in arrays]
    return reports, arrays


def _assert_identical_weights(first, second, prefixes):
    names = sorted(k for k in first if k.startswith(prefixes))
    assert len(names) > 3 and names == sorted(k for k in second if k.startswith(prefixes))
    for name in names:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)


@pytest.mark.slow  # 25 s of two processes; the mirrored tests above cover tf.distribute
def test_two_workers_train_to_identical_weights(tmp_path):
    reports, (first, second) = _run_cluster(tmp_path)
    assert [r["task_id"] for r in reports] == [0, 1]
    assert all(r["replicas"] == 2 for r in reports)
    # Each worker held half of every global batch of 8, for 3 steps.
    assert all(r["local_batch_sizes"] == [4, 4, 4] for r in reports)
    assert all(r["iterations"] == 3 for r in reports)
    # The global replica ids differ, and so do the workers' t and ε.
    assert [r["replica_id"] for r in reports] == [0, 1]
    assert not np.array_equal(first["draw_t"], second["draw_t"])
    assert np.max(np.abs(first["draw_noise"] - second["draw_noise"])) > 1.0
    # Every weight and EMA weight ends identical; the loss is one global mean.
    _assert_identical_weights(first, second, ("weight_", "ema_"))
    assert reports[0]["loss"] == reports[1]["loss"] and np.isfinite(reports[0]["loss"])


@pytest.mark.slow
def test_two_workers_match_one_device_on_the_same_noise(tmp_path):
    reports, (first, second) = _run_cluster(tmp_path, "--compare")
    for report in reports:
        assert report["compare_local_batch_sizes"] == [4, 4, 4]
        assert report["max_update"] > 1e-3
        assert report["max_weight_difference"] < TOLERANCE
        assert report["max_ema_difference"] < TOLERANCE
        assert report["loss_distributed"] == pytest.approx(report["loss_single"], rel=1e-6)
    _assert_identical_weights(first, second, ("fixed_",))


# ----------------------------------------------------------------------------
# keras-ddpm train --strategy
# ----------------------------------------------------------------------------
# A tiny U-Net, a 20-step schedule and one epoch of the digits.
TINY_RUN = [
    "--base-channels", "8", "--channel-multipliers", "1", "--num-res-blocks", "1",
    "--attention-resolutions", "", "--norm-groups", "4", "--timesteps", "20",
    "--batch-size", "256", "--num-samples", "4", "--verbose", "0", "--jit-compile", "false",
    "--epochs", "1",
]


@pytest.mark.slow  # 20 s of training; the strategy itself is tested above
def test_cli_trains_under_a_mirrored_strategy(tmp_path):
    from keras_ddpm import cli

    output = str(tmp_path / "run")
    assert cli.main(["train", "--output", output, "--strategy", "mirrored", *TINY_RUN]) == 0
    with open(os.path.join(output, "config.json"), encoding="utf-8") as file:
        config = json.load(file)
    assert config["strategy"] == "mirrored" and config["epochs_completed"] == 1
    assert os.path.exists(os.path.join(output, "model.keras"))
    assert os.listdir(os.path.join(output, "samples")) == ["epoch_0001.png"]


def test_cli_strategy_errors(tmp_path, capsys, monkeypatch):
    from keras_ddpm import cli

    monkeypatch.delenv("TF_CONFIG", raising=False)
    output = str(tmp_path / "run")
    assert cli.main(["train", "--output", output, "--strategy", "multiworker"]) == 2
    assert "TF_CONFIG" in capsys.readouterr().err
    with pytest.raises(SystemExit) as error:
        cli.main(["train", "--output", output, "--strategy", "tpu"])
    assert error.value.code == 2
    assert "invalid choice: 'tpu'" in capsys.readouterr().err
