"""Group normalisation with a hand-written gradient, the U-Net's most frequent layer.

`keras.layers.GroupNormalization` differentiates its forward pass operation by operation:
almost all of it passes over full-size tensors. `group_normalization` computes the same
function with a gradient written in closed form: per-(example, channel) statistics first, then
one affine map of the input forward and one of `dy` and `x` backward, fewer passes over
full-size tensors (figures: the README's "Measurements behind the design").

References:
    - [Wu & He, 2018. Group Normalization](https://arxiv.org/abs/1803.08494)
    - [Ioffe & Szegedy, 2015. Batch Normalization](https://arxiv.org/abs/1502.03167) (the
      closed-form gradient of a normalisation, section 3)
"""

import math

import keras
import tensorflow as tf
from keras import ops


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

    Args:
        x: float tensor `[B, ..., C]`, channels last, at least 2-D.
        gamma: float tensor `[C]`, the scale (cast to the dtype of `x`).
        beta: float tensor `[C]`, the offset (cast to the dtype of `x`).
        groups: int, a divisor of `C`.
        epsilon: float added to the variance.

    Returns:
        A tensor shaped like `x`.

    Example:

    ```python
    x = np.random.normal(size=(2, 8, 8, 32)).astype("float32")
    y = keras_ddpm.normalization.group_normalization(x, np.ones(32), np.zeros(32), 8, 1e-6)
    ```
    """
    x = tf.convert_to_tensor(x)
    channels = x.shape[-1]
    if channels is None or channels % groups:
        raise ValueError(
            f"group_normalization needs a known channel count divisible by groups={groups}; "
            f"received input shape {tuple(x.shape)}."
        )
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


@keras.saving.register_keras_serializable(package="keras_ddpm")
class GroupNormalization(keras.layers.GroupNormalization):
    """`keras.layers.GroupNormalization` computed by `group_normalization`.

    The same weights (`gamma`, `beta`), configuration and results to float rounding; a
    channels-last layer with both scale and offset runs the hand-written gradient, any other
    configuration the parent's code. The
    arithmetic is float32 even under a 16-bit compute dtype.

    Args:
        **kwargs: the arguments of `keras.layers.GroupNormalization`.

    Example:

    ```python
    norm = keras_ddpm.normalization.GroupNormalization(groups=8, epsilon=1e-6)
    norm(np.zeros((2, 8, 8, 32)))  # shape (2, 8, 8, 32)
    ```

    References:
        - [Wu & He, 2018. Group Normalization](https://arxiv.org/abs/1803.08494)
    """

    def call(self, inputs):
        if self.axis not in (-1, len(inputs.shape) - 1) or not (self.center and self.scale):
            return super().call(inputs)
        outputs = group_normalization(
            ops.cast(inputs, "float32"), self.gamma, self.beta, self.groups, self.epsilon
        )
        return ops.cast(outputs, self.compute_dtype)
