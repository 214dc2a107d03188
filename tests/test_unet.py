"""Tests for keras_ddpm.unet: the DDPM U-Net and its presets."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_ddpm import layers
from keras_ddpm import quantization
from keras_ddpm.unet import PRESETS
from keras_ddpm.unet import UNet

# A network with every kind of block (resampling, attention at 4x4, nin shortcuts): 44,969 weights.
TINY = dict(
    image_shape=(8, 8, 1),
    base_channels=8,
    channel_multipliers=(1, 2),
    num_res_blocks=1,
    attention_resolutions=(4,),
    dropout=0.0,
    norm_groups=4,
)


def _inputs(image_shape=(8, 8, 1), batch=3, seed=0):
    rng = np.random.default_rng(seed)
    x_t = rng.normal(size=(batch,) + tuple(image_shape)).astype("float32")
    t = rng.integers(0, 1000, size=(batch,)).astype("int32")
    return x_t, t


def _randomize(model, seed=0, scale=0.2):
    """Seeded non-trivial values for every weight, the zero-initialised ones included."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        weight.assign(rng.normal(scale=scale, size=weight.shape).astype(weight.dtype))


def _layers_of(model, cls):
    return [layer for layer in model.layers if isinstance(layer, cls)]


@pytest.fixture(scope="module")
def random_network():
    """A tiny network with dropout and seeded random weights (shared: tests must not change it)."""
    network = UNet(**dict(TINY, dropout=0.1), dtype="float32")
    _randomize(network, seed=4)
    x_t, t = _inputs()
    return network, x_t, t, np.asarray(network([x_t, t]))


# ===== Architecture =====


def test_cifar10_preset_has_the_papers_parameter_count():
    network = UNet.from_preset("ddpm_cifar10")
    assert network.count_params() == 35_746_307
    assert network.dropout == 0.1
    # 4 levels x 2 blocks down, 2 in the middle, 4 levels x 3 blocks up.
    assert len(_layers_of(network, layers.ResidualBlock)) == 8 + 2 + 12
    # Attention at 16x16: 2 down, 1 middle (at 4x4), 3 up.
    assert len(_layers_of(network, layers.AttentionBlock)) == 6
    # Most weights are in convolutions, which Keras cannot quantize (keras_ddpm.quantization).
    sizes = {weight.path: int(np.prod(weight.shape)) for weight in network.weights}
    kernels = [weight.path for weight in network.weights if len(weight.shape) == 4]
    convolutions = sum(sizes[k] + sizes[k.removesuffix("kernel") + "bias"] for k in kernels)
    share = f"{convolutions / 1e6:.2f}M of its {network.count_params() / 1e6:.2f}M weights"
    assert share == quantization.CONVOLUTION_SHARE


@pytest.mark.slow  # ~4 s and ~0.5 GB of weights; run with `pytest -m slow`.
def test_256_presets_have_the_papers_parameter_count():
    # Appendix B: "our LSUN and CelebA-HQ models have 114 million parameters".
    network = UNet.from_preset("ddpm_celebahq256")
    assert network.count_params() == 113_673_219
    assert PRESETS["ddpm_lsun256"] == PRESETS["ddpm_celebahq256"]


def test_digits_preset():
    network = UNet.from_preset("digits")
    assert network.count_params() == 3_990_017
    assert network.input_shape == [(None, 8, 8, 1), (None,)]
    assert network.output_shape == (None, 8, 8, 1)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {
            "image_shape": (16, 16, 3),
            "channel_multipliers": (1, 2, 2),
            "attention_resolutions": (8, 4),
        },
        {"image_shape": (8, 16, 2), "attention_resolutions": ()},
    ],
)
def test_fresh_network_keeps_the_shape_and_outputs_exact_zeros(overrides):
    config = dict(TINY, **overrides)
    network = UNet(**config)
    x_t, t = _inputs(config["image_shape"])
    eps = network([x_t, t])
    assert eps.shape == x_t.shape
    assert eps.dtype == "float32"
    # The output convolution is zero-initialised, kernel and bias.
    np.testing.assert_array_equal(np.asarray(eps), np.zeros_like(x_t))
    conv_out = network.get_layer("conv_out")
    assert not np.any(np.asarray(conv_out.kernel)) and not np.any(np.asarray(conv_out.bias))


def test_output_depends_on_image_and_timestep(random_network):
    network, x_t, t, eps = random_network
    assert np.abs(eps).max() > 0.1
    assert not np.allclose(eps, np.asarray(network([x_t, (t + 1) % 1000])))
    assert not np.allclose(eps, np.asarray(network([x_t[::-1], t])))
    # Each example is processed independently of the rest of the batch.
    np.testing.assert_allclose(np.asarray(network([x_t[:1], t[:1]])), eps[:1], atol=1e-5)


def test_dropout_only_in_training(random_network):
    network, x_t, t, eps = random_network
    np.testing.assert_array_equal(np.asarray(network([x_t, t], training=False)), eps)
    assert not np.allclose(np.asarray(network([x_t, t], training=True)), eps)


# ===== Serialisation =====


def test_config_round_trip(random_network):
    network = random_network[0]
    config = network.get_config()
    assert {key: config[key] for key in TINY} == {
        "image_shape": [8, 8, 1],
        "base_channels": 8,
        "channel_multipliers": [1, 2],
        "num_res_blocks": 1,
        "attention_resolutions": [4],
        "dropout": 0.1,
        "norm_groups": 4,
    }
    assert set(config) == set(TINY) | {
        "name", "trainable", "dtype", "num_classes", "norm_epsilon", "flip_sin_to_cos",
        "freq_shift",
    }
    # The options added for diffusers' variants default to the authors' network.
    assert (config["norm_epsilon"], config["flip_sin_to_cos"], config["freq_shift"]) == (
        1e-6, False, 1,
    )
    assert config["num_classes"] is None
    # Through JSON, tuples come back as lists; the constructor takes them.
    restored = UNet.from_config(json.loads(json.dumps(config)))
    assert restored.get_config() == config
    assert restored.count_params() == network.count_params()
    assert restored.channel_multipliers == (1, 2)


def test_keras_file_round_trip(tmp_path, random_network):
    network, x_t, t, expected = random_network
    path = tmp_path / "u.keras"
    network.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored, UNet)
    assert restored.get_config() == network.get_config()
    np.testing.assert_array_equal(np.asarray(restored([x_t, t])), expected)


# ===== Mixed precision =====


@pytest.mark.parametrize("policy, tolerance", [("mixed_float16", 0.01), ("mixed_bfloat16", 0.05)])
def test_mixed_precision_outputs_float32(policy, tolerance, random_network):
    reference, x_t, t, expected = random_network
    keras.mixed_precision.set_global_policy(policy)
    network = UNet(**dict(TINY, dropout=0.1))
    network.set_weights(reference.get_weights())
    eps = network([x_t, t])
    assert eps.dtype == "float32"
    assert network.get_layer("down_0_block_0").conv1.compute_dtype == policy.split("_")[1]
    assert network.get_layer("norm_out").compute_dtype == "float32"
    assert network.get_layer("conv_out").compute_dtype == "float32"
    assert network.get_config()["dtype"]["config"]["name"] == policy
    # Same weights, 16-bit body: close to the float32 network.
    error = np.abs(np.asarray(eps) - expected).max()
    assert error < tolerance * np.abs(expected).max()


# ===== Gradients =====


def _gradients(network, x_t, t, target):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(network([x_t, t], training=True) - target))
    grads = tape.gradient(loss, network.trainable_weights)
    return {w.path: np.asarray(g) for w, g in zip(network.trainable_weights, grads, strict=True)}


def _behind_a_zero_init(path):
    """Weights whose only route to the output passes through a zero-initialised kernel."""
    sublayer = path.split("/")[-2]
    return path.startswith("temb_dense") or sublayer in {
        "norm1", "conv1", "temb_proj", "norm2",  # residual branch, before conv2
        "norm", "q", "k", "v",  # attention, before proj_out
    }


def test_gradients_flow_in_the_order_the_zero_inits_allow():
    network = UNet(**TINY)
    x_t, t = _inputs()
    target = np.random.default_rng(1).normal(size=x_t.shape).astype("float32")
    optimizer = keras.optimizers.SGD(learning_rate=0.1)
    paths = [w.path for w in network.trainable_weights]
    assert len(paths) == len(network.weights) == 144

    def step(grads):
        optimizer.apply_gradients([(grads[w.path], w) for w in network.trainable_weights])

    # 1. At initialisation the output convolution is zero, so only its own weights get a gradient.
    grads = _gradients(network, x_t, t, target)
    assert all(np.all(np.isfinite(g)) for g in grads.values())
    nonzero = {path for path, g in grads.items() if np.any(g)}
    assert nonzero == {"conv_out/kernel", "conv_out/bias"}

    # 2. After one step the skip path (conv_in, shortcuts, resampling, conv2 / proj_out,
    #    norm_out) is reached; everything behind a still-zero conv2 or proj_out kernel gets
    #    exactly zero.
    step(grads)
    grads = _gradients(network, x_t, t, target)
    assert all(np.all(np.isfinite(g)) for g in grads.values())
    zero = {path for path, g in grads.items() if not np.any(g)}
    assert zero == {path for path in paths if _behind_a_zero_init(path)}
    assert {"conv_in/kernel", "down_0_block_0/conv2/kernel", "mid_attn_1/proj_out/kernel",
            "down_0_downsample/conv/kernel", "up_1_upsample/conv/kernel",
            "up_0_block_0/nin_shortcut/kernel", "norm_out/gamma"} <= set(paths) - zero

    # 3. After a second step every weight has a gradient, except the attention key biases:
    #    adding q_i . b_k to every logit of row i leaves the softmax unchanged, so their gradient
    #    is zero in exact arithmetic (here only rounding noise).
    step(grads)
    grads = _gradients(network, x_t, t, target)
    for path, g in grads.items():
        assert np.all(np.isfinite(g)), path
        if path.endswith("/k/bias"):
            kernel_scale = np.abs(grads[path.replace("/bias", "/kernel")]).max()
            assert np.abs(g).max() < 1e-4 * kernel_scale, path
        else:
            assert np.any(g), path


# ===== Presets and validation =====


def test_from_preset_overrides():
    network = UNet.from_preset("digits", base_channels=32, dropout=0.1, name="digits_net")
    assert isinstance(network, UNet)
    config = network.get_config()
    assert config["base_channels"] == 32
    assert config["dropout"] == 0.1
    assert config["channel_multipliers"] == [1, 2]
    assert network.name == "digits_net"
    # The preset table itself is left untouched.
    assert PRESETS["digits"]["base_channels"] == 64


def test_unknown_preset_lists_valid_names():
    with pytest.raises(ValueError, match=r"'ddpm_imagenet'.*ddpm_cifar10.*digits"):
        UNet.from_preset("ddpm_imagenet")


# (constructor overrides of TINY, exception type, regex its message must match)
BAD_ARGUMENTS = [
    ({"image_shape": (8, 8)}, ValueError, r"image_shape.*3 positive.*\(8, 8\)"),
    ({"image_shape": (8, 0, 1)}, ValueError, r"image_shape.*3 positive.*\(8, 0, 1\)"),
    ({"image_shape": (8.0, 8, 1)}, TypeError, r"image_shape.*integers.*8\.0"),
    ({"image_shape": (12, 12, 1), "channel_multipliers": (1, 2, 2, 2)}, ValueError,
     r"divisible by 8 = 2 \*\* \(4 - 1\).*4 levels.*\(12, 12, 1\)"),
    ({"channel_multipliers": ()}, ValueError, r"channel_multipliers.*empty"),
    ({"channel_multipliers": (1, 0)}, ValueError, r"channel_multipliers.*positive.*\(1, 0\)"),
    ({"channel_multipliers": 2}, TypeError, r"channel_multipliers.*sequence.*2"),
    ({"base_channels": 0}, ValueError, r"base_channels.*positive.*Received: base_channels=0"),
    ({"base_channels": 6}, ValueError, r"norm_groups`=4.*widths \[6\]"),
    ({"num_res_blocks": 0}, ValueError, r"num_res_blocks.*positive.*Received: num_res_blocks=0"),
    ({"dropout": 1.0}, ValueError, r"dropout.*\[0, 1\).*Received: dropout=1.0"),
    ({"dropout": -0.1}, ValueError, r"dropout.*\[0, 1\).*Received: dropout=-0.1"),
    ({"attention_resolutions": (16,)}, ValueError,
     r"\[16\].*never reaches.*heights \[8, 4\]"),
    ({"norm_groups": 0}, ValueError, r"norm_groups.*positive.*Received: norm_groups=0"),
]


def test_bad_arguments_raise():
    # One test rather than a parametrisation: each case costs only a cheap validation.
    for overrides, error, message in BAD_ARGUMENTS:
        with pytest.raises(error, match=message):
            UNet(**dict(TINY, **overrides))
