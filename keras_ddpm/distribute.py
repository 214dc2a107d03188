"""What a training step needs under a `tf.distribute` strategy with several replicas.

- Per-replica randomness: the model's `SeedGenerator` state is a mirrored
  variable, the same on every replica, so each replica folds the generator's
  seed with its global replica id (`replica_id_in_sync_group`, counting the
  replicas of every worker) and draws its own t, ε and class dropout.
- Replica-wide loss-scale skips: the loss-scale optimizer checks each
  replica's own gradients before they are summed, so an overflow on one
  replica must skip the step (and halve the scale) on every replica.
- Logs Keras can average across workers.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops


def replica_seed(seed_generator):
    """This replica's stateless seed for one draw, or `None` with a single replica.

    The generator's next seed, cast to int32 the way `keras.random` casts it,
    folded with the global replica id.
    """
    replica = tf.distribute.get_replica_context()
    if replica is None or replica.num_replicas_in_sync == 1:
        return None
    seed = tf.math.floormod(seed_generator.next(), tf.int32.max - 1)
    return tf.random.experimental.stateless_fold_in(
        tf.cast(seed, tf.int32), replica.replica_id_in_sync_group
    )


def draw_training_noise(images, timesteps, seed_generator):
    """`(t, noise)` for a batch: t uniform over `0 … timesteps − 1` (int32 `[B]`), ε ~ N(0, I).

    With one replica the draws are `seed_generator`'s own; with several, each
    replica draws from its own `replica_seed`.
    """
    batch = ops.shape(images)[0]
    t_seed = replica_seed(seed_generator)
    if t_seed is None:
        t = keras.random.randint((batch,), 0, timesteps, dtype="int32", seed=seed_generator)
        return t, keras.random.normal(ops.shape(images), seed=seed_generator)
    noise_seed = replica_seed(seed_generator)
    t = tf.random.stateless_uniform((batch,), t_seed, minval=0, maxval=timesteps, dtype=tf.int32)
    return t, tf.random.stateless_normal(ops.shape(images), noise_seed)


def drop_labels(labels, rate, null_label, seed_generator):
    """Replaces each label by `null_label` with probability `rate` (class dropout), per replica."""
    seed = replica_seed(seed_generator)
    if seed is None:
        uniform = keras.random.uniform(ops.shape(labels), seed=seed_generator)
    else:
        uniform = tf.random.stateless_uniform(ops.shape(labels), seed)
    return ops.where(uniform >= rate, labels, null_label)


def skip_on_any_replica(applied, gradients):
    """`(applied, gradients)` such that a step skipped on one replica is skipped on all.

    With one replica they come back unchanged. Otherwise the replicas sum
    their skips; where any replica skipped, every replica's gradients are
    poisoned with NaN so that the loss-scale optimizer skips them too.
    """
    replica = tf.distribute.get_replica_context()
    if replica is None or replica.num_replicas_in_sync == 1:
        return applied, gradients
    overflows = replica.all_reduce("sum", ops.cast(ops.logical_not(applied), "float32"))
    applied = ops.equal(overflows, 0.0)
    poison = ops.where(applied, 0.0, np.nan)
    return applied, [g if g is None else g + ops.cast(poison, g.dtype) for g in gradients]


def shape_logs(logs):
    """The step's logs shaped for Keras' cross-worker averaging.

    With several workers Keras averages the logs with
    `strategy.reduce("MEAN", value, axis=0)`, which needs an axis
    (tensorflow/tensorflow#72388): scalars become `[1]` (the global mean).
    """
    strategy = tf.distribute.get_strategy()
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and (
        strategy.num_replicas_in_sync > len(strategy.extended.worker_devices)
    ):
        return {name: ops.reshape(value, (1,)) for name, value in logs.items()}
    return logs
