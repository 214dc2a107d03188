"""Building blocks of the DDPM U-Net: timestep embedding, residual and attention blocks, resampling.

The blocks follow the network of Ho et al. (2020), appendix B: a PixelCNN++-style Wide ResNet whose
residual blocks receive the timestep embedding, group normalisation (epsilon 1e-6) before every
convolution, single-head self-attention at chosen resolutions, and zero-initialised output
projections so that every residual branch starts as the identity.

Shape comments: `B` batch, `H`/`W` height/width, `C` channels, `N = H * W` positions, `T` the
width of the timestep embedding.

Mixed precision: under a 16-bit compute policy ("mixed_float16", "mixed_bfloat16") the group
normalisation sublayers run in float32 and the attention softmax is taken in float32; the next
layer casts back to the compute dtype.
"""

import math
import random

import keras
from keras import ops

from keras_ddpm import checks
from keras_ddpm import lora
from keras_ddpm.block_settings import GROUP_NORM_EPSILON
from keras_ddpm.block_settings import check_dropout
from keras_ddpm.block_settings import check_epsilon
from keras_ddpm.block_settings import check_flip
from keras_ddpm.block_settings import check_freq_shift
from keras_ddpm.block_settings import check_groups
from keras_ddpm.block_settings import group_norm
from keras_ddpm.convolution import Conv2D
from keras_ddpm.resampling import Downsample  # noqa: F401 - public name
from keras_ddpm.resampling import Upsample  # noqa: F401 - public name

# ===== Layers =====


@keras.saving.register_keras_serializable(package="keras_ddpm")
class TimestepEmbedding(keras.layers.Layer):
    """Sinusoidal embedding of integer diffusion timesteps.

    Maps each timestep `t` to `[sin(t f_0), ..., sin(t f_{h-1}), cos(t f_0), ..., cos(t f_{h-1})]`
    with `h = dim // 2` and geometrically spaced frequencies `f_i = 10000 ** (-i / (h - s))`,
    `s = freq_shift`. The defaults are exactly the DDPM authors' code (`s = 1`, sines first):
    the tensor2tensor variant of the Transformer's position encoding, sines then cosines rather
    than interleaved. `flip_sin_to_cos=True` puts the cosines first and `freq_shift=0` spaces
    the frequencies by `1 / h`, the variants diffusers' `UNet2DModel` defaults to (its
    `flip_sin_to_cos` and `freq_shift` options). An odd `dim` gets one trailing column of
    zeros. The embedding is computed in float32 whatever the dtype policy (float16 angles would be
    off by up to half a radian at t ~ 1000), then cast to the layer's compute dtype.

    The layer has no weights.

    Args:
        dim: int. Width of the embedding. Must be at least 4, because the frequency spacing
            divides by `dim // 2 - freq_shift`.
        flip_sin_to_cos: bool. Cosines before sines. Defaults to `False` (the authors' order).
        freq_shift: float in `[0, 1]`, `s` above. Defaults to `1` (the authors' spacing).
        **kwargs: other keyword arguments passed to `keras.layers.Layer`, including `name` and
            `dtype`.

    Call arguments:
        timesteps: integer (or float) tensor of shape `[B]` holding timestep indices.

    Returns:
        A float tensor of shape `[B, dim]`.

    Example:

    ```python
    embedding = keras_ddpm.layers.TimestepEmbedding(128)
    embedding(np.array([0, 10, 999]))  # shape (3, 128)
    ```

    References:
        - [Ho et al., 2020. Denoising Diffusion Probabilistic Models](
            https://arxiv.org/abs/2006.11239)
        - [Vaswani et al., 2017. Attention Is All You Need](https://arxiv.org/abs/1706.03762)
    """

    def __init__(self, dim, flip_sin_to_cos=False, freq_shift=1, **kwargs):
        super().__init__(**kwargs)
        if not checks.is_int(dim) or dim < 4:
            raise ValueError(f"`dim` must be an integer >= 4. Received: dim={dim!r}")
        self.dim = dim
        self.flip_sin_to_cos = check_flip(flip_sin_to_cos)
        self.freq_shift = check_freq_shift(freq_shift)

    def build(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(
                "TimestepEmbedding expects a vector of timesteps with shape [batch]. "
                f"Received: input_shape={input_shape}"
            )

    def call(self, timesteps):
        half = self.dim // 2
        # The spacing constant is formed in Python (float64), as the authors did.
        scale = -math.log(10000.0) / (half - self.freq_shift)
        freqs = ops.exp(ops.arange(half, dtype="float32") * scale)  # [h]
        angles = ops.cast(timesteps, "float32")[:, None] * freqs[None, :]  # [B, h]
        parts = [ops.sin(angles), ops.cos(angles)]
        if self.flip_sin_to_cos:
            parts.reverse()
        embedding = ops.concatenate(parts, axis=-1)  # [B, 2h]
        if self.dim % 2 == 1:
            embedding = ops.pad(embedding, [[0, 0], [0, 1]])  # [B, dim]
        return ops.cast(embedding, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"dim": self.dim, "flip_sin_to_cos": self.flip_sin_to_cos, "freq_shift": self.freq_shift}
        )
        return config


def _dropout_seed(rate):
    """A dropout seed drawn from Python's `random` as Keras draws one for `seed=None`, so that
    TensorFlow and JAX drop the same units as an unseeded `Dropout` after the same
    `keras.utils.set_random_seed` (and a rate of 0, which draws nothing, draws nothing).

    Given explicitly, it makes PyTorch too draw the masks from the layer's `SeedGenerator`
    (Keras' unseeded PyTorch dropout uses torch's global generator), whose state `DDPM`
    saves: a resumed run drops the units the uninterrupted run would have dropped.
    """
    return random.randint(1, 10**9) if rate > 0 else None


@keras.saving.register_keras_serializable(package="keras_ddpm")
class ResidualBlock(keras.layers.Layer):
    """Pre-activation residual block conditioned on the timestep embedding.

    For `x` of shape `[B, H, W, C_in]` and `temb` of shape `[B, T]`:

    ```
    h = conv3x3(silu(group_norm(x)))
    h = h + dense(silu(temb))[:, None, None, :]
    h = conv3x3_zero_init(dropout(silu(group_norm(h))))
    return shortcut(x) + h
    ```

    `shortcut` is the identity when `C_in == out_channels` and otherwise a learned per-pixel
    linear map (a 1x1 convolution, the authors' "nin" shortcut, implemented as a `Dense` layer on
    the channel axis). The second convolution's kernel and bias start at zero, so a fresh block is
    exactly `shortcut(x)`.

    Sublayers, named after the authors' variable scopes: `norm1`, `conv1`, `temb_proj`, `norm2`,
    `dropout`, `conv2` and, when the widths differ, `nin_shortcut`.

    Args:
        out_channels: int. Number of output channels.
        dropout: float. Dropout rate applied before the second convolution. Defaults to `0.0`.
        norm_groups: int. Number of groups of both group normalisations; the input and output
            widths must be divisible by it. Defaults to `32`.
        norm_epsilon: float added to the variance in both group normalisations. Defaults to
            `1e-6` (the authors' value).
        **kwargs: other keyword arguments passed to `keras.layers.Layer`, including `name` and
            `dtype`.

    Call arguments:
        inputs: a list `[x, temb]`: the feature map `[B, H, W, C_in]` and the timestep
            embedding `[B, T]`.
        training: bool. Whether dropout is active. Defaults to Keras' learning phase.

    Returns:
        A tensor of shape `[B, H, W, out_channels]`.

    Example:

    ```python
    block = keras_ddpm.layers.ResidualBlock(64, norm_groups=8)
    block([np.zeros((2, 16, 16, 32)), np.zeros((2, 128))])  # shape (2, 16, 16, 64)
    ```

    References:
        - [Ho et al., 2020. Denoising Diffusion Probabilistic Models](
            https://arxiv.org/abs/2006.11239)
        - [He et al., 2016. Identity Mappings in Deep Residual Networks](
            https://arxiv.org/abs/1603.05027)
        - [Zagoruyko & Komodakis, 2016. Wide Residual Networks](https://arxiv.org/abs/1605.07146)
        - [Wu & He, 2018. Group Normalization](https://arxiv.org/abs/1803.08494)
    """

    def __init__(
        self, out_channels, dropout=0.0, norm_groups=32, norm_epsilon=GROUP_NORM_EPSILON, **kwargs
    ):
        super().__init__(**kwargs)
        checks.positive_int("out_channels", out_channels)
        checks.positive_int("norm_groups", norm_groups)
        check_dropout(dropout)
        check_groups("ResidualBlock", "`out_channels`", out_channels, norm_groups)
        self.out_channels = out_channels
        self.dropout = dropout
        self.norm_groups = norm_groups
        self.norm_epsilon = check_epsilon(norm_epsilon)

        self.norm1 = group_norm(norm_groups, self.dtype_policy, "norm1", self.norm_epsilon)
        self.conv1 = Conv2D(
            out_channels, 3, padding="same", dtype=self.dtype_policy, name="conv1"
        )
        self.temb_proj = lora.Dense(
            out_channels, dtype=self.dtype_policy, name="temb_proj"
        )
        self.norm2 = group_norm(norm_groups, self.dtype_policy, "norm2", self.norm_epsilon)
        self.dropout_layer = keras.layers.Dropout(
            dropout, seed=_dropout_seed(dropout), dtype=self.dtype_policy, name="dropout"
        )
        self.conv2 = Conv2D(
            out_channels,
            3,
            padding="same",
            kernel_initializer="zeros",
            bias_initializer="zeros",
            dtype=self.dtype_policy,
            name="conv2",
        )
        # Created in build(), once the input width is known.
        self.nin_shortcut = None

    def build(self, input_shape):
        x_shape, temb_shape = input_shape
        in_channels = x_shape[-1]
        check_groups("ResidualBlock", "the input width", in_channels, self.norm_groups)
        out_shape = tuple(x_shape[:-1]) + (self.out_channels,)

        self.norm1.build(x_shape)
        self.conv1.build(x_shape)
        self.temb_proj.build(temb_shape)
        self.norm2.build(out_shape)
        self.conv2.build(out_shape)
        if in_channels != self.out_channels:
            self.nin_shortcut = lora.Dense(
                self.out_channels, dtype=self.dtype_policy, name="nin_shortcut"
            )
            self.nin_shortcut.build(x_shape)

    def call(self, inputs, training=None):
        x, temb = inputs
        h = self.conv1(ops.silu(self.norm1(x)))  # [B, H, W, C_out]
        h = h + self.temb_proj(ops.silu(temb))[:, None, None, :]
        h = self.dropout_layer(ops.silu(self.norm2(h)), training=training)
        h = self.conv2(h)
        shortcut = x if self.nin_shortcut is None else self.nin_shortcut(x)
        return shortcut + h

    def compute_output_shape(self, input_shape):
        x_shape = input_shape[0]
        return tuple(x_shape[:-1]) + (self.out_channels,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "out_channels": self.out_channels,
                "dropout": self.dropout,
                "norm_groups": self.norm_groups,
                "norm_epsilon": self.norm_epsilon,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_ddpm")
class AttentionBlock(keras.layers.Layer):
    """Single-head self-attention over the pixels of a feature map, with a residual connection.

    For `x` of shape `[B, H, W, C]`: `h = group_norm(x)`; queries, keys and values are
    per-pixel linear maps of `h` (1x1 convolutions with bias, width `C`); each of the `H * W`
    positions attends to all of them with weights `softmax(q k^T / sqrt(C))`; the result goes
    through a zero-initialised per-pixel projection and is added to `x`, so a fresh block is the
    identity. The softmax is taken in float32 under any dtype policy.

    Sublayers, named after the authors' variable scopes: `norm`, `q`, `k`, `v`, `proj_out`.

    Args:
        norm_groups: int. Number of groups of the group normalisation; the input width must be
            divisible by it. Defaults to `32`.
        norm_epsilon: float added to the variance in the group normalisation. Defaults to
            `1e-6` (the authors' value).
        **kwargs: other keyword arguments passed to `keras.layers.Layer`, including `name` and
            `dtype`.

    Call arguments:
        inputs: a feature map of shape `[B, H, W, C]`.

    Returns:
        A tensor of the same shape as `inputs`.

    Example:

    ```python
    attention = keras_ddpm.layers.AttentionBlock(norm_groups=8)
    attention(np.random.normal(size=(2, 16, 16, 64)))  # shape (2, 16, 16, 64)
    ```

    References:
        - [Ho et al., 2020. Denoising Diffusion Probabilistic Models](
            https://arxiv.org/abs/2006.11239)
        - [Vaswani et al., 2017. Attention Is All You Need](https://arxiv.org/abs/1706.03762)
        - [Wang et al., 2018. Non-local Neural Networks](https://arxiv.org/abs/1711.07971)
        - [Wu & He, 2018. Group Normalization](https://arxiv.org/abs/1803.08494)
    """

    def __init__(self, norm_groups=32, norm_epsilon=GROUP_NORM_EPSILON, **kwargs):
        super().__init__(**kwargs)
        checks.positive_int("norm_groups", norm_groups)
        self.norm_groups = norm_groups
        self.norm_epsilon = check_epsilon(norm_epsilon)
        self.norm = group_norm(norm_groups, self.dtype_policy, "norm", self.norm_epsilon)
        # The projections' width is the input width: created in build().
        self.q = None
        self.k = None
        self.v = None
        self.proj_out = None

    def build(self, input_shape):
        channels = input_shape[-1]
        check_groups("AttentionBlock", "the input width", channels, self.norm_groups)
        self.q = lora.Dense(channels, dtype=self.dtype_policy, name="q")
        self.k = lora.Dense(channels, dtype=self.dtype_policy, name="k")
        self.v = lora.Dense(channels, dtype=self.dtype_policy, name="v")
        self.proj_out = lora.Dense(
            channels,
            kernel_initializer="zeros",
            bias_initializer="zeros",
            dtype=self.dtype_policy,
            name="proj_out",
        )
        for layer in (self.norm, self.q, self.k, self.v, self.proj_out):
            layer.build(input_shape)

    def call(self, inputs):
        shape = ops.shape(inputs)
        batch, channels = shape[0], shape[-1]
        h = self.norm(inputs)
        q = ops.reshape(self.q(h), (batch, -1, channels))  # [B, N, C]
        k = ops.reshape(self.k(h), (batch, -1, channels))  # [B, N, C]
        v = ops.reshape(self.v(h), (batch, -1, channels))  # [B, N, C]
        # Scaling q rather than the logits is the same maths and keeps 16-bit logits in range.
        q = q * ops.cast(1.0 / math.sqrt(channels), q.dtype)
        logits = ops.einsum("bic,bjc->bij", q, k)  # [B, N, N]
        weights = ops.softmax(ops.cast(logits, "float32"), axis=-1)
        h = ops.einsum("bij,bjc->bic", ops.cast(weights, v.dtype), v)  # [B, N, C]
        h = self.proj_out(ops.reshape(h, shape))  # [B, H, W, C]
        return inputs + h

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"norm_groups": self.norm_groups, "norm_epsilon": self.norm_epsilon})
        return config
