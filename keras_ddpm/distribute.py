"""What a training step needs under a `tf.distribute` strategy with several replicas.

- Per-replica randomness: the model's `SeedGenerator` state is a mirrored
  variable, the same on every replica, so each replica folds the generator's
  state with its global replica id (`replica_id_in_sync_group`, counting the
  replicas of every worker) and draws its own t, ε and class dropout.
- Replica-wide loss-scale skips: the loss-scale optimizer checks each
  replica's own gradients before they are summed, so an overflow on one
  replica must skip the step (and halve the scale) on every replica.
- Logs Keras can average across workers.
"""

import numpy as np
import tensorflow as tf
from keras import ops

from keras_ddpm import rng

# The streams of an example's key: its timestep and its noise.
_T, _NOISE = 0, 1


def example_keys(seed_generator, batch):
    """One `keras_ddpm.rng` key per example of this step's batch (`[batch, 2]` int32).

    The generator's next state is the step's key; under a strategy with
    several replicas it is folded with the global replica id first, so that
    each replica draws its own t, ε and class dropout.
    """
    key = ops.cast(seed_generator.next(), "int32")  # int64 words, wrapped to their low bits
    replica = tf.distribute.get_replica_context()
    if replica is not None and replica.num_replicas_in_sync > 1:
        key = rng.fold_in(key, replica.replica_id_in_sync_group)
    return rng.image_keys(key, 0, batch)


def draw_training_noise(images, timesteps, seed_generator):
    """`(t, noise)` for a batch: t uniform over `0 … timesteps − 1` (int32 `[B]`), ε ~ N(0, I).

    Example b's t and ε are drawn under its key of `example_keys`
    (counter-based, so the same with or without XLA).
    """
    keys = example_keys(seed_generator, ops.shape(images)[0])
    t = rng.randint(rng.fold_in(keys, _T), timesteps)
    return t, rng.normal(rng.fold_in(keys, _NOISE), ops.shape(images)[1:])


def drop_labels(labels, rate, null_label, seed_generator):
    """Replaces each label by `null_label` with probability `rate` (class dropout), per replica."""
    uniform = rng.uniform(example_keys(seed_generator, ops.shape(labels)[0]))
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
