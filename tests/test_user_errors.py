"""One table of bad inputs: each is one line naming the value, no traceback, nothing written.

API cases must raise `ValueError`/`TypeError` (or `FileNotFoundError` for a missing file) with a
one-line message holding a given fragment; CLI cases must exit 2 with exactly one line on
stderr holding the fragment, and leave the files of the test folder as they were.
"""

import json
import os
import socket

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_ddpm
from keras_ddpm import cli
from networks import conv_network

SHAPE = (8, 8, 1)
T = 20


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    m = keras_ddpm.DDPM(conv_network(), schedule=keras_ddpm.NoiseSchedule("linear", T), seed=0)
    m.compile(optimizer=keras.optimizers.Adam(1e-3))
    return m


@pytest.fixture(scope="module")
def files(tmp_path_factory, model):
    folder = tmp_path_factory.mktemp("files")
    model.save(str(folder / "model.keras"))
    (folder / "truncated.keras").write_bytes((folder / "model.keras").read_bytes()[:500])
    (folder / "notes").write_text("a file, not a folder")
    foreign = folder / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("mine")
    images = folder / "images"
    images.mkdir()
    from PIL import Image

    for i in range(3):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(images / f"{i}.png")
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    damaged = folder / "damaged"
    damaged.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(damaged / "0.png")
    (damaged / "pixels.png").write_bytes(_damaged_pixels_png())
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(folder / "big.png")
    twins = folder / "twins"
    twins.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(twins / "x.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(twins / "x.bmp")
    (folder / "dir.png").mkdir()
    run = folder / "run"
    run.mkdir()
    (run / "config.json").write_text("{ not json")
    locked = folder / "locked"
    locked.mkdir()
    (locked / ".lock").write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    return folder


def _damaged_pixels_png():
    """A PNG whose header and chunk checksums are sound but whose compressed pixels are not."""
    import io
    import struct
    import zlib

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    start = data.index(b"IDAT")
    (length,) = struct.unpack(">I", data[start - 4 : start])
    for i in range(start + 6, start + 4 + length):  # past zlib's 2-byte header
        data[i] ^= 0x5A
    crc = zlib.crc32(bytes(data[start : start + 4 + length]))
    data[start + 4 + length : start + 8 + length] = struct.pack(">I", crc)
    return bytes(data)


def good_images(n=8):
    return np.random.default_rng(0).uniform(-1, 1, (n,) + SHAPE).astype("float32")


def with_nan():
    x = good_images()
    x[2, 3, 4, 0] = np.nan
    return x


# (id, call(model, folder), exception, fragment of the message)
API_CASES = [
    ("fit NaN", lambda m, f: m.fit(with_nan(), epochs=1, verbose=0), ValueError, "(2, 3, 4, 0)"),
    ("fit inf", lambda m, f: m.fit(good_images() * np.inf, epochs=1, verbose=0), ValueError,
     "NaN or infinite"),
    ("fit one unbatched image", lambda m, f: m.fit(good_images()[0], epochs=1, verbose=0),
     ValueError, "images[None]"),
    ("fit out of range", lambda m, f: m.fit(good_images() * 3, epochs=1, verbose=0), ValueError,
     "[-1, 1]"),
    ("fit int32 images", lambda m, f: m.fit(np.zeros((4, *SHAPE), np.int32), epochs=1, verbose=0),
     TypeError, "int32"),
    ("fit wrong shape", lambda m, f: m.fit(np.zeros((4, 16, 16, 3), np.float32), verbose=0),
     ValueError, "(16, 16, 3)"),
    ("fit labels to unconditional", lambda m, f: m.fit(good_images(), np.zeros(8, int), verbose=0),
     ValueError, "unconditional"),
    ("fit (images, labels) dataset to unconditional", lambda m, f: m.fit(
        tf.data.Dataset.from_tensor_slices((good_images(), np.zeros(8, "int32"))).batch(4),
        verbose=0), ValueError, "labels"),
    ("generate NaN noise", lambda m, f: m.generate(2, initial_noise=np.full((2, *SHAPE), np.nan)),
     ValueError, "initial_noise"),
    ("generate noise shape", lambda m, f: m.generate(2, initial_noise=np.zeros((3, *SHAPE))),
     ValueError, "(3, 8, 8, 1)"),
    ("predict images alone", lambda m, f: m.predict(good_images(), verbose=0), ValueError,
     "take its network's inputs [x_t, t] (noisy images, their timesteps) and give the network's "
     "prediction; received one array of shape"),
    ("call with one input", lambda m, f: m([good_images()]), ValueError, "received a list of 1"),
    ("generate sampler", lambda m, f: m.generate(2, sampler="euler"), ValueError, "euler"),
    ("generate steps", lambda m, f: m.generate(2, steps=0), ValueError, "steps"),
    ("generate eta for ddpm", lambda m, f: m.generate(2, eta=0.5), ValueError, "eta"),
    ("generate spacing", lambda m, f: m.generate(2, timestep_spacing="edm"), ValueError,
     "timestep_spacing='edm'"),
    ("generate ipndm order", lambda m, f: m.generate(2, sampler="ipndm", order=5), ValueError,
     "order=5"),
    ("generate unipc order", lambda m, f: m.generate(2, sampler="unipc", order=4), ValueError,
     "order=4"),
    ("DDPM noise_assignment",
     lambda m, f: keras_ddpm.DDPM(conv_network(), noise_assignment="mixed"), ValueError,
     "noise_assignment='mixed'"),
    ("DDPM max_skipped_steps", lambda m, f: keras_ddpm.DDPM(conv_network(), max_skipped_steps=0),
     ValueError, "max_skipped_steps"),
    ("DDPM ema_decay", lambda m, f: keras_ddpm.DDPM(conv_network(), ema_decay=1.5), ValueError,
     "ema_decay=1.5"),
    ("DDPM variance", lambda m, f: keras_ddpm.DDPM(conv_network(), variance="learned"), ValueError,
     "learned"),
    ("DDPM schedule type", lambda m, f: keras_ddpm.DDPM(conv_network(), schedule="linear"),
     TypeError, "'linear'"),
    ("NoiseSchedule kind", lambda m, f: keras_ddpm.NoiseSchedule("quadratic"), ValueError,
     "quadratic"),
    ("UNet norm_epsilon", lambda m, f: keras_ddpm.UNet(
        SHAPE, base_channels=8, channel_multipliers=(1,), attention_resolutions=(), norm_groups=4,
        norm_epsilon=-1.0), ValueError, "norm_epsilon=-1.0"),
    ("UNet misspelt argument", lambda m, f: keras_ddpm.UNet(
        SHAPE, base_channels=8, channel_multipliers=(1,), attention_resolutions=(), norm_groups=4,
        atention_resolutions=(4,)), TypeError, "'atention_resolutions'"),
    ("image folder batches workers", lambda m, f: keras_ddpm.data.load_image_folder_batches(
        str(f / "images"), 8, workers=0), ValueError, "workers=0"),
    ("image folder batches damaged pixels", lambda m, f:
     keras_ddpm.data.load_image_folder_batches(str(f / "damaged"), 8, channels=1), ValueError,
     "pixels.png"),
    ("save NaN weights", lambda m, f: _nan_copy(m).save(str(f / "nan.keras")),
     ValueError, "NaN"),
    ("export into a foreign folder", lambda m, f: m.export(str(f / "foreign"), verbose=False),
     ValueError, "foreign"),
    ("export onto a file", lambda m, f: m.export(str(f / "notes"), verbose=False), ValueError,
     "notes"),
    ("load_model missing", lambda m, f: keras_ddpm.load_model(str(f / "nope.keras")),
     FileNotFoundError, "nope.keras"),
    ("load_model truncated", lambda m, f: keras_ddpm.load_model(str(f / "truncated.keras")),
     ValueError, "truncated.keras"),
    ("load_model folder", lambda m, f: keras_ddpm.load_model(str(f / "foreign")), ValueError,
     "directory"),
    ("image folder with a broken file", lambda m, f: keras_ddpm.data.load_image_folder(
        str(f / "images"), 8, channels=1), ValueError, "broken.png"),
    ("image folder with damaged pixels", lambda m, f: keras_ddpm.data.load_image_folder(
        str(f / "damaged"), 8, channels=1), ValueError, "pixels.png"),
    ("image folder on_error", lambda m, f: keras_ddpm.data.load_image_folder(
        str(f / "images"), 8, on_error="ignore"), ValueError, "'ignore'"),
    ("image folder missing", lambda m, f: keras_ddpm.data.load_image_folder(str(f / "nope"), 8),
     ValueError, "nope"),
    ("RunBackup keep", lambda m, f: keras_ddpm.callbacks.RunBackup(str(f / "b"), keep=0),
     ValueError, "keep"),
    ("from_pretrained missing", lambda m, f: keras_ddpm.DDPM.from_pretrained(str(f / "nope")),
     ValueError, "does not exist"),
    ("from_pretrained a file", lambda m, f: keras_ddpm.DDPM.from_pretrained(str(f / "notes")),
     ValueError, "notes"),
    ("edit strength", lambda m, f: m.generate(2, initial_images=good_images(2), strength=2),
     ValueError, "strength=2"),
    ("inpaint mask shape", lambda m, f: m.inpaint(good_images(2), np.ones((5, 5))), ValueError,
     "(5, 5)"),
    ("inpaint mask values", lambda m, f: m.inpaint(good_images(2), np.full(SHAPE, 2.0)),
     ValueError, "[2, 2]"),
    ("inpaint multistep sampler", lambda m, f: m.inpaint(good_images(2), np.ones(SHAPE),
     sampler="dpm_solver"), ValueError, "dpm_solver"),
    ("inpaint uint8 images", lambda m, f: m.inpaint(np.zeros((2, *SHAPE), np.uint8),
     np.ones(SHAPE)), TypeError, "uint8"),
    ("encode stochastic sampler", lambda m, f: m.encode(good_images(2), sampler="ddpm"),
     ValueError, "ddpm"),
    ("encode out of range", lambda m, f: m.encode(good_images(2) * 3), ValueError, "[-1, 1]"),
    ("interpolate one frame", lambda m, f: m.interpolate(num=1), ValueError, "num=1"),
    ("fit empty array", lambda m, f: m.fit(np.zeros((0, *SHAPE), np.float32), verbose=0),
     ValueError, "empty"),
    ("fit batch_size 0", lambda m, f: m.fit(good_images(), batch_size=0, verbose=0), ValueError,
     "batch_size=0"),
    ("fit dataset out of range", lambda m, f: m.fit(
        tf.data.Dataset.from_tensor_slices(good_images() * 3).batch(4), verbose=0), ValueError,
     "outside [-1, 1]"),
    ("fit dataset with NaN", lambda m, f: m.fit(
        tf.data.Dataset.from_tensor_slices(with_nan()).batch(4), verbose=0), ValueError, "NaN"),
    ("evaluate wrong shape", lambda m, f: m.evaluate(np.zeros((4, 16, 16, 1), np.float32),
     verbose=0), ValueError, "(16, 16, 1)"),
    ("KID of NaN images", lambda m, f: keras_ddpm.metrics.KID(feature_extractor="pixels")
     .update_state(with_nan(), good_images()), ValueError, "NaN"),
    ("FID of 0..255 images", lambda m, f: keras_ddpm.metrics.FID(feature_extractor="pixels")
     .update_state((good_images() + 1) * 127.5, good_images()), ValueError, "x / 127.5 - 1"),
    ("save_image_grid of NaN", lambda m, f: keras_ddpm.utils.save_image_grid(
        with_nan(), str(f / "nan.png")), ValueError, "nan.png"),
    ("save_statistics suffix", lambda m, f: keras_ddpm.metrics.save_statistics(
        str(f / "s.txt"), np.zeros(2), np.eye(2)), ValueError, "s.txt"),
    # Keras would warn for each layer and quantize nothing (keras_ddpm.quantization).
    ("quantize a DDPM", lambda m, f: m.quantize("int8"), ValueError, "mode='int8'"),
    ("quantize a UNet", lambda m, f: keras_ddpm.UNet.from_preset("digits").quantize(
        config=keras.quantizers.Int4QuantizationConfig()), ValueError, "mode='int4'"),
]


def _nan_copy(model):
    copy = keras_ddpm.DDPM(conv_network(), schedule=model.schedule, seed=0)
    weight = copy.network.trainable_weights[0]
    weight.assign(np.full(weight.shape, np.nan, "float32"))
    return copy


def _snapshot(folder):
    return {
        os.path.relpath(os.path.join(root, name), folder): os.path.getmtime(os.path.join(root, name))
        for root, _, names in os.walk(folder) for name in names
    }


@pytest.mark.parametrize("name, call, error, fragment", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_bad_input(name, call, error, fragment, model, files):
    before = _snapshot(files)
    with pytest.raises(error) as raised:
        call(model, files)
    message = str(raised.value)
    assert "\n" not in message.strip() and fragment in message, message
    assert _snapshot(files) == before


# (id, argv with {f} for the folder, fragment)
CLI_CASES = [
    ("train output is a file", "train --output {f}/notes", "notes"),
    ("train negative learning rate", "train --output {f}/new --learning-rate -1", "-1"),
    ("train negative clipnorm", "train --output {f}/new --clipnorm -0.5", "-0.5"),
    ("train backup every zero batches", "train --output {f}/new --backup-every 0", "'0'"),
    ("train backup every week", "train --output {f}/new --backup-every week", "'week'"),
    ("train unknown dataset", "train --output {f}/new --dataset mnist", "mnist"),
    ("train folder without size", "train --output {f}/new --dataset folder:{f}/images", "--image-size"),
    ("train locked folder", "train --output {f}/locked --epochs 1", "PID"),
    ("train malformed config", "train --output {f}/run", "config.json"),
    ("train too few classes", "train --output {f}/new --conditional --num-classes 3", "--num-classes 3"),
    ("train broken image", "train --output {f}/new --dataset folder:{f}/images --image-size 8 "
     "--channels 1", "broken.png"),
    ("train damaged pixels", "train --output {f}/new --dataset folder:{f}/damaged --image-size 8 "
     "--channels 1", "pixels.png"),
    ("train bad epochs", "train --output {f}/new --epochs 0", "0"),
    ("train guidance without conditional", "train --output {f}/new --guidance 3", "--conditional"),
    ("train negative guidance", "train --output {f}/new --conditional --guidance -2", "-2"),
    ("train NaN clipnorm", "train --output {f}/new --clipnorm nan", "--clipnorm"),
    ("train NaN learning rate", "train --output {f}/new --learning-rate nan", "--learning-rate"),
    ("train diverging to a finite loss", "train --output {f}/new --learning-rate 1000 "
     "--base-channels 8 --channel-multipliers 1 --num-res-blocks 1 --attention-resolutions= "
     "--norm-groups 4 --timesteps 20 --epochs 1 --verbose 0", "Training diverged"),
    ("train 67-bit seed", "train --output {f}/new --seed 99999999999999999999",
     "99999999999999999999"),
    ("sample 67-bit seed", "sample {f}/model.keras --seed -99999999999999999999",
     "-99999999999999999999"),
    ("sample missing model", "sample {f}/nope.keras", "nope.keras"),
    ("sample truncated model", "sample {f}/truncated.keras --out {f}/g.png", "truncated.keras"),
    ("sample out is a file", "sample {f}/model.keras --out {f}/notes", "notes"),
    ("sample bad extension", "sample {f}/model.keras --out {f}/grid.jpg", "grid.jpg"),
    ("sample unknown sampler", "sample {f}/model.keras --sampler euler", "euler"),
    ("sample eta with ddpm", "sample {f}/model.keras --sampler ddpm --eta 0.5", "eta"),
    ("sample unknown spacing", "sample {f}/model.keras --timestep-spacing edm", "'edm'"),
    ("sample ipndm order 5", "sample {f}/model.keras --sampler ipndm --order 5", "order=5"),
    ("sample unipc order 4", "sample {f}/model.keras --sampler unipc --order 4", "order=4"),
    ("sample optimized steps of a plain model", "sample {f}/model.keras --steps optimized",
     "optimize_steps()"),
    ("optimize-steps to a .h5", "optimize-steps {f}/model.keras --out {f}/tuned.h5", "tuned.h5"),
    ("optimize-steps more steps than the grid", "optimize-steps {f}/model.keras --out "
     "{f}/tuned.keras --num-steps 30 --grid-size 10", "num_steps=30"),
    ("evaluate missing stats", "evaluate {f}/model.keras --metrics fid --reference-stats "
     "{f}/nope.npz", "nope.npz"),
    ("evaluate stats without fid", "evaluate {f}/model.keras --metrics kid --reference-stats "
     "{f}/notes", "fid"),
    ("evaluate bad metric", "evaluate {f}/model.keras --metrics fid,is", "fid,is"),
    ("edit strength", "edit {f}/model.keras --image {f}/images/0.png --strength 1.5 --out "
     "{f}/e.png", "1.5"),
    ("edit missing image", "edit {f}/model.keras --image {f}/nope.png --strength 0.5 --out "
     "{f}/e.png", "nope.png"),
    ("edit out extension", "edit {f}/model.keras --image {f}/images/0.png --strength 0.5 --out "
     "{f}/e.jpg", "e.jpg"),
    ("edit image size", "edit {f}/model.keras --image {f}/big.png --strength 0.5 --out {f}/e.png",
     "16x16"),
    ("edit broken image", "edit {f}/model.keras --image {f}/images/broken.png --strength 0.5 "
     "--out {f}/e.png", "broken.png"),
    ("edit label to unconditional", "edit {f}/model.keras --image {f}/images/0.png --strength 0.5 "
     "--out {f}/e.png --label 3", "unconditional"),
    ("inpaint unknown mask", "inpaint {f}/model.keras --image {f}/images/0.png --mask middle "
     "--out {f}/i.png", "middle"),
    ("inpaint multistep sampler", "inpaint {f}/model.keras --image {f}/images/0.png --mask bottom "
     "--out {f}/i.png --sampler dpm_solver", "dpm_solver"),
    ("inpaint mask size", "inpaint {f}/model.keras --image {f}/images/0.png --mask {f}/big.png "
     "--out {f}/i.png", "16x16"),
    ("inpaint zero resampling", "inpaint {f}/model.keras --image {f}/images/0.png --mask bottom "
     "--out {f}/i.png --resample-steps 0", "'0'"),
    ("interpolate one frame", "interpolate {f}/model.keras --out {f}/r.png --frames 1",
     "--frames"),
    ("interpolate stochastic encoder", "interpolate {f}/model.keras --out {f}/r.png --images "
     "{f}/images/0.png {f}/images/1.png --sampler ddpm", "ddpm"),
    ("interpolate into a folder", "interpolate {f}/model.keras --out {f}/rows", "rows"),
    ("export into a foreign folder", "export {f}/model.keras {f}/foreign", "foreign"),
    ("export missing model", "export {f}/nope.keras {f}/out", "nope.keras"),
    ("convert a model onto a file", "convert {f}/model.keras {f}/notes", "notes"),
    ("convert missing source", "convert {f}/nope {f}/x.keras", "nope"),
    ("edit into its own folder", "edit {f}/model.keras --image {f}/images --strength 0.5 --out "
     "{f}/images", "overwrite the originals"),
    ("edit onto its own image", "edit {f}/model.keras --image {f}/images/0.png --strength 0.5 "
     "--out {f}/images/0.png", "overwrite it"),
    ("edit two inputs, one result name", "edit {f}/model.keras --image {f}/twins --strength 0.5 "
     "--out {f}/edited", "'x.png'"),
    ("sample under a file", "sample {f}/model.keras --out {f}/notes/grid.png", "is a file"),
    ("sample onto a folder named .png", "sample {f}/model.keras --out {f}/dir.png", "is a folder"),
    ("interpolate onto a folder named .png", "interpolate {f}/model.keras --out {f}/dir.png",
     "is a folder"),
    ("evaluate --out under a file", "evaluate {f}/model.keras --out {f}/notes/r.json", "notes"),
    ("export under a file", "export {f}/model.keras {f}/notes/savedmodel", "is a file"),
    ("convert under a file", "convert {f}/model.keras {f}/notes/diffusers", "is a file"),
    ("train under a file", "train --output {f}/notes/run", "is a file"),
]


@pytest.mark.parametrize("name, argv, fragment", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input(name, argv, fragment, files, capsys):
    before = _snapshot(files)
    try:
        code = cli.main(argv.format(f=files).split())
    except SystemExit as exit:  # argparse's own errors
        code = exit.code
    captured = capsys.readouterr()
    assert code == 2, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in captured.err, captured.err
    assert _snapshot(files) == before
    assert not os.path.exists(files / "new")



def test_train_skips_unreadable_images_when_asked_and_says_how_many(files, tmp_path, capsys):
    output = tmp_path / "run"
    code = cli.main([
        "train", "--output", str(output), "--dataset", f"folder:{files / 'images'}",
        "--image-size", "8", "--channels", "1", "--skip-bad-images", "--epochs", "1",
        "--base-channels", "8", "--channel-multipliers", "1", "--attention-resolutions", "",
        "--norm-groups", "4", "--timesteps", "10", "--num-samples", "1", "--verbose", "0",
    ])
    out = capsys.readouterr().out
    assert code == 0
    assert "Skipped 1 unreadable image files of 4" in out and "broken.png" in out
    assert (output / "model.keras").exists()
