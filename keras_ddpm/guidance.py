"""Classifier-free guidance (Ho & Salimans 2022) as a wrapper around a denoiser.

A class-conditional network is trained with its label replaced by a "null"
label part of the time, so it predicts both p(x | c) and p(x). At sampling time
the two predictions are mixed,

    ε̂ = ε̂(x_t, ∅) + w · (ε̂(x_t, c) − ε̂(x_t, ∅)),

with guidance scale w: w = 1 is plain conditional sampling, w = 0 unconditional
and w > 1 trades diversity for fidelity to the class. The mix is affine with
weights summing to one, so it can be taken in whatever the network predicts
(ε, v or x_0) with the same result.
"""

import math

import numpy as np
from keras import ops


def check_guidance_scale(guidance_scale):
    """Raises unless `guidance_scale` is a finite number >= 0 (tensors pass)."""
    if ops.is_tensor(guidance_scale):
        return
    if isinstance(guidance_scale, bool) or not isinstance(
        guidance_scale, (int, float, np.integer, np.floating)
    ):
        raise TypeError(
            "`guidance_scale` must be a number >= 0. "
            f"Received: guidance_scale={guidance_scale!r}."
        )
    if not math.isfinite(guidance_scale) or guidance_scale < 0:
        raise ValueError(
            "`guidance_scale` must be a finite number >= 0 (0 unconditional, 1 plain "
            f"conditional, > 1 guided). Received: guidance_scale={guidance_scale}."
        )


def classifier_free_guidance(denoise_fn, labels, null_label, guidance_scale):
    """A denoiser `(x_t, t) -> prediction` that applies classifier-free guidance.

    Guided steps cost one network call on a doubled batch (the conditional and
    the unconditional halves together); for w = 1 and w = 0 only the needed half
    is evaluated. The choice is made in the graph, so one traced sampler serves
    every guidance scale.

    Args:
        denoise_fn: callable `(x_t, t, labels) -> prediction` of a
            class-conditional network.
        labels: int32 tensor `[B]`, the requested classes (`null_label` for an
            unconditional sample).
        null_label: int, the label meaning "no class".
        guidance_scale: float32 scalar (tensor or number), w.

    Returns:
        A callable `(x_t, t) -> prediction` for the samplers of
        `keras_ddpm.samplers`.

    Example:

    >>> guided = classifier_free_guidance(
    ...     lambda x, t, c: network([x, t, c]), labels, network.null_label, 3.0)
    >>> images = keras_ddpm.samplers.dpm_solver_sample(guided, x_T, schedule)

    References:
        - Ho & Salimans, "Classifier-Free Diffusion Guidance", 2022
          (arXiv:2207.12598), eq. 6.
    """
    labels = ops.cast(labels, "int32")
    scale = ops.cast(guidance_scale, "float32")

    def guided(x_t, t):
        null = ops.full_like(labels, null_label)

        def conditional():
            return ops.cast(denoise_fn(x_t, t, labels), "float32")

        def unconditional():
            return ops.cast(denoise_fn(x_t, t, null), "float32")

        def mixed():
            both = denoise_fn(
                ops.concatenate([x_t, x_t], axis=0),
                ops.concatenate([t, t], axis=0),
                ops.concatenate([labels, null], axis=0),
            )
            cond, uncond = ops.split(ops.cast(both, "float32"), 2, axis=0)
            return uncond + scale * (cond - uncond)

        return ops.cond(
            ops.equal(scale, 1.0),
            conditional,
            lambda: ops.cond(ops.equal(scale, 0.0), unconditional, mixed),
        )

    return guided
