"""FID statistics (mean and covariance of features) and their `.npz` files.

The file format is the one of the TTUR FID code (Heusel et al. 2017) and of
pytorch-fid: a NumPy `.npz` archive with the float64 arrays `mu` (shape
`[d]`) and `sigma` (shape `[d, d]`), d = 2048 for Inception's pool_3. The
precomputed statistics those projects publish (e.g. `fid_stats_cifar10_train.npz`)
load here, and the files written here load there, and with a plain `np.load`.
"""

import os

import numpy as np

from keras_ddpm import checks
from keras_ddpm.runs import atomic


def feature_statistics(features):
    """The mean `[d]` and covariance `[d, d]` (ddof=1) of features `(N, d)`, in float64.

    The same estimate as TTUR's and pytorch-fid's `np.mean(act, axis=0)` and
    `np.cov(act, rowvar=False)`.

    Args:
        features: array `(N, d)` with N >= 2.

    Returns:
        A `(mu, sigma)` pair of float64 NumPy arrays.

    Example:

    >>> mu, sigma = feature_statistics(np.random.rand(100, 16))
    >>> mu.shape, sigma.shape
    ((16,), (16, 16))
    """
    features = np.asarray(checks.as_numpy(features), np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(
            "`features` must be an array (N, d) with N >= 2. "
            f"Received shape {features.shape}."
        )
    return features.mean(axis=0), np.cov(features, rowvar=False).reshape(
        features.shape[1], features.shape[1]
    )


def check_statistics(mu, sigma, source="the statistics"):
    """Returns `(mu, sigma)` as float64 arrays after checking their shapes `[d]` and `[d, d]`.

    Args:
        mu: the feature mean, shape `[d]`.
        sigma: the feature covariance, shape `[d, d]`.
        source: what the arrays came from, named in the error. Defaults to
            `"the statistics"`.

    Raises:
        ValueError: the shapes do not match or a value is not finite.
    """
    mu = np.asarray(checks.as_numpy(mu), np.float64)
    sigma = np.asarray(checks.as_numpy(sigma), np.float64)
    if mu.ndim != 1 or mu.size == 0 or sigma.shape != (mu.size, mu.size):
        raise ValueError(
            f"{source} must hold `mu` shaped [d] and `sigma` shaped [d, d]; received mu "
            f"{mu.shape} and sigma {sigma.shape}."
        )
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(sigma))):
        raise ValueError(f"{source} hold NaN or infinite values.")
    return mu, sigma


def save_statistics(path, mu, sigma):
    """Writes FID statistics to a `.npz` file with the keys `mu` and `sigma` (float64).

    The TTUR and pytorch-fid format: `fid.py path/to/images stats.npz`
    there compares images with a file written here.

    Args:
        path: the file to write; must end in `.npz`.
        mu: the feature mean, shape `[d]`.
        sigma: the feature covariance, shape `[d, d]`.

    Example:

    ```python
    fid = keras_ddpm.metrics.FID(feature_extractor="inception_2015")
    fid.update_state(real_images=train_images)
    keras_ddpm.metrics.save_statistics("cifar10_train.npz", *fid.statistics("real"))
    ```
    """
    path = os.fspath(path)
    if not str(path).endswith(".npz"):
        raise ValueError(f"FID statistics are written to a .npz file; received path={path!r}.")
    mu, sigma = check_statistics(mu, sigma)
    with atomic.atomic_write(path) as tmp, open(tmp, "wb") as file:
        np.savez(file, mu=mu, sigma=sigma)  # A file object: NumPy appends no second `.npz`.


def load_statistics(path):
    """Reads FID statistics `(mu, sigma)` from a `.npz` file with the keys `mu` and `sigma`.

    Files written by `save_statistics`, by TTUR's `precalc_stats_example.py`
    and by pytorch-fid's `--save-stats` all load.

    Args:
        path: the `.npz` file.

    Returns:
        A `(mu, sigma)` pair of float64 NumPy arrays, shapes `[d]` and `[d, d]`.

    Raises:
        ValueError: the file is missing, not a `.npz` archive, lacks `mu` or
            `sigma`, or holds arrays of mismatched shapes.

    Example:

    ```python
    mu, sigma = keras_ddpm.metrics.load_statistics("fid_stats_cifar10_train.npz")
    fid = keras_ddpm.metrics.FID("inception_2015", reference_statistics=(mu, sigma))
    ```
    """
    path = os.fspath(path)
    expected = "Expected a .npz file with the keys mu [d] and sigma [d, d]."
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(
            f"Cannot read FID statistics from {path!r}: {checks.first_line(error)}. {expected}"
        ) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(
            f"Cannot read FID statistics from {path!r}: it holds one array, not a .npz "
            f"archive. {expected}"
        )
    with archive:
        missing = [key for key in ("mu", "sigma") if key not in archive.files]
        if missing:
            raise ValueError(
                f"FID statistics file {path!r} has no {' and no '.join(missing)} (keys found: "
                f"{sorted(archive.files)}). {expected}"
            )
        try:
            mu, sigma = archive["mu"], archive["sigma"]
        except Exception as error:  # A damaged member: zipfile, zlib or format errors.
            raise ValueError(
                f"Cannot read FID statistics from {path!r}: {checks.first_line(error)}. "
                f"{expected}"
            ) from None
    return check_statistics(mu, sigma, source=f"FID statistics file {path!r}")


def as_statistics(statistics):
    """`(mu, sigma)` from a `.npz` path or a `(mu, sigma)` pair (checked)."""
    if isinstance(statistics, (str, os.PathLike)):
        return load_statistics(statistics)
    if isinstance(statistics, (tuple, list)) and len(statistics) == 2:
        return check_statistics(*statistics, source="`reference_statistics`")
    raise TypeError(
        "`reference_statistics` must be a path to a .npz file or a (mu, sigma) pair. "
        f"Received: {type(statistics).__name__} {statistics!r:.80}."
    )
