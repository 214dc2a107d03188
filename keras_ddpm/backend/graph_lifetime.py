"""Traced graphs that live only as long as the function that traced them.

Inside a `tf.function` trace, `tf.custom_gradient` (used by the U-Net's group normalisation
and, on CPUs without AVX-512, its 3x3 convolutions) registers its gradient in TensorFlow's
process-wide gradient registry under a fresh name, for the symbolic `tf.gradients` path, and
never removes it. The registered closure holds tensors of the traced graph, so every graph
ever traced stays in memory, with the model variables it captured, after its function, or
the whole model, is gone: memory grows with every `compile` + `fit` and with every model
built and deleted in one process (figures: the README's "Measurements behind the design").

The functions this package traces and calls itself (the training and evaluation steps, the
reverse loops, the likelihood terms, the SavedModel export, and the step functions Keras
builds for a `UNet`'s own `fit`, `evaluate` and `predict`) are never differentiated from
outside, and their gradients inside the trace come from the tape, which holds its own
reference while it lives.
`release_traced_graphs` drops the registry entries that such a call added once the call
returns; `GraphReleasingFunction` wraps a function in it. A `tf.function` that a user
differentiates from outside keeps TensorFlow's behaviour: only calls made through these two
drop anything (and whatever another thread traces during such a call, which nothing in this
package does).

References:
    - TensorFlow issues #27492 ("Use of tf.custom_gradient prevents garbage collection of
      Graph", 2019) and #97697 (2025): the registry entry keeps the graph. TensorFlow 2.21's
      closure still holds the gradient function, and ours holds the forward pass's tensors.
"""

import contextlib
import logging

from keras_ddpm.backend import internals

_CUSTOM_GRADIENT_PREFIX = "CustomGradient-"  # the names `tf.custom_gradient` registers


@contextlib.contextmanager
def release_traced_graphs():
    """Drops the custom gradients registered while the block runs, when it ends.

    Entries are added only by tracing, in order, so the block's entries are those past the
    table's length at its start. Use it around calls of functions whose traces are never
    differentiated from outside (see the module docstring).

    Example:

    ```python
    with keras_ddpm.backend.graph_lifetime.release_traced_graphs():
        images = traced_loop(noise)
    ```
    """
    table = internals.gradient_registry()
    start = len(table) if table is not None else 0
    try:
        yield
    finally:
        if table is not None and len(table) > start:
            added = list(table)[start:]
            for name in added:
                if name.startswith(_CUSTOM_GRADIENT_PREFIX):
                    table.pop(name, None)


class GraphReleasingFunction:
    """Calls `function` inside `release_traced_graphs`; its other attributes are the function's.

    Args:
        function: a callable, typically a `tf.function`.

    Example:

    ```python
    run = GraphReleasingFunction(tf.function(step))
    run(x)  # traced once; the trace is freed with `run`
    run.experimental_get_tracing_count()  # 1
    ```
    """

    def __init__(self, function):
        self.function = function

    def __call__(self, *args, **kwargs):
        with release_traced_graphs():
            return self.function(*args, **kwargs)

    def __getattr__(self, name):
        if name == "function":  # not set yet (during unpickling or copying)
            raise AttributeError(name)
        return getattr(self.function, name)


def releasing(function):
    """`function` wrapped in a `GraphReleasingFunction` (itself if it already is, `None` for `None`).

    Example:

    ```python
    def make_predict_function(self, force=False):  # in a keras.Model subclass
        super().make_predict_function(force=force)
        self.predict_function = releasing(self.predict_function)
        return self.predict_function
    ```
    """
    if function is None or isinstance(function, GraphReleasingFunction):
        return function
    return GraphReleasingFunction(function)


class _CachedLoopRetracing(logging.Filter):
    """Drops TensorFlow's "triggered tf.function retracing" warning about the reverse loops.

    Each sampler choice is its own cached loop, traced once, but all are made from one
    Python function, which TensorFlow's retracing detector counts as one: seven sampler
    settings in a process would warn twice about a retracing that is by design.
    """

    def filter(self, record):
        message = record.getMessage()
        return not ("triggered tf.function retracing" in message and "ReverseProcess" in message)


def quiet_cached_loop_retracing():
    """Installs `_CachedLoopRetracing` on TensorFlow's logger (once; other warnings pass)."""
    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _CachedLoopRetracing) for f in logger.filters):
        logger.addFilter(_CachedLoopRetracing())
