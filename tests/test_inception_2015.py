"""The reference Inception graph (inception_2015) and FID statistics files, on a synthetic graph.

No download: a small frozen GraphDef is built with the tensor names and the
structure of `classify_image_graph_def.pb` (DecodeJpeg → Cast → ExpandDims →
ResizeBilinear → Sub 128 → Mul 1/128 → convolutions → pool_3 → a batch-1
classifier head), and its features are checked against a NumPy restatement of
every step, TF1's legacy bilinear resize included.
"""

import io
import json
import os
import tarfile

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_ddpm
from keras_ddpm import cli
from keras_ddpm import metrics
from keras_ddpm.cli import evaluate as evaluate_cli
from networks import conv_network

NO_XLA = ["--jit-compile", "false", "--no-progress"]


# ----------------------------------------------------------------------------
# A synthetic classify_image_graph_def.pb and its NumPy restatement
# ----------------------------------------------------------------------------
def graph_weights(dims, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "conv": rng.normal(0, 0.5, (3, 3, 3, 4)).astype(np.float32),
        "conv_bias": rng.normal(0, 0.1, 4).astype(np.float32),
        "mixed": rng.normal(0, 0.5, (4, dims)).astype(np.float32),
        "mixed_bias": rng.normal(0, 0.1, dims).astype(np.float32),
        "softmax": rng.normal(0, 0.1, (dims, 5)).astype(np.float32),
    }


def synthetic_graph_def(size, dims, seed=0):
    """The reference graph's layout in miniature, resizing to `size` and with `dims` features."""
    w = graph_weights(dims, seed)
    pool = (size - 2) // 3  # The conv output, pooled to 3x3.
    jpeg = tf.io.encode_jpeg(tf.zeros((5, 7, 3), tf.uint8)).numpy()
    graph = tf.Graph()
    with graph.as_default():
        contents = tf.constant(jpeg, name="DecodeJpeg/contents")
        decoded = tf.io.decode_jpeg(contents, name="DecodeJpeg")
        cast = tf.cast(decoded, tf.float32, name="Cast")
        batch = tf.expand_dims(cast, tf.constant(0, name="ExpandDims/dim"), name="ExpandDims")
        resized = tf.raw_ops.ResizeBilinear(
            images=batch,
            size=tf.constant([size, size], name="ResizeBilinear/size"),
            align_corners=False,
            half_pixel_centers=False,
            name="ResizeBilinear",
        )
        x = tf.subtract(resized, tf.constant(128.0, name="Sub/y"), name="Sub")
        x = tf.multiply(x, tf.constant(1.0 / 128.0, name="Mul/y"), name="Mul")
        x = tf.nn.conv2d(x, tf.constant(w["conv"], name="conv/conv2d_params"), 1, "VALID",
                         name="conv/Conv2D")
        x = tf.nn.relu(x + w["conv_bias"], name="conv")
        x = tf.nn.avg_pool2d(x, pool, pool, "VALID", name="pool")
        x = tf.nn.conv2d(x, tf.constant(w["mixed"][None, None]), 1, "VALID", name="mixed_10/conv")
        x = tf.nn.relu(x + w["mixed_bias"], name="mixed_10/join")
        pool_3 = tf.nn.avg_pool2d(x, 3, 1, "VALID", name="pool_3")
        # The head of the real graph: a reshape to batch 1, then the classifier.
        flat = tf.reshape(pool_3, [1, dims], name="pool_3/_reshape")
        tf.nn.softmax(tf.matmul(flat, w["softmax"]), name="softmax")
    # add_shapes records the batch-1 shapes, as in a graph made for one image.
    return graph.as_graph_def(add_shapes=True)


@pytest.fixture(scope="module")
def graph_files(tmp_path_factory):
    """{"pb", "tgz", "folder"} paths of one small synthetic graph (resize to 17, 16 features)."""
    folder = tmp_path_factory.mktemp("inception")
    pb = folder / metrics.inception_2015.GRAPH_FILE
    pb.write_bytes(synthetic_graph_def(17, 16).SerializeToString())
    tgz = folder / "inception-2015-12-05.tgz"
    with tarfile.open(tgz, "w:gz") as archive:
        archive.add(pb, arcname="classify_image_graph_def.pb")
        info = tarfile.TarInfo("LICENSE")
        info.size = 3
        archive.addfile(info, io.BytesIO(b"MIT"))
    return {"pb": str(pb), "tgz": str(tgz), "folder": str(folder)}


def legacy_resize(images, size):
    """TF1 ResizeBilinear (align_corners=False, half_pixel_centers=False), NumPy float64."""

    def axis_weights(in_size):
        source = np.arange(size) * (in_size / size)
        lower = np.floor(source).astype(int)
        upper = np.minimum(lower + 1, in_size - 1)
        return lower, upper, source - lower

    top, bottom, dy = axis_weights(images.shape[1])
    left, right, dx = axis_weights(images.shape[2])
    rows = images[:, top] + (images[:, bottom] - images[:, top]) * dy[None, :, None, None]
    return rows[:, :, left] + (rows[:, :, right] - rows[:, :, left]) * dx[None, None, :, None]


def numpy_features(images, size, dims, quantise=True):
    """The reference: uint8 pixels, grey → RGB, legacy resize, (x − 128)/128, the network."""
    x = np.clip(np.asarray(images, np.float64), -1.0, 1.0)
    x = np.floor((x + 1.0) * 127.5 + 0.5) if quantise else (x + 1.0) * 127.5
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    x = (legacy_resize(x, size) - 128.0) * (1.0 / 128.0)
    w = graph_weights(dims)
    patches = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))  # [B,H',W',3,3,3]
    x = np.maximum(np.einsum("bhwcij,ijco->bhwo", patches, w["conv"]) + w["conv_bias"], 0.0)
    pool = (size - 2) // 3
    b, _, _, c = x.shape
    x = x[:, : 3 * pool, : 3 * pool].reshape(b, 3, pool, 3, pool, c).mean(axis=(2, 4))
    x = np.maximum(x @ w["mixed"] + w["mixed_bias"], 0.0)
    return x.mean(axis=(1, 2))


def sample_images(n=6, size=12, channels=3, seed=0):
    """[-1, 1] images with values outside the range and exactly on rounding halves."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1.1, 1.1, (n, size, size, channels))
    halves = (rng.integers(0, 255, (n, size, channels)) + 0.5) / 127.5 - 1.0
    images[:, 0] = halves
    return images.astype(np.float32)


# ----------------------------------------------------------------------------
# Features
# ----------------------------------------------------------------------------
def test_features_match_a_numpy_restatement_of_the_reference_pipeline(graph_files):
    extractor = metrics.FeatureExtractor(graph_files["pb"], batch_size=4)
    assert extractor.name == "inception_2015"
    for channels in (3, 1):
        images = sample_images(channels=channels, seed=channels)
        features = extractor.features(images)
        expected = numpy_features(images, 17, 16)
        assert features.shape == (6, 16) and features.dtype == np.float64
        np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-5)
        # The test can tell: skipping the uint8 rounding changes the features.
        assert np.abs(numpy_features(images, 17, 16, quantise=False) - expected).max() > 1e-4
    # Grayscale is the same as its repetition to RGB.
    grey = sample_images(channels=1, seed=4)
    np.testing.assert_allclose(
        extractor.features(grey), extractor.features(np.repeat(grey, 3, -1)), atol=1e-6
    )


def test_pb_tgz_and_folder_give_the_same_features_and_batching_changes_nothing(graph_files):
    images = sample_images(n=7, size=9, seed=5)
    features = {
        kind: metrics.FeatureExtractor(path, batch_size=7).features(images)
        for kind, path in graph_files.items()
    }
    np.testing.assert_array_equal(features["pb"], features["tgz"])
    np.testing.assert_array_equal(features["pb"], features["folder"])
    one_by_one = metrics.FeatureExtractor(graph_files["tgz"], batch_size=1).features(images)
    np.testing.assert_allclose(one_by_one, features["pb"], rtol=1e-6, atol=1e-6)
    # The callable itself: uint8 pixels are fed as they are, floats quantised first.
    inception = metrics.Inception2015(graph_files["pb"])
    pixels = keras_ddpm.utils.to_uint8(images)
    np.testing.assert_array_equal(inception(pixels).numpy(), inception(images).numpy())
    np.testing.assert_array_equal(
        inception.pixel_features(pixels.astype(np.float32)).numpy(), features["pb"]
    )


def test_the_2048_feature_path_at_299_with_batch_1_shapes_in_the_file(tmp_path):
    pb = tmp_path / "classify_image_graph_def.pb"
    graph_def = synthetic_graph_def(299, 2048)
    shapes = {n.name: n.attr["_output_shapes"].list.shape[0] for n in graph_def.node}
    assert [d.size for d in shapes["pool_3"].dim] == [1, 1, 1, 2048]  # What the file says.
    pb.write_bytes(graph_def.SerializeToString())
    fid = metrics.FID(str(pb), batch_size=3)
    images = sample_images(n=5, size=10, channels=1, seed=6)
    features = fid.features(images)
    assert features.shape == (5, 2048)
    np.testing.assert_allclose(features, numpy_features(images, 299, 2048), rtol=1e-5, atol=1e-5)
    fid.update_state(images, images[::-1])
    mu, sigma = fid.statistics("real")
    assert mu.shape == (2048,) and sigma.shape == (2048, 2048)
    path = tmp_path / "stats.npz"
    metrics.save_statistics(path, mu, sigma)
    loaded_mu, loaded_sigma = metrics.load_statistics(path)
    np.testing.assert_array_equal(loaded_mu, mu)
    np.testing.assert_array_equal(loaded_sigma, sigma)


def test_kid_takes_the_extractor_as_an_instance(graph_files):
    inception = metrics.Inception2015(graph_files["tgz"])
    kid = metrics.KID(inception, num_subsets=3, subset_size=5, seed=1)
    real, generated = sample_images(n=8, seed=7), sample_images(n=6, seed=8)
    kid.update_state(real, generated)
    # The same as KID on those features, given as "pixels".
    as_pixels = metrics.KID("pixels", num_subsets=3, subset_size=5, seed=1)
    flat = lambda f: np.asarray(f, np.float32)[:, None, :, None]  # noqa: E731
    as_pixels.update_state(flat(inception(real)), flat(inception(generated)))
    assert kid.result() == pytest.approx(as_pixels.result(), rel=1e-6)
    assert repr(inception) == f"Inception2015(path={graph_files['tgz']!r})"


# ----------------------------------------------------------------------------
# Statistics files and reference statistics
# ----------------------------------------------------------------------------
def test_statistics_files_round_trip_exactly_and_are_plain_npz(tmp_path):
    rng = np.random.default_rng(8)
    features = rng.normal(size=(50, 6))
    mu, sigma = metrics.feature_statistics(features)
    np.testing.assert_allclose(sigma, np.cov(features, rowvar=False), rtol=1e-12)
    path = tmp_path / "sub" / "stats.npz"
    metrics.save_statistics(str(path), mu, sigma)
    with np.load(path) as archive:
        assert sorted(archive.files) == ["mu", "sigma"]
        assert archive["mu"].dtype == archive["sigma"].dtype == np.float64
        np.testing.assert_array_equal(archive["mu"], mu)
        np.testing.assert_array_equal(archive["sigma"], sigma)
    # A file written as TTUR and pytorch-fid write theirs.
    np.savez_compressed(tmp_path / "ttur.npz", mu=mu.astype(np.float32), sigma=sigma)
    loaded = metrics.load_statistics(tmp_path / "ttur.npz")
    np.testing.assert_array_equal(loaded[0], mu.astype(np.float32).astype(np.float64))


def test_fid_with_reference_statistics_equals_fid_with_the_real_images(graph_files, tmp_path):
    extractor = metrics.FeatureExtractor(graph_files["pb"])
    real, generated = sample_images(n=12, seed=9), sample_images(n=10, seed=10) * 0.7
    direct = metrics.FID(extractor)
    direct.update_state(real, generated)
    path = tmp_path / "real.npz"
    metrics.save_statistics(path, *direct.statistics("real"))
    for reference in (str(path), metrics.load_statistics(path)):
        fid = metrics.FID(extractor, reference_statistics=reference)
        fid.update_state(generated_images=generated)
        assert fid.result() == pytest.approx(direct.result(), rel=1e-10)
        assert direct.result() > 0
    # reset_state keeps the reference; a real batch is refused; None goes back to images.
    fid.reset_state()
    fid.update_state(None, generated)
    assert fid.result() == pytest.approx(direct.result(), rel=1e-10)
    with pytest.raises(ValueError, match="reference_statistics"):
        fid.update_state(real, None)
    fid.set_reference_statistics(None)
    with pytest.raises(ValueError, match="at least 2 real"):
        fid.result()


def one_line_error(build, error=ValueError):
    with pytest.raises(error) as info:
        build()
    message = str(info.value)
    assert "\n" not in message
    return message


def test_bad_statistics_are_one_line_value_errors(tmp_path):
    np.savez(tmp_path / "keys.npz", mean=np.zeros(3), cov=np.eye(3))
    np.savez(tmp_path / "shapes.npz", mu=np.zeros(3), sigma=np.eye(4))
    np.save(tmp_path / "array.npy", np.zeros(3))
    (tmp_path / "junk.npz").write_bytes(b"not an archive at all")
    cases = {
        "keys.npz": "has no mu and no sigma",
        "shapes.npz": "mu (3,) and sigma (4, 4)",
        "array.npy": "one array",
        "junk.npz": "Cannot read FID statistics",
        "missing.npz": "No such file",
    }
    for name, expected in cases.items():
        message = one_line_error(lambda: metrics.load_statistics(tmp_path / name))
        assert expected in message and name in message
    assert "sigma (2, 2)" in one_line_error(
        lambda: metrics.FID("pixels", reference_statistics=(np.zeros(3), np.eye(2)))
    )
    assert "Received: int 3" in one_line_error(
        lambda: metrics.FID("pixels", reference_statistics=3), TypeError
    )
    assert "path='stats.txt'" in one_line_error(
        lambda: metrics.save_statistics("stats.txt", np.zeros(2), np.eye(2))
    )
    # Reference statistics of other features.
    fid = metrics.FID("pixels", reference_statistics=(np.zeros(5), np.eye(5)))
    fid.update_state(None, np.zeros((3, 2, 2, 1), np.float32))
    assert "5-d but the generated features are 4-d" in one_line_error(fid.result)


# ----------------------------------------------------------------------------
# Missing files and downloads
# ----------------------------------------------------------------------------
def test_bad_graph_files_are_one_line_value_errors(tmp_path, graph_files):
    (tmp_path / "junk.pb").write_bytes(os.urandom(64) + b"\xff" * 8)
    other = tf.Graph()
    with other.as_default():
        tf.constant(1.0, name="ExpandDims")
    (tmp_path / "other.pb").write_bytes(other.as_graph_def().SerializeToString())
    with tarfile.open(tmp_path / "empty.tgz", "w:gz") as archive:
        archive.add(tmp_path / "other.pb", arcname="README")
    data = open(graph_files["tgz"], "rb").read()
    (tmp_path / "truncated.tgz").write_bytes(data[: len(data) // 2])
    cases = {
        "missing.pb": "does not exist",
        "junk.pb": "GraphDef",
        "other.pb": "no tensor pool_3:0",
        "empty.tgz": "holds no classify_image_graph_def.pb",
        "truncated.tgz": "truncated.tgz",
    }
    for name, expected in cases.items():
        message = one_line_error(lambda: metrics.FID(str(tmp_path / name)))
        assert expected in message, message
    assert "'vgg.h5'" in one_line_error(lambda: metrics.FID("vgg.h5"))


def fail_download(*args, **kwargs):
    raise Exception(  # What keras.utils.get_file raises offline.
        f"URL fetch failure on {kwargs.get('origin')}: None -- [Errno -3] Temporary failure "
        "in name resolution"
    )


def test_an_offline_download_is_one_line_naming_the_url_and_the_way_out(monkeypatch):
    calls = []

    def get_file(*args, **kwargs):
        calls.append(kwargs)
        fail_download(*args, **kwargs)

    monkeypatch.setattr(keras.utils, "get_file", get_file)
    for build in (lambda: metrics.FID("inception_2015"), lambda: metrics.Inception2015()):
        with pytest.raises(ValueError) as info:
            build()
        message = str(info.value)
        assert "\n" not in message and info.value.__suppress_context__
        assert metrics.INCEPTION_2015_URL in message and ".tgz" in message
        assert "Temporary failure in name resolution" in message
    assert calls[0]["origin"] == metrics.INCEPTION_2015_URL and calls[0]["extract"]


def test_a_downloaded_folder_is_searched_for_the_graph(monkeypatch, graph_files, tmp_path):
    # Keras 3 returns the folder it extracted the .tgz into.
    with tarfile.open(graph_files["tgz"]) as archive:
        archive.extractall(tmp_path / "inception-2015-12-05_extracted", filter="data")
    monkeypatch.setattr(
        keras.utils, "get_file", lambda **kwargs: str(tmp_path / "inception-2015-12-05_extracted")
    )
    inception = metrics.Inception2015()
    assert inception.path.endswith(os.path.join("_extracted", "classify_image_graph_def.pb"))


def test_an_offline_inception_v3_download_is_one_line(monkeypatch):
    from keras.src.utils import file_utils

    monkeypatch.setattr(file_utils, "get_file", fail_download)
    message = one_line_error(lambda: metrics.FID())
    assert "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert "https://" in message and "'pixels'" in message and "weights=" in message


# ----------------------------------------------------------------------------
# keras-ddpm evaluate
# ----------------------------------------------------------------------------
def test_the_cli_lists_the_library_extractors():
    assert evaluate_cli.FEATURE_EXTRACTORS == metrics.FEATURE_EXTRACTORS
    assert evaluate_cli.DEFAULT_EXTRACTOR == metrics.FEATURE_EXTRACTORS[0]


@pytest.fixture(scope="module")
def tiny_model_file(tmp_path_factory):
    """An untrained tiny DDPM for the 8x8 digits, saved as a .keras file."""
    network = conv_network((8, 8, 1), 10)
    model = keras_ddpm.DDPM(
        network, schedule=keras_ddpm.NoiseSchedule("linear", timesteps=10), seed=0, ema_decay=None
    )
    model.compile(optimizer="adam")
    path = str(tmp_path_factory.mktemp("model") / "model.keras")
    model.save(path)
    return path


def test_evaluate_with_the_reference_graph_saved_and_reference_stats(
    tiny_model_file, graph_files, tmp_path, capsys, monkeypatch
):
    stats, out = str(tmp_path / "digits.npz"), str(tmp_path / "first.json")
    common = [tiny_model_file, "--num", "40", "--seed", "3", *NO_XLA]  # More images than features.
    assert cli.main(["evaluate", *common, "--metrics", "fid", "--inception-graph",
                     graph_files["tgz"], "--save-stats", stats, "--out", out]) == 0
    first = json.load(open(out))
    assert first["feature_extractor"] == "inception_2015" and first["saved_statistics"] == stats
    mu, sigma = metrics.load_statistics(stats)
    assert mu.shape == (16,) and sigma.shape == (16, 16)

    # Against the saved statistics, the dataset is not read at all, and FID is the same.
    def no_data(*args, **kwargs):
        raise AssertionError("the dataset was loaded")

    monkeypatch.setattr(evaluate_cli, "evaluation_images", no_data)
    out = str(tmp_path / "second.json")
    assert cli.main(["evaluate", *common, "--metrics", "fid", "--feature-extractor",
                     "inception_2015", "--inception-graph", graph_files["pb"],
                     "--reference-stats", stats, "--out", out]) == 0
    second = json.load(open(out))
    assert "num_real_images" not in second and second["num_generated_images"] == 40
    assert second["reference_statistics"] == stats
    assert second["fid"] == pytest.approx(first["fid"], rel=1e-8) and first["fid"] > 0
    # With KID too: the dataset serves KID, the file FID.
    monkeypatch.undo()
    out = str(tmp_path / "third.json")
    assert cli.main(["evaluate", *common, "--metrics", "kid,fid", "--inception-graph",
                     graph_files["pb"], "--reference-stats", stats, "--kid-subsets", "2",
                     "--kid-subset-size", "10", "--out", out]) == 0
    third = json.load(open(out))
    assert third["num_real_images"] == 40 and np.isfinite(third["kid"])
    assert third["fid"] == pytest.approx(first["fid"], rel=1e-8)
    capsys.readouterr()


def write_bad_stats(tmp_path):
    np.savez(tmp_path / "bad.npz", mu=np.zeros(16), sigma=np.zeros((16, 15)))
    np.savez(tmp_path / "wide.npz", mu=np.zeros(3), sigma=np.eye(3))


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--reference-stats", "{tmp}/bad.npz"], "mu (16,) and sigma (16, 15)"),
        (["--reference-stats", "{tmp}/wide.npz"], "holds 3-d statistics but"),
        (["--reference-stats", "{tmp}/none.npz"], "does not exist"),
        (["--reference-stats", "{tmp}/wide.npz", "--metrics", "kid"], "add fid to --metrics"),
        (["--save-stats", "{tmp}/out.txt"], "must end in .npz"),
        (["--reference-stats", "{tmp}/wide.npz", "--save-stats", "{tmp}/s.npz"], "no real"),
        (["--inception-graph", "{tmp}/none.pb"], "does not exist"),
        (["--inception-graph", "{tmp}/bad.npz"], "GraphDef"),
        (["--inception-graph", "{graph}", "--feature-extractor", "pixels"], "inception_2015"),
    ],
)
def test_evaluate_user_errors_are_one_line(
    extra, message, tiny_model_file, graph_files, tmp_path, capsys
):
    write_bad_stats(tmp_path)
    extra = [a.replace("{tmp}", str(tmp_path)).replace("{graph}", graph_files["pb"]) for a in extra]
    argv = ["evaluate", tiny_model_file, "--num", "4", "--metrics", "fid", *NO_XLA]
    if "--inception-graph" not in extra:
        argv += ["--inception-graph", graph_files["pb"]]
    assert cli.main(argv + extra) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_evaluate_an_offline_download_is_one_line(tiny_model_file, monkeypatch, capsys):
    monkeypatch.setattr(keras.utils, "get_file", fail_download)
    argv = ["evaluate", tiny_model_file, "--num", "4", "--metrics", "fid",
            "--feature-extractor", "inception_2015", *NO_XLA]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert metrics.INCEPTION_2015_URL in err and err.count("\n") == 1
