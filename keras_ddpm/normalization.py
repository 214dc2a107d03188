"""Group normalisation, the U-Net's most frequent layer, in `keras.ops` (any backend).

`group_normalization` is the maths, differentiated by the backend. On TensorFlow the layer
runs `keras_ddpm.backend.tensorflow_gradients.group_normalization` instead: the same function
with a closed-form gradient that makes fewer passes over full-size tensors (the backend's
room offers it; figures: the README's "Measurements behind the design").

References:
    - [Wu & He, 2018. Group Normalization](https://arxiv.org/abs/1803.08494)
"""

import keras
from keras import ops

from keras_ddpm import backend
from keras_ddpm import checks


def group_normalization(x, gamma, beta, groups, epsilon):
    """Channels-last group normalisation `gamma * (x - mean) / sqrt(var + epsilon) + beta`.

    Mean and (biased) variance are taken over the positions and the channels of each group,
    separately for every example, as in `keras.layers.GroupNormalization`; the results agree
    with it to float rounding, values and gradients.

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
    x = ops.convert_to_tensor(x)
    channels = x.shape[-1]
    checks.group_count(channels, groups, x.shape)
    shape = ops.shape(x)
    grouped = ops.reshape(x, (shape[0], -1, groups, channels // groups))  # [B, S, G, Cg]
    mean = ops.mean(grouped, axis=(1, 3), keepdims=True)
    variance = ops.mean(ops.square(grouped - mean), axis=(1, 3), keepdims=True)
    normalized = ops.reshape((grouped - mean) * ops.rsqrt(variance + epsilon), shape)
    return normalized * ops.cast(gamma, x.dtype) + ops.cast(beta, x.dtype)


@keras.saving.register_keras_serializable(package="keras_ddpm")
class GroupNormalization(keras.layers.GroupNormalization):
    """`keras.layers.GroupNormalization` computed by `group_normalization` (or the backend's own).

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
        normalize = backend.room().fused_group_normalization or group_normalization
        outputs = normalize(
            ops.cast(inputs, "float32"), self.gamma, self.beta, self.groups, self.epsilon
        )
        return ops.cast(outputs, self.compute_dtype)
