"""TensorFlow's hand-written gradients: group normalisation and the 3x3 convolution's kernel.

Written with `tf.custom_gradient`, so TensorFlow only (`tensorflow_room` offers them to the
layers). The maths they compute is `keras_ddpm.normalization.group_normalization` and a plain
3x3 "same" convolution; `tests/test_normalization.py` and `tests/test_convolution.py` compare
values and gradients.

Group normalisation: `keras.layers.GroupNormalization` differentiates its forward pass
operation by operation, almost all of it over full-size tensors. Here the gradient is written
in closed form: per-(example, channel) statistics first, then one affine map of the input
forward and one of `dy` and `x` backward (figures: the README's "Measurements behind the
design").

3x3 kernel gradient: for a 3x3 "same" convolution with stride 1 it is nine matrix products,

    dW[i, j] = pad(x)[:, i:i + H, j:j + W, :]^T  dy      ([C_in, B H W] x [B H W, C_out]),

faster than TensorFlow's kernel gradient on the U-Net's shapes with oneDNN on a CPU without
AVX-512 (`keras_ddpm.convolution.Conv2D` says when it is used).

References:
    - [Wu & He, 2018. Group Normalization](https://arxiv.org/abs/1803.08494)
    - [Ioffe & Szegedy, 2015. Batch Normalization](https://arxiv.org/abs/1502.03167) (the
      closed-form gradient of a normalisation, section 3)
"""

import math

import tensorflow as tf

from keras_ddpm import checks


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



def group_normalization(x, gamma, beta, groups, epsilon):
    """Channels-last group normalisation `gamma * (x - mean) / sqrt(var + epsilon) + beta`.

    Mean and (biased) variance are taken over the positions and the channels of each group,
    separately for every example, as in `keras.layers.GroupNormalization`; the results agree
    with it to float rounding, values and gradients.

    With `x` viewed as `[B, S, G, C / G]` (positions `S`, groups `G`), the forward pass sums
    over positions first and then within each group of channels, and outputs
    `x * scale + shift` with per-(example, channel) `scale` and `shift`. Backward: with
    `x̂ = (x - μ) / σ` and `dx̂ = γ dy`, the gradient
    `dx = (dx̂ - mean(dx̂) - x̂ mean(dx̂ x̂)) / σ` (means over a group) is again an affine map,
    `dy * scale + x * a + b`, whose `a` and `b` come from two position sums, `Σ dy` and
    `Σ dy x`.

    Arguments and result as `keras_ddpm.normalization.group_normalization`.

    Example:

    ```python
    x = np.random.normal(size=(2, 8, 8, 32)).astype("float32")
    y = keras_ddpm.backend.tensorflow_gradients.group_normalization(x, np.ones(32), np.zeros(32), 8, 1e-6)
    ```
    """
    x = tf.convert_to_tensor(x)
    channels = x.shape[-1]
    checks.group_count(channels, groups, x.shape)
    group_size = channels // groups
    # Static shapes where known: the graph then holds no shape arithmetic (about half the
    # ops of a dynamic-shape version, issue 17), and every per-channel factor broadcasts
    # over the positions only.
    dims = x.shape[1:-1]
    positions = None if None in dims else math.prod(dims)
    outer_shape = [-1, *x.shape[1:]] if positions is not None else None
    grouped_shape = [-1, positions if positions is not None else -1, groups, group_size]
    if positions is None:
        grouped_shape[0] = tf.shape(x)[0]
    expand = tf.ones([groups, group_size], x.dtype)  # [G, 1] factors -> [G, Cg]

    @tf.custom_gradient
    def normalize(x, gamma, beta):
        shape = outer_shape if outer_shape is not None else tf.shape(x)
        x = tf.reshape(x, grouped_shape)  # [B, S, G, Cg]
        if positions is not None:
            inv_count = 1.0 / (positions * group_size)
        else:
            inv_count = 1.0 / tf.cast(tf.shape(x)[1] * group_size, x.dtype)

        def group_mean(channel_sums):
            """Per-channel sums `[B, 1, G, Cg]` -> each group's mean `[B, 1, G, 1]`."""
            return tf.reduce_sum(channel_sums, axis=3, keepdims=True) * inv_count

        mean = group_mean(tf.reduce_sum(x, axis=1, keepdims=True))  # [B, 1, G, 1]
        variance = group_mean(
            tf.reduce_sum(tf.math.squared_difference(x, mean), axis=1, keepdims=True)
        )
        inv_std = tf.math.rsqrt(variance + epsilon)  # [B, 1, G, 1]
        scale = inv_std * gamma  # [B, 1, G, Cg]
        shift = beta - mean * scale  # [B, 1, G, Cg]
        y = x * scale + shift

        def grad(upstream):
            dy = tf.reshape(upstream, grouped_shape)
            sum_dy = tf.reduce_sum(dy, axis=1, keepdims=True)  # [B, 1, G, Cg]
            sum_dy_xhat = (tf.reduce_sum(dy * x, axis=1, keepdims=True) - mean * sum_dy) * inv_std
            mean_dxhat = group_mean(gamma * sum_dy)  # [B, 1, G, 1]
            mean_dxhat_xhat = group_mean(gamma * sum_dy_xhat)
            a = -inv_std * inv_std * mean_dxhat_xhat  # [B, 1, G, 1]
            b = -inv_std * mean_dxhat - mean * a
            dx = dy * scale + (x * (a * expand) + b * expand)
            dgamma = tf.reduce_sum(sum_dy_xhat, axis=[0, 1])  # [G, Cg], as gamma here
            dbeta = tf.reduce_sum(sum_dy, axis=[0, 1])
            return tf.reshape(dx, shape), dgamma, dbeta

        return tf.reshape(y, shape), grad

    def grouped(weight):
        return tf.reshape(tf.cast(weight, x.dtype), [groups, group_size])

    return normalize(x, grouped(gamma), grouped(beta))
