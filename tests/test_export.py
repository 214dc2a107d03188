"""SavedModel export: endpoints, same images as generate, loading without keras_ddpm, errors."""

import json
import os
import subprocess
import sys
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_ddpm
from keras_ddpm import cli
from keras_ddpm.utils import to_uint8
from networks import conv_network

SHAPE = (8, 8, 1)
T = 20


def conv_denoiser():
    return conv_network(SHAPE, T)


def with_distinct_ema(model):
    """Moves the raw weights away from the EMA copy, so that exporting the EMA can be told apart."""
    rng = np.random.default_rng(0)
    for weight in model.network.trainable_weights:
        weight.assign(weight.numpy() + 0.05 * rng.standard_normal(weight.shape).astype("float32"))
    return model


def generated(model, num, seed, **kwargs):
    """What the SavedModel must return: uint8 pixels of model.generate (the default call, in
    chunks of 2 images: the SavedModel draws all at once, image for image the same noise)."""
    return to_uint8(model.generate(num, seed=seed, verbose=0, batch_size=2, **kwargs))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny model saved to .keras and exported once by `keras-ddpm export` (DDIM, η = 0.5)."""
    keras.mixed_precision.set_global_policy("float32")
    schedule = keras_ddpm.NoiseSchedule("linear", timesteps=T)
    model = with_distinct_ema(
        keras_ddpm.DDPM(conv_denoiser(), schedule=schedule, ema_decay=0.9, seed=0)
    )
    folder = tmp_path_factory.mktemp("export")
    model_path, path = str(folder / "model.keras"), str(folder / "savedmodel")
    model.save(model_path)
    assert cli.main(["export", model_path, path, "--sampler", "ddim", "--eta", "0.5"]) == 0
    return model, path, tf.saved_model.load(path)


def test_generate_endpoints_match_model_generate_with_the_ema_weights(exported):
    model, _, loaded = exported
    images = loaded.generate(num_images=5, steps=7, seed=3).numpy()
    assert images.shape == (5,) + SHAPE and images.dtype == np.uint8
    np.testing.assert_array_equal(images, generated(model, 5, 3, sampler="ddim", steps=7, eta=0.5))
    # The sampler is a run-time input of the same SavedModel; steps=0 is generate's default.
    for sampler, steps, eta, seed in [
        ("ddpm", T, 0.0, 0), ("ddpm", 0, 0.0, -5), ("dpm_solver", 5, 0.0, 2**31 - 1),
        ("ddim", 0, 0.0, 11),
    ]:
        images = loaded.generate_with_sampler(
            num_images=4, steps=steps, seed=seed, sampler=sampler, eta=eta
        ).numpy()
        expected = generated(model, 4, seed, sampler=sampler, steps=steps or None, eta=eta)
        np.testing.assert_array_equal(images, expected, err_msg=f"{sampler}, {steps} steps")


def test_signatures_for_serving(exported):
    model, _, loaded = exported
    assert set(loaded.signatures) == {
        "serving_default", "generate", "generate_with_sampler", "edit", "inpaint", "denoise",
    }
    serving = loaded.signatures["serving_default"]
    assert set(serving.structured_input_signature[1]) == {"num_images", "steps", "seed"}
    outputs = serving(num_images=tf.constant(2), steps=tf.constant(4), seed=tf.constant(9))
    assert list(outputs) == ["images"] and outputs["images"].dtype == tf.uint8
    np.testing.assert_array_equal(
        outputs["images"], loaded.generate(num_images=2, steps=4, seed=9)
    )
    # Every record of the endpoint table is a signature with its inputs and output, in order.
    unconditional = types.SimpleNamespace(num_classes=None, image_shape=SHAPE)
    for endpoint in keras_ddpm.export.ENDPOINTS:
        signature = loaded.signatures[endpoint.name]
        assert list(signature.structured_outputs) == [endpoint.output]
        assert set(signature.structured_input_signature[1]) == set(endpoint.inputs(unconditional))
    # denoise is the EMA network's prediction, not the raw network's: the export holds the EMA.
    x_t = np.random.default_rng(1).standard_normal((3,) + SHAPE).astype("float32")
    t = np.array([0, 7, T - 1], "int32")
    prediction = loaded.signatures["denoise"](x_t=tf.constant(x_t), t=tf.constant(t))["prediction"]
    np.testing.assert_allclose(
        prediction, model.ema_network([x_t, t], training=False), rtol=1e-5, atol=1e-6
    )
    assert not np.allclose(prediction, model.network([x_t, t], training=False), atol=1e-3)


PIXELS = np.random.default_rng(0).integers(0, 256, (4,) + SHAPE).astype(np.uint8)
LEFT = np.zeros((1, 8, 8, 1), "float32")
LEFT[:, :, :4] = 1.0


def as_floats(pixels):
    return pixels.astype(np.float32) / 127.5 - 1.0


@pytest.mark.parametrize("strength, steps, seed", [
    (0.6, 7, 3), (0.0, 7, 1), (1.0, 5, 2), (0.5, 0, 4),
    (0.7, 5, 5),  # 0.7 · 5 = 3.5 rounds to 4 steps in float32 and in Python, to 3 if widened
])
def test_edit_endpoint_is_sdedit_in_python(exported, strength, steps, seed):
    model, _, loaded = exported
    images = loaded.edit(images=PIXELS, strength=strength, steps=steps, seed=seed).numpy()
    expected = generated(model, 4, seed, sampler="ddim", eta=0.5, steps=steps or None,
                         initial_images=as_floats(PIXELS), strength=strength)
    np.testing.assert_array_equal(images, expected)
    if strength == 0.0:
        np.testing.assert_array_equal(images, PIXELS)


def test_edit_and_inpaint_take_the_python_apis_floats_and_any_integer_pixels(exported):
    """The loaded object's functions convert [-1, 1] floats and int pixels, never cast them:
    TensorFlow would make floats in [-1, 1] black images and wrap 300 to 44."""
    model, _, loaded = exported
    floats = np.random.default_rng(1).uniform(-1, 1, PIXELS.shape).astype(np.float32)
    expected = generated(model, 4, 3, sampler="ddim", eta=0.5, steps=7,
                         initial_images=floats, strength=0.6)
    for images in (floats, floats.astype(np.float64)):
        edited = loaded.edit(images=images, strength=0.6, steps=7, seed=3).numpy()
        np.testing.assert_array_equal(edited, expected)
    np.testing.assert_array_equal(  # strength 0: the images themselves, as to_uint8 makes them
        loaded.edit(images=floats, strength=0.0, steps=7, seed=3).numpy(), to_uint8(floats))
    from_pixels = loaded.edit(images=PIXELS, strength=0.6, steps=7, seed=3).numpy()
    for dtype in (np.int32, np.int64):
        np.testing.assert_array_equal(
            loaded.edit(images=PIXELS.astype(dtype), strength=0.6, steps=7, seed=3).numpy(),
            from_pixels)
    inpainted = loaded.inpaint(images=as_floats(PIXELS), mask=LEFT, steps=6, seed=2).numpy()
    np.testing.assert_array_equal(
        inpainted, loaded.inpaint(images=PIXELS, mask=LEFT, steps=6, seed=2).numpy())
    # Another image shape or rank is one line (not TensorFlow's list of every concrete
    # function of the loaded object).
    for shape, says in (((2, 16, 16, 1), r"\[\?,8,8,1\] and \[2,16,16,1\]"),
                        ((8, 8, 1), "rank 4 but is rank 3")):
        with pytest.raises(ValueError, match=says) as raised:
            loaded.edit(images=np.zeros(shape, np.uint8), strength=0.5, steps=3, seed=0)
        assert len(str(raised.value).splitlines()) == 1
    # The signature stays uint8, as serving clients send pixels.
    assert loaded.signatures["edit"].structured_input_signature[1]["images"].dtype == tf.uint8


def test_every_endpoint_body_is_traced_once_by_the_export(tmp_path, monkeypatch):
    """Five image dtypes on the loaded object cost no second trace of the editing loops
    (a trace made before `tf.saved_model.save` is made again inside it)."""
    from keras_ddpm.export import editing
    from keras_ddpm.export import sampling

    traces = []
    for module, name in ((editing, "edit_function"), (editing, "inpaint_function"),
                         (sampling, "sample_function")):
        def counting(exported, make=getattr(module, name), name=name):
            body = make(exported)

            def counted(*args, **kwargs):
                traces.append(name)
                return body(*args, **kwargs)
            return counted
        monkeypatch.setattr(module, name, counting)
    model = keras_ddpm.DDPM(conv_denoiser(), keras_ddpm.NoiseSchedule("linear", T))
    model.export(str(tmp_path / "saved"), verbose=False)
    assert sorted(traces) == ["edit_function", "inpaint_function", "sample_function"]


def test_inpaint_endpoint_is_inpaint_in_python(exported):
    model, _, loaded = exported
    for mask in (LEFT, np.broadcast_to(LEFT, (4, 8, 8, 1))):
        images = loaded.signatures["inpaint"](
            images=tf.constant(PIXELS), mask=tf.constant(mask), steps=tf.constant(6),
            seed=tf.constant(2))["images"].numpy()
        expected = to_uint8(model.inpaint(
            as_floats(PIXELS), LEFT[0], sampler="ddim", eta=0.5, steps=6, seed=2, verbose=0,
            batch_size=3))  # the CLI's export: resample_steps 10, jump_length 10
        np.testing.assert_array_equal(images, expected)
        np.testing.assert_array_equal(images[:, :, :4], PIXELS[:, :, :4])


@pytest.mark.parametrize("endpoint, inputs, message", [
    ("edit", {"strength": 1.5}, r"`strength` must be in \[0, 1\]. Received:\] \[1.5\]"),
    ("edit", {"steps": T + 1}, rf"`steps` must be in \[1, {T}\]"),
    ("edit", {"images": np.zeros((0,) + SHAPE, np.uint8)}, "holds no image"),
    ("edit", {"images": np.full((2,) + SHAPE, 300, np.int64)},
     r"dtype int64 must be pixels in 0..255. Received values in\] \[300\] \[300\]"),
    ("edit", {"images": np.full((2,) + SHAPE, 2.0, np.float32)},
     r"dtype float32 must be finite values in \[-1, 1\].*Received values in\] \[2\] \[2\]"),
    ("inpaint", {"images": np.full((2,) + SHAPE, np.nan)}, r"dtype float64 must be finite"),
    ("inpaint", {"mask": np.full((1, 8, 8, 1), 2.0, np.float32)}, r"\[0, 1\]"),
    # Caught by shape inference when the loaded function is called (a ValueError), in the
    # signature's graph at run time (InvalidArgumentError).
    ("inpaint", {"mask": np.ones((3, 8, 8, 1), np.float32)},
     "Incompatible shapes|broadcast|Dimensions must be equal, but are 3 and 4"),
])
def test_bad_editing_inputs_are_clear_errors(exported, endpoint, inputs, message):
    _, _, loaded = exported
    arguments = {"images": PIXELS, "steps": 3, "seed": 0}
    arguments.update({"strength": 0.5} if endpoint == "edit" else {"mask": LEFT})
    arguments.update(inputs)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=message):
        getattr(loaded, endpoint)(**arguments)
    as_tensors = {k: tf.constant(v) for k, v in arguments.items()}
    if as_tensors["images"].dtype == tf.uint8:  # the signature, as a serving client calls it
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            loaded.signatures[endpoint](**as_tensors)


@pytest.mark.parametrize("t", [[0, T], [-7, 3]])
def test_denoise_refuses_timesteps_outside_the_schedule(exported, t):
    _, _, loaded = exported
    x_t = np.zeros((2,) + SHAPE, np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"`t` must hold timestep indices in \[0, {T}\)"):
        loaded.denoise(x_t=x_t, t=np.array(t, np.int32))
    assert loaded.denoise(x_t=x_t, t=np.array([0, T - 1], np.int32)).shape == x_t.shape


@pytest.mark.parametrize(
    "inputs, message",
    [
        ({"sampler": "plms"}, r"Unknown sampler. Expected one of ddpm, ddim, dpm_solver, ipndm, unipc. Received:\] \[plms\]"),
        ({"sampler": "ddpm", "eta": 0.5}, r"eta only applies to sampler ddim. Received: eta =\] \[0.5\]"),
        ({"steps": T + 1}, rf"`steps` must be in \[1, {T}\]"),
        ({"num_images": 0}, r"`num_images` must be a positive integer"),
    ],
)
def test_bad_runtime_inputs_are_clear_errors(exported, inputs, message):
    _, _, loaded = exported
    arguments = {"num_images": 2, "steps": 3, "seed": 0, "sampler": "ddim", "eta": 0.0, **inputs}
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.generate_with_sampler(**arguments)


def test_the_optimized_spacing_exports_the_models_own_steps(tmp_path):
    schedule = keras_ddpm.NoiseSchedule("linear", timesteps=T)
    model = keras_ddpm.DDPM(conv_denoiser(), schedule=schedule, seed=0)
    path = str(tmp_path / "savedmodel")
    with pytest.raises(ValueError, match=r"optimize_steps\(\)` found, and this model has none"):
        keras_ddpm.export.export_saved_model(
            model, path, sampler="ipndm", timestep_spacing="optimized", verbose=False
        )
    model.optimize_steps(num_steps=4, num_samples=8, grid_size=10)
    model.save(tmp_path / "tuned.keras")
    argv = ["export", str(tmp_path / "tuned.keras"), path, "--sampler", "ipndm",
            "--timestep-spacing", "optimized"]
    assert cli.main(argv) == 0
    loaded = tf.saved_model.load(path)
    # steps=0 is the optimized steps' number, for every sampler behind the switch.
    np.testing.assert_array_equal(
        loaded.generate(num_images=3, steps=0, seed=2).numpy(),
        generated(model, 3, 2, sampler="ipndm", steps="optimized"),
    )
    np.testing.assert_array_equal(
        loaded.generate_with_sampler(num_images=3, steps=4, seed=2, sampler="ddim", eta=0.0),
        generated(model, 3, 2, sampler="ddim", steps="optimized"),
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`steps` must be 4 \(0: the default\)"):
        loaded.generate(num_images=3, steps=5, seed=2)


SCRIPT = """
import json, sys
import numpy as np
import tensorflow as tf

loaded = tf.saved_model.load(sys.argv[1])
images = loaded.generate(num_images=3, steps=6, seed=5).numpy()
ddpm = loaded.signatures["generate_with_sampler"](
    num_images=tf.constant(2), steps=tf.constant(0), seed=tf.constant(1),
    sampler=tf.constant("ddpm"), eta=tf.constant(0.0))["images"].numpy()
pixels = np.arange(2 * 64).reshape(2, 8, 8, 1).astype(np.uint8)
edited = loaded.edit(images=pixels, strength=0.5, steps=6, seed=4).numpy()
mask = np.zeros((1, 8, 8, 1), np.float32)
mask[:, :4] = 1.0
filled = loaded.inpaint(images=pixels, mask=mask, steps=4, seed=4).numpy()
# The session-based loader of TF Serving and saved_model_cli, on serving_default.
with tf.compat.v1.Graph().as_default(), tf.compat.v1.Session() as session:
    meta_graph = tf.compat.v1.saved_model.load(session, ["serve"], sys.argv[1])
    signature = meta_graph.signature_def["serving_default"]
    feeds = {signature.inputs[name].name: value
             for name, value in {"num_images": 2, "steps": 4, "seed": 9}.items()}
    served = session.run(signature.outputs["images"].name, feeds)
np.savez(sys.argv[2], images=images, ddpm=ddpm, served=served, edited=edited, filled=filled)
print(json.dumps({name: name in sys.modules for name in ("keras_ddpm", "keras")}))
"""


@pytest.mark.slow  # 13 s: a TensorFlow subprocess loads the export
def test_savedmodel_runs_in_a_process_without_keras_ddpm(exported, tmp_path):
    model, path, _ = exported
    out = str(tmp_path / "images.npz")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, path, out], capture_output=True, text=True, timeout=300,
        env=env, cwd=str(tmp_path),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    imported = json.loads(done.stdout.strip().splitlines()[-1])
    assert imported["keras_ddpm"] is False
    arrays = np.load(out)
    np.testing.assert_array_equal(
        arrays["images"], generated(model, 3, 5, sampler="ddim", steps=6, eta=0.5)
    )
    np.testing.assert_array_equal(arrays["ddpm"], generated(model, 2, 1, sampler="ddpm"))
    np.testing.assert_array_equal(
        arrays["served"], generated(model, 2, 9, sampler="ddim", steps=4, eta=0.5)
    )
    pixels = as_floats(np.arange(2 * 64).reshape(2, 8, 8, 1).astype(np.uint8))
    np.testing.assert_array_equal(arrays["edited"], generated(
        model, 2, 4, sampler="ddim", eta=0.5, steps=6, initial_images=pixels, strength=0.5))
    mask = np.zeros((8, 8), "float32")
    mask[:4] = 1.0
    np.testing.assert_array_equal(arrays["filled"], to_uint8(model.inpaint(
        pixels, mask, sampler="ddim", eta=0.5, steps=4, seed=4, verbose=0, jit_compile=False)))


@pytest.mark.slow  # the session loader itself is checked in the test above
def test_saved_model_cli_runs_serving_default(exported, tmp_path):
    model, path, _ = exported
    script = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    done = subprocess.run(
        [script, "run", "--dir", path, "--tag_set", "serve", "--signature_def", "serving_default",
         "--input_exprs", "num_images=2;steps=4;seed=8", "--outdir", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    images = np.load(tmp_path / "images.npy")
    np.testing.assert_array_equal(images, generated(model, 2, 8, sampler="ddim", steps=4, eta=0.5))


def test_export_argument_errors(exported, tmp_path):
    model, _, _ = exported
    with pytest.raises(ValueError, match=r"format='tf_saved_model'.*Received: format='onnx'"):
        model.export(str(tmp_path / "x"), format="onnx")
    with pytest.raises(ValueError, match=r"sampler='plms'"):
        model.export(str(tmp_path / "x"), sampler="plms")
    with pytest.raises(ValueError, match=r"eta=0.5 with sampler='ddpm'"):
        model.export(str(tmp_path / "x"), eta=0.5)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=r"directory.*'.*file'"):
        model.export(str(tmp_path / "file"))
    with pytest.raises(TypeError, match=r"keras_ddpm.DDPM.*Sequential"):
        keras_ddpm.export.export_saved_model(keras.Sequential(), str(tmp_path / "x"))
    with pytest.raises(ValueError, match=r"\(8, 8, 1\).*image_shape=\(4, 4, 1\)"):
        model.export(str(tmp_path / "x"), image_shape=(4, 4, 1))


class ShapelessDenoiser(keras.Model):
    """A subclassed network: no declared input shape until it is called."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.embedding = keras.layers.Embedding(T, 2)
        self.conv = keras.layers.Conv2D(1, 3, padding="same")

    def call(self, inputs, training=False):
        x_t, t = inputs
        return self.conv(x_t) * keras.ops.reshape(self.embedding(t)[:, :1], (-1, 1, 1, 1))


def test_a_never_built_network_is_built_from_image_shape_or_refused(tmp_path):
    model = keras_ddpm.DDPM(
        ShapelessDenoiser(), schedule=keras_ddpm.NoiseSchedule("linear", timesteps=T),
        ema_decay=None,
    )
    assert not model.network.weights
    with pytest.raises(ValueError, match=r"declares no input shape.*image_shape=\(H, W, C\)"):
        model.export(str(tmp_path / "x"), verbose=False)
    path = model.export(str(tmp_path / "x"), image_shape=(4, 4, 1), verbose=False)
    loaded = tf.saved_model.load(path)
    images = loaded.generate(num_images=2, steps=3, seed=0).numpy()
    assert images.shape == (2, 4, 4, 1) and images.dtype == np.uint8
    x_t = np.ones((2, 4, 4, 1), "float32")
    t = np.array([1, 2], "int32")
    np.testing.assert_allclose(loaded.denoise(x_t=x_t, t=t), model.network([x_t, t]), rtol=1e-6)


class ConditionalDenoiser(keras.Model):
    """A tiny class-conditional network: `num_classes` and inputs [x_t, t, labels], as UNet."""

    def __init__(self, num_classes=3, **kwargs):
        x_t = keras.Input(shape=SHAPE, name="x_t")
        t = keras.Input(shape=(), dtype="int32", name="t")
        labels = keras.Input(shape=(), dtype="int32", name="labels")
        condition = keras.layers.Embedding(T, 4)(t) + keras.layers.Embedding(num_classes + 1, 4)(labels)
        h = keras.layers.Conv2D(4, 3, padding="same", activation="silu")(x_t)
        h = h + keras.layers.Reshape((1, 1, 4))(condition)
        out = keras.layers.Conv2D(SHAPE[-1], 3, padding="same")(h)
        super().__init__([x_t, t, labels], out, **kwargs)
        self.num_classes = num_classes

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@pytest.mark.slow  # 15 s: a conditional model's endpoints traced and exported
def test_conditional_model_exports_labels_and_guidance_scale(tmp_path):
    schedule = keras_ddpm.NoiseSchedule("linear", timesteps=T)
    model = with_distinct_ema(
        keras_ddpm.DDPM(ConditionalDenoiser(), schedule=schedule, ema_decay=0.9, seed=0)
    )
    path = model.export(str(tmp_path / "savedmodel"), sampler="dpm_solver", verbose=False)
    loaded = tf.saved_model.load(path)
    inputs = loaded.signatures["serving_default"].structured_input_signature[1]
    assert set(inputs) == {"num_images", "steps", "seed", "labels", "guidance_scale"}
    labels = np.array([0, 2, 1, 2], "int32")
    images = loaded.generate(num_images=4, steps=5, seed=1, labels=labels, guidance_scale=2.5)
    expected = generated(
        model, 4, 1, sampler="dpm_solver", steps=5, labels=labels, guidance_scale=2.5
    )
    np.testing.assert_array_equal(images, expected)
    # The null label (num_classes) asks for unconditional samples.
    unconditional = loaded.generate(
        num_images=2, steps=5, seed=1, labels=np.full(2, 3, "int32"), guidance_scale=1.0
    )
    np.testing.assert_array_equal(unconditional, generated(model, 2, 1, sampler="dpm_solver", steps=5))
    x_t = np.zeros((2,) + SHAPE, "float32")
    t, labels = np.array([3, 4], "int32"), np.array([1, 3], "int32")
    np.testing.assert_allclose(
        loaded.denoise(x_t=x_t, t=t, labels=labels), model.ema_network([x_t, t, labels]),
        rtol=1e-5, atol=1e-6,
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="one label per image"):
        loaded.generate(num_images=3, steps=5, seed=1, labels=[0, 1], guidance_scale=1.0)
    # The editing endpoints take labels too; inpaint falls back from multistep DPM-Solver to ddpm.
    pixels, labels = PIXELS[:3], np.array([2, 0, 1], "int32")
    edited = loaded.edit(images=pixels, strength=0.7, steps=5, seed=6, labels=labels,
                         guidance_scale=2.0)
    np.testing.assert_array_equal(edited, generated(
        model, 3, 6, sampler="dpm_solver", steps=5, labels=labels, guidance_scale=2.0,
        initial_images=as_floats(pixels), strength=0.7))
    filled = loaded.inpaint(images=pixels, mask=LEFT, steps=4, seed=6, labels=labels,
                            guidance_scale=2.0)
    np.testing.assert_array_equal(filled, to_uint8(model.inpaint(
        as_floats(pixels), LEFT[0], sampler="ddpm", steps=4, seed=6, labels=labels,
        guidance_scale=2.0, verbose=0, jit_compile=False)))


def test_cli_export_errors_are_one_line(exported, tmp_path, capsys):
    model, path, _ = exported
    model_path = os.path.join(os.path.dirname(path), "model.keras")
    out = str(tmp_path / "savedmodel")
    with pytest.raises(SystemExit) as info:  # argparse's choices come from the registry
        cli.main(["export", model_path, out, "--sampler", "plms"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "'plms'" in err and err.count("\n") == 1, err
    for argv, message in [
        (["export", model_path, out, "--eta", "0.5"], "eta=0.5 with sampler='ddpm'"),
        (["export", model_path, model_path], "is a file"),
        (["export", str(tmp_path / "missing.keras"), out], "does not exist"),
        (["export", path, out], "holds no model.keras"),
    ]:
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not os.path.exists(out)


def test_the_readme_shows_the_endpoint_table():
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md"), encoding="utf-8")
    with readme:
        text = " ".join(line.strip() for line in readme)
    table = " ".join(line.strip() for line in keras_ddpm.export.markdown_table().splitlines())
    assert table in text
    assert [e.name for e in keras_ddpm.export.ENDPOINTS][:1] == [keras_ddpm.export.SERVING_DEFAULT]
