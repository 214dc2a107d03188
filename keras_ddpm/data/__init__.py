"""Input pipelines: the embedded digits, NumPy arrays, TFDS and image folders.

Every loader returns a batched, prefetched `tf.data.Dataset` whose elements are
float32 images shaped `(batch, height, width, channels)` with values in
`[-1, 1]`, or `(images, labels)` pairs with int32 labels when labels are asked
for. `[-1, 1]` is the scale DDPM works in (Ho et al. 2020, section 3.3):
integer pixels are scaled linearly so that 0 is -1 and full intensity is +1,
which keeps the network's inputs on the same scale as the standard normal
noise that sampling starts from. 8-bit pixels map as `v / 127.5 - 1`, so
0 -> -1, 255 -> +1, and `keras_ddpm.utils.to_uint8` inverts it exactly.

The last batch of an epoch may be smaller than `batch_size` (nothing is
dropped). With `shuffle=True` the order changes every epoch; passing `seed`
makes the whole sequence of epochs, and the random flips, reproducible. The
loaders switch tf.data's autotuning off (`disable_autotune`); parallel maps
and prefetching still run, with TensorFlow's fixed defaults.

`load_image_folder_batches`, `load_digits_batches` and `from_array_batches` are
the exceptions: the images of `load_image_folder`, `load_digits` and
`from_array` as a `keras.utils.PyDataset`, read without TensorFlow, for JAX and
PyTorch where TensorFlow is not installed (`load_dataset_spec` picks them
there).

Layout: `pipeline` (pixel scaling, resizing and the
shuffle-map-batch-flip-prefetch tail every `tf.data` loader shares),
`loader_common` (argument checks, arrays' included, and the epoch of a pass;
no TensorFlow), `digits` (the embedded digits as NumPy arrays; no
TensorFlow), `arrays` (`from_array` and `load_digits`), `tfds_loader`
(`load_tfds`), `image_files` (a folder's files, classes and readability; no
TensorFlow), `folders` (`load_image_folder`), `batches` (PyDatasets drawn
from `(seed, epoch)`: `from_array_batches`, `load_digits_batches`; no
TensorFlow), `folder_batches` (`load_image_folder_batches`; no TensorFlow)
and `specs` (the `digits` / `tfds:NAME` / `folder:PATH` strings of the
command line; no TensorFlow).

References:
    - [Ho et al., 2020. Denoising Diffusion Probabilistic Models](
      https://arxiv.org/abs/2006.11239)
"""

from keras_ddpm.data.specs import DATASET_SPECS
from keras_ddpm.data.specs import DatasetSpec
from keras_ddpm.data.specs import load_dataset_spec
from keras_ddpm.data.specs import parse_dataset_spec
from keras_ddpm.data.specs import spec_num_classes
from keras_ddpm.lazy import lazy_names

# Everything loads on first use, so that the command line can parse a dataset spec before
# TensorFlow loads; all but the digits' NumPy arrays and the PyDatasets need TensorFlow.
_LAZY = {
    "DIGITS_MAX_VALUE": "digits",
    "from_array": "arrays",
    "load_digits": "arrays",
    "load_digits_arrays": "digits",
    "ArrayBatches": "batches",
    "load_digits_batches": "batches",
    "from_array_batches": "batches",
    "IMAGE_EXTENSIONS": "image_files",
    "image_folder_class_names": "image_files",
    "load_image_folder": "folders",
    "FolderBatches": "folder_batches",
    "load_image_folder_batches": "folder_batches",
    "disable_autotune": "pipeline",
    "TFDS_SHUFFLE_BUFFER": "tfds_loader",
    "load_tfds": "tfds_loader",
}


_WITHOUT_TENSORFLOW = {"digits", "image_files", "batches", "folder_batches"}
_REQUIRES = {module: "tensorflow" for module in set(_LAZY.values()) - _WITHOUT_TENSORFLOW}

__getattr__, __dir__ = lazy_names(__name__, _LAZY, requires=_REQUIRES)
