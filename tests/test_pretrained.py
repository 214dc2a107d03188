"""diffusers checkpoints in and out (keras_ddpm.pretrained), against golden files.

The fixtures under tests/fixtures/diffusers/ were written by diffusers itself
(`make_fixtures.py` there, run in its own environment with PyTorch): two small
random `UNet2DModel`s with the block types of google/ddpm-cifar10-32 and
google/ddpm-celebahq-256, saved as pipelines, with their outputs on fixed
inputs, a 10-step DDIM trajectory and the scheduler's tables.
"""

import json
import os
import shutil
import sys

import keras
import numpy as np
import pytest

import keras_ddpm
from keras_ddpm import backend
from keras_ddpm import cli
from keras_ddpm import pretrained
from keras_ddpm.samplers.ancestral import ddpm_step
from keras_ddpm.samplers.ddim import ddim_step
from networks import tiny_unet

numpy = keras.ops.convert_to_numpy

pytestmark = pytest.mark.backends  # diffusers' checkpoints in and out on every backend

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "diffusers")
MODELS = ("cifar10_like", "celebahq_like")


@pytest.fixture(scope="module")
def reference():
    with np.load(os.path.join(FIXTURES, "reference.npz")) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def layout():
    with open(os.path.join(FIXTURES, "expected_layout.json"), encoding="utf-8") as file:
        return json.load(file)


def _outputs(network, reference, name):
    x, t = reference[f"{name}/x"], reference[f"{name}/t"].astype("int32")
    return numpy(network([x, t])), reference[f"{name}/out"]


# ----------------------------------------------------------------------------
# Loading: the same weights give the reference's outputs
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_converted_network_gives_the_reference_outputs(name, reference):
    model = keras_ddpm.DDPM.from_pretrained(os.path.join(FIXTURES, name))
    ours, theirs = _outputs(model.network, reference, name)
    scale = np.abs(theirs).max()
    assert scale > 1.0  # every tensor is random, so the output is far from zero
    assert np.abs(ours - theirs).max() <= 1e-5 * scale
    # The EMA copy starts equal to the loaded weights.
    for raw, ema in zip(model.network.weights, model.ema_weights):
        np.testing.assert_array_equal(numpy(raw), numpy(ema))


def test_architecture_mapping_of_both_layouts():
    cifar = keras_ddpm.UNet.from_pretrained(os.path.join(FIXTURES, "cifar10_like"))
    assert cifar.get_config()["channel_multipliers"] == [1, 2, 2, 2]
    assert cifar.attention_resolutions == (8,)  # AttnDownBlock2D at position 1 of 16x16
    assert (cifar.norm_epsilon, cifar.flip_sin_to_cos, cifar.freq_shift) == (1e-6, False, 1)
    celeb = keras_ddpm.UNet.from_pretrained(os.path.join(FIXTURES, "celebahq_like"))
    assert celeb.attention_resolutions == (4,)  # position 4 of 64x64, like 16 of 256
    assert len(celeb.channel_multipliers) == 6


def test_model_folder_loads_with_the_default_schedule(reference):
    folder = os.path.join(FIXTURES, "model_only")
    network = keras_ddpm.UNet.from_pretrained(folder)
    ours, theirs = _outputs(network, reference, "cifar10_like")
    assert np.abs(ours - theirs).max() <= 1e-5 * np.abs(theirs).max()
    with pytest.warns(UserWarning, match="no scheduler config"):
        model = keras_ddpm.DDPM.from_pretrained(folder)
    assert model.schedule == keras_ddpm.NoiseSchedule("linear", 1000)


def test_flat_layout_of_the_google_repositories(tmp_path, reference):
    # google/ddpm-* keep the UNet files and scheduler_config.json beside model_index.json.
    source = os.path.join(FIXTURES, "cifar10_like")
    for path in ("unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                 "scheduler/scheduler_config.json", "model_index.json"):
        shutil.copy(os.path.join(source, path), tmp_path / os.path.basename(path))
    model = keras_ddpm.DDPM.from_pretrained(str(tmp_path))
    assert model.variance == "fixed_large"
    ours, theirs = _outputs(model.network, reference, "cifar10_like")
    assert np.abs(ours - theirs).max() <= 1e-5 * np.abs(theirs).max()


def test_deprecated_attention_names_are_read(tmp_path, reference):
    from safetensors.numpy import load_file
    from safetensors.numpy import save_file

    source = os.path.join(FIXTURES, "model_only")
    tensors = load_file(os.path.join(source, "diffusion_pytorch_model.safetensors"))
    old = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    renamed = {}
    for key, value in tensors.items():
        for new, before in old.items():
            key = key.replace(f".{new}.", f".{before}.")
        renamed[key] = value
    assert any(".proj_attn." in key for key in renamed)
    save_file(renamed, str(tmp_path / "diffusion_pytorch_model.safetensors"))
    shutil.copy(os.path.join(source, "config.json"), tmp_path / "config.json")
    ours, theirs = _outputs(keras_ddpm.UNet.from_pretrained(str(tmp_path)), reference, "cifar10_like")
    assert np.abs(ours - theirs).max() <= 1e-5 * np.abs(theirs).max()


# ----------------------------------------------------------------------------
# Schedule and samplers against diffusers' scheduler
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_schedule_tables_match(name, reference):
    model = keras_ddpm.DDPM.from_pretrained(os.path.join(FIXTURES, name))
    schedule = model.schedule
    np.testing.assert_allclose(schedule.betas, reference[f"{name}/schedule/betas_f64"], rtol=0, atol=1e-7)
    np.testing.assert_allclose(
        schedule.alphas_cumprod, reference[f"{name}/schedule/alphas_cumprod_f64"], rtol=0, atol=1e-7
    )
    # diffusers keeps float32 tables: they agree to float32 rounding of a 1000-term product.
    np.testing.assert_allclose(
        schedule.alphas_cumprod, reference[f"{name}/schedule/alphas_cumprod_f32"], rtol=2e-6
    )
    # Its fixed_small variance is β̃_t (clamped at 1e-20 at t = 0, where no noise is added),
    # formed in float32 from 1 − ᾱ differences: within 1.5e-7 of the exact float64 value.
    np.testing.assert_allclose(
        schedule.posterior_variance[1:], reference[f"{name}/schedule/variance_fixed_small"][1:],
        rtol=0, atol=2e-7,
    )
    # Its fixed_large variance is β_t, re-derived in float32 as 1 − ᾱ_t/ᾱ_{t−1}.
    np.testing.assert_allclose(
        schedule.betas, reference[f"{name}/schedule/variance_fixed_large"], rtol=0, atol=2e-7
    )


def test_every_beta_schedule_maps_onto_diffusers_tables():
    """linear, scaled_linear, squaredcos_cap_v2 and sigmoid at T = 1000 and 100, against
    DDPMScheduler's own tables (schedule_tables.npz, `make_schedule_tables.py`).

    diffusers keeps float32 tables: β agrees to its rounding (largest seen 2.2e-8, cosine),
    ᾱ to a float32 cumulative product (4.3e-7 absolute).
    """
    with np.load(os.path.join(FIXTURES, "schedule_tables.npz")) as tables:
        for name in ("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid"):
            for timesteps in (1000, 100):
                arguments, _, _ = pretrained.schedule_arguments(
                    {"beta_schedule": name, "num_train_timesteps": timesteps}
                )
                schedule = keras_ddpm.NoiseSchedule(**arguments)
                key = f"{name}/{timesteps}"
                np.testing.assert_allclose(
                    schedule.betas, tables[f"{key}/betas"], rtol=1e-6, atol=3e-8, err_msg=key
                )
                np.testing.assert_allclose(
                    schedule.alphas_cumprod, tables[f"{key}/alphas_cumprod"], rtol=0, atol=1e-6,
                    err_msg=key,
                )
                # A mismatched mapping would be far off: the tables differ by >1e-3 in β.
                if name != "linear":
                    other = tables[f"linear/{timesteps}/betas"]
                    assert np.abs(schedule.betas - other).max() > 1e-3


@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large"])
def test_ancestral_step_matches_ddpm_scheduler(variance, reference):
    """One DDPMScheduler.step at t = 999, 500, 37, 1, 0, with zero and with stored noise.

    diffusers forms 1 − ᾱ_t in float32; at t = 1 that difference (3e-4) loses about four
    digits, so its mean there is off the exact value by 5.5e-5. keras_ddpm keeps the
    schedule in float64: it is checked against the closed form of Ho et al. (2020), eq. 7,
    evaluated in float64 (to 1e-6), and against diffusers within that float32 error (1e-4).
    """
    schedule = keras_ddpm.NoiseSchedule("linear", 1000)
    alpha_bar = np.cumprod(1.0 - np.linspace(1e-4, 0.02, 1000))
    key = "scheduler/ddpm_step"
    shape = reference[f"{key}/sample"][0].shape
    # Compiled as the samplers' loops are: the schedule's maths is float64 there on every
    # backend (JAX's float64 is on inside them only).
    step = backend.room().compile_loop(
        lambda x, t, prediction, noise: ddpm_step(schedule, x, t, prediction, noise, variance=variance),
        [(shape, "float32"), (shape[:1], "int32"), (shape, "float32"), (shape, "float32")],
        jit_compile=False,
    )
    for i, t in enumerate(reference[f"{key}/timesteps"]):
        x, prediction = reference[f"{key}/sample"][i], reference[f"{key}/model_output"][i]
        noise = reference[f"{key}/noise"][i]
        # The float64 closed form: clipped x̂_0, posterior mean and variance.
        a_t, a_prev = alpha_bar[t], alpha_bar[t - 1] if t > 0 else 1.0
        x0 = np.clip((x - np.sqrt(1 - a_t) * prediction) / np.sqrt(a_t), -1, 1)
        exact_mean = (np.sqrt(a_prev) * (1 - a_t / a_prev) * x0
                      + np.sqrt(a_t / a_prev) * (1 - a_prev) * x) / (1 - a_t)
        beta = 1 - a_t / a_prev
        exact_var = 0.0 if t == 0 else beta * (1 - a_prev) / (1 - a_t) if (
            variance == "fixed_small") else beta
        t = np.full(len(x), t, "int32")
        mean = numpy(step(x, t, prediction, np.zeros_like(x)))
        np.testing.assert_allclose(mean, exact_mean, atol=1e-6)
        np.testing.assert_allclose(mean, reference[f"{key}/{variance}/prev_mean"][i], atol=1e-4)
        sample = numpy(step(x, t, prediction, noise))
        np.testing.assert_allclose(sample, exact_mean + np.sqrt(exact_var) * noise, atol=1e-6)
        np.testing.assert_allclose(sample, reference[f"{key}/{variance}/prev_sample"][i], atol=1e-4)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("clip, trajectory", [(False, "x_noclip"), (True, "x_clipped_eps")])
def test_ddim_trajectory_matches_ddim_scheduler(name, clip, trajectory, reference):
    """diffusers' 10 DDIM steps ("leading" spacing, ᾱ = 1 past the end), step by step.

    With clipping, keras_ddpm's DDIM re-derives ε̂ from the clipped x̂_0, which is diffusers'
    `use_clipped_model_output=True`.
    """
    model = keras_ddpm.DDPM.from_pretrained(os.path.join(FIXTURES, name), ema_decay=None)
    key = f"{name}/ddim"
    timesteps = list(reference[f"{key}/timesteps"])
    sequence = keras_ddpm.samplers.timestep_sequence(model.schedule, 10, "leading")
    assert list(numpy(sequence)[:11]) == timesteps + [-1]
    x = reference[f"{key}/x_T"]
    for i, t in enumerate(timesteps):
        t_vector = np.full(len(x), t, "int32")
        prev = np.full(len(x), timesteps[i + 1] if i + 1 < len(timesteps) else -1, "int32")
        prediction = numpy(model.network([x, t_vector]))
        step = ddim_step(model.schedule, x, t_vector, prev, prediction, np.zeros_like(x), clip=clip)
        np.testing.assert_allclose(numpy(step), reference[f"{key}/{trajectory}"][i], atol=1e-4)
        x = reference[f"{key}/{trajectory}"][i]
    # The whole compiled sampler, from the same x_T: tracing it costs 10-20 s, so once, on the
    # smaller model with clipping (the steps above cover both models and both settings).
    if not clip or name != "cifar10_like":
        return
    images = model.generate(
        len(x), sampler="ddim", steps=10, timestep_spacing="leading",
        initial_noise=reference[f"{key}/x_T"], clip=clip, verbose=0,
    )
    expected = reference[f"{key}/{trajectory}"][-1]
    np.testing.assert_allclose(images, np.clip(expected, -1, 1) if clip else expected, atol=1e-4)


# ----------------------------------------------------------------------------
# Saving: diffusers' layout, and the round trip
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_save_pretrained_writes_what_diffusers_writes(name, tmp_path, layout, reference):
    from safetensors import safe_open

    model = keras_ddpm.DDPM.from_pretrained(os.path.join(FIXTURES, name))
    folder = model.save_pretrained(str(tmp_path / "pipeline"))
    expected = layout[name]
    written = sorted(
        os.path.relpath(os.path.join(root, f), folder) for root, _, files in os.walk(folder)
        for f in files
    )
    assert written == sorted(expected["files"])

    def without_version(config):
        return {k: v for k, v in config.items() if k not in ("_diffusers_version", "_use_default_values")}

    for file, key in (("unet/config.json", "unet_config"),
                      ("scheduler/scheduler_config.json", "scheduler_config"),
                      ("model_index.json", "model_index")):
        with open(os.path.join(folder, file), encoding="utf-8") as handle:
            ours = json.load(handle)
        theirs = without_version(expected[key])
        assert without_version(ours) == theirs
    with safe_open(os.path.join(folder, "unet", "diffusion_pytorch_model.safetensors"), "np") as f:
        assert f.metadata() == expected["safetensors_metadata"]
        tensors = sorted([k, list(f.get_slice(k).get_shape()), "F32"] for k in f.keys())
    assert tensors == sorted(expected["tensors"])

    # Round trip: identical outputs.
    loaded = keras_ddpm.DDPM.from_pretrained(folder)
    x, t = reference[f"{name}/x"], reference[f"{name}/t"].astype("int32")
    np.testing.assert_array_equal(
        numpy(loaded.network([x, t])), numpy(model.network([x, t]))
    )
    assert loaded.schedule == model.schedule and loaded.variance == model.variance


def test_trained_model_round_trip_and_keras_file(tmp_path):
    network = tiny_unet(channel_multipliers=(1, 2), attention_resolutions=(4,))
    model = keras_ddpm.DDPM(
        network, keras_ddpm.NoiseSchedule("cosine", 100), variance="fixed_large",
        prediction_type="v", seed=0, ema_decay=0.9,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    images = np.random.default_rng(0).uniform(-1, 1, (32, 8, 8, 1)).astype("float32")
    model.fit(images, batch_size=16, epochs=1, verbose=0)
    folder = model.save_pretrained(str(tmp_path / "pipeline"))
    with open(os.path.join(folder, "scheduler", "scheduler_config.json"), encoding="utf-8") as f:
        scheduler = json.load(f)
    assert (scheduler["beta_schedule"], scheduler["prediction_type"]) == (
        "squaredcos_cap_v2", "v_prediction",
    )
    loaded = keras_ddpm.DDPM.from_pretrained(folder, ema_decay=None)
    assert loaded.schedule == model.schedule and loaded.prediction_type == "v"
    x = np.random.default_rng(1).normal(size=(2, 8, 8, 1)).astype("float32")
    t = np.array([3, 90], "int32")
    # save_pretrained writes the EMA weights, the ones generate uses.
    np.testing.assert_array_equal(
        numpy(loaded.network([x, t])), numpy(model.ema_network([x, t]))
    )
    # A converted model is an ordinary DDPM: .keras round trip, fine-tuning.
    loaded.save(str(tmp_path / "converted.keras"))
    again = keras_ddpm.load_model(str(tmp_path / "converted.keras"))
    np.testing.assert_array_equal(
        numpy(again.network([x, t])), numpy(loaded.network([x, t]))
    )
    loaded.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = loaded.fit(images, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])


# ----------------------------------------------------------------------------
# Errors: one line, naming the value and what was expected
# ----------------------------------------------------------------------------
def _unet_config():
    with open(os.path.join(FIXTURES, "cifar10_like", "unet", "config.json"), encoding="utf-8") as f:
        return json.load(f)


def test_unsupported_unet_config_lists_every_problem():
    config = _unet_config()
    config.update(
        attention_head_dim=8, resnet_time_scale_shift="scale_shift", class_embed_type="timestep",
        mid_block_type=None,
        down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
    )
    with pytest.raises(ValueError) as error:
        pretrained.unet_arguments(config)
    message = str(error.value)
    assert "\n" not in message
    for part in ("attention_head_dim=8", "resnet_time_scale_shift='scale_shift'",
                 "class_embed_type='timestep'", "mid_block_type=None", "CrossAttnDownBlock2D"):
        assert part in message
    mirrored = _unet_config()
    mirrored["up_block_types"] = ["UpBlock2D"] * 4
    with pytest.raises(ValueError, match="do not mirror"):
        pretrained.unet_arguments(mirrored)
    # An older config without the keys gets UNet2DModel's defaults, and those are refused.
    sparse = {k: v for k, v in _unet_config().items() if k not in ("attention_head_dim", "downsample_padding")}
    with pytest.raises(ValueError, match=r"attention_head_dim=8.*downsample_padding=1"):
        pretrained.unet_arguments(sparse)


def test_diffusers_defaults_for_the_time_embedding_and_norm_convert():
    config = _unet_config()
    config.update(flip_sin_to_cos=True, freq_shift=0, norm_eps=1e-5)
    arguments = pretrained.unet_arguments(config)
    assert (arguments["flip_sin_to_cos"], arguments["freq_shift"], arguments["norm_epsilon"]) == (
        True, 0, 1e-5,
    )


def test_unsupported_scheduler_config():
    with pytest.raises(ValueError) as error:
        pretrained.schedule_arguments(
            {"beta_schedule": "exponential", "variance_type": "learned_range", "thresholding": True}
        )
    message = str(error.value)
    for part in ("beta_schedule='exponential'", "variance_type='learned_range'", "thresholding"):
        assert part in message
    # trained_betas that are a known schedule map onto it; others are refused.
    linear = np.linspace(1e-4, 0.02, 1000).tolist()
    schedule, _, _ = pretrained.schedule_arguments({"trained_betas": linear})
    assert schedule["kind"] == "linear"
    with pytest.raises(ValueError, match="trained_betas"):
        pretrained.schedule_arguments({"trained_betas": list(np.full(1000, 0.01))})


def test_missing_folder_and_wrong_layouts(tmp_path):
    with pytest.raises(ValueError, match=r"No diffusers checkpoint at '.*nowhere'.*does not exist"):
        keras_ddpm.DDPM.from_pretrained(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not in diffusers' layout"):
        keras_ddpm.DDPM.from_pretrained(str(tmp_path / "empty"))


def test_pickle_only_folder_is_refused(tmp_path):
    shutil.copy(os.path.join(FIXTURES, "model_only", "config.json"), tmp_path / "config.json")
    (tmp_path / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(ValueError, match=r"only the pickled .*arbitrary code.*allow_pickle=True"):
        keras_ddpm.UNet.from_pretrained(str(tmp_path))


def test_truncated_safetensors_is_one_line(tmp_path):
    source = os.path.join(FIXTURES, "model_only")
    shutil.copy(os.path.join(source, "config.json"), tmp_path / "config.json")
    data = open(os.path.join(source, "diffusion_pytorch_model.safetensors"), "rb").read()
    (tmp_path / "diffusion_pytorch_model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError) as error:
        keras_ddpm.UNet.from_pretrained(str(tmp_path))
    assert "damaged or incomplete" in str(error.value) and "\n" not in str(error.value)


def test_hub_id_without_huggingface_hub(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails
    with pytest.raises(ValueError, match=r"google/ddpm-cifar10-32.*pip install keras-ddpm\[hub\]"):
        keras_ddpm.DDPM.from_pretrained("google/ddpm-cifar10-32")


def test_wrong_weights_are_named(tmp_path):
    from safetensors.numpy import load_file
    from safetensors.numpy import save_file

    source = os.path.join(FIXTURES, "model_only")
    tensors = load_file(os.path.join(source, "diffusion_pytorch_model.safetensors"))
    del tensors["conv_out.bias"]
    tensors["conv_in.weight"] = tensors["conv_in.weight"][:4]
    save_file(tensors, str(tmp_path / "diffusion_pytorch_model.safetensors"))
    shutil.copy(os.path.join(source, "config.json"), tmp_path / "config.json")
    with pytest.raises(ValueError, match=r"1 missing.*conv_out.bias.*1 with the wrong shape.*conv_in.weight"):
        keras_ddpm.UNet.from_pretrained(str(tmp_path))


def test_save_pretrained_refusals(tmp_path):
    conditional = keras_ddpm.UNet(
        (8, 8, 1), base_channels=8, channel_multipliers=(1, 2), attention_resolutions=(),
        norm_groups=4, num_classes=3,
    )
    with pytest.raises(ValueError, match=r"num_classes=3.*class-conditional"):
        keras_ddpm.DDPM(conditional).save_pretrained(str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()  # refused before anything is written
    wide = keras_ddpm.UNet(
        (8, 8, 1), base_channels=8, channel_multipliers=(2, 2), attention_resolutions=(),
        norm_groups=4,
    )
    with pytest.raises(ValueError, match=r"channel_multipliers\[0\]=2"):
        keras_ddpm.DDPM(wide).save_pretrained(str(tmp_path / "out"))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="non-empty folder that holds no diffusers checkpoint"):
        keras_ddpm.DDPM(keras_ddpm.UNet(
            (8, 8, 1), base_channels=8, channel_multipliers=(1, 2), attention_resolutions=(),
            norm_groups=4,
        )).save_pretrained(str(tmp_path / "busy"))


# ----------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------
def test_cli_convert_both_ways_and_sample_from_a_diffusers_folder(tmp_path, capsys, reference):
    source = os.path.join(FIXTURES, "cifar10_like")
    out = str(tmp_path / "cifar.keras")
    assert cli.main(["convert", source, out]) == 0
    assert "143,267 parameters" in capsys.readouterr().out
    model = keras_ddpm.load_model(out)
    ours, theirs = _outputs(model.network, reference, "cifar10_like")
    assert np.abs(ours - theirs).max() <= 1e-5 * np.abs(theirs).max()
    folder = str(tmp_path / "back")
    assert cli.main(["convert", out, folder]) == 0
    assert os.path.isfile(os.path.join(folder, "unet", "diffusion_pytorch_model.safetensors"))
    grid = str(tmp_path / "grid.png")
    assert cli.main(["sample", source, "--out", grid, "--num", "2", "--sampler", "ddim",
                     "--steps", "2", "--no-progress"]) == 0
    assert os.path.getsize(grid) > 0


def test_cli_convert_errors(tmp_path, capsys):
    source = os.path.join(FIXTURES, "cifar10_like")
    assert cli.main(["convert", source, str(tmp_path / "out.h5")]) == 2
    assert "OUT must be a .keras file" in capsys.readouterr().err
    sys_modules_backup = sys.modules.get("huggingface_hub")
    try:
        sys.modules["huggingface_hub"] = None
        assert cli.main(["sample", "owner/not-here", "--out", str(tmp_path / "g.png")]) == 2
    finally:
        if sys_modules_backup is None:
            sys.modules.pop("huggingface_hub", None)
        else:
            sys.modules["huggingface_hub"] = sys_modules_backup
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "keras-ddpm[hub]" in err


def test_a_damaged_pickled_checkpoint_is_one_line_naming_the_file(tmp_path, monkeypatch):
    """allow_pickle=True on a damaged .bin: a one-line ValueError naming it, not UnpicklingError."""
    import pickle
    import sys
    import types

    from keras_ddpm.pretrained import files

    def load(path, **kwargs):
        with open(path, "rb") as file:
            return pickle.load(file)  # what torch.load does first with a damaged file

    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(load=load))
    path = tmp_path / "diffusion_pytorch_model.bin"
    path.write_bytes(b"\x80\x02damaged")
    with pytest.raises(ValueError) as error:
        files._read_pickle(str(path))
    message = str(error.value)
    assert "\n" not in message and str(path) in message and "not a readable PyTorch checkpoint" in message
