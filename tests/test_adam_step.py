"""keras_ddpm.backend.adam_step: Keras' Adam as one fused kernel a weight, equal to Keras' own update."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_ddpm
from keras_ddpm.backend import adam_step
from networks import tiny_unet

SHAPE = (8, 8, 1)


def weights_and_gradients(steps=4, seed=0):
    """Three float32 weights (a matrix, a vector, a scalar-like) and `steps` gradient sets."""
    rng = np.random.default_rng(seed)
    shapes = [(5, 3), (3,), (1,)]
    start = [rng.normal(size=s).astype("float32") for s in shapes]
    gradients = [[rng.normal(scale=10 ** rng.uniform(-3, 1), size=s).astype("float32")
                  for s in shapes] for _ in range(steps)]
    return start, gradients


def run(optimizer, start, gradients, apply, compiled):
    weights = [keras.Variable(w) for w in start]
    optimizer.build(weights)

    def step(grads):
        apply(optimizer, list(grads), weights)

    if compiled:
        step = tf.function(step)
    for grads in gradients:
        step([tf.constant(g) for g in grads])
    state = [w.numpy() for w in weights] + [v.numpy() for v in optimizer.variables]
    return state, int(optimizer.iterations.numpy())


def keras_apply(optimizer, gradients, weights):
    optimizer.apply_gradients(zip(gradients, weights))


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"learning_rate": 0.05, "beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-3},
        {"learning_rate": keras.optimizers.schedules.ExponentialDecay(0.1, 1, 0.5)},
        {"clipnorm": 0.01},
        {"global_clipnorm": 0.02},
        {"clipvalue": 0.003},
    ],
    ids=["defaults", "hyperparameters", "schedule", "clipnorm", "global_clipnorm", "clipvalue"],
)
def test_fused_update_equals_keras_adam(options, compiled):
    start, gradients = weights_and_gradients()
    make = lambda: keras.optimizers.Adam(**options)  # noqa: E731
    assert adam_step.fusable(built(make()), [keras.Variable(w) for w in start])
    ours, ours_steps = run(make(), start, gradients, adam_step.apply_gradients, compiled)
    theirs, their_steps = run(make(), start, gradients, keras_apply, compiled)
    assert ours_steps == their_steps == len(gradients)
    # Keras rounds 1 - beta to float32 from a Python float, the kernel subtracts in float32:
    # about 2e-7 relative on the gradient's share, up to ~1e-5 of a moment after 4 steps.
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5 * np.abs(b).max())
    # The weights did move (the comparison is not between two untouched copies).
    assert np.abs(ours[0] - start[0]).max() > 1e-4


def built(optimizer):
    optimizer.build([keras.Variable(np.zeros((1,), "float32"))])
    return optimizer


class MyAdam(keras.optimizers.Adam):
    """A subclass: its update may differ, so it is never fused."""


@pytest.mark.parametrize(
    "optimizer",
    [
        keras.optimizers.Adam(amsgrad=True),
        keras.optimizers.Adam(weight_decay=0.01),
        keras.optimizers.Adam(use_ema=True),
        keras.optimizers.Adam(gradient_accumulation_steps=2),
        keras.optimizers.Adam(loss_scale_factor=4.0),
        keras.optimizers.AdamW(),
        keras.optimizers.SGD(),
        MyAdam(),
    ],
    ids=["amsgrad", "weight_decay", "use_ema", "accumulation", "loss_scale_factor", "AdamW",
         "SGD", "subclass"],
)
def test_other_optimizers_and_options_take_keras_own_update(optimizer):
    start, gradients = weights_and_gradients(steps=2)
    config = optimizer.get_config()
    assert not adam_step.fusable(built(type(optimizer)(**config)), [keras.Variable(start[0])])
    ours, _ = run(type(optimizer)(**config), start, gradients, adam_step.apply_gradients, False)
    theirs, _ = run(type(optimizer)(**config), start, gradients, keras_apply, False)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)


def test_unbuilt_optimizers_constraints_and_strategies_are_not_fused():
    weight = keras.Variable(np.ones((2,), "float32"))
    assert not adam_step.fusable(keras.optimizers.Adam(), [weight])  # not built
    optimizer = built(keras.optimizers.Adam())
    assert adam_step.fusable(optimizer, [weight])
    constrained = keras.Variable(np.ones((2,), "float32"))
    constrained.constraint = keras.constraints.NonNeg()
    assert not adam_step.fusable(optimizer, [constrained])
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        assert not adam_step.fusable(optimizer, [weight])


def tiny_model(optimizer):
    keras.utils.set_random_seed(0)
    network = tiny_unet(SHAPE)
    model = keras_ddpm.DDPM(network, keras_ddpm.NoiseSchedule("linear", 20), seed=0,
                            ema_decay=0.9, ema_warmup=False)
    model.compile(optimizer=optimizer)
    return model


def test_training_with_the_fused_update_equals_training_with_keras_update(monkeypatch):
    kernels = []  # ResourceApplyAdam ops built while tracing
    original = tf.raw_ops.ResourceApplyAdam
    monkeypatch.setattr(tf.raw_ops, "ResourceApplyAdam",
                        lambda **kwargs: kernels.append(1) or original(**kwargs))
    images = np.random.default_rng(0).uniform(-1, 1, (32,) + SHAPE).astype("float32")
    fused = tiny_model(keras.optimizers.Adam(3e-3))
    unfused = tiny_model(MyAdam(3e-3))
    history, counts = [], []
    for model in (fused, unfused):
        fit = model.fit(images, batch_size=16, epochs=2, verbose=0, shuffle=False)
        history.append(fit.history["loss"])
        counts.append(len(kernels))
    # One fused kernel a trainable weight in the traced step; none for the subclass.
    assert counts == [len(fused.network.trainable_weights)] * 2
    np.testing.assert_allclose(history[0], history[1], rtol=1e-5)
    assert int(fused.optimizer.iterations.numpy()) == 4
    for a, b in zip(fused.network.weights + fused.ema_weights,
                    unfused.network.weights + unfused.ema_weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)
