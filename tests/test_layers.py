"""Tests for keras_ddpm.layers: the U-Net building blocks."""

import math

import keras
import numpy as np
import pytest

from keras_ddpm import layers

GROUPS = 4


def _randomize(layer, seed=0, scale=0.3):
    """Gives every weight of `layer` seeded, non-trivial values (zero-inits included)."""
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        weight.assign(rng.normal(scale=scale, size=weight.shape).astype(weight.dtype))


def _group_norm_reference(x, gamma, beta, groups, epsilon=1e-6):
    b, h, w, c = x.shape
    grouped = x.reshape(b, h, w, groups, c // groups).astype("float64")
    mean = grouped.mean(axis=(1, 2, 4), keepdims=True)
    var = grouped.var(axis=(1, 2, 4), keepdims=True)
    normed = ((grouped - mean) / np.sqrt(var + epsilon)).reshape(b, h, w, c)
    return normed * gamma + beta


def _timestep_embedding_reference(timesteps, dim):
    """The closed form of Ho et al.'s `get_timestep_embedding`, in float64."""
    half = dim // 2
    freqs = np.exp(-math.log(10000.0) * np.arange(half) / (half - 1))
    angles = np.asarray(timesteps, "float64")[:, None] * freqs[None, :]
    embedding = np.concatenate([np.sin(angles), np.cos(angles)], axis=-1)
    if dim % 2:
        embedding = np.pad(embedding, [(0, 0), (0, 1)])
    return embedding


def _roundtrip(layer):
    """A new layer from `layer`'s config, with the same weights once built on `inputs`."""
    config = layer.get_config()
    clone = layer.__class__.from_config(config)
    assert clone.get_config() == config
    return clone


# ===== TimestepEmbedding =====


def test_timestep_embedding_matches_closed_form():
    timesteps = np.array([0, 1, 2, 17, 250, 500, 999], dtype="int32")
    for dim in (4, 9, 32, 128):
        embedding = layers.TimestepEmbedding(dim)(timesteps)
        assert embedding.shape == (7, dim)
        assert embedding.dtype == "float32"
        # The reference is float64; the layer's angles are float32 (relative error ~6e-8, times
        # t <= 999).
        np.testing.assert_allclose(
            np.asarray(embedding), _timestep_embedding_reference(timesteps, dim), rtol=0, atol=2e-4
        )


def test_timestep_embedding_known_values():
    embedding = np.asarray(layers.TimestepEmbedding(9)(np.array([0, 3])))
    # t = 0: sines are 0 and cosines 1; the odd ninth column is zero padding.
    np.testing.assert_array_equal(embedding[0], [0, 0, 0, 0, 1, 1, 1, 1, 0])
    # Frequencies 10000 ** (-i / 3) for i = 0..3: the first is 1 and the last 1e-4.
    np.testing.assert_allclose(embedding[1, [0, 3, 4, 7]], np.array(
        [math.sin(3.0), math.sin(3e-4), math.cos(3.0), math.cos(3e-4)]), atol=1e-6)
    assert embedding[1, 8] == 0.0


@pytest.mark.parametrize("flip_sin_to_cos", [False, True])
@pytest.mark.parametrize("freq_shift", [0, 1])
def test_timestep_embedding_variants_match_their_closed_form(flip_sin_to_cos, freq_shift):
    # diffusers' get_timestep_embedding: frequencies exp(-log(10000) i / (h - shift)),
    # [sin, cos], swapped to [cos, sin] by flip_sin_to_cos.
    timesteps = np.array([0, 1, 17, 500, 999], dtype="int32")
    dim, half = 32, 16
    freqs = np.exp(-math.log(10000.0) * np.arange(half) / (half - freq_shift))
    angles = timesteps[:, None].astype("float64") * freqs[None, :]
    parts = [np.sin(angles), np.cos(angles)]
    reference = np.concatenate(parts[::-1] if flip_sin_to_cos else parts, axis=-1)
    layer = layers.TimestepEmbedding(dim, flip_sin_to_cos=flip_sin_to_cos, freq_shift=freq_shift)
    np.testing.assert_allclose(np.asarray(layer(timesteps)), reference, rtol=0, atol=2e-4)
    clone = _roundtrip(layer)
    assert (clone.flip_sin_to_cos, clone.freq_shift) == (flip_sin_to_cos, freq_shift)


def test_timestep_embedding_variant_validation():
    with pytest.raises(ValueError, match=r"freq_shift.*\[0, 1\].*Received: freq_shift=2"):
        layers.TimestepEmbedding(8, freq_shift=2)
    with pytest.raises(TypeError, match=r"flip_sin_to_cos.*Received: flip_sin_to_cos='yes'"):
        layers.TimestepEmbedding(8, flip_sin_to_cos="yes")
    with pytest.raises(ValueError, match=r"norm_epsilon.*positive.*Received: norm_epsilon=0"):
        layers.ResidualBlock(8, norm_groups=4, norm_epsilon=0)


def test_timestep_embedding_is_float32_maths_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    layer = layers.TimestepEmbedding(64)
    timesteps = np.array([999, 998], dtype="int32")
    embedding = layer(timesteps)
    assert embedding.dtype == "float16"
    # float16 angles would be off by up to ~0.5 rad at t ~ 1000; float32 maths keeps the
    # float16 rounding of the result only.
    reference = _timestep_embedding_reference(timesteps, 64)
    np.testing.assert_allclose(np.asarray(embedding, "float64"), reference, atol=1e-3)


def test_timestep_embedding_config_and_validation():
    layer = layers.TimestepEmbedding(16, name="temb")
    clone = _roundtrip(layer)
    assert clone.dim == 16 and clone.name == "temb"
    timesteps = np.array([3, 7])
    np.testing.assert_array_equal(np.asarray(layer(timesteps)), np.asarray(clone(timesteps)))
    with pytest.raises(ValueError, match=r"dim.*>= 4.*Received: dim=3"):
        layers.TimestepEmbedding(3)
    with pytest.raises(ValueError, match=r"shape \[batch\]"):
        layers.TimestepEmbedding(8)(np.zeros((2, 1), "int32"))


# ===== ResidualBlock =====


def _block_inputs(channels=8, size=8, temb_width=16, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, size, size, channels)).astype("float32")
    temb = rng.normal(size=(2, temb_width)).astype("float32")
    return x, temb


def test_residual_block_shortcut_only_when_widths_differ():
    x, temb = _block_inputs(channels=8, temb_width=16)

    same = layers.ResidualBlock(8, norm_groups=GROUPS)
    assert same([x, temb]).shape == (2, 8, 8, 8)
    assert same.nin_shortcut is None
    # norm1, conv1, temb_proj, norm2, conv2: two weights each.
    assert len(same.weights) == 10
    # norm1 + conv1 + temb_proj + norm2 + conv2.
    assert same.count_params() == 16 + (9 * 8 * 8 + 8) + (16 * 8 + 8) + 16 + (9 * 8 * 8 + 8)

    wider = layers.ResidualBlock(12, norm_groups=GROUPS)
    assert wider([x, temb]).shape == (2, 8, 8, 12)
    assert wider.nin_shortcut is not None
    assert len(wider.weights) == 12
    assert wider.count_params() == (
        (2 * 8) + (9 * 8 * 12 + 12) + (16 * 12 + 12) + (2 * 12) + (9 * 12 * 12 + 12) + (8 * 12 + 12)
    )


def test_residual_block_starts_as_its_shortcut():
    x, temb = _block_inputs(channels=8)
    same = layers.ResidualBlock(8, norm_groups=GROUPS)
    # conv2 is zero-initialised (kernel and bias): the residual branch adds exactly nothing.
    np.testing.assert_array_equal(np.asarray(same([x, temb])), x)
    assert not np.any(np.asarray(same.conv2.kernel)) and not np.any(np.asarray(same.conv2.bias))

    wider = layers.ResidualBlock(16, norm_groups=GROUPS)
    out = np.asarray(wider([x, temb]))
    shortcut = x @ np.asarray(wider.nin_shortcut.kernel) + np.asarray(wider.nin_shortcut.bias)
    np.testing.assert_allclose(out, shortcut, atol=1e-5)


def test_residual_block_matches_numpy_reference():
    x, temb = _block_inputs(channels=8, size=4)
    block = layers.ResidualBlock(8, norm_groups=GROUPS)
    block([x, temb])
    _randomize(block, seed=3)
    # Replace both 3x3 convolutions by their centre taps so the reference is a per-pixel matmul.
    for conv in (block.conv1, block.conv2):
        kernel = np.zeros(conv.kernel.shape, "float32")
        kernel[1, 1] = np.asarray(conv.kernel)[1, 1]
        conv.kernel.assign(kernel)

    def silu(v):
        return v / (1 + np.exp(-v))

    def norm(layer, v):
        return _group_norm_reference(v, np.asarray(layer.gamma), np.asarray(layer.beta), GROUPS)

    def conv(layer, v):  # only the centre tap is non-zero
        return v @ np.asarray(layer.kernel)[1, 1] + np.asarray(layer.bias)

    h = conv(block.conv1, silu(norm(block.norm1, x)))
    temb_proj = silu(temb) @ np.asarray(block.temb_proj.kernel) + np.asarray(block.temb_proj.bias)
    h = h + temb_proj[:, None, None, :]
    h = conv(block.conv2, silu(norm(block.norm2, h)))
    np.testing.assert_allclose(np.asarray(block([x, temb])), x + h, atol=1e-4)


def test_residual_block_config_round_trip_and_dropout():
    x, temb = _block_inputs(channels=8)
    block = layers.ResidualBlock(16, dropout=0.5, norm_groups=GROUPS, name="rb")
    block([x, temb])
    _randomize(block)
    clone = _roundtrip(block)
    assert (clone.out_channels, clone.dropout, clone.norm_groups) == (16, 0.5, GROUPS)
    clone([x, temb])
    clone.set_weights(block.get_weights())
    np.testing.assert_array_equal(np.asarray(clone([x, temb])), np.asarray(block([x, temb])))
    # Dropout is only active when training.
    assert not np.allclose(
        np.asarray(block([x, temb], training=True)), np.asarray(block([x, temb], training=False))
    )


def test_residual_block_group_norm_settings():
    block = layers.ResidualBlock(8, norm_groups=GROUPS)
    assert block.norm1.epsilon == 1e-6 and block.norm2.epsilon == 1e-6
    assert block.norm1.groups == GROUPS
    block = layers.ResidualBlock(8, norm_groups=GROUPS, norm_epsilon=1e-5)
    assert block.norm1.epsilon == 1e-5 and block.norm2.epsilon == 1e-5
    assert _roundtrip(block).norm_epsilon == 1e-5
    attention = layers.AttentionBlock(norm_groups=GROUPS, norm_epsilon=1e-5)
    assert attention.norm.epsilon == 1e-5 and _roundtrip(attention).norm_epsilon == 1e-5


def test_residual_block_validation():
    with pytest.raises(ValueError, match=r"out_channels.*\(10\).*divisible.*norm_groups=4"):
        layers.ResidualBlock(10, norm_groups=4)
    x, temb = _block_inputs(channels=6)
    with pytest.raises(ValueError, match=r"input width \(6\).*divisible.*norm_groups=4"):
        layers.ResidualBlock(8, norm_groups=4)([x, temb])
    with pytest.raises(ValueError, match=r"dropout.*\[0, 1\).*Received: dropout=1.0"):
        layers.ResidualBlock(8, dropout=1.0, norm_groups=4)
    with pytest.raises(ValueError, match=r"out_channels.*positive.*Received: out_channels=0"):
        layers.ResidualBlock(0)


# ===== AttentionBlock =====


def test_attention_block_is_identity_at_initialisation():
    x, _ = _block_inputs(channels=8)
    block = layers.AttentionBlock(norm_groups=GROUPS)
    np.testing.assert_array_equal(np.asarray(block(x)), x)
    assert [w.path.split("/", 1)[1] for w in block.weights] == [
        "norm/gamma", "norm/beta", "q/kernel", "q/bias", "k/kernel", "k/bias",
        "v/kernel", "v/bias", "proj_out/kernel", "proj_out/bias",
    ]
    assert block.count_params() == 2 * 8 + 4 * (8 * 8 + 8)


def test_attention_block_matches_numpy_reference():
    x, _ = _block_inputs(channels=8, size=4)
    block = layers.AttentionBlock(norm_groups=GROUPS)
    block(x)
    _randomize(block, seed=5)

    def dense(name, v):
        layer = getattr(block, name)
        return v @ np.asarray(layer.kernel, "float64") + np.asarray(layer.bias, "float64")

    h = _group_norm_reference(x, np.asarray(block.norm.gamma), np.asarray(block.norm.beta), GROUPS)
    h = h.reshape(2, 16, 8)
    logits = dense("q", h) @ dense("k", h).transpose(0, 2, 1) / math.sqrt(8)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    expected = x + dense("proj_out", weights @ dense("v", h)).reshape(x.shape)
    np.testing.assert_allclose(np.asarray(block(x)), expected, atol=1e-4)


def test_attention_block_is_permutation_equivariant():
    x, _ = _block_inputs(channels=8, size=4)
    block = layers.AttentionBlock(norm_groups=GROUPS)
    block(x)
    _randomize(block, seed=2)
    assert np.any(np.asarray(block.proj_out.kernel))

    permutation = np.random.default_rng(7).permutation(16)
    permute = lambda v: v.reshape(2, 16, 8)[:, permutation].reshape(2, 4, 4, 8)  # noqa: E731
    out = np.asarray(block(x))
    out_of_permuted = np.asarray(block(permute(x)))
    np.testing.assert_allclose(out_of_permuted, permute(out), atol=1e-5)
    # And it is not pointwise: attention mixes positions.
    assert not np.allclose(out - x, 0, atol=1e-3)


def test_attention_block_config_round_trip():
    x, _ = _block_inputs(channels=8)
    block = layers.AttentionBlock(norm_groups=GROUPS, name="attn")
    block(x)
    _randomize(block)
    clone = _roundtrip(block)
    assert clone.norm_groups == GROUPS and clone.norm.epsilon == 1e-6
    clone(x)
    clone.set_weights(block.get_weights())
    np.testing.assert_array_equal(np.asarray(clone(x)), np.asarray(block(x)))
    with pytest.raises(ValueError, match=r"input width \(8\).*divisible.*norm_groups=3"):
        layers.AttentionBlock(norm_groups=3)(x)


# ===== Downsample / Upsample =====


def _centre_tap_identity(conv):
    """Makes a 3x3 convolution copy its input: kernel[1, 1] = I, every other tap and the bias 0."""
    channels = conv.kernel.shape[-1]
    kernel = np.zeros(conv.kernel.shape, "float32")
    kernel[1, 1] = np.eye(channels)
    conv.kernel.assign(kernel)
    conv.bias.assign(np.zeros(channels, "float32"))


def test_downsample_shape_and_sampling_grid():
    x, _ = _block_inputs(channels=8, size=8)
    down = layers.Downsample(8)
    assert down(x).shape == (2, 4, 4, 8)
    assert layers.Downsample(12)(x).shape == (2, 4, 4, 12)
    # TensorFlow's "same" padding for a stride-2 3x3 kernel on an even size pads only the bottom and
    # right, so output pixel i is centred on input pixel 2i + 1 (as in the authors' TF code).
    _centre_tap_identity(down.conv)
    np.testing.assert_array_equal(np.asarray(down(x)), x[:, 1::2, 1::2])


def test_upsample_is_nearest_neighbour_then_conv():
    x, _ = _block_inputs(channels=8, size=4)
    up = layers.Upsample(8)
    assert up(x).shape == (2, 8, 8, 8)
    _centre_tap_identity(up.conv)
    np.testing.assert_array_equal(np.asarray(up(x)), x.repeat(2, axis=1).repeat(2, axis=2))


@pytest.mark.parametrize("cls", [layers.Downsample, layers.Upsample])
def test_resampling_config_round_trip(cls):
    x, _ = _block_inputs(channels=8, size=4)
    layer = cls(8, name="resample")
    layer(x)
    clone = _roundtrip(layer)
    assert clone.channels == 8
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(np.asarray(clone(x)), np.asarray(layer(x)))
    with pytest.raises(ValueError, match=r"channels.*positive.*Received: channels=0"):
        cls(0)


# ===== Mixed precision =====


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_group_norm_runs_in_float32_under_mixed_precision(policy):
    keras.mixed_precision.set_global_policy(policy)
    compute_dtype = keras.mixed_precision.global_policy().compute_dtype
    x, temb = _block_inputs(channels=8)
    block = layers.ResidualBlock(16, norm_groups=GROUPS)
    attention = layers.AttentionBlock(norm_groups=GROUPS)
    h = block([x, temb])
    out = attention(h)
    assert h.dtype == compute_dtype and out.dtype == compute_dtype
    for norm in (block.norm1, block.norm2, attention.norm):
        assert norm.compute_dtype == "float32"
        assert norm.variable_dtype == "float32"
    assert block.conv1.compute_dtype == compute_dtype
    assert attention.q.compute_dtype == compute_dtype
    assert np.all(np.isfinite(np.asarray(out, "float32")))
