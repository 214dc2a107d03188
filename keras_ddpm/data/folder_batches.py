"""`load_image_folder_batches`: a folder of images as a `keras.utils.PyDataset`, any backend.

The images of `load_image_folder` (the same files, checks, labels, centre crop and
antialiased bilinear resize, within 2e-6), read without TensorFlow
(`image_files.read_image`: Pillow decodes and resizes, NumPy crops) in the
PyDataset's worker threads. A run on JAX or PyTorch can so train on its own folder
where TensorFlow is not installed (the GPU machines this project borrows have none).

The order and the flips of a pass are a function of `(seed, epoch)`, as for the
`tf.data` loaders (`loader_common`), so a resumed run sees the batches an
uninterrupted one saw; they are drawn with NumPy, so they are not the `tf.data`
loader's order and flips. Each pass visits every file once.
"""

import numpy as np

from keras_ddpm.data import image_files
from keras_ddpm.data.batches import SeededBatches
from keras_ddpm.data.batches import draw_seed
from keras_ddpm.data.loader_common import check_batch_size
from keras_ddpm.data.loader_common import check_channels
from keras_ddpm.data.loader_common import check_image_size


def load_image_folder_batches(
    path,
    image_size,
    batch_size=128,
    channels=3,
    shuffle=True,
    random_flip=False,
    with_labels=False,
    seed=None,
    on_error="raise",
    workers=4,
):
    """Loads a folder of images as batches in [-1, 1], on every Keras backend.

    What `load_image_folder` does, without TensorFlow: every file below `path`
    with an image extension is decoded once when the batches are made (an
    unreadable one is named, or skipped with `on_error="skip"`), then read as
    batches are asked for, converted to `channels` channels, centre-cropped to
    the aspect ratio of `image_size` and resized (bilinear, antialiased). The
    result is a `keras.utils.PyDataset`, which `fit` takes on every backend.

    Args:
        path, image_size, batch_size, channels, shuffle, random_flip,
        with_labels, seed, on_error: as `load_image_folder`'s (the same
        defaults: 128 images a batch, 3 channels, shuffled, no flips, no
        labels, a drawn seed, `"raise"`).
        workers: int, threads decoding batches ahead of training (Pillow and
            the resize release the GIL). Defaults to `4`.

    Returns:
        A `FolderBatches` (`keras.utils.PyDataset`) of float32 batches
        `(B, height, width, channels)`, or `(images, labels)` batches; its
        `class_names` lists the classes when `with_labels=True`.

    Example:

    ```python
    # KERAS_BACKEND=jax, no TensorFlow installed; photos/*.jpg
    batches = keras_ddpm.data.load_image_folder_batches("photos", 64, seed=0)
    model.fit(batches, epochs=10)
    ```
    """
    image_size = check_image_size(image_size, allow_none=False)
    batch_size = check_batch_size(batch_size)
    channels = check_channels(channels)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"Expected `workers` to be an int >= 1; received workers={workers!r}.")
    root, files = image_files.folder_files(path)
    files = image_files.check_readable(files, on_error)
    class_names = labels = None
    if with_labels:
        class_names, labels = image_files.class_labels(root, files)
    return FolderBatches(
        files, labels, class_names, image_size, batch_size, channels, shuffle, random_flip,
        draw_seed(seed), workers,
    )


class FolderBatches(SeededBatches):
    """The batches of `load_image_folder_batches`; made by it (see there)."""

    def __init__(
        self, files, labels, class_names, image_size, batch_size, channels, shuffle, random_flip,
        seed, workers,
    ):
        super().__init__(
            len(files), labels, (*image_size, channels), batch_size, shuffle, random_flip, seed,
            workers,
        )
        self.files = list(files)
        self.class_names = class_names
        self.image_size = image_size
        self.channels = channels

    def read(self, indices):
        return np.stack(
            [image_files.read_image(self.files[i], self.channels, self.image_size) for i in indices]
        )
