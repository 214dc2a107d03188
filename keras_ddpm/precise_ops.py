"""Element-wise maximum and minimum that keep float64 on every backend.

Keras 3.15's `ops.maximum` and `ops.minimum` on PyTorch work out the result dtype from
torch's own dtype objects, which its dtype table does not know, and answer float32 even
for two float64 inputs. The schedule's coefficients are float64 (`room().precise_float()`),
so the maths here takes the larger or smaller value with `ops.where`, which keeps the
inputs' dtype. As `ops.maximum` does, a NaN in either input gives NaN: `x > y` is false when
`y` is NaN (so `y` is taken), and `x` is taken where `x` is NaN by the `x != x` test.
"""

from keras import ops


def maximum(x, y):
    """The element-wise larger of `x` and `y` (tensors or Python numbers), in their dtype."""
    return ops.where(ops.logical_or(ops.greater(x, y), ops.not_equal(x, x)), x, y)


def minimum(x, y):
    """The element-wise smaller of `x` and `y` (tensors or Python numbers), in their dtype."""
    return ops.where(ops.logical_or(ops.less(x, y), ops.not_equal(x, x)), x, y)
