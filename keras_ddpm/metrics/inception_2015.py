"""The reference Inception graph of FID, run as the TTUR code runs it.

FIDs in the diffusion literature (DDPM, DDIM, improved DDPM: CIFAR-10 FID
3.17 in Ho et al. 2020) were computed with the TTUR code of Heusel et al.
(2017) or ports of it that reproduce its numbers. That code runs the frozen
TensorFlow graph `classify_image_graph_def.pb` of the 2015 Inception release
(`inception-2015-12-05.tgz`): it feeds the pixel values 0..255 of the saved
(uint8) images, as float32 batches `[B, H, W, 3]`, to the tensor
`ExpandDims:0`, and reads the 2048 features of `pool_3:0` (`[B, 1, 1, 2048]`,
the 8x8 average pool of `mixed_10`). The graph itself resizes to 299x299
(`ResizeBilinear` with the TF1 semantics: no corner alignment, no half-pixel
centres) and normalises with `(x - 128) / 128`; nothing is resized outside.

`keras.applications.InceptionV3` has other weights and another resize, so
its FIDs differ from published ones by several points; only this graph gives
comparable numbers.

The graph was written for one image at a time: its tensors carry a batch
dimension of 1 after `ExpandDims`, and its classifier head reshapes `pool_3`
to `[1, 2048]`. TTUR patches the static shapes; here only the part of the
graph that `pool_3` needs is imported, without the recorded `_output_shapes`,
with `ExpandDims:0` mapped to a batch input of unknown size.

References:
    - Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to
      a Local Nash Equilibrium", NeurIPS 2017 (FID; the TTUR code).
    - Szegedy et al., "Rethinking the Inception Architecture for Computer
      Vision", CVPR 2016 (the network).
"""

import os
import tarfile

import keras
import numpy as np

from keras_ddpm import backend
from keras_ddpm import checks
from keras_ddpm import utils

tf = backend.import_tensorflow()  # on JAX or PyTorch, sharing the GPUs' memory

INCEPTION_2015_URL = (
    "http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz"
)
GRAPH_FILE = "classify_image_graph_def.pb"
INPUT_TENSOR = "ExpandDims:0"
OUTPUT_TENSOR = "pool_3:0"


def download_graph():
    """The path of `classify_image_graph_def.pb`, downloaded once into the Keras cache.

    `keras.utils.get_file` fetches `inception-2015-12-05.tgz` (~90 MB) into
    `~/.keras/models/` and extracts it there.

    Raises:
        ValueError: the download failed (one line naming the URL and the
            offline alternative: a local path to the `.tgz` or the `.pb`).
    """
    try:
        path = keras.utils.get_file(
            fname="inception-2015-12-05.tgz",
            origin=INCEPTION_2015_URL,
            cache_subdir="models",
            extract=True,
        )
    except Exception as error:
        # Keras raises a bare Exception when the download fails.
        if type(error) is not Exception and not isinstance(error, (OSError, tarfile.TarError)):
            raise
        raise ValueError(
            f"Cannot download the Inception graph from {INCEPTION_2015_URL} "
            f"({checks.first_line(error)}). Offline? Download that .tgz elsewhere and pass its "
            "path: feature_extractor='/path/to/inception-2015-12-05.tgz' (or the "
            f"{GRAPH_FILE} inside it; `keras-ddpm evaluate --inception-graph PATH`)."
        ) from None
    if os.path.isdir(path):  # Keras 3 returns the folder it extracted into.
        for folder, _, files in os.walk(path):
            if GRAPH_FILE in files:
                return os.path.join(folder, GRAPH_FILE)
        raise ValueError(f"The archive downloaded from {INCEPTION_2015_URL} holds no {GRAPH_FILE}.")
    return path


def _read_bytes(path):
    """The bytes of the GraphDef at `path`: a `.pb` file, a `.tgz` holding one, or a folder."""
    if os.path.isdir(path):
        path = os.path.join(path, GRAPH_FILE)
    if not os.path.isfile(path):
        raise ValueError(
            f"The Inception graph {path!r} does not exist. Expected {GRAPH_FILE} or "
            f"inception-2015-12-05.tgz (from {INCEPTION_2015_URL})."
        )
    if tarfile.is_tarfile(path):
        try:
            with tarfile.open(path) as archive:
                members = [
                    m for m in archive.getmembers() if os.path.basename(m.name) == GRAPH_FILE
                ]
                if not members:
                    raise ValueError(f"it holds no {GRAPH_FILE}")
                return archive.extractfile(members[0]).read()
        except (tarfile.TarError, OSError, EOFError, ValueError) as error:
            raise ValueError(
                f"Cannot read the Inception graph from the archive {path!r}: "
                f"{checks.first_line(error)}."
            ) from None
    if path.endswith((".tgz", ".tar.gz")):
        raise ValueError(f"{path!r} is not a readable .tgz archive; is the download complete?")
    with open(path, "rb") as file:
        return file.read()


def read_graph_def(path):
    """The `tf.compat.v1.GraphDef` of the Inception graph at `path` (a .pb, a .tgz or a folder).

    Raises:
        ValueError: the file is missing or damaged, or the graph lacks the
            tensors `ExpandDims:0` and `pool_3:0`.
    """
    data = _read_bytes(os.fspath(path))
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except Exception as error:  # google.protobuf.message.DecodeError
        raise ValueError(
            f"Cannot read {path!r} as a TensorFlow GraphDef ({checks.first_line(error)}); "
            f"expected {GRAPH_FILE} from {INCEPTION_2015_URL}."
        ) from None
    names = {node.name for node in graph_def.node}
    missing = [t for t in (INPUT_TENSOR, OUTPUT_TENSOR) if t.split(":")[0] not in names]
    if missing:
        raise ValueError(
            f"{path!r} is not the Inception graph of FID: it has no tensor "
            f"{' or '.join(missing)}. Expected {GRAPH_FILE} from {INCEPTION_2015_URL}."
        )
    return graph_def


def _pool_3_subgraph(graph_def):
    """The nodes `pool_3` depends on, without their recorded (batch-1) `_output_shapes`."""
    nodes = {node.name: node for node in graph_def.node}
    needed, pending = set(), [OUTPUT_TENSOR.split(":")[0]]
    while pending:
        name = pending.pop()
        if name in needed:
            continue
        needed.add(name)
        pending.extend(source.lstrip("^").split(":")[0] for source in nodes[name].input)
    subgraph = tf.compat.v1.GraphDef()
    subgraph.versions.CopyFrom(graph_def.versions)
    subgraph.library.CopyFrom(graph_def.library)
    for node in graph_def.node:
        if node.name in needed:
            copy = subgraph.node.add()
            copy.CopyFrom(node)
            copy.attr.pop("_output_shapes", None)
    return subgraph


class Inception2015:
    """The Inception graph of the TTUR FID code: [-1, 1] images → 2048 pool_3 features.

    The extractor with which FIDs are comparable with published ones (Heusel
    et al. 2017; DDPM's CIFAR-10 FID 3.17). Images are quantised as saving
    them to PNG would (`keras_ddpm.utils.to_uint8`: clip to [-1, 1], then
    round((x + 1)·127.5)), grayscale repeated to three channels, and the
    pixel values 0..255 fed as float32 to the graph's `ExpandDims:0`; the
    graph resizes to 299x299 itself. Pass it (or `"inception_2015"`, or a
    path) as the `feature_extractor` of `FID` and `KID`.

    Args:
        path: a local `classify_image_graph_def.pb`, the
            `inception-2015-12-05.tgz` holding it, or a folder holding it.
            `None` downloads the `.tgz` once into `~/.keras/models/` from
            `INCEPTION_2015_URL`. Defaults to `None`.

    Call arguments:
        images: `(N, H, W, C)` float images in [-1, 1], or uint8 pixels,
            with C = 1 or 3, any H and W.

    Returns:
        float32 features `(N, 2048)` (a tensor).

    Example:

    ```python
    inception = keras_ddpm.metrics.Inception2015("inception-2015-12-05.tgz")
    fid = keras_ddpm.metrics.FID(inception)
    fid.update_state(real_images, model.generate(len(real_images)))
    ```

    References:
        - Heusel et al., "GANs Trained by a Two Time-Scale Update Rule
          Converge to a Local Nash Equilibrium", NeurIPS 2017.
    """

    def __init__(self, path=None):
        self.path = download_graph() if path is None else os.fspath(path)
        graph_def = _pool_3_subgraph(read_graph_def(self.path))

        def pool_3(pixels):
            (features,) = tf.compat.v1.import_graph_def(
                graph_def,
                input_map={INPUT_TENSOR: pixels},
                return_elements=[OUTPUT_TENSOR],
                name="",
            )
            return features

        try:
            self._pool_3 = tf.compat.v1.wrap_function(
                pool_3, [tf.TensorSpec([None, None, None, 3], tf.float32)]
            )
        except (ValueError, TypeError, tf.errors.OpError) as error:
            raise ValueError(
                f"Cannot import the Inception graph {self.path!r}: {checks.first_line(error)}"
            ) from None

    def pixel_features(self, pixels):
        """float32 features `(N, d)` of pixels 0..255 `(N, H, W, 1 or 3)`, as TTUR takes them."""
        pixels = np.asarray(checks.as_numpy(pixels))
        if pixels.ndim != 4 or pixels.shape[-1] not in (1, 3):
            raise ValueError(
                "Inception2015 takes a batch of images shaped (N, H, W, 1) or (N, H, W, 3). "
                f"Received shape {pixels.shape}."
            )
        if pixels.shape[-1] == 1:
            pixels = np.repeat(pixels, 3, axis=-1)
        features = self._pool_3(tf.constant(pixels, tf.float32))  # [N, 1, 1, d]
        return tf.reshape(features, (len(pixels), -1))

    def __call__(self, images, training=False):
        return self.pixel_features(utils.to_uint8(images))

    def __repr__(self):
        return f"Inception2015(path={self.path!r})"
