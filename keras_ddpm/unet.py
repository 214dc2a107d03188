"""The DDPM U-Net (Ho et al. 2020, appendix B); its named configurations are in `unet_config`."""

import keras

from keras_ddpm import lora
from keras_ddpm import quantization
from keras_ddpm.block_settings import GROUP_NORM_EPSILON
from keras_ddpm.block_settings import float32_if_half
from keras_ddpm.block_settings import group_norm
from keras_ddpm.layers import AttentionBlock
from keras_ddpm.layers import ResidualBlock
from keras_ddpm.layers import TimestepEmbedding
from keras_ddpm.resampling import Downsample
from keras_ddpm.resampling import Upsample
from keras_ddpm.backend import StepFunctions
from keras_ddpm.unet_config import PRESETS
from keras_ddpm.unet_config import preset_arguments
from keras_ddpm.unet_config import check_unet_arguments


@keras.saving.register_keras_serializable(package="keras_ddpm")
class UNet(StepFunctions, keras.Model):
    """The noise-prediction U-Net of Ho et al. (2020).

    A U-Net (Ronneberger et al., 2015) of PixelCNN++-style Wide ResNet blocks, as in appendix B
    of the DDPM paper and the authors' TensorFlow code:

    - the timestep goes through a sinusoidal embedding and a two-layer MLP of width
      `4 * base_channels`, which every residual block adds to its features; with
      `num_classes`, a learned class embedding of the same width is added to it (Ho &
      Salimans 2022), the extra label `num_classes` standing for "no class";
    - the encoder has `len(channel_multipliers)` levels of `num_res_blocks` residual blocks, each
      level but the last ending in a strided-convolution downsample;
    - the middle is residual block, self-attention, residual block;
    - the decoder mirrors the encoder with `num_res_blocks + 1` blocks per level, each taking the
      matching encoder activation by concatenation, and upsamples by nearest-neighbour resizing
      and a convolution;
    - group normalisation (Wu & He, 2018) precedes every convolution, and single-head
      self-attention (Vaswani et al., 2017) follows the residual blocks at
      `attention_resolutions`.

    Every residual branch and the output convolution start at zero, so a fresh network outputs
    exactly zero. The output, shaped like the input image (the noise `epsilon` in DDPM), is
    always float32: under a mixed precision policy the body runs in 16 bits while group
    normalisation, the attention softmax and the output convolution run in float32.

    This is a functional model: `__init__` builds the graph from the arguments below and
    `get_config()` returns exactly those arguments, so `from_config` and `.keras` files rebuild it.

    Args:
        image_shape: tuple of 3 ints `(height, width, channels)`. Height and width must be
            divisible by `2 ** (len(channel_multipliers) - 1)`.
        base_channels: int. Width of the first level ("ch" in the authors' code); level `i` has
            width `base_channels * channel_multipliers[i]`. Defaults to `128`.
        channel_multipliers: tuple of ints, one per resolution level. Defaults to `(1, 2, 2, 2)`.
        num_res_blocks: int. Residual blocks per level in the encoder; the decoder has one more.
            Defaults to `2`.
        attention_resolutions: tuple of ints. Feature-map heights after whose residual blocks
            self-attention is applied; each must be a height the network reaches. The middle
            block always has attention. Defaults to `(16,)`.
        dropout: float in `[0, 1)`. Dropout rate inside the residual blocks. Defaults to `0.1`.
        norm_groups: int. Groups of every group normalisation; `base_channels` and every level
            width must be divisible by it. Defaults to `32`.
        norm_epsilon: float. Epsilon of every group normalisation. Defaults to `1e-6` (the
            authors' value; diffusers' `norm_eps`).
        flip_sin_to_cos: bool. Cosines before sines in the timestep embedding. Defaults to
            `False` (the authors' order; see `layers.TimestepEmbedding`).
        freq_shift: float in `[0, 1]`. The timestep frequencies are `10000 ** (-i / (h - s))`
            for `s = freq_shift`. Defaults to `1` (the authors' spacing). These last three
            exist so that diffusers' `UNet2DModel` variants convert exactly
            (`UNet.from_pretrained`).
        num_classes: int or `None`. With `K` classes the network is class-conditional: it
            takes a third input, int32 labels in `[0, K]`, where `K` (`null_label`) is the
            "unconditional" label used by classifier-free guidance. Defaults to `None`
            (unconditional, inputs `[x_t, t]`).
        **kwargs: other keyword arguments passed to `keras.Model`: `name`, `trainable`, and
            `dtype` (the dtype policy of every layer; defaults to the global policy).

    Call arguments:
        inputs: a list `[x_t, t]`: float images of shape `[B, *image_shape]` and their timestep
            indices, an int32 vector of shape `[B]`; `[x_t, t, labels]` with `num_classes`,
            labels an int32 vector of shape `[B]`.
        training: bool. Whether dropout is active.

    Returns:
        A float32 tensor of shape `[B, *image_shape]`.

    Example:

    ```python
    network = keras_ddpm.UNet(
        image_shape=(16, 16, 1),
        base_channels=32,
        channel_multipliers=(1, 2),
        attention_resolutions=(8,),
        norm_groups=8,
    )
    x_t = np.random.normal(size=(4, 16, 16, 1)).astype("float32")
    t = np.array([0, 10, 100, 999], dtype="int32")
    eps = network([x_t, t])  # shape (4, 16, 16, 1)

    cifar10 = keras_ddpm.UNet.from_preset("ddpm_cifar10")  # 35,746,307 parameters
    ```

    References:
        - [Ho et al., 2020. Denoising Diffusion Probabilistic Models](
            https://arxiv.org/abs/2006.11239)
        - [Ronneberger et al., 2015. U-Net](https://arxiv.org/abs/1505.04597)
        - [Salimans et al., 2017. PixelCNN++](https://arxiv.org/abs/1701.05517)
        - [Wu & He, 2018. Group Normalization](https://arxiv.org/abs/1803.08494)
        - [Vaswani et al., 2017. Attention Is All You Need](https://arxiv.org/abs/1706.03762)
        - [Ho & Salimans, 2022. Classifier-Free Diffusion Guidance](
            https://arxiv.org/abs/2207.12598)
    """

    def __init__(
        self,
        image_shape,
        base_channels=128,
        channel_multipliers=(1, 2, 2, 2),
        num_res_blocks=2,
        attention_resolutions=(16,),
        dropout=0.1,
        norm_groups=32,
        num_classes=None,
        norm_epsilon=GROUP_NORM_EPSILON,
        flip_sin_to_cos=False,
        freq_shift=1,
        **kwargs,
    ):
        dtype = kwargs.pop("dtype", None)
        unknown = sorted(set(kwargs) - {"name", "trainable"})
        if unknown:  # keras.Model would ignore them silently: a misspelt argument did nothing
            raise TypeError(
                f"UNet got unexpected keyword arguments {unknown}; expected its own arguments, "
                "`name`, `trainable` or `dtype`."
            )
        image_shape, channel_multipliers, attention_resolutions = check_unet_arguments(
            image_shape, base_channels, channel_multipliers, num_res_blocks,
            attention_resolutions, dropout, norm_groups, num_classes,
        )
        policy = keras.config.dtype_policy() if dtype is None else keras.dtype_policies.get(dtype)
        # Float32 under a 16-bit policy, so that the prediction is always float32.
        output_dtype = float32_if_half(policy)
        num_levels = len(channel_multipliers)
        ch = base_channels

        def res_block(width, name):
            return ResidualBlock(
                width, dropout=dropout, norm_groups=norm_groups, norm_epsilon=norm_epsilon,
                dtype=dtype, name=name,
            )

        def attn_block(name):
            return AttentionBlock(
                norm_groups=norm_groups, norm_epsilon=norm_epsilon, dtype=dtype, name=name
            )

        # === Inputs ===
        x_t = keras.Input(shape=image_shape, name="x_t")  # [B, H, W, C]
        t = keras.Input(shape=(), dtype="int32", name="t")  # [B]

        # === Timestep embedding: sinusoids, then a two-layer MLP ===
        temb = TimestepEmbedding(
            ch, flip_sin_to_cos=flip_sin_to_cos, freq_shift=freq_shift, dtype=dtype,
            name="temb_embedding",
        )(t)
        temb = lora.Dense(4 * ch, dtype=dtype, name="temb_dense0")(temb)
        temb = keras.layers.Activation("silu", dtype=dtype, name="temb_silu")(temb)
        temb = lora.Dense(4 * ch, dtype=dtype, name="temb_dense1")(temb)  # [B, 4ch]
        inputs = [x_t, t]

        # === Class embedding (label num_classes = "no class"), added to the timestep's ===
        if num_classes is not None:
            labels = keras.Input(shape=(), dtype="int32", name="labels")  # [B]
            # N(0, 1) rows, on the scale of the timestep features they are added to. With
            # Keras' default U(−0.05, 0.05) the quick-start digits model followed its labels
            # far less after 40 epochs: 50 % vs 83 % of samples recognised as the requested
            # digit without guidance, 87 % vs 99 % with guidance 3.
            class_embedding = lora.Embedding(
                num_classes + 1,
                4 * ch,
                embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0),
                dtype=dtype,
                name="class_embedding",
            )
            temb = keras.layers.Add(dtype=dtype, name="temb_add_class")(
                [temb, class_embedding(labels)]
            )
            inputs.append(labels)

        # === Encoder: every activation is kept for the skip connections ===
        conv_in = lora.Conv2D(ch, 3, padding="same", dtype=dtype, name="conv_in")
        hs = [conv_in(x_t)]
        for level, mult in enumerate(channel_multipliers):
            for block in range(num_res_blocks):
                h = res_block(ch * mult, f"down_{level}_block_{block}")([hs[-1], temb])
                if h.shape[1] in attention_resolutions:
                    h = attn_block(f"down_{level}_attn_{block}")(h)
                hs.append(h)
            if level != num_levels - 1:
                down = Downsample(ch * mult, dtype=dtype, name=f"down_{level}_downsample")
                hs.append(down(hs[-1]))

        # === Middle, at the lowest resolution ===
        h = hs[-1]
        mid_width = ch * channel_multipliers[-1]
        h = res_block(mid_width, "mid_block_1")([h, temb])
        h = attn_block("mid_attn_1")(h)
        h = res_block(mid_width, "mid_block_2")([h, temb])

        # === Decoder: one more block per level, each consuming one skip activation ===
        for level in reversed(range(num_levels)):
            width = ch * channel_multipliers[level]
            for block in range(num_res_blocks + 1):
                concat = keras.layers.Concatenate(dtype=dtype, name=f"up_{level}_concat_{block}")
                h = concat([h, hs.pop()])
                h = res_block(width, f"up_{level}_block_{block}")([h, temb])
                if h.shape[1] in attention_resolutions:
                    h = attn_block(f"up_{level}_attn_{block}")(h)
            if level != 0:
                h = Upsample(width, dtype=dtype, name=f"up_{level}_upsample")(h)
        assert not hs, "every encoder activation feeds one decoder block"

        # === Output: normalise, activate, zero-initialised convolution to the image channels ===
        h = group_norm(norm_groups, policy, "norm_out", norm_epsilon)(h)
        h = keras.layers.Activation("silu", dtype=output_dtype, name="silu_out")(h)
        outputs = lora.Conv2D(
            image_shape[-1],
            3,
            padding="same",
            kernel_initializer="zeros",
            bias_initializer="zeros",
            dtype=output_dtype,
            name="conv_out",
        )(h)

        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        if dtype is not None:
            self.dtype_policy = policy
        self.image_shape = image_shape
        self.base_channels = base_channels
        self.channel_multipliers = channel_multipliers
        self.num_res_blocks = num_res_blocks
        self.attention_resolutions = attention_resolutions
        self.dropout = dropout
        self.norm_groups = norm_groups
        self.num_classes = num_classes
        self.norm_epsilon = float(norm_epsilon)
        self.flip_sin_to_cos = flip_sin_to_cos
        self.freq_shift = freq_shift

    @property
    def null_label(self):
        """The label that asks for an unconditional prediction (`num_classes`), or `None`."""
        return self.num_classes

    def get_config(self):
        # Not chained to keras.Model.get_config(): a functional model's config is its layer
        # graph, which this constructor does not take. Sequences are returned as lists, as they
        # come back from JSON. The LoRA updates, if any, are listed by layer path.
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "image_shape": list(self.image_shape),
            "base_channels": self.base_channels,
            "channel_multipliers": list(self.channel_multipliers),
            "num_res_blocks": self.num_res_blocks,
            "attention_resolutions": list(self.attention_resolutions),
            "dropout": self.dropout,
            "norm_groups": self.norm_groups,
            "num_classes": self.num_classes,
            "norm_epsilon": self.norm_epsilon,
            "flip_sin_to_cos": self.flip_sin_to_cos,
            "freq_shift": self.freq_shift,
        }
        lora_layers = lora.recorded(self)
        if lora_layers:
            config["lora_layers"] = lora_layers
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        lora_layers = config.pop("lora_layers", None)
        network = cls(**config)
        if lora_layers:
            lora.restore(network, lora_layers)
        return network

    quantize = quantization.refuse  # Keras has no quantized convolution (one clear error)

    def enable_lora(self, rank, lora_alpha=None, target_names=None):
        """Adds a trainable low-rank update to the frozen kernel of each chosen layer.

        The same as `DDPM.enable_lora` (which also adapts the EMA copy: call that one on a
        network inside a `DDPM`), for a network on its own. The choice is part of
        `get_config()`.

        Args:
            rank: int, the rank r of each update.
            lora_alpha: positive number α; updates are scaled by α/r. Defaults to `None`
                (α = r).
            target_names: layer names (`"q"`, `"conv1"`) or paths (`"mid_attn_1/q"`) to
                adapt. Defaults to `None`: every kernel of the network.

        Returns:
            The sorted paths of the layers adapted.

        Example:

        ```python
        network = keras_ddpm.UNet.from_pretrained("google/ddpm-cifar10-32")
        network.enable_lora(8, target_names=["q", "k", "v", "proj_out"])
        ```

        References:
            - [Hu et al., 2021. LoRA: Low-Rank Adaptation of Large Language Models](
                https://arxiv.org/abs/2106.09685)
        """
        return lora.enable(self, rank, lora_alpha=lora_alpha, target_names=target_names)

    @classmethod
    def from_preset(cls, name, /, **overrides):
        """Builds a freshly initialised network from a named configuration in `PRESETS`.

        Args:
            name: str. A key of `keras_ddpm.unet.PRESETS`, e.g. `"ddpm_cifar10"`. Positional
                only, so that `name=` among the overrides names the model.
            **overrides: constructor arguments replacing the preset's values, e.g.
                `dropout=0.0`.

        Returns:
            A `UNet`.

        Example:

        ```python
        network = keras_ddpm.UNet.from_preset("ddpm_cifar10", dropout=0.0)
        ```
        """
        return cls(**preset_arguments(name, overrides))

    @classmethod
    def from_pretrained(cls, source, /, allow_pickle=False, dtype=None, dropout=None):
        """A network holding the weights of a diffusers `UNet2DModel` checkpoint.

        The config is mapped onto `UNet`'s arguments (`keras_ddpm.pretrained.configs`) and
        every tensor is copied, laid out for Keras; the network then gives the reference
        implementation's outputs to float rounding. A config `UNet` cannot represent exactly
        (other block types, multi-head attention, scale-shift time conditioning, class
        embeddings, ...) is refused with one `ValueError` listing what is unsupported.

        Args:
            source: a diffusers model folder (`config.json` +
                `diffusion_pytorch_model.safetensors`), a pipeline folder (its `unet/` is
                read), or a hub id such as `"google/ddpm-cifar10-32"` (needs
                `pip install keras-ddpm[hub]`; downloaded once into huggingface_hub's cache).
                Positional only.
            allow_pickle: also read a pickled `diffusion_pytorch_model.bin` when there is
                no `.safetensors`. Unpickling can run arbitrary code, and needs PyTorch.
                Defaults to `False`.
            dtype: the dtype policy of the network (e.g. `"mixed_bfloat16"`). Defaults to
                `None` (the global policy).
            dropout: a dropout rate replacing the checkpoint's (e.g. `0.1` to fine-tune the
                CIFAR-10 model as it was trained). Defaults to `None` (the checkpoint's).

        Returns:
            A `UNet`.

        Example:

        ```python
        network = keras_ddpm.UNet.from_pretrained("google/ddpm-cifar10-32")
        network.count_params()  # 35,746,307
        ```
        """
        from keras_ddpm.pretrained import convert

        return convert.load_unet(cls, source, allow_pickle=allow_pickle, dtype=dtype, dropout=dropout)

    def save_pretrained(self, folder):
        """Writes this network as a diffusers `UNet2DModel` folder (config.json + safetensors).

        `diffusers.UNet2DModel.from_pretrained(folder)` loads it. A class-conditional network
        or one whose first channel multiplier is not 1 has no `UNet2DModel` equivalent and
        raises a `ValueError`.

        Args:
            folder: a new or empty folder (or one holding a diffusers checkpoint, replaced).

        Returns:
            `folder`.
        """
        from keras_ddpm.pretrained import convert

        return convert.write_unet(self, folder)
