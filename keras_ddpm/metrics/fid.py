"""FID: the Fréchet distance between Gaussians fitted to real and generated features.

References:
    - Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to
      a Local Nash Equilibrium", NeurIPS 2017.
"""

import numpy as np

from keras_ddpm.metrics import statistics as fid_statistics
from keras_ddpm.metrics.features import FeatureMetric


def frechet_distance(mean1, cov1, mean2, cov2):
    """‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2(Σ1Σ2)^½) between two Gaussians, in float64.

    Tr((Σ1Σ2)^½) is the sum of the square roots of the eigenvalues of the
    symmetric positive semi-definite matrix Σ1^½ Σ2 Σ1^½ (which has the same
    eigenvalues as Σ1Σ2), so no non-symmetric matrix square root is needed.
    """
    mean1, mean2 = np.asarray(mean1, np.float64), np.asarray(mean2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    values, vectors = np.linalg.eigh((cov1 + cov1.T) / 2)
    root1 = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    product = root1 @ cov2 @ root1
    eigenvalues = np.linalg.eigvalsh((product + product.T) / 2)
    trace_root = np.sqrt(np.clip(eigenvalues, 0.0, None)).sum()
    return float(np.sum((mean1 - mean2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_root)


class FID(FeatureMetric):
    """Fréchet Inception Distance between real and generated images.

    Fits a Gaussian to the features of each set (running means and centred
    sums of outer products in float64) and returns the Fréchet distance between them,
    ‖μ_r − μ_g‖² + Tr(Σ_r + Σ_g − 2(Σ_rΣ_g)^½). Lower is better; identical
    sets give 0. FID is biased for small sets: compare values computed from
    the same number of images (50,000 in the literature).

    Only `feature_extractor="inception_2015"` (the graph of the TTUR code)
    gives FIDs comparable with published ones; the default, Keras'
    InceptionV3, does not (its numbers differ by several points).

    The real side can be precomputed statistics instead of images:
    `reference_statistics` (or `set_reference_statistics`) takes a `.npz`
    file in the TTUR/pytorch-fid format (`save_statistics`) or a
    `(mu, sigma)` pair; then only generated images are added.

    Args:
        feature_extractor: `None`/`"inception_v3"` (keras.applications
            InceptionV3, downloads ImageNet weights; not comparable with
            papers), `"inception_2015"` (the reference graph, downloaded
            once; comparable with papers) or a path to its `.pb`/`.tgz`,
            `"pixels"`, or a `keras.Model` mapping images to feature vectors
            (see the module docstring). Defaults to `None`.
        input_range: the (low, high) range the extractor expects; [-1, 1]
            images are mapped linearly onto it. Defaults to `None` ((-1, 1)).
        batch_size: images per extractor call. Defaults to `64`.
        reference_statistics: the real side's `(mu, sigma)`, or the path of
            a `.npz` file holding them, computed with the same extractor.
            Defaults to `None` (real images are added with `update_state`).
        name: metric name. Defaults to `"fid"`.

    Example:

    ```python
    fid = keras_ddpm.metrics.FID("inception_2015")
    for real in dataset.take(8):
        fid.update_state(real, model.generate(len(real)))
    print(float(fid.result()))
    keras_ddpm.metrics.save_statistics("real.npz", *fid.statistics("real"))

    # Later, against the saved real statistics:
    fid = keras_ddpm.metrics.FID("inception_2015", reference_statistics="real.npz")
    fid.update_state(generated_images=model.generate(1000))
    ```

    References:
        - Heusel et al., NeurIPS 2017 (FID).
    """

    def __init__(
        self,
        feature_extractor=None,
        input_range=None,
        batch_size=64,
        reference_statistics=None,
        name="fid",
        **kwargs,
    ):
        super().__init__(feature_extractor, input_range, batch_size, name=name, **kwargs)
        self.set_reference_statistics(reference_statistics)
        self.reset_state()

    def set_reference_statistics(self, statistics):
        """Uses `(mu, sigma)`, or a `.npz` file of them, as the real side; `None` to clear.

        `reset_state` keeps them: they are part of the metric's set-up.
        """
        self.reference_statistics = (
            None if statistics is None else fid_statistics.as_statistics(statistics)
        )

    def reset_state(self):
        self._stats = {}

    def _add(self, side, feats):
        if side == "real" and self.reference_statistics is not None:
            raise ValueError(
                "This FID compares with `reference_statistics`: add only generated images, or "
                "call set_reference_statistics(None) to use real images instead."
            )
        if len(feats) == 0:
            return
        # Count, mean and centred sum of outer products, merged batch by batch (Chan et
        # al. 1979): as accurate as np.cov of all features at once.
        count, mean = len(feats), feats.mean(axis=0)
        centred = feats - mean
        scatter = centred.T @ centred
        if side in self._stats:
            old_count, old_mean, old_scatter = self._stats[side]
            total = old_count + count
            delta = mean - old_mean
            scatter = old_scatter + scatter + np.outer(delta, delta) * (old_count * count / total)
            mean = old_mean + delta * (count / total)
            count = total
        self._stats[side] = (count, mean, scatter)

    def statistics(self, side):
        """(mean, covariance) of the `"real"` or `"generated"` features so far.

        The covariance is the unbiased one (ddof=1) of `np.cov`, as in TTUR
        and pytorch-fid. The real side is the `reference_statistics` when
        they are set. Save them with `keras_ddpm.metrics.save_statistics`.
        """
        if side not in ("real", "generated"):
            raise ValueError(f"Unknown side={side!r}. Expected 'real' or 'generated'.")
        if side == "real" and self.reference_statistics is not None:
            return self.reference_statistics
        if side not in self._stats or self._stats[side][0] < 2:
            raise ValueError(
                f"FID needs at least 2 {side} images; received {self._stats.get(side, (0,))[0]}."
            )
        count, mean, scatter = self._stats[side]
        return mean, scatter / (count - 1)

    def result(self):
        real_mean, real_cov = self.statistics("real")
        gen_mean, gen_cov = self.statistics("generated")
        if real_mean.shape != gen_mean.shape:
            raise ValueError(
                f"The real statistics are {real_mean.size}-d but the generated features are "
                f"{gen_mean.size}-d; were the reference statistics computed with another "
                "feature extractor?"
            )
        return frechet_distance(real_mean, real_cov, gen_mean, gen_cov)
