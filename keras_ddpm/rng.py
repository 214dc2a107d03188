"""Counter-based random numbers: the same draws whatever compiles them, in `keras.ops`.

Every random number the package draws while sampling, editing and training is
a pure function of a key and a position, computed with integer arithmetic:
the Threefry-2x32 block cipher with 20 rounds (Salmon et al., 2011), the
generator JAX uses by default. Its output does not depend on XLA or plain
TensorFlow, on the device, on the number of threads or on how a batch is
split into chunks, because nothing about the computation is left to a kernel
library: TensorFlow's own stateless kernels give other numbers under XLA
for the same seed and algorithm (their bits agree, their floats do not).

Keys are int32 pairs (the bits of two uint32 words). A run's key comes from
its seed (`seed_key`); each image has its own key (`image_keys`), so image i
of a run draws the same noise whether it is generated alone, in a batch or in
the fourth chunk of a thousand; a step folds its index into the image keys
(`fold_in`). Draws read the counter (element index, 0) under a key;
`fold_in` enciphers (data, 1), so a derived key is never an output.

Floats: 24 bits of a word give a uniform in (0, 1) (`uniform`); Box–Muller
turns the two words of one counter into one standard normal (`normal`), whose
magnitude is at most √(2·ln 2²⁵) ≈ 5.89.

References:
    - [Salmon, Moraes, Dror & Shaw, 2011. Parallel random numbers: as easy as
      1, 2, 3](https://doi.org/10.1145/2063384.2063405) (Threefry; the
      known-answer vectors of its Random123 library test this module).
    - [Box & Muller, 1958. A note on the generation of random normal
      deviates](https://doi.org/10.1214/aoms/1177706645).
"""

import math

import numpy as np
from keras import ops

from keras_ddpm import backend

# Threefry-2x32's rotation constants, for the even and odd groups of four rounds.
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
# Threefish's key-schedule parity constant.
_PARITY = 0x1BD11BDA
_FOLD, _DRAW = 1, 0  # the counter's second word: a derived key, or a drawn number
_UNIT = 2.0**-24


def _rotate_left(x, r):
    """The int32 bits of x rotated left by r (a logical shift right, masked)."""
    high = ops.bitwise_and(ops.right_shift(x, 32 - r), (1 << r) - 1)
    return ops.bitwise_or(ops.left_shift(x, r), high)


def threefry2x32(key, counter):
    """Threefry-2x32-20 of `counter` under `key`: two int32 words (uint32 bits).

    The cipher's 20 rounds are a few hundred integer ops; on TensorFlow they are traced once
    a process (the room's `traced_once`), and every graph that draws calls that trace.

    Args:
        key: a pair `(k0, k1)` of int32 tensors (or ints), broadcastable.
        counter: a pair `(c0, c1)` of int32 tensors (or ints), broadcastable.

    Returns:
        `(x0, x1)`, int32 tensors of the broadcast shape. Additions wrap
        modulo 2³², as in the cipher.
    """
    words = [ops.cast(word, "int32") for word in (*key, *counter)]
    return backend.room().traced_once(_threefry2x32)(*words)


def _threefry2x32(k0, k1, c0, c1):
    schedule = (k0, k1, ops.bitwise_xor(ops.bitwise_xor(k0, k1), _PARITY))
    x0 = ops.add(c0, k0)
    x1 = ops.add(c1, k1)
    for group in range(5):
        for r in _ROTATIONS[group % 2]:
            x0 = ops.add(x0, x1)
            x1 = ops.bitwise_xor(_rotate_left(x1, r), x0)
        x0 = ops.add(x0, schedule[(group + 1) % 3])
        x1 = ops.add(ops.add(x1, schedule[(group + 2) % 3]), group + 1)
    return x0, x1


def seed_key(seed):
    """The int32 `[2]` key of a run seeded `seed`: its low and high 32 bits.

    Args:
        seed: a Python int (any size; taken modulo 2⁶⁴) or an int32/int64
            scalar tensor (the SavedModel's input).
    """
    if isinstance(seed, (int, np.integer)):
        words = np.array([int(seed) % 2**64], np.uint64).view(np.uint32)  # little-endian: low first
        return ops.convert_to_tensor(words.view(np.int32))
    seed = ops.cast(seed, "int64")
    low = ops.cast(ops.bitwise_and(seed, 0xFFFFFFFF), "int64")
    low = ops.cast(ops.where(low >= 2**31, low - 2**32, low), "int32")
    high = ops.cast(ops.bitwise_and(ops.right_shift(seed, 32), 0xFFFFFFFF), "int64")
    high = ops.cast(ops.where(high >= 2**31, high - 2**32, high), "int32")
    return ops.stack([low, high])


def fold_in(keys, data):
    """Keys derived from `keys` (int32 `[..., 2]`) and int32 `data` (broadcastable to `keys[..., 0]`)."""
    x0, x1 = threefry2x32((keys[..., 0], keys[..., 1]), (data, _FOLD))
    return ops.stack([x0, x1], axis=-1)


def image_keys(key, first, count):
    """The keys `[count, 2]` of images `first … first + count − 1` of a run keyed `key` (`[2]`)."""
    index = ops.add(ops.arange(count, dtype="int32"), ops.cast(first, "int32"))
    return fold_in(ops.expand_dims(key, 0), index)


def as_image_keys(seed, batch):
    """`seed` as one key per image: a `[batch, 2]` array as is; a `[2]` key gives `image_keys`."""
    seed = ops.cast(ops.convert_to_tensor(seed), "int32")
    if len(seed.shape) == 1:
        return image_keys(seed, 0, batch)
    return seed


def _words(keys, shape):
    """The two int32 words of each element of `[len(keys), *shape]`, image b under `keys[b]`."""
    static = all(isinstance(d, int) for d in shape)
    size = math.prod(shape) if static else ops.prod(ops.convert_to_tensor(shape))
    counter = ops.expand_dims(ops.arange(size, dtype="int32"), 0)
    x0, x1 = threefry2x32((keys[:, 0:1], keys[:, 1:2]), (counter, _DRAW))
    shape = (-1,) + tuple(shape)
    return ops.reshape(x0, shape), ops.reshape(x1, shape)


def _unit(word):
    """A uniform in (0, 1) from the high 24 bits of an int32 word: (n + ½)·2⁻²⁴."""
    high = ops.bitwise_and(ops.right_shift(word, 8), 0xFFFFFF)
    return (ops.cast(high, "float32") + 0.5) * _UNIT


def uniform(keys, shape=()):
    """float32 uniforms in (0, 1), `[len(keys), *shape]`, image b's drawn under `keys[b]`."""
    return _unit(_words(keys, shape)[0])


def randint(keys, maxval, shape=()):
    """int32 integers uniform over `0 … maxval − 1`, `[len(keys), *shape]`, under `keys[b]`."""
    value = ops.floor(uniform(keys, shape) * float(maxval))
    return ops.minimum(ops.cast(value, "int32"), maxval - 1)


def normal(keys, shape, dtype="float32"):
    """Standard normal floats `[len(keys), *shape]`, image b's drawn under `keys[b]` (Box–Muller).

    Args:
        keys: int32 `[B, 2]`, one key per image (`image_keys`).
        shape: one image's shape, `(H, W, C)`; ints, or int32 scalars
            where only the running graph knows them.
        dtype: the result's float dtype. Defaults to `"float32"`.

    Example:

    >>> keys = image_keys(seed_key(0), 0, 4)           # images 0..3 of a run seeded 0
    >>> x_T = normal(keys, (8, 8, 1))                  # [4, 8, 8, 1]
    >>> step_noise = normal(fold_in(keys, 7), (8, 8, 1))  # step 7's, another stream
    """
    first, second = _words(keys, shape)
    radius = ops.sqrt(-2.0 * ops.log(_unit(first)))
    return ops.cast(radius * ops.cos((2.0 * math.pi) * _unit(second)), dtype)
