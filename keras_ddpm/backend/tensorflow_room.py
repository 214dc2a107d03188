"""The TensorFlow backend's room: `tf.function` loops, float64 coefficients, own gradients."""

import tensorflow as tf

from keras_ddpm import graph_lifetime
from keras_ddpm.backend.tensorflow_gradients import conv2d_3x3  # noqa: F401 - offered kernel
from keras_ddpm.backend.tensorflow_gradients import group_normalization

fused_group_normalization = group_normalization


def precise_float():
    """The dtype of the schedule's coefficient arithmetic: float64."""
    return "float64"


def compile_loop(function, signature, jit_compile):
    """`function` as a `tf.function` of a fixed signature, XLA if asked, no AutoGraph.

    The samplers build their while loops themselves, so AutoGraph's source conversion
    changes nothing in the graph but takes most of the tracing time (figures: the README's
    "Measurements behind the design"). The loop's graph is freed with the loop
    (`graph_lifetime.GraphReleasingFunction`).

    Args:
        function: the loop's Python function.
        signature: its inputs' `(shape, dtype)` pairs, `None` for an unknown dimension.
        jit_compile: compile with XLA.
    """
    specs = [tf.TensorSpec(shape, dtype) for shape, dtype in signature]
    trace = tf.function(
        input_signature=specs, jit_compile=bool(jit_compile), reduce_retracing=True,
        autograph=False,
    )
    graph_lifetime.quiet_cached_loop_retracing()  # one loop per sampler choice, by design
    return graph_lifetime.GraphReleasingFunction(trace(function))
