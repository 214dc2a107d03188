"""Resampling blocks of the DDPM U-Net: strided-convolution downsampling, nearest upsampling + conv.

References:
    - Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models",
      NeurIPS 2020 (appendix B).
"""

import keras

from keras_ddpm import checks
from keras_ddpm import lora
from keras_ddpm.convolution import Conv2D


@keras.saving.register_keras_serializable(package="keras_ddpm")
class Downsample(keras.layers.Layer):
    """Halves the spatial size with a strided 3x3 convolution.

    A 3x3 convolution with stride 2 and "same" padding, as in the DDPM U-Net
    (`resamp_with_conv=True`). With TensorFlow's "same" padding an even-sized input is padded on
    the bottom and right only, so output pixel `i` is centred on input pixel `2i + 1`.

    Args:
        channels: int. Number of output channels (the U-Net keeps the input width).
        **kwargs: other keyword arguments passed to `keras.layers.Layer`, including `name` and
            `dtype`.

    Call arguments:
        inputs: a feature map of shape `[B, H, W, C]`.

    Returns:
        A tensor of shape `[B, ceil(H / 2), ceil(W / 2), channels]`.

    Example:

    ```python
    down = keras_ddpm.layers.Downsample(64)
    down(np.zeros((2, 16, 16, 64))).shape  # (2, 8, 8, 64)
    ```

    References:
        - [Ho et al., 2020. Denoising Diffusion Probabilistic Models](
            https://arxiv.org/abs/2006.11239)
        - [Ronneberger et al., 2015. U-Net](https://arxiv.org/abs/1505.04597)
    """

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        checks.positive_int("channels", channels)
        self.channels = channels
        self.conv = lora.Conv2D(
            channels, 3, strides=2, padding="same", dtype=self.dtype_policy, name="conv"
        )

    def build(self, input_shape):
        self.conv.build(input_shape)

    def call(self, inputs):
        return self.conv(inputs)

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels})
        return config


@keras.saving.register_keras_serializable(package="keras_ddpm")
class Upsample(keras.layers.Layer):
    """Doubles the spatial size: nearest-neighbour resize, then a 3x3 convolution.

    Every pixel is repeated into a 2x2 patch, then a 3x3 "same" convolution mixes the copies, as
    in the DDPM U-Net (`resamp_with_conv=True`).

    Args:
        channels: int. Number of output channels (the U-Net keeps the input width).
        **kwargs: other keyword arguments passed to `keras.layers.Layer`, including `name` and
            `dtype`.

    Call arguments:
        inputs: a feature map of shape `[B, H, W, C]`.

    Returns:
        A tensor of shape `[B, 2 * H, 2 * W, channels]`.

    Example:

    ```python
    up = keras_ddpm.layers.Upsample(64)
    up(np.zeros((2, 8, 8, 64))).shape  # (2, 16, 16, 64)
    ```

    References:
        - [Ho et al., 2020. Denoising Diffusion Probabilistic Models](
            https://arxiv.org/abs/2006.11239)
        - [Ronneberger et al., 2015. U-Net](https://arxiv.org/abs/1505.04597)
    """

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        checks.positive_int("channels", channels)
        self.channels = channels
        self.resize = keras.layers.UpSampling2D(
            size=2, interpolation="nearest", dtype=self.dtype_policy, name="resize"
        )
        self.conv = Conv2D(
            channels, 3, padding="same", dtype=self.dtype_policy, name="conv"
        )

    def build(self, input_shape):
        self.resize.build(input_shape)
        self.conv.build(self.resize.compute_output_shape(input_shape))

    def call(self, inputs):
        return self.conv(self.resize(inputs))

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(self.resize.compute_output_shape(input_shape))

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels})
        return config
