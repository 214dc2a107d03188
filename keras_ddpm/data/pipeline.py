"""What every `tf.data` loader shares: pixel scaling, resizing and the batch tail.

A loader turns its source into a `tf.data.Dataset` of raw images (or
`(raw_image, label)` pairs) and a `preprocess` function, and hands both to
`batch_pipeline`, which shuffles, preprocesses, batches, flips and
prefetches in the same order for every source.
"""

import numpy as np

from keras_ddpm import backend
from keras_ddpm.data.loader_common import EPOCH_COUNTER

# On JAX or PyTorch, keeps TensorFlow from reserving the GPUs' memory (every tf.data loader
# imports this module before it runs an op).
tf = backend.import_tensorflow()

_AUTOTUNE = tf.data.AUTOTUNE


def disable_autotune(dataset):
    """Returns `dataset` with tf.data's autotuning switched off.

    tf.data's autotuner runs a background thread that wakes at doubling
    intervals (10 ms, 20 ms, ... ); when Keras drops an epoch's iterator, the
    iterator is only released at that thread's next wake-up, so short epochs
    wait for it (figures: the README's "Measurements behind the design"). With it
    off, `num_parallel_calls=tf.data.AUTOTUNE` maps run with a fixed degree
    of parallelism and `prefetch(tf.data.AUTOTUNE)` still overlaps input and
    training (tested). Apply it to your own pipelines with short epochs.

    Args:
        dataset: a `tf.data.Dataset`.

    Returns:
        The dataset with `options().autotune.enabled == False`.

    Example:

    ```python
    dataset = keras_ddpm.data.disable_autotune(
        tf.data.Dataset.from_tensor_slices(images).batch(32).prefetch(tf.data.AUTOTUNE)
    )
    model.fit(dataset, epochs=10)
    ```
    """
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            f"disable_autotune expects a tf.data.Dataset; received {type(dataset).__name__}."
        )
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


# 2. Image maths shared by the loaders.


def to_unit_range(images, max_value=255):
    """Maps integer pixels 0..max_value linearly onto [-1, 1] as float32."""
    return tf.cast(images, tf.float32) / (max_value / 2.0) - 1.0


def center_crop_and_resize(image, size, method="bilinear"):
    """Crops the largest centred window with the aspect ratio of `size`, then resizes.

    The one crop-and-resize of the package: training data (`load_folder`, `load_tfds`) and
    the command line's `--resize` of images and masks.

    Args:
        image: a float `(H, W, C)` tensor or array in [-1, 1] (or a mask in [0, 1]); its
            size may be dynamic.
        size: `(height, width)` of the result.
        method: `"bilinear"` (with antialiasing, so shrinking does not alias) for
            images, `"nearest"` for masks. Defaults to `"bilinear"`.
    """
    height, width = size
    if tuple(image.shape[:2]) == (height, width):
        return image
    shape = tf.shape(image)
    in_height, in_width = shape[0], shape[1]
    crop_height = tf.clip_by_value((in_width * height + width // 2) // width, 1, in_height)
    crop_width = tf.clip_by_value((in_height * width + height // 2) // height, 1, in_width)
    top = (in_height - crop_height) // 2
    left = (in_width - crop_width) // 2
    image = image[top : top + crop_height, left : left + crop_width]
    image = tf.image.resize(image, (height, width), method=method, antialias=method != "nearest")
    return tf.clip_by_value(image, -1.0, 1.0)


# 3. The tail of every pipeline.


# Mixes a seed and an epoch into one int64 shuffle seed (a prime > any epoch count).
_EPOCH_STRIDE = 1_000_003


def batch_pipeline(
    dataset, preprocess, *, with_labels, batch_size, shuffle, shuffle_buffer, random_flip, seed
):
    """The tail every loader shares: shuffle, preprocess, batch, flip, prefetch, by epoch.

    `dataset` yields raw images (or `(raw_image, label)` pairs when
    `with_labels`); shuffling happens before `preprocess` so that the buffer
    holds the compact raw form (bytes, paths or uint8 pixels).

    The order and the flips of a pass are a function of `(seed, epoch)`, not of
    how many passes this process has made: each new iterator takes the next
    value of the dataset's `epoch_counter` (a `tf.Variable`, starting at 0),
    and `DDPM.fit` sets it to the epoch it starts from, so a run resumed at
    epoch k in a new process sees the batches an uninterrupted run saw.
    Without a `seed`, one is drawn when the dataset is made.
    """
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0] >> 1)
    seed = int(seed)
    batches = int(dataset.cardinality())
    counter = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch_counter")

    def one_epoch(_):
        epoch = counter.assign_add(1) - 1
        epoch_seed = tf.constant(seed, tf.int64) * _EPOCH_STRIDE + epoch
        passed = dataset
        if shuffle:
            passed = _shuffle_with_tensor_seed(passed, shuffle_buffer, epoch_seed)
        if with_labels:
            passed = passed.map(lambda x, y: (preprocess(x), y), num_parallel_calls=_AUTOTUNE)
        else:
            passed = passed.map(preprocess, num_parallel_calls=_AUTOTUNE)
        passed = passed.batch(batch_size)
        if random_flip:
            # One stateless seed pair per batch: (seed of the epoch, index of the batch).
            def flip(index, batch):
                pair = tf.stack([epoch_seed, index])
                if with_labels:
                    images, labels = batch
                    return tf.image.stateless_random_flip_left_right(images, pair), labels
                return tf.image.stateless_random_flip_left_right(batch, pair)

            passed = passed.enumerate().map(flip, num_parallel_calls=_AUTOTUNE)
        return passed

    epochs = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).flat_map(one_epoch)
    if batches >= 0:  # flat_map hides the size; Keras' progress bar wants it
        epochs = epochs.apply(tf.data.experimental.assert_cardinality(-(-batches // batch_size)))
    epochs = disable_autotune(epochs.prefetch(_AUTOTUNE))
    setattr(epochs, EPOCH_COUNTER, counter)
    return epochs


def _shuffle_with_tensor_seed(dataset, buffer_size, seed):
    """`dataset.shuffle` seeded by a tensor, also when a global seed is set.

    With a global seed (`keras.utils.set_random_seed`) TensorFlow combines it
    with the op's seed in Python and cannot take a tensor there; the op's seed
    alone is enough to make the order reproducible, so the global one is left
    out while this op is built.
    """
    graph = tf.compat.v1.get_default_graph()
    global_seed = graph.seed
    graph.seed = None
    try:
        return dataset.shuffle(buffer_size, seed=seed, reshuffle_each_iteration=False)
    finally:
        graph.seed = global_seed
