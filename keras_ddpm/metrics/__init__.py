"""Sample-quality and likelihood metrics: KID, FID and bits per dimension.

`KID` and `FID` compare the feature statistics of real and generated images.
The features come from a `feature_extractor`:

- `None` or `"inception_v3"` (the default): the 2048-d average-pool features
  of `keras.applications.InceptionV3` with ImageNet weights. The weights
  (~90 MB) are downloaded by Keras on first use into `~/.keras/models`.
  Images are resized to 299x299 (bilinear) and grayscale images repeated to
  three channels; InceptionV3 expects [-1, 1], the range keras_ddpm works in.
  Its FIDs are *not comparable with published FIDs*: the weights and the
  resize differ from the graph the papers used, by several FID points.
- `"inception_2015"`: the reference Inception graph of the TTUR FID code
  (Heusel et al. 2017), which the FIDs of DDPM (CIFAR-10 FID 3.17), DDIM and
  improved DDPM come from: `classify_image_graph_def.pb` of
  `inception-2015-12-05.tgz` (~90 MB, downloaded once into
  `~/.keras/models`), fed the uint8 pixels a saved PNG would hold, features
  from `pool_3`. Offline, pass the path of the `.tgz` or `.pb` instead of
  the name, or an `Inception2015(path)`. *This is the one comparable with
  papers.*
- `"pixels"`: the flattened pixels themselves (H·W·C features, no download).
  Cheap and deterministic, for tests and small images such as the 8x8
  digits; not comparable with published numbers.
- any `keras.Model` (or callable) mapping a batch of images to a batch of
  feature vectors. When it declares an input shape, images are resized to
  its height and width and grayscale images repeated to three channels if it
  takes three; `input_range` maps [-1, 1] to the range it expects.

FID can compare with precomputed real statistics (`reference_statistics`,
e.g. the TTUR `fid_stats_cifar10_train.npz`); `save_statistics` and
`load_statistics` read and write that `.npz` format (keys `mu`, `sigma`).

KID, FID and `bits_per_dim` run on every Keras backend (the 2015 graph needs TensorFlow
installed).

Both metrics run eagerly on NumPy state (call them outside compiled
functions), and accept either side alone in `update_state`, so real-image
statistics can be gathered once and generated ones batch by batch.

Layout: `features` (extractors and the shared metric base), `inception_2015`
(the reference graph), `statistics` (FID statistics files), `fid`, `kid`, and
`likelihood` (the variational bound) apart from them.

`bits_per_dim` evaluates the variational bound of Ho et al. (2020, eq. 5), the
negative log-likelihood bound reported in their table 2.

References:
    - Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to
      a Local Nash Equilibrium", NeurIPS 2017 (FID).
    - Bińkowski et al., "Demystifying MMD GANs", ICLR 2018 (KID).
    - Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models",
      NeurIPS 2020 (eq. 5 and appendix: bits/dim).
"""

from keras_ddpm.lazy import lazy_names

# The extractors by name (`FeatureExtractor.from_name`); here, not in `features`, so that the
# command line reads them before TensorFlow loads.
FEATURE_EXTRACTORS = ("inception_v3", "inception_2015", "pixels")

# Everything else loads on first use (Keras; TensorFlow for `_REQUIRES`).
_LAZY = {
    "INCEPTION_SIZE": "features",
    "FeatureExtractor": "features",
    "inception_v3_extractor": "features",
    "FID": "fid",
    "INCEPTION_2015_URL": "inception_2015",
    "Inception2015": "inception_2015",
    "frechet_distance": "fid",
    "KID": "kid",
    "polynomial_mmd2": "kid",
    "bits_per_dim": "likelihood",
    "discretized_gaussian_log_likelihood": "likelihood",
    "variational_bound_terms": "likelihood",
    "feature_statistics": "statistics",
    "load_statistics": "statistics",
    "save_statistics": "statistics",
}


# TensorFlow's graph: the 2015 Inception graph.
_REQUIRES = {"inception_2015": "tensorflow"}

__getattr__, __dir__ = lazy_names(__name__, _LAZY, requires=_REQUIRES)
