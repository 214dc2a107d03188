"""A training step's randomness, one key per example, on one device or several.

Under a `tf.distribute` strategy the model's `SeedGenerator` state is a
mirrored variable, the same on every replica, so each replica folds it with
its global replica id (the room's `replica_key`) and draws its own t, ε and
class dropout. Under `keras.distribution` on JAX one program sees the global
batch, whose examples have their own keys already.

The rest of what several replicas need lives in the backend's room:
`skip_on_any_replica` (a loss-scale overflow on one replica skips the step on
all) and `shape_logs` (logs Keras can average across workers).
"""

from keras import ops

from keras_ddpm import backend
from keras_ddpm import rng

# The streams of an example's key: its timestep and its noise.
_T, _NOISE = 0, 1


def example_keys(seed_generator, batch):
    """One `keras_ddpm.rng` key per example of this step's batch (`[batch, 2]` int32).

    The generator's next state is the step's key; under a `tf.distribute`
    strategy with several replicas it is folded with the global replica id
    first, so that each replica draws its own t, ε and class dropout.
    """
    key = ops.cast(seed_generator.next(), "int32")  # int64 words, wrapped to their low bits
    return rng.image_keys(backend.room().replica_key(key), 0, batch)


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
