"""Which noise of a training batch goes with which image ("immiscible" diffusion).

Plain DDPM training pairs image i with noise ε_i drawn for it: every image is
diffused towards every region of noise space alike. Immiscible diffusion draws
the batch's noises exactly as plain training does and only reorders them, so
that each image gets one near it (small Σ_i ‖x_i − ε_π(i)‖²): the set of noises
is the same Gaussian draw, only who gets which changes, which makes the map
from noise back to data less tangled. Li et al. report up to 3× fewer training
steps to the same FID on CIFAR-10.

The paper solves the assignment exactly (Hungarian method, on the host). Here
it is solved greedily inside the compiled step, on every backend: the closest
remaining (image, noise) pair is fixed first, B times; the pair distances
come from one `[B, B]` matrix product.

References:
    - Li, Jiang, Kodaira, Tomizuka, Keutzer & Xu, "Immiscible Diffusion:
      Accelerating Diffusion Training with Noise Assignment", NeurIPS 2024.
"""

import numpy as np
from keras import ops

from keras_ddpm import checks

# `DDPM(noise_assignment=...)`: "independent" pairs image i with noise i (Ho et al. 2020).
NOISE_ASSIGNMENTS = ("independent", "immiscible")
DEFAULT_NOISE_ASSIGNMENT = "independent"


def check_noise_assignment(noise_assignment):
    """Raises a `ValueError` unless `noise_assignment` is one of `NOISE_ASSIGNMENTS`."""
    return checks.one_of("noise_assignment", noise_assignment, NOISE_ASSIGNMENTS)


def greedy_assignment(images, noise):
    """π (int32 `[B]`) with noise π[i] for image i, chosen greedily by distance.

    Args:
        images: float `[B, ...]`.
        noise: float, shaped like `images`.

    Returns:
        int32 `[B]`, a permutation of `0 … B − 1`.
    """
    batch = ops.shape(images)[0]
    x = ops.reshape(ops.cast(images, "float32"), (batch, -1))
    eps = ops.reshape(ops.cast(noise, "float32"), (batch, -1))
    # ‖x_i − ε_j‖² = ‖x_i‖² + ‖ε_j‖² − 2 x_i·ε_j (the greedy order compares across rows).
    distance = (
        ops.sum(x * x, axis=1)[:, None] + ops.sum(eps * eps, axis=1)[None, :]
        - 2.0 * ops.matmul(x, ops.transpose(eps))
    )
    rows = ops.arange(batch, dtype="int32")
    taken = ops.full((), np.inf, "float32")

    def body(_, state):
        distance, assignment = state
        flat = ops.cast(ops.argmin(ops.reshape(distance, (-1,))), "int32")
        i, j = flat // batch, flat % batch
        assignment = ops.where(rows == i, j, assignment)
        used = (rows[:, None] == i) | (rows[None, :] == j)
        return ops.where(used, taken, distance), assignment

    _, assignment = ops.fori_loop(0, batch, body, (distance, ops.zeros((batch,), "int32")))
    return assignment


def assign(images, noise, noise_assignment):
    """The batch's noise reordered by `noise_assignment` (see `NOISE_ASSIGNMENTS`)."""
    if noise_assignment == "independent":
        return noise
    return ops.take(noise, greedy_assignment(images, noise), axis=0)
