"""Batches as a `keras.utils.PyDataset` whose passes are drawn from `(seed, epoch)`: any backend.

`SeededBatches` holds what the TensorFlow-free loaders share: the order of a pass
(a permutation drawn from `(seed, epoch)` with NumPy, or the stored order), the
random horizontal flips of a batch (drawn from `(seed, epoch, batch)`), the labels
and the epoch counter that `DDPM.fit` sets when it starts (`loader_common`), so a
resumed run sees the batches an uninterrupted one saw. A subclass says how its
images are read (`read`). `ArrayBatches` reads them from an array in memory
(`from_array_batches`, and `load_digits_batches`: the digits of
`load_dataset_spec` where TensorFlow is not installed);
`folder_batches.FolderBatches` reads image files.

Its orders and flips are NumPy's, so they are not the `tf.data` loaders' (whose
are TensorFlow's); both are functions of `(seed, epoch)`.
"""

import math
import threading

import keras
import numpy as np

from keras_ddpm import batch_keys
from keras_ddpm.data import image_files
from keras_ddpm.data.digits import DIGITS_MAX_VALUE
from keras_ddpm.data.digits import read_digits_asset
from keras_ddpm.data.loader_common import check_array_loader
from keras_ddpm.data.loader_common import check_batch_size
from keras_ddpm.data.loader_common import check_image_size


def draw_seed(seed):
    """`seed` as an int, or a fresh one drawn from the operating system's entropy if `None`."""
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1)[0] >> 1)
    return int(seed)


class PassOrders:
    """The order of `count` examples (or batches) in each pass: a permutation drawn from
    `(seed, epoch)` with NumPy when `shuffle`, else `0, 1, ..., count - 1`; drawn once a
    pass for every worker thread.

    Args:
        count: int, how many things are ordered.
        shuffle: bool, whether each pass is a new permutation.
    """

    def __init__(self, count, shuffle):
        self.count = int(count)
        self.shuffle = shuffle
        self._last = (None, None)  # ((seed, epoch), its order)
        self._lock = threading.Lock()

    def __getstate__(self):
        # Keras' worker processes get the dataset pickled where processes are spawned (macOS,
        # Windows, Python 3.14's Linux default): the lock stays behind, a new one is made there.
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state, _lock=threading.Lock())

    def __call__(self, seed, epoch):
        with self._lock:
            if self._last[0] != (seed, epoch):
                order = np.arange(self.count)
                if self.shuffle:
                    order = np.random.default_rng([seed, epoch]).permutation(self.count)
                self._last = ((seed, epoch), order)
            return self._last[1]


class EpochCounter:
    """The epoch of a pass, set as a `tf.Variable` is (`assign`); read by the batches."""

    def __init__(self):
        self.value = 0

    def assign(self, epoch):
        self.value = int(epoch)


class SeededBatches(keras.utils.PyDataset):
    """Batches of `count` examples whose order and flips are drawn from `(seed, epoch)`.

    Subclasses implement `read(indices)`: the float32 images `(N, H, W, C)` of
    those examples, a new array (it is flipped in place).

    Args:
        count: int, the number of examples.
        labels: `None` or an int32 array of `count` labels; batches are then
            `(images, labels)` pairs.
        image_shape: the `(height, width, channels)` of every image.
        batch_size: int, examples per batch; the last batch may be smaller.
        shuffle: bool, whether each pass is a new permutation.
        random_flip: bool, whether about half the images of a batch are
            mirrored left to right.
        seed: int, the seed of the orders and flips.
        workers: int, threads reading batches ahead of training.
        sample_weight: `None` or an array of `count` per-example loss weights;
            batches are then `(images, labels, weights)`, or without labels
            `{"image": images, "sample_weight": weights}`.
    """

    def __init__(self, count, labels, image_shape, batch_size, shuffle, random_flip, seed,
                 workers=1, sample_weight=None):
        super().__init__(workers=workers, use_multiprocessing=False)
        self.count = int(count)
        self.labels = labels
        self.sample_weight = sample_weight
        self.image_shape = tuple(image_shape)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.random_flip = random_flip
        self.seed = seed
        # `DDPM.fit` sets it to the epoch it starts from (`loader_common.StartEpoch`).
        self.epoch_counter = EpochCounter()
        self._orders = PassOrders(self.count, shuffle)

    def read(self, indices):
        raise NotImplementedError

    def __len__(self):
        return math.ceil(self.count / self.batch_size)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"Batch index {index} out of range for {len(self)} batches.")
        epoch = self.epoch_counter.value
        start = index * self.batch_size
        chosen = self._orders(self.seed, epoch)[start : start + self.batch_size]
        images = self.read(chosen)
        if self.random_flip:
            flips = np.random.default_rng([self.seed, epoch, index]).random(len(chosen)) < 0.5
            images[flips] = images[flips, :, ::-1]
        if self.sample_weight is not None and self.labels is None:  # Keras drops (x, None, w)
            return {batch_keys.IMAGE: images, batch_keys.SAMPLE_WEIGHT: self.sample_weight[chosen]}
        if self.sample_weight is not None:
            return images, self.labels[chosen], self.sample_weight[chosen]
        if self.labels is not None:
            return images, self.labels[chosen]
        return images

    def on_epoch_end(self):
        self.epoch_counter.assign(self.epoch_counter.value + 1)


class ShuffledBatches(keras.utils.PyDataset):
    """Another `keras.utils.PyDataset`'s batches in an order drawn from `(seed, epoch)`.

    `DDPM.fit` passes a finite PyDataset through it where Keras would shuffle the batch
    order with Python's `random` (its default `shuffle=True`), so that a run resumed in a new
    process sees the batches an uninterrupted one saw. Reads, workers and the dataset's own
    `on_epoch_begin`/`on_epoch_end` are the dataset's.

    Args:
        dataset: a `keras.utils.PyDataset` with a finite `num_batches`.
        seed: int, the seed of the orders (`DDPM.fit` sets it from the model's noise seed
            when it starts).
    """

    def __init__(self, dataset, seed=0):
        super().__init__(
            workers=dataset.workers, use_multiprocessing=dataset.use_multiprocessing,
            max_queue_size=dataset.max_queue_size,
        )
        self.dataset = dataset
        self.seed = seed
        self.epoch_counter = EpochCounter()  # set by `DDPM.fit` (`loader_common.StartEpoch`)
        self._orders = PassOrders(dataset.num_batches, shuffle=True)

    def __len__(self):
        return self.dataset.num_batches

    def __getitem__(self, index):
        order = self._orders(self.seed, self.epoch_counter.value)
        return self.dataset[int(order[index])]

    def on_epoch_begin(self):
        self.dataset.on_epoch_begin()

    def on_epoch_end(self):
        self.dataset.on_epoch_end()
        self.epoch_counter.assign(self.epoch_counter.value + 1)


class ArrayBatches(SeededBatches):
    """`SeededBatches` of images held in memory, scaled and resized a batch at a time.

    Made by `from_array_batches` and `load_digits_batches` (see there).

    Args:
        images: `(N, H, W, C)` integer pixels 0..`max_value`, or float32 in
            [-1, 1] when `max_value` is `None`.
        labels, batch_size, shuffle, random_flip, seed: as `SeededBatches`'.
        max_value: `None` or the integer pixels' full intensity (mapped to +1).
        image_size: `None` or the `(height, width)` every image is centre
            cropped and resized to (bilinear, antialiased; `image_files`).
    """

    def __init__(self, images, labels, max_value, image_size, batch_size, shuffle, random_flip,
                 seed):
        shape = (*(image_size or images.shape[1:3]), images.shape[3])
        super().__init__(len(images), labels, shape, batch_size, shuffle, random_flip, seed)
        self.images = images
        self.max_value = max_value
        self.image_size = image_size

    def read(self, indices):
        images = self.images[indices]  # fancy indexing: a copy, flipped in place safely
        if self.max_value is not None:
            images = image_files.to_unit_range(images, self.max_value)
        if self.image_size is not None:
            images = np.stack(
                [image_files.center_crop_and_resize(image, self.image_size) for image in images]
            )
        return images


def from_array_batches(
    images, labels=None, batch_size=128, image_size=None, shuffle=True, random_flip=False, seed=None
):
    """Batches of in-memory images in [-1, 1], on every Keras backend.

    What `from_array` does, without TensorFlow: uint8 images map as
    `v / 127.5 - 1`, float images must lie in [-1, 1]; with `image_size` they
    are centre-cropped and resized (bilinear, antialiased, within 5e-6 of
    `from_array`), a batch at a time, so the array is not copied whole. The
    passes are drawn from `(seed, epoch)`, so a resumed `fit` sees the batches
    an uninterrupted one saw (as `DDPM.fit` orders arrays it is given itself).

    Args:
        images, labels, batch_size, image_size, shuffle, random_flip, seed: as
            `from_array`'s (the same defaults: no labels, 128 images a batch,
            the stored size, shuffled, no flips, a drawn seed).

    Returns:
        An `ArrayBatches` (`keras.utils.PyDataset`) of float32 batches
        `(B, H, W, C)`, or `(images, labels)` batches with int32 labels.

    Raises:
        ValueError: images not shaped `(N, H, W)` or `(N, H, W, C)` with `C`
            1 or 3, float images outside [-1, 1], labels not one per image, or
            a bad `batch_size` or `image_size`.
        TypeError: images neither uint8 nor float, or labels not integers.

    Example:

    ```python
    # KERAS_BACKEND=jax, no TensorFlow installed
    (x_train, _), _ = keras.datasets.cifar10.load_data()  # uint8
    model.fit(keras_ddpm.data.from_array_batches(x_train, random_flip=True, seed=0), epochs=10)
    ```
    """
    images, max_value, labels, batch_size, image_size = check_array_loader(
        images, labels, batch_size, image_size
    )
    return ArrayBatches(
        images, labels, max_value, image_size, batch_size, shuffle, random_flip, draw_seed(seed)
    )


def load_digits_batches(batch_size=128, image_size=None, with_labels=False, shuffle=True,
                        seed=None):
    """Loads the embedded digits as batches in [-1, 1], on every Keras backend.

    What `load_digits` does, without TensorFlow: the 1,797 digits of
    `load_digits_arrays`, resized when `image_size` is set (bilinear,
    antialiased, as `load_digits`, within 5e-6), as a `keras.utils.PyDataset`
    whose passes are drawn from `(seed, epoch)`. Not mirrored: a mirrored
    digit is not a digit.

    Args:
        batch_size, image_size, with_labels, shuffle, seed: as `load_digits`'
            (the same defaults: 128 images a batch, 8x8, no labels, shuffled,
            a drawn seed).

    Returns:
        An `ArrayBatches` (`keras.utils.PyDataset`) of float32 batches
        `(B, H, W, 1)`, or `(images, labels)` batches with int32 digits 0..9.

    Example:

    ```python
    # KERAS_BACKEND=jax, no TensorFlow installed
    model.fit(keras_ddpm.data.load_digits_batches(64, seed=0), epochs=10)
    ```
    """
    batch_size = check_batch_size(batch_size)
    image_size = check_image_size(image_size)
    images, labels = read_digits_asset()  # 0..16, as `load_digits` scales them
    return ArrayBatches(
        images[..., np.newaxis], labels.astype(np.int32) if with_labels else None,
        DIGITS_MAX_VALUE, image_size, batch_size, shuffle, False, draw_seed(seed),
    )
