"""bfloat16 on a CPU without bfloat16 instructions is said to be slow, in one line; XLA where it pays."""

import functools
import warnings

import keras
import numpy as np
import pytest

import keras_ddpm
from keras_ddpm import cli
from keras_ddpm.backend import hardware
from networks import conv_network

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


@pytest.mark.parametrize(
    "parameters, pixels, batch_size, accelerator, evaluations, expected",
    [
        (701_345, 64, 64, False, None, True),  # the quick-start U-Net, 64 images: XLA 1.45x faster
        (3_990_017, 64, 16, False, None, True),  # the digits preset, 16 images: 1.28x
        (3_990_017, 64, 64, False, None, False),  # the digits preset, 64 images: no faster, +230 MB
        (8_952_067, 1024, 64, False, None, False),  # the width-64 32x32 U-Net: 1.14x slower
        (8_952_067, 1024, 64, True, None, True),  # a GPU or TPU: always
        # One call: the ~1.2 s compile pays back from 141-345 evaluations (benchmark_first_call).
        (701_345, 64, 64, False, 20, False),  # 20 DPM-Solver++ steps: 1.0 s slower with XLA
        (701_345, 64, 64, False, 250, True),
        (701_345, 64, 64, False, 1000, True),  # 1000 DDPM steps: ~7 s faster
        (3_990_017, 64, 64, False, 1000, False),  # long, but XLA's steps are no faster
        (8_952_067, 1024, 64, True, 20, True),  # a GPU or TPU: always
    ],
)
def test_xla_pays_for_small_steps_in_long_calls_on_a_cpu(monkeypatch, parameters, pixels,
                                                          batch_size, accelerator, evaluations,
                                                          expected):
    monkeypatch.setattr(hardware, "accelerator_present", lambda: accelerator)
    assert hardware.xla_pays(parameters, pixels, batch_size, evaluations) is expected


def test_auto_jit_decides_per_batch_and_explicit_choices_win(monkeypatch):
    monkeypatch.setattr(hardware, "accelerator_present", lambda: False)
    model = keras_ddpm.DDPM(conv_network(timesteps=10),
                            schedule=keras_ddpm.NoiseSchedule("linear", 10), ema_decay=None)
    process = model.reverse_process()
    parameters = model.network.count_params()  # 4 * 9 + 4 + 10 * 4 + 4 * 9 + 1 = 117
    assert parameters == 117
    # The limit between 117 x 64 x 3 and 117 x 64 x 4 parameter-pixels.
    monkeypatch.setattr(hardware, "XLA_CPU_WORK_LIMIT", 117 * 64 * 3.5)
    monkeypatch.setattr(hardware, "XLA_CPU_MIN_EVALUATIONS", 2)
    assert process.auto_jit("auto", 3) is True
    assert process.auto_jit("auto", 4) is False
    assert process.auto_jit(True, 4) is True and process.auto_jit(False, 3) is False
    # generate: one loop compiled for each choice, by the batch it denoises.
    first = model.generate(4, sampler="ddim", steps=2, seed=0, verbose=0, batch_size=3)
    assert [key[3] for key in process.loops] == [True]
    model.generate(4, sampler="ddim", steps=2, seed=0, verbose=0)
    assert sorted(key[3] for key in process.loops) == [False, True]
    # XLA or not, the same images (float32 rounding apart).
    again = model.generate(4, sampler="ddim", steps=2, seed=0, verbose=0, batch_size=3,
                           jit_compile=False)
    np.testing.assert_allclose(first, again, atol=1e-5)


@pytest.mark.slow  # 17 s: four sampling loops compiled
def test_auto_jit_counts_the_network_evaluations_of_the_call(monkeypatch):
    monkeypatch.setattr(hardware, "accelerator_present", lambda: False)
    monkeypatch.setattr(hardware, "XLA_CPU_MIN_EVALUATIONS", 6)
    model = keras_ddpm.DDPM(conv_network(timesteps=10),
                            schedule=keras_ddpm.NoiseSchedule("linear", 10), ema_decay=None)
    process = model.reverse_process()
    assert hardware.xla_pays(117, 64, 3)  # every batch below is small enough for XLA

    def with_xla(call, **kwargs):
        """Whether the one loop that `call(**kwargs)` compiles was compiled with XLA."""
        process.loops.clear()
        call(verbose=0, **kwargs)
        (key,) = process.loops
        return key[4] if key[0] == "inpaint" else key[3]

    images = np.random.default_rng(0).uniform(-1, 1, (3, 8, 8, 1)).astype("float32")
    mask = np.ones_like(images)
    generate = functools.partial(model.generate, sampler="ddim", seed=0)
    assert not with_xla(generate, num_images=3, steps=5)
    assert with_xla(generate, num_images=3, steps=6)
    assert with_xla(generate, num_images=6, steps=3, batch_size=3)  # 2 batches x 3 steps
    assert not with_xla(generate, num_images=3, steps=10, initial_images=images, strength=0.5)
    assert with_xla(generate, num_images=3, steps=10, initial_images=images, strength=0.6)
    assert with_xla(generate, num_images=3, steps=5, jit_compile=True)
    assert not with_xla(model.encode, images=images, steps=5)
    assert with_xla(model.encode, images=images, steps=6)
    # RePaint runs every step `resample_steps` times.
    inpaint = functools.partial(model.inpaint, images, mask, sampler="ddim", seed=0)
    assert not with_xla(inpaint, steps=3, resample_steps=1, jump_length=1)
    assert with_xla(inpaint, steps=3, resample_steps=2, jump_length=1)
    assert not with_xla(inpaint, steps=3, resample_steps=2, jump_length=1, jit_compile=False)
