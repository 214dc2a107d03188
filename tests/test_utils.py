"""Tests for keras_ddpm.utils: exact uint8 conversion, grid layout and PNG files."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_ddpm import utils

# 1. to_uint8.


def test_to_uint8_inverts_the_data_scaling_exactly():
    pixels = np.arange(256, dtype=np.uint8)
    for dtype in (np.float32, np.float64):
        scaled = pixels.astype(dtype) / dtype(127.5) - 1
        np.testing.assert_array_equal(utils.to_uint8(scaled), pixels)


def test_to_uint8_rounds_half_up_and_clips():
    values = np.array([-1.0, -0.99609375, -0.9921875, 0.0, 0.5, 1.0, 1.5, -7.0, np.nan])
    # (x + 1) * 127.5 = 0, 0.498..., 0.996..., 127.5, 191.25, 255, clipped, clipped, NaN.
    expected = [0, 0, 1, 128, 191, 255, 255, 0, 0]
    result = utils.to_uint8(values)
    assert result.dtype == np.uint8
    assert result.tolist() == expected


def test_to_uint8_keeps_uint8_and_shape_and_accepts_tensors():
    pixels = np.array([[0, 7], [128, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(utils.to_uint8(pixels), pixels)
    converted = utils.to_uint8(tf.constant([[[-1.0], [1.0]]]))
    assert converted.shape == (1, 2, 1) and converted.ravel().tolist() == [0, 255]


def test_to_uint8_agrees_with_its_graph_form_to_the_bit():
    """NumPy's `to_uint8` and the SavedModel's `to_uint8_tensor` on every float32 step near
    each rounding boundary (x = k/127.5 − 1 ± 1 ulp … ± 3 ulp) and on edge values."""
    boundaries = (np.arange(256) - 0.5) / 127.5 - 1.0
    values = [boundaries.astype(np.float32)]
    for direction in (np.inf, -np.inf):
        step = values[0]
        for _ in range(3):
            step = np.nextafter(step, np.float32(direction))
            values.append(step)
    values.append(np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0], np.float32))
    values = np.concatenate(values)
    np.testing.assert_array_equal(utils.to_uint8(values), utils.to_uint8_tensor(values).numpy())


def test_to_uint8_rejects_other_dtypes():
    with pytest.raises(TypeError, match=r"received dtype int32"):
        utils.to_uint8(np.zeros(3, dtype=np.int32))


# 2. make_image_grid.


def _tiles(count, height=2, width=3):
    """uint8 tiles whose pixels are all different: tile i holds 10 * i + 1 .. 10 * i + 6."""
    base = np.arange(1, height * width + 1).reshape(height, width, 1)
    return np.stack([base + 10 * i for i in range(count)]).astype(np.uint8)


def test_grid_places_tiles_at_their_offsets_and_pads_the_rest():
    tiles = _tiles(5)  # 5 tiles of 2x3 in 3 columns: 2 rows, last one ragged.
    grid = utils.make_image_grid(tiles, ncols=3, padding=1, pad_value=200)
    assert grid.dtype == np.uint8
    assert grid.shape == (2 * (2 + 1) + 1, 3 * (3 + 1) + 1, 1)  # (7, 13, 1)

    expected = np.full((7, 13, 1), 200, dtype=np.uint8)
    for i, (top, left) in enumerate([(1, 1), (1, 5), (1, 9), (4, 1), (4, 5)]):
        expected[top : top + 2, left : left + 3] = tiles[i]
    np.testing.assert_array_equal(grid, expected)
    assert (grid[4:6, 9:12] == 200).all()  # The empty sixth cell.
    assert (grid[0] == 200).all() and (grid[:, -1] == 200).all()  # The frame.


def test_grid_without_padding_is_a_plain_mosaic():
    tiles = _tiles(4)
    grid = utils.make_image_grid(tiles, ncols=2, padding=0)
    top = np.concatenate([tiles[0], tiles[1]], axis=1)
    bottom = np.concatenate([tiles[2], tiles[3]], axis=1)
    np.testing.assert_array_equal(grid, np.concatenate([top, bottom], axis=0))


@pytest.mark.parametrize("count, columns", [(1, 1), (4, 2), (9, 3), (10, 4), (17, 5)])
def test_grid_defaults_to_ceil_sqrt_columns(count, columns):
    grid = utils.make_image_grid(np.zeros((count, 4, 4)), padding=0)
    rows = -(-count // columns)
    assert grid.shape == (rows * 4, columns * 4, 1)


def test_grid_converts_floats_keeps_rgb_and_caps_columns():
    images = np.zeros((2, 2, 2, 3), dtype=np.float32)
    images[0] = [-1.0, 0.0, 1.0]
    images[1] = 1.0
    grid = utils.make_image_grid(tf.constant(images), ncols=5, padding=1)
    assert grid.shape == (4, 7, 3)  # ncols is capped at the 2 images.
    assert grid[1, 1].tolist() == [0, 128, 255]
    assert grid[1, 4].tolist() == [255, 255, 255]
    assert grid[0, 0].tolist() == [0, 0, 0]


@pytest.mark.parametrize(
    "shape, message",
    [
        ((8, 8), r"received shape \(8, 8\)"),
        ((4, 8, 8, 2), r"received shape \(4, 8, 8, 2\)"),
        ((2, 3, 8, 8, 1), r"received shape \(2, 3, 8, 8, 1\)"),
        ((0, 8, 8, 1), r"received shape \(0, 8, 8, 1\)"),
    ],
)
def test_grid_rejects_bad_shapes(shape, message):
    with pytest.raises(ValueError, match=message):
        utils.make_image_grid(np.zeros(shape, dtype=np.uint8))
    with pytest.raises(ValueError, match=message):
        utils.save_image_grid(np.zeros(shape, dtype=np.uint8), "never_written.png")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"ncols": 0}, r"ncols=0"),
        ({"padding": -1}, r"padding=-1"),
        ({"pad_value": 256}, r"in 0\.\.255.*pad_value=256"),
        ({"ncols": 2.0}, r"ncols=2\.0"),
    ],
)
def test_grid_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        utils.make_image_grid(np.zeros((4, 8, 8)), **kwargs)


# 3. save_image_grid.


def test_save_grayscale_grid_upscales_to_at_least_256_pixels(tmp_path):
    digits = np.linspace(-1, 1, 16 * 8 * 8).reshape(16, 8, 8, 1)
    path = tmp_path / "new" / "folder" / "digits.png"
    assert utils.save_image_grid(digits, path) == path
    grid = utils.make_image_grid(digits)  # 4x4 tiles: 4 * 9 + 1 = 37 pixels.
    assert grid.shape == (37, 37, 1)
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.mode == "L"
        assert picture.size == (37 * 7, 37 * 7)  # ceil(256 / 37) = 7 -> 259 >= 256.
        pixels = np.asarray(picture)
    np.testing.assert_array_equal(pixels, np.kron(grid[..., 0], np.ones((7, 7), np.uint8)))


def test_save_rgb_grid_with_explicit_scale_from_a_tensor(tmp_path):
    images = tf.constant(np.random.default_rng(0).integers(0, 256, (3, 5, 6, 3)), tf.uint8)
    path = utils.save_image_grid(images, str(tmp_path / "grid"), ncols=3, padding=2, scale=2)
    grid = utils.make_image_grid(images, ncols=3, padding=2)
    assert grid.shape == (9, 26, 3)
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.mode == "RGB"
        assert picture.size == (26 * 2, 9 * 2)
        np.testing.assert_array_equal(np.asarray(picture)[::2, ::2], grid)


def test_save_automatic_scale_is_the_smallest_reaching_256_pixels(tmp_path):
    # 2x2 tiles of 64x64: 2 * 65 + 1 = 131 pixels wide, so the scale is 2.
    path = utils.save_image_grid(np.zeros((4, 64, 64), np.uint8), tmp_path / "small.png")
    with Image.open(path) as picture:
        assert picture.size == (131 * 2, 131 * 2)
    # 4x4 tiles of 64x64: 4 * 65 + 1 = 261 pixels wide already, so no upscaling.
    path = utils.save_image_grid(np.zeros((16, 64, 64), np.uint8), tmp_path / "big.png")
    with Image.open(path) as picture:
        assert picture.size == (261, 261)


def test_save_rejects_bad_scale(tmp_path):
    with pytest.raises(ValueError, match=r"scale=0"):
        utils.save_image_grid(np.zeros((1, 8, 8)), tmp_path / "x.png", scale=0)
    assert not (tmp_path / "x.png").exists()


# slerp: closed forms


def test_slerp_endpoints_and_orthogonal_unit_vectors():
    a = np.array([[1.0, 0.0, 0.0]])
    b = np.array([[0.0, 1.0, 0.0]])
    fractions = np.linspace(0, 1, 5)
    frames = utils.slerp(a, b, fractions)
    assert frames.shape == (5, 1, 3)
    angle = fractions * np.pi / 2
    expected = np.stack([np.cos(angle), np.sin(angle), np.zeros(5)], axis=1)[:, None]
    np.testing.assert_allclose(frames, expected, atol=1e-7)
    np.testing.assert_allclose(utils.slerp(a, b, 0.5), [[2**-0.5, 2**-0.5, 0.0]], atol=1e-7)


def test_slerp_keeps_the_norm_of_gaussian_noise_where_the_line_loses_it():
    rng = np.random.default_rng(0)
    d = 8 * 8 * 3
    a, b = rng.normal(size=(2, 16, 8, 8, 3))
    frames = utils.slerp(a, b, [0.0, 0.25, 0.5, 1.0])
    np.testing.assert_allclose(frames[0], a, atol=1e-6)
    np.testing.assert_allclose(frames[-1], b, atol=1e-6)
    norms = np.linalg.norm(frames.reshape(4, 16, -1), axis=-1)
    ends = np.linalg.norm(a.reshape(16, -1), axis=-1), np.linalg.norm(b.reshape(16, -1), axis=-1)
    # Between the two end norms at every fraction (equal norms would be kept exactly) ...
    assert np.all(norms >= np.minimum(*ends) - 1e-4) and np.all(norms <= np.maximum(*ends) + 1e-4)
    # ... while the straight-line midpoint shrinks to about sqrt(d / 2).
    line = np.linalg.norm(((a + b) / 2).reshape(16, -1), axis=-1)
    assert abs(line.mean() / np.sqrt(d) - 2**-0.5) < 0.05 and abs(norms[2].mean() / np.sqrt(d) - 1) < 0.05


def test_slerp_of_parallel_examples_is_the_straight_line():
    a = np.ones((2, 4))
    frames = utils.slerp(a, 3 * a, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(frames, [a, 2 * a, 3 * a], atol=1e-6)


@pytest.mark.parametrize("a, b, fractions, fragment", [
    (np.ones((2, 4)), np.ones((2, 5)), 0.5, "(2, 4) and (2, 5)"),
    (np.ones((2, 4)), np.ones((2, 4)), [[0.5]], "fractions=[[0.5]]"),
    (np.ones((2, 4)), np.ones((2, 4)), float("nan"), "fractions=nan"),
    (np.zeros((1, 4)), np.ones((1, 4)), 0.5, "all-zero"),
])
def test_slerp_bad_input_is_one_line(a, b, fractions, fragment):
    with pytest.raises(ValueError) as info:
        utils.slerp(a, b, fractions)
    assert fragment in str(info.value) and "\n" not in str(info.value)
