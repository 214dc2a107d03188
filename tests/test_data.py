"""Tests for keras_ddpm.data: every loader yields the right pixels, shapes and labels."""

import importlib.resources
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from keras_ddpm import data

# Per-class counts of the UCI digits test set, as scikit-learn documents them.
DIGITS_CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def _collect(dataset):
    """One epoch as NumPy: images, or (images, labels), concatenated over batches."""
    batches = list(dataset.as_numpy_iterator())
    if isinstance(batches[0], tuple):
        return tuple(np.concatenate(parts) for parts in zip(*batches))
    return np.concatenate(batches)


def _batch_sizes(dataset):
    return [len(b[0] if isinstance(b, tuple) else b) for b in dataset.as_numpy_iterator()]


def _sorted_pairs(images, labels):
    """The multiset of (image, label) pairs in a canonical order, for order-free comparison."""
    rows = np.concatenate([images.reshape(len(images), -1), labels[:, None]], axis=1)
    return rows[np.lexsort(rows.T[::-1])]


# 1. The embedded digits.


def test_digits_asset_is_the_raw_uci_test_set():
    assets = importlib.resources.files("keras_ddpm") / "assets"
    with (assets / "digits.npz").open("rb") as file, np.load(file) as archive:
        images, labels = archive["images"], archive["labels"]
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    assert labels.shape == (1797,) and np.issubdtype(labels.dtype, np.integer)
    assert images.min() == 0 and images.max() == 16
    assert np.bincount(labels, minlength=10).tolist() == DIGITS_CLASS_COUNTS

    notice = (assets / "DIGITS_LICENSE.txt").read_text(encoding="utf-8")
    for fact in ("Alpaydin", "Kaynak", "10.24432/C50P49", "CC BY 4.0", ".npz"):
        assert fact in notice


def test_digits_arrays_values_and_classes():
    images, labels = data.load_digits_arrays()
    assert images.shape == (1797, 8, 8, 1) and images.dtype == np.float32
    assert labels.shape == (1797,) and labels.dtype == np.int32
    # Exactly v / 8 - 1 for integer v in 0..16: undoing the map gives integers.
    levels = (images + 1) * 8
    np.testing.assert_array_equal(levels, np.round(levels))
    assert set(np.unique(levels).tolist()) <= set(range(17))
    assert images.min() == -1.0 and images.max() == 1.0
    assert np.bincount(labels).tolist() == DIGITS_CLASS_COUNTS
    # Fresh arrays: changing them does not change the next call.
    images[:] = 0
    assert data.load_digits_arrays()[0].min() == -1.0


def test_digits_dataset_one_epoch_yields_every_image_once_with_its_label():
    images, labels = data.load_digits_arrays()
    dataset = data.load_digits(batch_size=256, with_labels=True, seed=0)
    assert dataset.element_spec[0].shape.as_list() == [None, 8, 8, 1]
    assert dataset.element_spec[1].dtype == tf.int32
    assert _batch_sizes(dataset) == [256] * 7 + [5]  # No remainder is dropped.

    seen_images, seen_labels = _collect(dataset)
    assert seen_images.dtype == np.float32 and seen_labels.dtype == np.int32
    assert not np.array_equal(seen_labels, labels)  # It was shuffled ...
    np.testing.assert_array_equal(  # ... yet every (image, label) pair came once.
        _sorted_pairs(seen_images, seen_labels), _sorted_pairs(images, labels)
    )


def test_digits_shuffle_is_reproducible_per_seed_and_changes_each_epoch():
    first = _collect(data.load_digits(batch_size=512, with_labels=True, seed=7))[1]
    seeded = data.load_digits(batch_size=512, with_labels=True, seed=7)
    same, next_epoch = _collect(seeded)[1], _collect(seeded)[1]
    other = _collect(data.load_digits(batch_size=512, with_labels=True, seed=8))[1]
    np.testing.assert_array_equal(first, same)
    assert not np.array_equal(first, other)
    assert not np.array_equal(first, next_epoch)


def test_digits_without_shuffle_keeps_the_stored_order():
    images, labels = data.load_digits_arrays()
    seen_images, seen_labels = _collect(data.load_digits(with_labels=True, shuffle=False))
    np.testing.assert_array_equal(seen_images, images)
    np.testing.assert_array_equal(seen_labels, labels)
    np.testing.assert_array_equal(_collect(data.load_digits(shuffle=False)), images)


def test_digits_resize():
    batch = next(iter(data.load_digits(batch_size=4, image_size=16, shuffle=False)))
    assert batch.shape == (4, 16, 16, 1)
    assert -1.0 <= float(tf.reduce_min(batch)) and float(tf.reduce_max(batch)) <= 1.0
    wide = next(iter(data.load_digits(batch_size=3, image_size=(4, 12))))
    assert wide.shape == (3, 4, 12, 1)


# 2. In-memory arrays.


def test_from_array_uint8_maps_exactly():
    values = np.arange(256, dtype=np.uint8).reshape(4, 8, 8)  # (N, H, W): 0..255
    batch = _collect(data.from_array(values, shuffle=False))
    assert batch.shape == (4, 8, 8, 1) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[..., 0], values.astype(np.float32) / 127.5 - 1)
    flat = batch.reshape(-1)
    assert flat[0] == -1.0 and flat[255] == 1.0
    assert flat[51] == np.float32(51 / 127.5 - 1)  # -0.6
    # 127.5 is the midpoint: pixels 127 and 128 sit half a step either side of 0.
    np.testing.assert_allclose(flat[127:129], [-1 / 255, 1 / 255], atol=1e-7)


def test_from_array_float_passes_through_and_rgb_keeps_channels():
    images = np.random.default_rng(0).uniform(-1, 1, (5, 6, 7, 3))
    batch = _collect(data.from_array(images, batch_size=2, shuffle=False))
    assert batch.shape == (5, 6, 7, 3) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch, images.astype(np.float32))
    as_tensor = _collect(data.from_array(tf.constant(images), shuffle=False))
    np.testing.assert_array_equal(as_tensor, images.astype(np.float32))


def test_from_array_resize_center_crops_to_the_target_aspect_ratio():
    # 4x8 images: a bright 4x4 centre between two dark 4x2 side bands.
    images = np.zeros((3, 4, 8, 3), dtype=np.uint8)
    images[:, :, 2:6] = 255
    square = _collect(data.from_array(images, image_size=4, shuffle=False))
    assert square.shape == (3, 4, 4, 3)
    np.testing.assert_array_equal(square, np.ones_like(square))  # Only the centre is kept.
    resized = _collect(data.from_array(images, image_size=(2, 3), shuffle=False))
    assert resized.shape == (3, 2, 3, 3)
    assert resized.min() >= -1.0 and resized.max() <= 1.0


def test_from_array_labels_follow_their_images_and_flips_are_seeded():
    count = 40
    images = np.zeros((count, 2, 3, 1), dtype=np.float32)
    images[:, :, 0, 0] = -1.0  # Dark left column marks the unflipped orientation.
    images[:, :, 1, 0] = np.linspace(-0.9, 0.9, count)[:, None]  # Middle column: identity.
    labels = np.arange(count) * 3
    dataset = data.from_array(images, labels, batch_size=16, random_flip=True, seed=1)
    seen_images, seen_labels = _collect(dataset)
    assert seen_labels.dtype == np.int32
    assert sorted(seen_labels.tolist()) == labels.tolist()
    np.testing.assert_array_equal(seen_images[:, 0, 1, 0], images[seen_labels // 3, 0, 1, 0])

    flipped = seen_images[:, 0, 2, 0] == -1.0
    assert 0 < flipped.sum() < count  # Some flipped, some not.
    np.testing.assert_array_equal(seen_images[flipped], images[seen_labels[flipped] // 3, :, ::-1])
    np.testing.assert_array_equal(seen_images[~flipped], images[seen_labels[~flipped] // 3])

    again = data.from_array(images, labels, batch_size=16, random_flip=True, seed=1)
    np.testing.assert_array_equal(_collect(again)[0], seen_images)
    unshuffled = data.from_array(images, shuffle=False, random_flip=True, seed=2)
    epoch_flips = [_collect(unshuffled)[:, 0, 2, 0] == -1.0 for _ in range(2)]
    assert not np.array_equal(*epoch_flips)  # New flips each epoch.


@pytest.mark.parametrize(
    "images, error, message",
    [
        (np.zeros((4, 8), np.uint8), ValueError, r"received an array of shape \(4, 8\)"),
        (np.zeros((4, 8, 8, 2), np.uint8), ValueError, r"shape \(4, 8, 8, 2\)"),
        (np.zeros((0, 8, 8), np.uint8), ValueError, r"non-empty.*shape \(0, 8, 8\)"),
        (np.zeros((4, 8, 8), np.int32), TypeError, r"received dtype int32"),
        (np.full((2, 4, 4), 255.0), ValueError, r"\[-1, 1\]; received values from 255.0 to 255.0"),
        (np.linspace(0, 255, 32).reshape(2, 4, 4), ValueError, r"x / 127\.5 - 1"),
        (np.full((2, 4, 4), np.nan), ValueError, r"received values from nan to nan"),
    ],
)
def test_from_array_rejects_bad_images(images, error, message):
    with pytest.raises(error, match=message):
        data.from_array(images)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"labels": np.arange(3)}, ValueError, r"labels` of shape \(4,\).*received shape \(3,\)"),
        ({"labels": np.zeros(4, np.float32)}, TypeError, r"integer `labels`.*float32"),
        ({"batch_size": 0}, ValueError, r"batch_size` >= 1.*batch_size=0"),
        ({"batch_size": 2.5}, TypeError, r"batch_size.*2\.5"),
        ({"image_size": (0, 4)}, ValueError, r"image_size=\(0, 4\)"),
        ({"image_size": "64"}, ValueError, r"image_size='64'"),
        ({"image_size": (8, 8, 8)}, ValueError, r"image_size=\(8, 8, 8\)"),
    ],
)
def test_from_array_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        data.from_array(np.zeros((4, 8, 8), np.uint8), **kwargs)


def test_digits_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"batch_size=-1"):
        data.load_digits(batch_size=-1)
    with pytest.raises(ValueError, match=r"image_size=\(8, -2\)"):
        data.load_digits(image_size=(8, -2))


# 3. Folders of image files.

RED, BLUE, GREEN, GRAY = (255, 0, 0), (0, 0, 255), (0, 128, 64), (100, 100, 100)


def _save(path, pixels, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(path, **kwargs)


def _solid(colour, height=8, width=8):
    return np.broadcast_to(np.asarray(colour, np.uint8), (height, width, len(colour)))


def _unit(colour):
    return np.asarray(colour, np.float32) / 127.5 - 1


@pytest.fixture
def image_folder(tmp_path):
    """Two classes: 'cats' (a red PNG, a nested JPEG) and 'dogs' (a blue PNG, a wide PNG)."""
    root = tmp_path / "photos"
    _save(root / "cats" / "red.png", _solid(RED))
    _save(root / "cats" / "more" / "gray.jpg", _solid(GRAY), quality=95)
    _save(root / "dogs" / "blue.PNG", _solid(BLUE))
    wide = np.concatenate([_solid(RED, 8, 4), _solid(GREEN, 8, 8), _solid(RED, 8, 4)], axis=1)
    _save(root / "dogs" / "wide.png", wide)  # 8x16: only its green centre is square.
    (root / "dogs" / "notes.txt").write_text("not an image")
    _save(root / "dogs" / ".hidden.png", _solid(GRAY))
    return root


def test_image_folder_decodes_crops_and_labels(image_folder):
    dataset = data.load_image_folder(image_folder, 8, with_labels=True, shuffle=False)
    assert dataset.class_names == ["cats", "dogs"]
    images, labels = _collect(dataset)
    assert images.shape == (4, 8, 8, 3) and images.dtype == np.float32
    assert labels.tolist() == [0, 0, 1, 1]
    # Sorted walk, a folder's files before its sub-folders: cats/red.png,
    # cats/more/gray.jpg, dogs/blue.PNG, dogs/wide.png; notes.txt and .hidden.png skipped.
    np.testing.assert_array_equal(images[0], np.broadcast_to(_unit(RED), (8, 8, 3)))
    np.testing.assert_allclose(images[1], np.broadcast_to(_unit(GRAY), (8, 8, 3)), atol=3 / 127.5)
    np.testing.assert_array_equal(images[2], np.broadcast_to(_unit(BLUE), (8, 8, 3)))
    np.testing.assert_array_equal(images[3], np.broadcast_to(_unit(GREEN), (8, 8, 3)))


def test_image_folder_resize_grayscale_and_shuffle(image_folder):
    dataset = data.load_image_folder(image_folder, (4, 6), batch_size=3, channels=1, seed=0)
    assert _batch_sizes(dataset) == [3, 1]
    images = _collect(dataset)
    assert images.shape == (4, 4, 6, 1)
    assert images.min() >= -1.0 and images.max() <= 1.0
    unshuffled = data.load_image_folder(image_folder, 4, channels=1, shuffle=False)
    gray = _collect(unshuffled)
    np.testing.assert_allclose(gray[1], np.full((4, 4, 1), _unit(GRAY)[0]), atol=3 / 127.5)
    assert not hasattr(unshuffled, "class_names")


def test_image_folder_bmp_and_gif_in_gray_and_colour(tmp_path):
    _save(tmp_path / "a.bmp", _solid(GRAY))
    _save(tmp_path / "b.gif", _solid(GRAY))
    colour = _collect(data.load_image_folder(tmp_path, 8, shuffle=False))
    np.testing.assert_array_equal(colour, np.broadcast_to(_unit(GRAY), (2, 8, 8, 3)))
    gray = _collect(data.load_image_folder(tmp_path, 8, channels=1, shuffle=False))
    np.testing.assert_allclose(gray, np.full((2, 8, 8, 1), _unit(GRAY)[0]), atol=1 / 127.5)


def test_image_folder_errors(tmp_path, image_folder):
    with pytest.raises(ValueError, match=r"missing.*does not exist"):
        data.load_image_folder(tmp_path / "missing", 8)
    with pytest.raises(ValueError, match=r"red\.png.*not a directory"):
        data.load_image_folder(image_folder / "cats" / "red.png", 8)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"no image files.*empty"):
        data.load_image_folder(tmp_path / "empty", 8)
    _save(image_folder / "loose.png", _solid(RED))
    with pytest.raises(ValueError, match=r"class sub-folder.*loose\.png"):
        data.load_image_folder(image_folder, 8, with_labels=True)
    with pytest.raises(ValueError, match=r"channels=4"):
        data.load_image_folder(image_folder, 8, channels=4)
    with pytest.raises(ValueError, match=r"image_size=None"):
        data.load_image_folder(image_folder, None)


def test_image_folder_class_names_outlive_a_map(image_folder):
    dataset = data.load_image_folder(image_folder, 8, with_labels=True, shuffle=False)
    assert data.image_folder_class_names(image_folder) == dataset.class_names == ["cats", "dogs"]
    mapped = dataset.map(lambda images, labels: (images, labels))
    assert not hasattr(mapped, "class_names")  # Every tf.data transformation drops it ...
    assert data.image_folder_class_names(str(image_folder)) == ["cats", "dogs"]  # ... not this.
    # Label i of the mapped dataset is still class i: cats 0, 0 and dogs 1, 1.
    assert _collect(mapped)[1].tolist() == [0, 0, 1, 1]
    # A sub-folder with no image file at any depth is no class; hidden ones are skipped.
    (image_folder / "empty").mkdir()
    (image_folder / "empty" / "notes.txt").write_text("no images")
    _save(image_folder / ".cache" / "thumb.png", _solid(RED))
    _save(image_folder / "birds" / "deep" / "deeper" / "blue.gif", _solid(BLUE))
    assert data.image_folder_class_names(image_folder) == ["birds", "cats", "dogs"]


def test_image_folder_class_names_errors_name_the_path(tmp_path, image_folder):
    with pytest.raises(ValueError, match=r"'.*missing' does not exist"):
        data.image_folder_class_names(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"'.*red\.png' is not a directory"):
        data.image_folder_class_names(image_folder / "cats" / "red.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no image files.*'.*empty'"):
        data.image_folder_class_names(tmp_path / "empty")
    _save(image_folder / "loose.png", _solid(RED))
    with pytest.raises(ValueError, match=r"class sub-folder of '.*photos'.*1 sit.*loose\.png"):
        data.image_folder_class_names(image_folder)


# 4. TensorFlow Datasets, mocked: random examples from the builder's feature spec,
# with no download and no files.


def _mock_tfds(num_examples):
    return tfds.testing.mock_data(
        num_examples=num_examples, policy=tfds.testing.MockPolicy.USE_CODE
    )


def test_tfds_mnist_images_and_labels():
    with _mock_tfds(10):
        raw = list(tfds.as_numpy(tfds.load("mnist", split="train")))
        dataset = data.load_tfds("mnist", batch_size=4, with_labels=True, shuffle=False)
        images, labels = _collect(dataset)
        assert _batch_sizes(dataset) == [4, 4, 2]
        shuffled = _collect(data.load_tfds("mnist", batch_size=4, with_labels=True, seed=0))
    raw_images = np.stack([example["image"] for example in raw])
    raw_labels = np.array([example["label"] for example in raw])
    assert images.shape == (10, 28, 28, 1) and images.dtype == np.float32
    np.testing.assert_array_equal(images, raw_images.astype(np.float32) / 127.5 - 1)
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, raw_labels)
    np.testing.assert_array_equal(_sorted_pairs(*shuffled), _sorted_pairs(images, labels))


def test_tfds_resize_keeps_grayscale_and_crops_rgb():
    with _mock_tfds(3):
        gray = _collect(data.load_tfds("mnist", image_size=(14, 20), random_flip=True))
        faces = _collect(data.load_tfds("celeb_a", image_size=16, shuffle=False))  # 218x178
        flowers = _collect(data.load_tfds("oxford_flowers102", image_size=(6, 5)))  # any size
    assert gray.shape == (3, 14, 20, 1)
    assert faces.shape == (3, 16, 16, 3)
    assert flowers.shape == (3, 6, 5, 3)
    for images in (gray, faces, flowers):
        assert images.dtype == np.float32
        assert images.min() >= -1.0 and images.max() <= 1.0


def test_tfds_errors():
    with _mock_tfds(2):
        with pytest.raises(ValueError, match=r"'label' feature.*'celeb_a'.*'attributes'"):
            data.load_tfds("celeb_a", with_labels=True)
        with pytest.raises(ValueError, match=r"vary in size.*\(None, None, 3\).*image_size"):
            data.load_tfds("oxford_flowers102")
    with pytest.raises(ValueError, match=r"batch_size=0"):
        data.load_tfds("mnist", batch_size=0)


def test_loaders_switch_autotuning_off_and_keep_every_element(image_folder):
    # Every loader's pipeline ends with autotuning off (see data.disable_autotune).
    datasets = [
        data.load_digits(batch_size=500, shuffle=False),
        data.from_array(np.zeros((5, 4, 4, 1), "uint8"), batch_size=2),
        data.load_image_folder(image_folder, 8, batch_size=2),
    ]
    for dataset in datasets:
        assert dataset.options().autotune.enabled is False
    digits = np.concatenate([batch.numpy() for batch in datasets[0]])
    np.testing.assert_array_equal(digits, data.load_digits_arrays()[0])


def test_disable_autotune_keeps_the_elements_and_refuses_other_inputs():
    dataset = tf.data.Dataset.range(10).map(lambda i: i * i, num_parallel_calls=tf.data.AUTOTUNE)
    tuned_off = data.disable_autotune(dataset.prefetch(tf.data.AUTOTUNE))
    assert tuned_off.options().autotune.enabled is False
    assert list(tuned_off.as_numpy_iterator()) == [i * i for i in range(10)]
    with pytest.raises(TypeError, match="tf.data.Dataset; received ndarray"):
        data.disable_autotune(np.zeros(3))


# 5. Dataset specs.


@pytest.mark.parametrize(
    "spec, kind, name",
    [
        ("digits", "digits", None),
        ("tfds:mnist", "tfds", "mnist"),
        ("tfds:mnist:3.0.1", "tfds", "mnist:3.0.1"),  # Only the first colon separates.
        ("folder:/data/photos", "folder", "/data/photos"),
        ("folder:C:\\photos", "folder", "C:\\photos"),
        ("folder: spaced ", "folder", " spaced "),  # Kept as given, like a shell argument.
    ],
)
def test_parse_dataset_spec(spec, kind, name):
    parsed = data.parse_dataset_spec(spec)
    assert (parsed.kind, parsed.name) == (kind, name)
    assert parsed == data.DatasetSpec(kind, name)
    with pytest.raises(AttributeError):
        parsed.kind = "tfds"  # Frozen.


@pytest.mark.parametrize(
    "spec, message",
    [
        ("imagenet", r"Unknown dataset spec 'imagenet'"),
        ("Digits", r"Unknown dataset spec 'Digits'"),
        ("", r"Unknown dataset spec ''"),
        ("tfds", r"Unknown dataset spec 'tfds'"),
        ("hub:mnist", r"Unknown dataset spec 'hub:mnist'"),
        ("tfds:", r"NAME after 'tfds:' in dataset spec 'tfds:'"),
        ("folder:", r"PATH after 'folder:' in dataset spec 'folder:'"),
    ],
)
def test_parse_dataset_spec_rejects_other_strings(spec, message):
    with pytest.raises(ValueError, match=message) as error:
        data.parse_dataset_spec(spec)
    assert data.DATASET_SPECS in str(error.value)  # The accepted forms are listed.


def test_parse_dataset_spec_rejects_non_strings(tmp_path):
    for spec in (None, 3, tmp_path):
        with pytest.raises(TypeError, match=r"dataset spec string.*received .* of type"):
            data.parse_dataset_spec(spec)
    for form in ("'digits'", "'tfds:NAME'", "'folder:PATH'"):
        assert form in data.DATASET_SPECS


def test_specs_module_runs_from_its_file_without_tensorflow():
    path = pathlib.Path(data.__file__).parent / "specs.py"
    code = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("dataset_specs", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
print(module.parse_dataset_spec("tfds:cifar10"))
try:
    module.parse_dataset_spec("imagenet")
except ValueError as error:
    print(error)
heavy = ("tensorflow", "tensorflow_datasets", "keras", "keras_ddpm")
print(sorted(name for name in heavy if name in sys.modules))
"""
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    parsed, error, heavy = done.stdout.splitlines()
    assert parsed == "DatasetSpec(kind='tfds', name='cifar10')"
    assert error.startswith("Unknown dataset spec 'imagenet'")
    assert heavy == "[]"


def test_load_dataset_spec_digits_is_load_digits():
    from_spec = data.load_dataset_spec("digits", batch_size=32, seed=3, with_labels=True)
    direct = data.load_digits(batch_size=32, seed=3, with_labels=True)
    (spec_images, spec_labels), (images, labels) = next(iter(from_spec)), next(iter(direct))
    assert spec_images.shape == (32, 8, 8, 1)
    np.testing.assert_array_equal(spec_images, images)
    np.testing.assert_array_equal(spec_labels, labels)
    unshuffled = data.load_dataset_spec("digits", image_size=4, shuffle=False)
    np.testing.assert_array_equal(
        _collect(unshuffled), _collect(data.load_digits(image_size=4, shuffle=False))
    )


def test_load_dataset_spec_folder_and_its_classes(tmp_path):
    root = tmp_path / "fruit"
    _save(root / "apples" / "a.png", _solid(RED, 6, 6))
    _save(root / "apples" / "b.png", _solid(GREEN, 6, 6))
    _save(root / "plums" / "c.png", _solid(BLUE, 6, 6))
    spec = f"folder:{root}"
    dataset = data.load_dataset_spec(spec, 2, image_size=4, with_labels=True, shuffle=False)
    assert dataset.class_names == ["apples", "plums"]
    images, labels = _collect(dataset)
    assert _batch_sizes(dataset) == [2, 1]
    assert labels.tolist() == [0, 0, 1]
    for image, colour in zip(images, (RED, GREEN, BLUE)):  # Resizing rounds in float32.
        np.testing.assert_allclose(image, np.broadcast_to(_unit(colour), (4, 4, 3)), atol=1e-6)
    gray = _collect(data.load_dataset_spec(spec, image_size=(2, 3), channels=1, shuffle=False))
    assert gray.shape == (3, 2, 3, 1)

    assert data.spec_num_classes(spec) == 2
    assert data.spec_num_classes(spec, dataset) == 2
    assert data.spec_num_classes(spec, dataset.map(lambda x, y: (x, y))) == 2
    assert data.spec_num_classes("digits") == 10
    with pytest.raises(ValueError, match=r"Unknown dataset spec 'cifar'"):
        data.spec_num_classes("cifar")


def test_load_dataset_spec_tfds_is_load_tfds():
    with _mock_tfds(6):
        from_spec = _collect(data.load_dataset_spec("tfds:mnist", 4, with_labels=True, seed=1))
        direct = _collect(data.load_tfds("mnist", batch_size=4, with_labels=True, seed=1))
        assert data.spec_num_classes("tfds:mnist") == 10
        assert data.spec_num_classes("tfds:celeb_a") is None  # No 'label' feature.
    for spec_part, direct_part in zip(from_spec, direct):
        np.testing.assert_array_equal(spec_part, direct_part)
    assert from_spec[0].shape == (6, 28, 28, 1)
    assert data.spec_num_classes("tfds:no_such_dataset_anywhere") is None


def test_load_dataset_spec_errors(image_folder):
    with pytest.raises(ValueError, match=r"random_flip=True.*mirrored digit.*'digits'"):
        data.load_dataset_spec("digits", random_flip=True)
    with pytest.raises(ValueError, match=r"'folder:.*photos' needs an `image_size`"):
        data.load_dataset_spec(f"folder:{image_folder}")
    with pytest.raises(ValueError, match=r"'.*nowhere' does not exist"):
        data.load_dataset_spec(f"folder:{image_folder}/nowhere", image_size=8)
    with pytest.raises(ValueError, match=r"Unknown dataset spec 'mnist'"):
        data.load_dataset_spec("mnist")
    with pytest.raises(ValueError, match=r"batch_size=0"):
        data.load_dataset_spec("digits", batch_size=0)


def test_tfds_load_offline_is_one_line_naming_the_dataset(tmp_path, monkeypatch):
    """The real `tfds.load` download path (no mock): a refused connection, not a missing module."""
    from tensorflow_datasets.core.download import downloader

    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # nothing listens: refused at once
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setattr(downloader, "MAX_RETRIES", 0)  # TFDS retries 10 times over ~3 minutes
    with pytest.raises(ConnectionError) as error:
        data.load_tfds("mnist", data_dir=str(tmp_path))
    message = str(error.value)
    assert "\n" not in message and "'mnist'" in message and "(offline?)" in message
    assert str(tmp_path) in message


def test_tfds_unknown_dataset_is_one_line():
    with pytest.raises(ValueError, match=r"^Unknown TFDS dataset 'no_such_dataset'; .*catalog") as error:
        data.load_tfds("no_such_dataset")
    assert "\n" not in str(error.value)
