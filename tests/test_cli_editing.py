"""`keras-ddpm edit`, `inpaint` and `interpolate`: the files they write equal the Python methods'."""

import keras
import numpy as np
import pytest
from PIL import Image

import keras_ddpm
from keras_ddpm import cli
from keras_ddpm.utils import to_uint8
from networks import conv_network

SHAPE = (8, 8, 1)
T = 20
FAST = ["--jit-compile", "false", "--no-progress"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = keras_ddpm.DDPM(conv_network(), schedule=keras_ddpm.NoiseSchedule("linear", T),
                            ema_decay=None)
    folder = tmp_path_factory.mktemp("editing")
    model.save(str(folder / "model.keras"))
    pictures = folder / "pictures"
    pictures.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (3, 8, 8), dtype=np.uint8)
    for i, picture in enumerate(pixels):
        Image.fromarray(picture).save(pictures / f"digit{i}.png")
    Image.fromarray(np.repeat(pixels[0], 4, 0).repeat(4, 1)).save(folder / "big.png")
    mask = np.full((8, 8), 255, np.uint8)
    mask[2:6, 2:6] = 0
    Image.fromarray(mask).save(folder / "mask.png")
    return model, folder, pixels[..., None].astype(np.float32) / 127.5 - 1.0


def read(path):
    return np.asarray(Image.open(path))[..., None]


def test_edit_one_image_and_a_folder(setup):
    model, folder, images = setup
    out = folder / "edited.png"
    argv = ["edit", str(folder / "model.keras"), "--strength", "0.6", "--sampler", "ddim",
            "--steps", "10", "--seed", "3", *FAST]
    assert cli.main([*argv, "--image", str(folder / "pictures" / "digit1.png"), "--out", str(out)]) == 0
    expected = model.generate(1, sampler="ddim", steps=10, seed=3, initial_images=images[1:2],
                              strength=0.6, verbose=0, jit_compile=False)
    np.testing.assert_array_equal(read(out), to_uint8(expected)[0])
    results = folder / "edited"
    assert cli.main([*argv, "--image", str(folder / "pictures"), "--out", str(results)]) == 0
    expected = to_uint8(model.generate(3, sampler="ddim", steps=10, seed=3, initial_images=images,
                                       strength=0.6, verbose=0, jit_compile=False))
    for i in range(3):
        np.testing.assert_array_equal(read(results / f"digit{i}.png"), expected[i])
    grid = folder / "edited_grid.png"
    assert cli.main([*argv, "--image", str(folder / "pictures"), "--out", str(grid)]) == 0
    assert Image.open(grid).size[0] >= 256  # a grid, upscaled for viewing


def test_inpaint_with_a_preset_a_mask_file_and_resize(setup):
    model, folder, images = setup
    out = folder / "filled.png"
    argv = ["inpaint", str(folder / "model.keras"), "--image", str(folder / "pictures" / "digit0.png"),
            "--out", str(out), "--steps", "6", "--resample-steps", "2", "--jump-length", "3",
            "--seed", "1", *FAST]
    assert cli.main([*argv, "--mask", "bottom"]) == 0
    mask = np.ones(SHAPE, np.float32)
    mask[4:] = 0.0
    expected = to_uint8(model.inpaint(images[:1], mask, steps=6, resample_steps=2, jump_length=3,
                                      seed=1, verbose=0, jit_compile=False))[0]
    filled = read(out)
    np.testing.assert_array_equal(filled, expected)
    np.testing.assert_array_equal(filled[:4], to_uint8(images[0])[:4])  # the kept top half
    assert cli.main([*argv, "--mask", str(folder / "mask.png")]) == 0
    kept = np.ones((8, 8), bool)
    kept[2:6, 2:6] = False
    np.testing.assert_array_equal(read(out)[kept], to_uint8(images[0])[kept])
    # A 32x32 picture is refused, or resized with --resize.
    big = ["inpaint", str(folder / "model.keras"), "--image", str(folder / "big.png"), "--out",
           str(folder / "big_filled.png"), "--mask", "left", "--steps", "3", "--resample-steps", "1",
           *FAST]
    assert cli.main(big) == 2
    assert cli.main([*big, "--resize"]) == 0
    assert read(folder / "big_filled.png").shape == SHAPE


def test_interpolate_drawn_rows_and_two_images(setup):
    model, folder, images = setup
    out = folder / "rows.png"
    argv = ["interpolate", str(folder / "model.keras"), "--out", str(out), "--frames", "5",
            "--steps", "6", "--seed", "4", *FAST]
    assert cli.main([*argv, "--rows", "2"]) == 0
    rows = np.concatenate([
        model.interpolate(num=5, steps=6, seed=seed, verbose=0, jit_compile=False)
        for seed in (4, 5)
    ])
    expected = keras_ddpm.utils.make_image_grid(rows, ncols=5)
    grid = np.asarray(Image.open(out))
    scale = grid.shape[0] // expected.shape[0]
    np.testing.assert_array_equal(grid[::scale, ::scale], expected[..., 0])
    pair = [str(folder / "pictures" / "digit0.png"), str(folder / "pictures" / "digit2.png")]
    assert cli.main([*argv, "--images", *pair]) == 0
    row = model.interpolate(images[0], images[2], num=5, steps=6, seed=4, verbose=0,
                            jit_compile=False)
    expected = keras_ddpm.utils.make_image_grid(row, ncols=5)
    grid = np.asarray(Image.open(out))
    scale = grid.shape[0] // expected.shape[0]
    np.testing.assert_array_equal(grid[::scale, ::scale], expected[..., 0])


def test_resize_is_the_training_pipelines_crop_and_resize(tmp_path):
    from keras_ddpm.cli import images as cli_images
    from keras_ddpm.data.pipeline import center_crop_and_resize

    pixels = np.random.default_rng(3).integers(0, 256, (12, 20), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    read_in = cli_images.read_images([str(tmp_path / "wide.png")], (8, 8, 1), resize=True)[0]
    trained_on = center_crop_and_resize(pixels[..., None] / 127.5 - 1.0, (8, 8)).numpy()
    np.testing.assert_allclose(read_in, trained_on, atol=1e-6)
    assert np.abs(read_in - pixels[2:10, 6:14, None] / 127.5 + 1.0).max() > 0.01  # resized
    mask = np.where(np.arange(20) < 10, 0, 255).astype(np.uint8)[None].repeat(12, axis=0)
    Image.fromarray(mask).save(tmp_path / "mask.png")
    fitted = cli_images.read_mask(str(tmp_path / "mask.png"), (6, 6, 1), resize=True)
    assert set(np.unique(fitted)) == {0.0, 1.0}  # nearest: no blended mask values
    np.testing.assert_array_equal(fitted[:, :3, 0], 0.0)
    np.testing.assert_array_equal(fitted[:, 3:, 0], 1.0)
