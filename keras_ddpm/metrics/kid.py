"""KID: the unbiased squared MMD between real and generated features (cubic kernel).

References:
    - Bińkowski et al., "Demystifying MMD GANs", ICLR 2018.
"""

import numpy as np

from keras_ddpm import checks
from keras_ddpm.metrics.features import FeatureMetric


def polynomial_mmd2(x, y):
    """Unbiased MMD² between feature sets `x` `(m, d)` and `y` `(n, d)`.

    Kernel k(a, b) = (aᵀb / d + 1)³; the within-set sums leave out the
    diagonal (Bińkowski et al. 2018, eq. 2 with the cubic kernel).
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    m, n, d = len(x), len(y), x.shape[1]

    def kernel(a, b):
        k = a @ b.T / d + 1.0
        return k * k * k  # Faster than k ** 3.

    k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
    return float(
        (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
        + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
        - 2.0 * k_xy.mean()
    )


class KID(FeatureMetric):
    """Kernel Inception Distance between real and generated images.

    The unbiased estimator of the squared maximum mean discrepancy (MMD²)
    with the cubic polynomial kernel k(x, y) = (xᵀy/d + 1)³, averaged over
    `num_subsets` random subsets of `subset_size` features from each set
    (drawn without replacement, reproducibly from `seed`). Unlike FID it is
    unbiased, so it can be slightly negative when the sets match; identical
    distributions give 0 on average. The standard deviation over subsets is
    `result_std()`.

    Args:
        feature_extractor: `None`/`"inception_v3"` (keras.applications
            InceptionV3, downloads ImageNet weights; not comparable with
            papers), `"inception_2015"` (the reference graph of the TTUR
            code, downloaded once) or a path to its `.pb`/`.tgz`,
            `"pixels"`, or a `keras.Model` mapping images to feature vectors
            (see the module docstring). Defaults to `None`.
        num_subsets: subsets averaged over. Defaults to `100`.
        subset_size: features per subset, reduced to the size of the smaller
            set when that has fewer. Defaults to `1000`.
        seed: seed of the subset draws. Defaults to `0`.
        input_range: the (low, high) range the extractor expects.
            Defaults to `None` ((-1, 1)).
        batch_size: images per extractor call. Defaults to `64`.
        name: metric name. Defaults to `"kid"`.

    Example:

    ```python
    kid = keras_ddpm.metrics.KID(feature_extractor="pixels", subset_size=100)
    kid.update_state(real_images, model.generate(len(real_images)))
    print(float(kid.result()))
    ```

    References:
        - Bińkowski et al., "Demystifying MMD GANs", ICLR 2018.
    """

    def __init__(
        self,
        feature_extractor=None,
        num_subsets=100,
        subset_size=1000,
        seed=0,
        input_range=None,
        batch_size=64,
        name="kid",
        **kwargs,
    ):
        super().__init__(feature_extractor, input_range, batch_size, name=name, **kwargs)
        checks.positive_int("num_subsets", num_subsets)
        checks.positive_int("subset_size", subset_size)
        if subset_size < 2:
            raise ValueError(
                f"`subset_size` must be at least 2. Received: subset_size={subset_size}."
            )
        self.num_subsets = num_subsets
        self.subset_size = subset_size
        self.seed = seed
        self.reset_state()

    def reset_state(self):
        self._features = {"real": [], "generated": []}

    def _add(self, side, feats):
        if len(feats):
            self._features[side].append(feats)

    def _subset_values(self):
        real, generated = (
            np.concatenate(self._features[s]) if self._features[s] else np.zeros((0, 0))
            for s in ("real", "generated")
        )
        size = min(self.subset_size, len(real), len(generated))
        if size < 2:
            raise ValueError(
                f"KID needs at least 2 real and 2 generated images; received {len(real)} and "
                f"{len(generated)}."
            )
        rng = np.random.default_rng(self.seed)
        values = []
        for _ in range(self.num_subsets):
            x = real[rng.choice(len(real), size, replace=False)]
            y = generated[rng.choice(len(generated), size, replace=False)]
            values.append(polynomial_mmd2(x, y))
        return np.array(values)

    def result(self):
        return float(self._subset_values().mean())

    def result_std(self):
        """Standard deviation of the MMD² estimates over the subsets."""
        return float(self._subset_values().std())
