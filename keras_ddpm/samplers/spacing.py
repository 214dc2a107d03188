"""Timestep spacings: which indices a run of S steps visits.

A run of S steps visits the decreasing indices τ_0 > τ_1 > … > τ_{S−1} and
then the clean data (written τ_S = −1, ᾱ_{−1} = 1). The sequence is computed
with TensorFlow ops from a runtime `steps`, so one traced (and XLA-compiled)
sampler serves every step count.

References:
    - Lin, Liu, Li & Yang, "Common Diffusion Noise Schedules and Sample Steps
      are Flawed", WACV 2024 (table 2: leading, trailing, linspace).
    - Lu et al., "DPM-Solver: A Fast ODE Solver for Diffusion Probabilistic
      Model Sampling in Around 10 Steps", NeurIPS 2022 (uniform log-SNR).
    - Karras, Aittala, Aila & Laine, "Elucidating the Design Space of
      Diffusion-Based Generative Models", NeurIPS 2022 (eq. 5, ρ = 7).
"""

import numpy as np
from keras import ops

from keras_ddpm import checks
from keras_ddpm import precise_ops
from keras_ddpm.samplers.options import KARRAS_RHO
from keras_ddpm.samplers.options import OPTIMIZED
from keras_ddpm.samplers.options import check_spacing
from keras_ddpm.samplers.options import check_steps
from keras_ddpm.schedules import precise_float


def _prefix_min(values):
    """Running minimum along a static-length int32 vector, by log-depth doubling."""
    n, shift = int(values.shape[0]), 1
    while shift < n:
        top = ops.full((shift,), np.iinfo(np.int32).max, "int32")
        shifted = ops.concatenate([top, values[:-shift]], 0)
        values = ops.minimum(values, shifted)
        shift *= 2
    return values


def _log_snr_table(schedule):
    """log(ᾱ/(1 − ᾱ)) per index; a zero ᾱ_T gets its neighbour's value minus 1."""
    ac = schedule.alphas_cumprod
    with np.errstate(divide="ignore"):
        table = np.log(ac) - np.log1p(-ac)
    if not np.isfinite(table[-1]) and schedule.timesteps > 1:
        table[-1] = table[-2] - 1.0
    return table


def optimized_indices(schedule, steps=None):
    """The schedule's `optimized_timesteps`; a `ValueError` when it has none, or when a
    Python `steps` is not their number."""
    indices = schedule.optimized_timesteps
    if indices is None:
        raise ValueError(
            f"timestep_spacing={OPTIMIZED!r} runs the steps that `model.optimize_steps()` "
            "found, and this model has none; call it first, or pick another spacing."
        )
    if not checks.is_tensor(steps) and steps is not None and steps != len(indices):
        raise ValueError(
            f"The model's optimized steps are {len(indices)}; received steps={steps}. Pass "
            f"steps={len(indices)} (or steps=\"optimized\"), or run model.optimize_steps("
            f"num_steps={steps})."
        )
    return indices


def resolve_optimized(schedule, steps, timestep_spacing):
    """`(steps, timestep_spacing)` with `steps="optimized"` as the stored steps' number and
    spacing; other values are returned as they are, checked against the stored steps."""
    if isinstance(steps, str):
        if steps != OPTIMIZED or timestep_spacing not in (None, OPTIMIZED):
            raise ValueError(
                f"`steps` must be an integer or {OPTIMIZED!r} (with no other spacing). "
                f"Received: steps={steps!r}, timestep_spacing={timestep_spacing!r}."
            )
        return len(optimized_indices(schedule)), OPTIMIZED
    if timestep_spacing == OPTIMIZED:
        indices = optimized_indices(schedule, steps)
        return len(indices) if steps is None else steps, OPTIMIZED
    return steps, timestep_spacing


def timestep_sequence(schedule, steps, timestep_spacing="trailing"):
    """The timestep indices a run of `steps` steps visits, computed with `keras.ops`.

    With T = `schedule.timesteps`, S = `steps` and j = S − 1 − k counting down,
    the k-th index τ_k (k = 0 … S − 1, τ_0 the noisiest) is

    - `"leading"`: ⌊j·T/S⌋ (paper timesteps 1, 1 + T/S, …; starts below T);
    - `"trailing"`: round(T − k·T/S) − 1 (paper timesteps T, T − T/S, …);
    - `"linspace"`: round(j·(T − 1)/(S − 1)) (both ends; T − 1 when S = 1);
    - `"logsnr"`: the index whose log-SNR λ = log(ᾱ/(1 − ᾱ)) is nearest to
      the k-th of S values uniform in λ from λ(T − 1) to λ(0) (DPM-Solver's
      recommendation), the first always T − 1. Nearest, not interpolated,
      because a DDPM network is trained only at integer t. Where two targets
      fall on one index, later indices are pushed down so that the sequence
      stays strictly decreasing. An infinite λ(T − 1) (zero terminal SNR) is
      replaced by λ(T − 2) − 1 when placing the targets.
    - `"karras"`: as `"logsnr"`, with the targets uniform in σ^{1/ρ} instead
      of λ, σ = √((1 − ᾱ)/ᾱ) = e^{−λ/2} the noise level of the variance-exploding
      form and ρ = `KARRAS_RHO` (EDM's polynomial, Karras et al. 2022, eq. 5):
      steps crowd near the clean data, where the ODE curves most.
    - `"optimized"`: the schedule's `optimized_timesteps` (`DDPM.optimize_steps`);
      `steps` must be their number.

    The first three are the conventions compared by Lin et al. 2023 (table 2);
    `"linspace"` and `"trailing"` are the time-uniform ones.
    With S = T every spacing gives T − 1, T − 2, …, 0.

    Args:
        schedule: the `NoiseSchedule`.
        steps: number of steps S in [1, T], an int or int32 scalar tensor.
        timestep_spacing: one of `TIMESTEP_SPACINGS`. Defaults to `"trailing"`.

    Returns:
        int32 tensor of static shape `[T + 1]`: τ_0 … τ_{S−1}, then −1 (the
        clean data) in every later entry. The static length lets XLA compile
        the samplers for a runtime `steps`.

    Example:

    >>> timestep_sequence(NoiseSchedule(timesteps=1000), 4, "trailing")[:5]
    [999, 749, 499, 249, -1]
    """
    check_spacing(timestep_spacing)
    check_steps(steps, schedule.timesteps)
    total = schedule.timesteps
    if timestep_spacing == OPTIMIZED:
        indices = optimized_indices(schedule, steps)
        padded = list(indices) + [-1] * (total + 1 - len(indices))
        return ops.convert_to_tensor(np.array(padded, "int32"))
    steps = ops.clip(ops.cast(steps, "int32"), 1, total)
    precise = precise_float()
    s = ops.cast(steps, precise)
    k = ops.arange(total + 1, dtype="int32")
    kf = ops.cast(k, precise)
    j = s - 1.0 - kf
    if timestep_spacing == "leading":
        index = ops.floor(j * total / s)
    elif timestep_spacing == "trailing":
        index = ops.round(total - kf * total / s) - 1.0
    elif timestep_spacing == "linspace":
        index = ops.round(j * (total - 1) / precise_ops.maximum(s - 1.0, 1.0))
        index = ops.where(steps > 1, index, ops.full((), total - 1, precise))
    else:
        table = _log_snr_table(schedule)
        lo, hi = table[-1], table[0]
        fraction = kf / precise_ops.maximum(s - 1.0, 1.0)
        if timestep_spacing == "logsnr":
            targets = lo + (hi - lo) * fraction  # [T + 1], rising
        else:  # "karras": σ = e^{−λ/2} uniform in σ^{1/ρ}
            top, bottom = np.exp(-lo / (2 * KARRAS_RHO)), np.exp(-hi / (2 * KARRAS_RHO))
            targets = -2.0 * KARRAS_RHO * ops.log(top + (bottom - top) * fraction)
        table = ops.convert_to_tensor(table.astype(precise))
        distance = ops.abs(targets[:, None] - table[None, :])
        index = ops.cast(ops.argmin(distance, axis=1), precise)
        index = ops.where(k == 0, ops.full((), total - 1, precise), index)
    index = ops.cast(index, "int32")
    # Strictly decreasing: τ_k ≤ τ_{k−1} − 1 (running minimum of τ_k + k) and
    # τ_k ≥ S − 1 − k, so that the last of the S indices is still ≥ 0.
    index = _prefix_min(index + k) - k
    index = ops.maximum(index, steps - 1 - k)
    return ops.where(k < steps, index, -1)
