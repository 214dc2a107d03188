"""FID: the Fréchet distance between Gaussians fitted to real and generated features.

References:
    - Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to
      a Local Nash Equilibrium", NeurIPS 2017.
"""

import numpy as np

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

    Fits a Gaussian to the features of each set (running sums and sums of
    outer products in float64) and returns the Fréchet distance between them,
    ‖μ_r − μ_g‖² + Tr(Σ_r + Σ_g − 2(Σ_rΣ_g)^½). Lower is better; identical
    sets give 0. FID is biased for small sets: compare values computed from
    the same number of images (50,000 in the literature).

    Args:
        feature_extractor: `None`/`"inception_v3"` (downloads ImageNet
            weights), `"pixels"`, or a `keras.Model` mapping images to feature
            vectors (see the module docstring). Defaults to `None`.
        input_range: the (low, high) range the extractor expects; [-1, 1]
            images are mapped linearly onto it. Defaults to `None` ((-1, 1)).
        batch_size: images per extractor call. Defaults to `64`.
        name: metric name. Defaults to `"fid"`.

    Example:

    ```python
    fid = keras_ddpm.metrics.FID()
    for real in dataset.take(8):
        fid.update_state(real, model.generate(len(real)))
    print(float(fid.result()))
    ```

    References:
        - Heusel et al., NeurIPS 2017 (FID).
    """

    def __init__(
        self, feature_extractor=None, input_range=None, batch_size=64, name="fid", **kwargs
    ):
        super().__init__(feature_extractor, input_range, batch_size, name=name, **kwargs)
        self.reset_state()

    def reset_state(self):
        self._stats = {}

    def _add(self, side, feats):
        if len(feats) == 0:
            return
        count, total, outer = self._stats.get(side, (0, 0.0, 0.0))
        self._stats[side] = (count + len(feats), total + feats.sum(axis=0), outer + feats.T @ feats)

    def statistics(self, side):
        """(mean, covariance) of the `"real"` or `"generated"` features so far."""
        if side not in self._stats or self._stats[side][0] < 2:
            raise ValueError(
                f"FID needs at least 2 {side} images; received {self._stats.get(side, (0,))[0]}."
            )
        count, total, outer = self._stats[side]
        mean = total / count
        covariance = (outer - count * np.outer(mean, mean)) / (count - 1)
        return mean, covariance

    def result(self):
        real_mean, real_cov = self.statistics("real")
        gen_mean, gen_cov = self.statistics("generated")
        return frechet_distance(real_mean, real_cov, gen_mean, gen_cov)
