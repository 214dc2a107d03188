"""`DDPM.fit`'s own order for arrays and PyDatasets, so that a resumed run is the uninterrupted one.

Keras shuffles arrays (`tf.random.shuffle` or NumPy) and a PyDataset's batch order (Python's
`random`) with the process's RNG: a run resumed in a new process from a backup sees
another order than the uninterrupted run did. Where Keras would shuffle so (its default
`shuffle=True`), `fit` passes the data as keras_ddpm batches whose passes are drawn from
`(seed, epoch)` instead (`data.batches`), the seed being the model's noise seed (saved with
every backup) and the epoch the one `fit` starts from (`loader_common.StartEpoch`).
"""

import math

import keras
import numpy as np

from keras_ddpm import checks
from keras_ddpm import sample_weights
from keras_ddpm.data import batches
from keras_ddpm.data import loader_common

# `keras.Model.fit`'s batch size when it is not given.
KERAS_DEFAULT_BATCH_SIZE = 32
# Arguments that only Keras' own array path takes: with one of them, `fit` leaves the order to it.
_KERAS_ONLY = ("steps_per_epoch",)


def epoch_ordered(arguments):
    """Puts `fit`'s `x` into an order drawn from `(seed, epoch)` where Keras would shuffle it.

    Arrays of images (with their `y` labels and `sample_weight`, or the weights that
    `class_weight` gives the training part's labels) become `FitArrays` (after
    `validation_split`, taken as Keras takes it: the last part, unshuffled); a finite
    `keras.utils.PyDataset` becomes `ShuffledBatches`. Arrays with `sample_weight` but no
    labels (an unconditional model's), which Keras would drop, become `FitArrays` whatever
    `shuffle` says (in their order if it is `False`).

    Args:
        arguments: `keras.Model.fit`'s arguments by name, changed in place.

    Returns:
        The reordered dataset (its `seed` for `OrderSeed` to set), or `None` where Keras'
        order stays: `shuffle` not `True` (but for weights without labels), a dataset or
        generator (their own order), or an argument only Keras' array path takes.
    """
    x = arguments.get("x")
    shuffle = arguments.get("shuffle", True)
    # Keras drops an array's weights without labels: an unconditional `fit` carries them here.
    weights_alone = arguments.get("sample_weight") is not None and arguments.get("y") is None
    if shuffle is not True and not weights_alone:
        return None
    if any(arguments.get(name) is not None for name in _KERAS_ONLY):
        return None
    if arguments.get("class_weight") is not None and (
        arguments.get("sample_weight") is not None or not _is_array(arguments.get("y"))
    ):
        return None  # Keras' own answer (it refuses both at once; a PyDataset maps its own)
    if isinstance(x, keras.utils.PyDataset) and shuffle is True:
        if getattr(x, loader_common.EPOCH_COUNTER, None) is not None or x.num_batches is None:
            return None  # a keras_ddpm loader orders itself; Keras does not shuffle endless ones
        ordered = batches.ShuffledBatches(x)
    elif (
        _is_array(x) and len(x.shape) == 4 and _is_array_or_none(arguments.get("y"))
        and _is_array_or_none(arguments.get("sample_weight"))
    ):
        images, extras, batch_size = _arrays_taken(arguments)
        split = arguments.pop("validation_split", 0.0)
        if split and arguments.get("validation_data") is None:
            at = int(math.floor(len(images) * (1.0 - split)))
            if at in (0, len(images)):
                raise ValueError(
                    f"validation_split={split} leaves no training or no validation image of "
                    f"{len(images)}; pass a fraction that keeps at least one of each."
                )
            held_out = [None if a is None else a[at:] for a in extras]
            if weights_alone:
                held_out_batch = arguments.pop("validation_batch_size", None) or batch_size
                arguments["validation_data"] = FitArrays(
                    images[at:], *held_out, batch_size=held_out_batch, shuffle=False
                )
            else:
                arguments["validation_data"] = tuple(
                    a for a in (images[at:], *held_out) if a is not None
                )
                arguments.setdefault("validation_batch_size", batch_size)
            images, extras = images[:at], [None if a is None else a[:at] for a in extras]
        class_weight = arguments.pop("class_weight", None)
        if class_weight is not None:  # the training part's, as Keras weighs no held-out image
            extras[1] = sample_weights.from_class_weight(extras[0], class_weight)
        ordered = FitArrays(images, *extras, batch_size=batch_size, shuffle=bool(shuffle))
    else:
        return None
    arguments["x"] = ordered
    arguments["shuffle"] = False
    return ordered


def _is_array(value):
    return hasattr(value, "shape") and hasattr(value, "dtype")


def _is_array_or_none(value):
    return value is None or _is_array(value)


class FitArrays(batches.SeededBatches):
    """`fit`'s arrays as they came (uint8 or float images, which the training step maps and
    checks as it does Keras' batches; labels; sample weights), in passes drawn from
    `(seed, epoch)`.

    Args:
        images: `(N, H, W, C)` array.
        labels: `None` or `(N,)` integer array.
        sample_weight: `None` or `(N,)` array of per-example loss weights (batches are then
            `(images, labels, weights)`, or without labels `{"image", "sample_weight"}`).
        batch_size: int, images a batch; the last batch may be smaller.
        seed: int, the seed of the orders (`OrderSeed` sets it when `fit` starts).
        shuffle: bool, whether each pass is a new permutation (else the arrays' order).
    """

    def __init__(self, images, labels, sample_weight=None, batch_size=KERAS_DEFAULT_BATCH_SIZE,
                 seed=0, shuffle=True):
        super().__init__(
            len(images), labels, images.shape[1:], batch_size, shuffle=shuffle,
            random_flip=False, seed=seed, sample_weight=sample_weight,
        )
        self.images = images

    def read(self, indices):
        return self.images[indices]


def carry_weights_alone(arguments):
    """Carries `evaluate`'s `sample_weight` of arrays without labels (which Keras would drop)
    to the step: `x` becomes `{"image", "sample_weight"}` batches in the arrays' order.

    Args:
        arguments: `keras.Model.evaluate`'s arguments by name, changed in place.
    """
    x, weights = arguments.get("x"), arguments.get("sample_weight")
    if weights is None or arguments.get("y") is not None or not _is_array(x) or len(x.shape) != 4:
        return
    if not _is_array(weights):
        return  # Keras' own error
    images, extras, batch_size = _arrays_taken(arguments)
    arguments["x"] = FitArrays(images, *extras, batch_size=batch_size, shuffle=False)


def _arrays_taken(arguments):
    """Takes `x`, `y`, `sample_weight` and `batch_size` out of `arguments`: NumPy images,
    `[labels, weights]` (each `None` or an array of one value per image) and the batch size."""
    images = checks.as_numpy(arguments.pop("x"))
    extras = [arguments.pop(name, None) for name in ("y", "sample_weight")]
    extras = [None if a is None else checks.as_numpy(a) for a in extras]
    for name, extra in zip(("y", "sample_weight"), extras):
        if extra is not None and len(extra) != len(images):
            raise ValueError(
                f"`{name}` holds {len(extra)} values for {len(images)} images; give one per "
                "image."
            )
    return images, extras, arguments.pop("batch_size", None) or KERAS_DEFAULT_BATCH_SIZE


class OrderSeed(keras.callbacks.Callback):
    """Seeds an `epoch_ordered` dataset with the model's noise seed when `fit` starts.

    The seed is read at the first `on_epoch_begin`, after a backup restored the model
    (`RunBackup`, `BackupAndRestore`), and before the first pass is read.

    Args:
        dataset: what `epoch_ordered` returned.
    """

    def __init__(self, dataset):
        super().__init__()
        self.dataset = dataset

    def on_epoch_begin(self, epoch, logs=None):
        # A SeedGenerator's state is [seed, count]: the seed stays as the count advances.
        seed = int(np.asarray(self.model.seed_generator.state.numpy())[0])
        self.dataset.seed = seed % 2**63
