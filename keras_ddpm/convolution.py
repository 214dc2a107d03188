"""3x3 convolutions whose kernel gradient is computed as nine matrix products on CPUs.

Training the DDPM U-Net on a CPU spends most of its time in convolution gradients, and the
kernel (filter) gradient is the slowest of the three convolution computations. For a 3x3
"same" convolution with stride 1 the kernel gradient is nine matrix products,

    dW[i, j] = pad(x)[:, i:i + H, j:j + W, :]^T  dy      ([C_in, B H W] x [B H W, C_out]),

which ran faster than TensorFlow's kernel gradient on the U-Net's shapes on AMD Zen 3 cores.
Only with TensorFlow's oneDNN kernels on (see `keras_ddpm/__init__.py`): against the
Eigen kernels that TensorFlow uses otherwise, the products were slower. GPUs keep their own
(cuDNN) gradient, and small maps or narrow layers, where the products are too small to pay
for the slicing, keep TensorFlow's.

CPUs with AVX-512 keep TensorFlow's too: there oneDNN's kernel gradient is the faster at every
shape of the U-Nets (figures: the README's "Measurements behind the design").
"""

import functools

import keras
import tensorflow as tf
from keras import ops

from keras_ddpm.backend import hardware
from keras_ddpm.backend import internals
from keras_ddpm.backend.hardware import accelerator_present as _accelerator_present

# Below these sizes TensorFlow's kernel gradient was as fast or faster (measured).
_MIN_POSITIONS = 64  # H * W
_MIN_CHANNELS = 32  # C_in and C_out


def _kernel_gradient(x, dy):
    """`dW [3, 3, C_in, C_out]` of a 3x3 stride-1 "same" convolution, as nine matmuls."""
    height, width = tf.shape(x)[1], tf.shape(x)[2]
    in_channels, out_channels = x.shape[-1], dy.shape[-1]
    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    dy = tf.reshape(dy, [-1, out_channels])  # [B H W, C_out]
    taps = []
    for i in range(3):
        for j in range(3):
            # One shifted copy of x at a time: left alone, the executor would materialise
            # all nine copies together (measured: +1.4 GB peak memory in the benchmark).
            with tf.control_dependencies(taps[-1:]):
                shifted = tf.reshape(padded[:, i : i + height, j : j + width, :], [-1, in_channels])
            taps.append(tf.matmul(shifted, dy, transpose_a=True))  # [C_in, C_out]
    return tf.reshape(tf.stack(taps), [3, 3, in_channels, out_channels])


def conv2d_3x3(x, kernel):
    """3x3, stride 1, "same" zero padding, channels last; the kernel gradient by matmuls.

    The values and the input gradient are TensorFlow's own convolution; only the kernel
    gradient is computed differently (equal to rounding).

    Args:
        x: float tensor `[B, H, W, C_in]`.
        kernel: float tensor `[3, 3, C_in, C_out]` of the same dtype.

    Returns:
        A tensor `[B, H, W, C_out]`.
    """

    @tf.custom_gradient
    def convolve(x, kernel):
        def grad(dy):
            dx = tf.raw_ops.Conv2DBackpropInput(
                input_sizes=tf.shape(x),
                filter=kernel,
                out_backprop=dy,
                strides=[1, 1, 1, 1],
                padding="SAME",
            )
            return dx, _kernel_gradient(x, dy)

        return tf.nn.conv2d(x, kernel, strides=1, padding="SAME"), grad

    return convolve(x, kernel)


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
class Conv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` whose 3x3 kernel gradient runs as matmuls on CPU-only machines.

    Same weights, configuration and outputs as the parent. When the layer is a 3x3, stride-1,
    undilated, ungrouped, channels-last "same" convolution on maps of at least 64 positions
    with at least 32 input and output channels, TensorFlow runs its oneDNN kernels, no GPU
    or TPU is visible and the CPU has no AVX-512, its kernel gradient is computed by
    `conv2d_3x3`; otherwise the parent computes everything. (With oneDNN off, TensorFlow's
    Eigen kernel gradient was the faster.)

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
        return conv2d_3x3(inputs, ops.cast(kernel, inputs.dtype))
