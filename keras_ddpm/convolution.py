"""3x3 convolutions whose kernel gradient is computed as nine matrix products on CPUs.

Training the DDPM U-Net on a CPU spends most of its time in convolution gradients, and the
kernel (filter) gradient is the slowest of the three convolution computations. For a 3x3
"same" convolution with stride 1 the kernel gradient is nine matrix products
(`keras_ddpm.backend.tensorflow_gradients.conv2d_3x3`, offered by the TensorFlow backend's
room; the other backends keep their own gradient), which ran faster than TensorFlow's kernel
gradient on the U-Net's shapes on AMD Zen 3 cores.
Only with TensorFlow's oneDNN kernels on (see `keras_ddpm/__init__.py`): against the
Eigen kernels that TensorFlow uses otherwise, the products were slower. GPUs keep their own
(cuDNN) gradient, and small maps or narrow layers, where the products are too small to pay
for the slicing, keep TensorFlow's.

CPUs with AVX-512 keep TensorFlow's too: there oneDNN's kernel gradient is the faster at every
shape of the U-Nets (figures: the README's "Measurements behind the design").
"""

import functools

import keras
from keras import ops

from keras_ddpm import backend
from keras_ddpm import lora
from keras_ddpm.backend import hardware
from keras_ddpm.backend import internals
from keras_ddpm.backend.hardware import accelerator_present as _accelerator_present

# Below these sizes TensorFlow's kernel gradient was as fast or faster (measured).
_MIN_POSITIONS = 64  # H * W
_MIN_CHANNELS = 32  # C_in and C_out


def _avx512_present():
    flags = hardware.cpu_flags()
    return flags is not None and "avx512f" in flags


@functools.lru_cache(maxsize=None)
def onednn_enabled():
    """Whether TensorFlow runs its oneDNN kernels (`TF_ENABLE_ONEDNN_OPTS`) in this process.

    TensorFlow reads the setting once, when it loads; see `keras_ddpm/__init__.py`.
    """
    return internals.onednn_enabled()


@keras.saving.register_keras_serializable(package="keras_ddpm")
class Conv2D(lora.KeepsFactors, keras.layers.Conv2D):
    """`keras.layers.Conv2D` whose 3x3 kernel gradient runs as matmuls on CPU-only machines.

    Same weights, configuration and outputs as the parent. When the layer is a 3x3, stride-1,
    undilated, ungrouped, channels-last "same" convolution on maps of at least 64 positions
    with at least 32 input and output channels, TensorFlow runs its oneDNN kernels, no GPU
    or TPU is visible and the CPU has no AVX-512, its kernel gradient is computed by
    `conv2d_3x3`; otherwise the parent computes everything. (With oneDNN off, TensorFlow's
    Eigen kernel gradient was the faster.) Its files keep a LoRA update's factors
    (`lora.KeepsFactors`).

    Args:
        **kwargs: the arguments of `keras.layers.Conv2D`.

    Example:

    ```python
    conv = keras_ddpm.convolution.Conv2D(64, 3, padding="same")
    conv(np.zeros((2, 16, 16, 32)))  # shape (2, 16, 16, 64)
    ```
    """

    def _uses_matmul_gradient(self, inputs):
        height, width, in_channels = inputs.shape[1:]
        return (
            tuple(self.kernel_size) == (3, 3)
            and tuple(self.strides) == (1, 1)
            and tuple(self.dilation_rate) == (1, 1)
            and self.groups == 1
            and self.padding == "same"
            and self.data_format == "channels_last"
            and backend.room().conv2d_3x3 is not None
            and height is not None
            and width is not None
            and height * width >= _MIN_POSITIONS
            and min(in_channels, self.filters) >= _MIN_CHANNELS
            and onednn_enabled()
            and not _accelerator_present()
            and not _avx512_present()
        )

    def convolution_op(self, inputs, kernel):
        if not self._uses_matmul_gradient(inputs):
            return super().convolution_op(inputs, kernel)
        return backend.room().conv2d_3x3(inputs, ops.cast(kernel, inputs.dtype))
