"""bfloat16 on a CPU without bfloat16 instructions is said to be slow, in one line."""

import warnings

import keras
import pytest

import keras_ddpm
from keras_ddpm import cli
from keras_ddpm import hardware

CPUINFO = """processor\t: 0
model name\t: Some CPU
flags\t\t: fpu sse2 avx2 avx512f {extra}
"""


@pytest.mark.parametrize("extra, slow", [("", True), ("avx512_bf16", False), ("amx_bf16", False)])
def test_the_flags_decide(tmp_path, monkeypatch, extra, slow):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO.format(extra=extra))
    flags = hardware.cpu_flags.__wrapped__(str(path))
    assert "avx2" in flags and ("avx512_bf16" in flags) == (extra == "avx512_bf16")
    monkeypatch.setattr(hardware, "cpu_flags", lambda: flags)
    message = hardware.slow_bfloat16_message()
    assert (message is not None) == slow
    if slow:
        assert "\n" not in message and "AVX512_BF16" in message


def test_unknown_flags_warn_nothing(tmp_path, monkeypatch):
    assert hardware.cpu_flags.__wrapped__(str(tmp_path / "missing")) is None
    monkeypatch.setattr(hardware, "cpu_flags", lambda: None)
    assert hardware.slow_bfloat16_message() is None


def tiny_ddpm():
    x_t = keras.Input((8, 8, 1))
    t = keras.Input((), dtype="int32")
    network = keras.Model([x_t, t], keras.layers.Conv2D(1, 3, padding="same")(x_t))
    return keras_ddpm.DDPM(network, schedule=keras_ddpm.NoiseSchedule("linear", 10), ema_decay=None)


def test_compile_warns_for_bfloat16_without_the_instructions(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2"}))
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = tiny_ddpm()
        with pytest.warns(UserWarning, match="slower than float32"):
            model.compile(optimizer="adam")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tiny_ddpm().compile(optimizer="adam")  # float32: nothing to say


def test_train_says_it_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2"}))

    def stop(*args, **kwargs):  # the warning comes first; no need to train
        raise cli.common.UserError("stopped before training")

    monkeypatch.setattr(cli.train, "build_model", stop)
    args = ["train", "--output", str(tmp_path / "run"), "--mixed-precision", "mixed_bfloat16"]
    try:
        assert cli.main(args) == 2
    finally:
        keras.mixed_precision.set_global_policy("float32")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[0].startswith("warning: mixed_bfloat16 will train slower")
    assert "stopped before training" in err[1]
