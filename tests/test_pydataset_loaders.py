"""The PyDataset loaders, without TensorFlow, on every backend: `load_image_folder_batches`
(a folder), `load_digits_batches` (the digits), and `load_dataset_spec` choosing them where
TensorFlow is not installed."""

import keras
import numpy as np
import pytest
from PIL import Image

import keras_ddpm
from keras_ddpm import data
from networks import tiny_unet

pytestmark = pytest.mark.backends

# Sizes that need cropping and resizing both ways, and one that needs neither.
SIZES = [(10, 14), (8, 8), (20, 9), (7, 7), (33, 16)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two class sub-folders of gray and colour PNGs of several sizes."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for name in ("cats", "dogs"):
        (root / name).mkdir()
        for i, (height, width) in enumerate(SIZES):
            shape = (height, width) if i % 2 else (height, width, 3)
            pixels = rng.integers(0, 256, shape, dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def _all(batches):
    pairs = [batches[i] for i in range(len(batches))]
    return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])


@pytest.mark.parametrize("channels", [1, 3])
def test_the_images_and_labels_of_the_tf_data_loader(folder, channels):
    """Same files, labels, crop and antialiased resize as `load_image_folder` (Pillow's
    float bilinear against TensorFlow's, on any backend)."""
    pytest.importorskip("tensorflow")
    batches = data.load_image_folder_batches(
        folder, (8, 6), batch_size=4, channels=channels, shuffle=False, with_labels=True
    )
    images, labels = _all(batches)
    assert images.shape == (10, 8, 6, channels) and images.dtype == np.float32
    assert batches.class_names == ["cats", "dogs"] and labels.tolist() == [0] * 5 + [1] * 5
    dataset = data.load_image_folder(
        folder, (8, 6), batch_size=4, channels=channels, shuffle=False, with_labels=True
    )
    expected = np.concatenate([np.asarray(x) for x, _ in dataset])
    # Colour to gray: Pillow's and libpng's weights round apart by at most one level.
    np.testing.assert_allclose(images, expected, atol=2 / 127.5 if channels == 1 else 5e-6, rtol=0)


@pytest.mark.parametrize("shape, size", [
    ((10, 14, 3), (8, 6)), ((33, 16, 1), (8, 6)), ((7, 7, 1), (8, 6)), ((5, 3, 3), (16, 16)),
    ((100, 37, 1), (13, 29)), ((8, 6, 1), (8, 6)),
])
@pytest.mark.parametrize("method", ["bilinear", "nearest"])
def test_the_crop_and_resize_is_the_tf_data_loaders(shape, size, method):
    """Without TensorFlow (the PyDataset, the CLI's --resize), as in the tf.data loaders."""
    tf = pytest.importorskip("tensorflow")
    from keras_ddpm.data import image_files
    from keras_ddpm.data import pipeline

    image = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    if method == "nearest":  # a mask: ties between neighbours are where nearest rules differ
        image = (image > 0).astype(np.float32)
    ours = image_files.center_crop_and_resize(image, size, method)
    theirs = pipeline.center_crop_and_resize(tf.constant(image), size, method).numpy()
    assert ours.shape == theirs.shape == (*size, shape[2])
    # Measured: bilinear up to 1.4e-6 apart; nearest equal.
    np.testing.assert_allclose(ours, theirs, atol=5e-6 if method == "bilinear" else 0, rtol=0)


def test_each_pass_is_a_permutation_drawn_from_seed_and_epoch(folder):
    def passes(seed, count):
        batches = data.load_image_folder_batches(folder, 8, batch_size=3, channels=1, seed=seed)
        result = []
        for _ in range(count):
            result.append(np.concatenate([batches[i] for i in range(len(batches))]))
            batches.on_epoch_end()
        return batches, result

    batches, first = passes(5, 3)
    _, again = passes(5, 3)
    _, other = passes(6, 1)
    unshuffled = _all(data.load_image_folder_batches(
        folder, 8, batch_size=10, channels=1, shuffle=False, with_labels=True))[0]
    key = [tuple(np.round(image.ravel(), 5)) for image in unshuffled]
    for one_pass in first:  # every file once a pass
        assert sorted(tuple(np.round(image.ravel(), 5)) for image in one_pass) == sorted(key)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[1]) and not np.array_equal(first[0], other[0])
    batches.epoch_counter.assign(1)  # as `DDPM.fit` does when a run resumes at epoch 1
    np.testing.assert_array_equal(np.concatenate([batches[i] for i in range(len(batches))]), first[1])
    with pytest.raises(IndexError):
        batches[len(batches)]


def test_random_flips_mirror_about_half_the_images_anew_each_pass(folder):
    plain = _all(data.load_image_folder_batches(
        folder, 8, channels=3, shuffle=False, with_labels=True))[0]
    batches = data.load_image_folder_batches(folder, 8, channels=3, shuffle=False, random_flip=True, seed=1)
    flips = []
    for _ in range(4):
        flipped = batches[0]
        mirrored = np.all(flipped == plain[:, :, ::-1], axis=(1, 2, 3))
        assert np.all(mirrored | np.all(flipped == plain, axis=(1, 2, 3)))
        flips.append(mirrored)
        batches.on_epoch_end()
    flips = np.array(flips)
    assert 0.25 < flips.mean() < 0.75 and len({tuple(f) for f in flips}) > 1


def test_fit_trains_on_it_and_starts_its_passes_at_the_initial_epoch(folder):
    keras.utils.set_random_seed(0)
    model = keras_ddpm.DDPM(tiny_unet(), keras_ddpm.NoiseSchedule("linear", 20), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    batches = data.load_image_folder_batches(folder, 8, batch_size=4, channels=1, seed=0, workers=2)
    history = model.fit(batches, epochs=3, initial_epoch=1, verbose=0).history
    assert len(history["loss"]) == 2 and np.all(np.isfinite(history["loss"]))
    assert batches.epoch_counter.value == 3  # set to 1 when fit began, one more a pass


def test_a_fit_resumed_with_a_new_loader_sees_the_batches_of_an_uninterrupted_one(folder):
    """Two epochs in one `fit`, or one and then a fresh loader from `initial_epoch=1` (as after
    a restart): the same shuffled, flipped batches, so the same weights."""
    def trained(runs):
        keras.utils.set_random_seed(0)
        model = keras_ddpm.DDPM(tiny_unet(), keras_ddpm.NoiseSchedule("linear", 20), seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        for initial_epoch, epochs in runs:
            batches = data.load_image_folder_batches(
                folder, 8, batch_size=4, channels=1, random_flip=True, seed=3, workers=2
            )
            model.fit(batches, epochs=epochs, initial_epoch=initial_epoch, verbose=0)
        return [np.asarray(w) for w in model.network.weights]

    for one, two in zip(trained([(0, 2)]), trained([(0, 1), (1, 2)])):
        np.testing.assert_array_equal(one, two)


def test_bad_arguments_and_files_are_one_line(folder, tmp_path):
    with pytest.raises(ValueError, match="workers=0"):
        data.load_image_folder_batches(folder, 8, workers=0)
    with pytest.raises(ValueError, match="channels=2"):
        data.load_image_folder_batches(folder, 8, channels=2)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "fine.png")
    with pytest.raises(ValueError, match="broken.png"):
        data.load_image_folder_batches(tmp_path, 8)
    with pytest.warns(UserWarning, match="Skipped 1 unreadable"):
        assert len(data.load_image_folder_batches(tmp_path, 8, on_error="skip").files) == 1


# The digits.


@pytest.mark.parametrize("image_size", [None, (16, 12)])
def test_the_digits_are_the_tf_data_loaders(image_size):
    """The images and labels of `load_digits` in its stored order, resized alike."""
    pytest.importorskip("tensorflow")
    batches = data.load_digits_batches(500, image_size, with_labels=True, shuffle=False)
    images, labels = _all(batches)
    dataset = data.load_digits(500, image_size, with_labels=True, shuffle=False)
    expected = [np.concatenate([np.asarray(pair[i]) for pair in dataset]) for i in (0, 1)]
    assert images.shape == expected[0].shape == (1797, *(image_size or (8, 8)), 1)
    assert batches.image_shape == images.shape[1:] and len(batches) == 4
    np.testing.assert_allclose(images, expected[0], atol=5e-6 if image_size else 0, rtol=0)
    np.testing.assert_array_equal(labels, expected[1])


def test_shuffled_digits_keep_their_labels_and_vary_by_seed_and_epoch():
    images, labels = data.load_digits_arrays()
    batches = data.load_digits_batches(1797, with_labels=True, seed=5)
    first, first_labels = batches[0]
    # Each shuffled image is a stored one, under its own label.
    index = {image.tobytes(): label for image, label in zip(images, labels)}
    assert [index[image.tobytes()] for image in first] == first_labels.tolist()
    batches.on_epoch_end()
    second = batches[0][0]
    again = data.load_digits_batches(1797, seed=5)[0]
    np.testing.assert_array_equal(again, first)  # the same (seed, epoch), the same pass
    assert not np.array_equal(second, first)
    np.testing.assert_array_equal(np.sort(second, axis=0), np.sort(first, axis=0))


# Any array.


@pytest.mark.parametrize("dtype, image_size", [("uint8", None), ("uint8", (6, 10)),
                                               ("float32", None), ("float64", 12)])
def test_arrays_are_the_tf_data_loaders(dtype, image_size):
    """`from_array_batches` gives `from_array`'s images and labels: uint8 scaled alike, float
    kept, both resized alike."""
    pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (11, 9, 7, 3), dtype=np.uint8)
    images = pixels if dtype == "uint8" else (pixels / 127.5 - 1).astype(dtype)
    labels = rng.integers(0, 5, 11)
    batches = data.from_array_batches(images, labels, 4, image_size, shuffle=False)
    ours = _all(batches)
    dataset = data.from_array(images, labels, 4, image_size, shuffle=False)
    theirs = [np.concatenate([np.asarray(pair[i]) for pair in dataset]) for i in (0, 1)]
    size = (image_size, image_size) if isinstance(image_size, int) else image_size or (9, 7)
    assert ours[0].shape == theirs[0].shape == (11, *size, 3) and ours[0].dtype == np.float32
    assert batches.image_shape == (*size, 3) and len(batches) == 3
    np.testing.assert_allclose(ours[0], theirs[0], atol=5e-6 if image_size else 0, rtol=0)
    np.testing.assert_array_equal(ours[1], theirs[1])
    assert ours[1].dtype == np.int32


def test_array_flips_mirror_images_and_resumed_passes_repeat():
    images = np.random.default_rng(1).integers(0, 256, (64, 4, 5, 1), dtype=np.uint8)
    plain = data.from_array_batches(images, batch_size=64, shuffle=False)[0]
    flipped = data.from_array_batches(images, batch_size=64, shuffle=False, random_flip=True,
                                      seed=2)
    first = flipped[0]
    mirrored = np.all(first == plain[:, :, ::-1], axis=(1, 2, 3))
    assert np.all(mirrored | np.all(first == plain, axis=(1, 2, 3)))
    assert 0.25 < mirrored.mean() < 0.75
    shuffled = data.from_array_batches(images, batch_size=16, random_flip=True, seed=3)
    shuffled.on_epoch_end()
    second_pass = np.concatenate([shuffled[i] for i in range(4)])
    resumed = data.from_array_batches(images, batch_size=16, random_flip=True, seed=3)
    resumed.epoch_counter.assign(1)  # as `DDPM.fit(initial_epoch=1)` sets it
    np.testing.assert_array_equal(np.concatenate([resumed[i] for i in range(4)]), second_pass)


def test_bad_arrays_are_one_line_naming_what_was_received():
    with pytest.raises(ValueError, match=r"received an array of shape \(3, 4, 4, 2\)"):
        data.from_array_batches(np.zeros((3, 4, 4, 2), np.uint8))
    with pytest.raises(TypeError, match="received dtype int64"):
        data.from_array_batches(np.zeros((3, 4, 4), np.int64))
    with pytest.raises(ValueError, match="values from 0.0 to 2.0"):
        data.from_array_batches(np.linspace(0, 2, 48).reshape(3, 4, 4))
    with pytest.raises(ValueError, match=r"labels` of shape \(3,\)"):
        data.from_array_batches(np.zeros((3, 4, 4), np.uint8), labels=[0, 1])


def test_a_dataset_spec_loads_without_tensorflow_from_the_pydatasets(folder, monkeypatch):
    """Where TensorFlow is not installed, the digits and folders come from the PyDataset
    loaders and TFDS is refused in one line."""
    from keras_ddpm import backend

    monkeypatch.setattr(backend, "installed", lambda package: package != "tensorflow")
    digits = data.load_dataset_spec("digits", batch_size=64, image_size=16, seed=0)
    assert isinstance(digits, data.ArrayBatches) and digits[0].shape == (64, 16, 16, 1)
    photos = data.load_dataset_spec(
        f"folder:{folder}", batch_size=4, image_size=8, channels=1, with_labels=True, seed=0
    )
    assert isinstance(photos, data.FolderBatches) and photos.class_names == ["cats", "dogs"]
    with pytest.raises(ValueError, match="'tfds:mnist' needs TensorFlow") as raised:
        data.load_dataset_spec("tfds:mnist")
    assert "\n" not in str(raised.value)
