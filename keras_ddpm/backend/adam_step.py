"""Keras' Adam update as one fused TensorFlow kernel a weight, for the training step's graph.

`keras.optimizers.Adam` builds its update from about 37 small ops a weight (the step's bias
corrections are recomputed for each): on the 32x32 benchmark U-Net (328 weights) that was
12,142 of the training graph's 30,407 ops. Tracing, optimising and holding such a graph costs
time before the first step and resident memory for the whole run (issue 17,
`benchmarks/benchmark_memory.py`). `apply_gradients` computes the same update with one
`ResourceApplyAdam` kernel a weight and the bias corrections once a step; the update is Keras'
formula (Kingma & Ba, 2015, section 2, with the "epsilon hat" of the paragraph before 2.1):

    m ← m + (1 − β₁)(g − m),  v ← v + (1 − β₂)(g² − v),
    w ← w − lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ) · m / (√v + ε).

The results equal Keras' to float32 rounding: Keras rounds 1 − β from a Python float, the
kernel subtracts β in float32 (about 2e-7 relative on each step's share of the gradient).

It takes the optimizer's own moment variables and step counter, so checkpoints, `load_model`
and resuming are unchanged. Anything it does not cover goes to `optimizer.apply_gradients`:
other optimizers (subclasses of Adam included), AMSGrad, weight decay, the optimizer's own
EMA, gradient accumulation, a loss-scale factor, weight constraints, gradients overwriting
weights, non-float weights, and `tf.distribute` strategies (where Keras all-reduces the
gradients inside `apply_gradients`).

References:
    - [Kingma & Ba, 2015. Adam: A Method for Stochastic Optimization](
      https://arxiv.org/abs/1412.6980)
"""

import keras
import tensorflow as tf

from keras_ddpm.backend import internals


def fusable(optimizer, weights):
    """Whether `apply_gradients` fuses the update of `optimizer` on `weights`."""
    if type(optimizer) is not keras.optimizers.Adam or not optimizer.built:
        return False
    if (
        optimizer.amsgrad
        or optimizer.weight_decay
        or optimizer.use_ema
        or optimizer.gradient_accumulation_steps
        or optimizer.loss_scale_factor is not None
    ):
        return False
    if tf.distribute.has_strategy() or not internals.adam_slots_available(optimizer):
        return False
    return all(
        weight.constraint is None
        and not getattr(weight, "overwrite_with_gradient", False)
        and weight.dtype in ("float32", "float64", "float16", "bfloat16")
        for weight in weights
    )


def apply_gradients(optimizer, gradients, weights):
    """`optimizer.apply_gradients(zip(gradients, weights))`, fused for a plain Keras Adam.

    Args:
        optimizer: a built Keras optimizer.
        gradients: one tensor (or `None`) a weight.
        weights: the trainable `keras.Variable`s, those the optimizer was built on.
    """
    gradients, weights = list(gradients), list(weights)
    if not fusable(optimizer, weights) or any(g is None for g in gradients):
        optimizer.apply_gradients(zip(gradients, weights))
        return
    gradients = internals.clip_gradients(optimizer, gradients)
    step = tf.cast(optimizer.iterations + 1, "float32")
    learning_rate = tf.cast(optimizer.learning_rate, "float32")
    beta_1 = tf.constant(optimizer.beta_1, "float32")
    beta_2 = tf.constant(optimizer.beta_2, "float32")
    epsilon = tf.constant(optimizer.epsilon, "float32")
    shared = dict(
        beta1_power=tf.pow(beta_1, step),
        beta2_power=tf.pow(beta_2, step),
        lr=learning_rate,
        beta1=beta_1,
        beta2=beta_2,
        epsilon=epsilon,
    )
    by_dtype = {"float32": shared}
    for gradient, weight in zip(gradients, weights):
        dtype = weight.dtype
        if dtype not in by_dtype:
            by_dtype[dtype] = {name: tf.cast(value, dtype) for name, value in shared.items()}
        m, v = internals.adam_moments(optimizer, weight)
        tf.raw_ops.ResourceApplyAdam(
            var=weight.handle,
            m=m.handle,
            v=v.handle,
            grad=tf.cast(gradient, dtype),
            use_locking=False,
            **by_dtype[dtype],
        )
    optimizer.iterations.assign_add(1)
