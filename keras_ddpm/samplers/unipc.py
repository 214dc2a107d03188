"""UniPC: DPM-Solver++'s multistep predictor with the UniC corrector.

After each step the network is evaluated at the new point anyway (the next
step needs it); UniC uses that evaluation once more, to re-solve the step just
taken with one more interpolation node, the new x̂_0 itself, and replaces the
predicted point by the corrected one before the next step starts. The corrected
point is not evaluated again, so the network evaluations are those of the
predictor alone: NFE = `steps`, and the order of each step rises by one.

Both updates have the exponential-integrator form in λ = log(α/σ) (data
prediction, DPM-Solver++ eq. 9 with x̂_0 expanded in λ):

    x_t = (σ_t/σ_s) x_s − α_t (e^{−h} − 1) m_s − α_t B(h) Σ_k ρ_k D_k,

h = λ_t − λ_s, D_k = (m_k − m_s)/r_k the divided differences of the earlier
predictions m_k at r_k = (λ_k − λ_s)/h, and, for the corrector, also
D_t = m_t − m_s at r = 1. The weights ρ solve the small Vandermonde system
Σ_k ρ_k r_k^{i−1} = b_i(h) of UniPC (b_i from the φ-functions of h); with two
or three nodes it is solved in closed form, as Lagrange sums. UniP of order 2
is DPM-Solver++(2M) exactly.

References:
    - Zhao, Bai, Rao, Zhou & Lu, "UniPC: A Unified Predictor-Corrector
      Framework for Fast Sampling of Diffusion Models", NeurIPS 2023
      (UniC, UniP and the two choices of B(h)).
    - Lu, Zhou, Bao, Chen, Li & Zhu, "DPM-Solver++: Fast Solver for Guided
      Sampling of Diffusion Probabilistic Models", 2022.
"""

import numpy as np
from keras import ops

from keras_ddpm.samplers.loop import half_log_snr_at
from keras_ddpm.samplers.loop import multistep_run
from keras_ddpm.samplers.loop import per_image
from keras_ddpm.samplers.loop import prepare
from keras_ddpm.samplers.loop import x0_estimate
from keras_ddpm.samplers.registry import resolve
from keras_ddpm.schedules import precise_float


def _lagrange_weights(nodes, moments):
    """ρ with Σ_j ρ_j x_j^i = moments[i] (i < len(nodes)): ρ_j = Σ_i [L_j]_i · moments[i].

    L_j is the Lagrange basis polynomial of `nodes` that is 1 at x_j (a
    transposed Vandermonde system, solved in closed form).
    """
    weights = []
    for j, node in enumerate(nodes):
        polynomial, denominator = [1.0], 1.0  # Π_{a≠j} (x − x_a), lowest power first
        for a, other in enumerate(nodes):
            if a == j:
                continue
            shifted = [0.0] + polynomial
            polynomial = [high - other * low for high, low in zip(shifted, polynomial + [0.0])]
            denominator = denominator * (node - other)
        weights.append(sum(c * m for c, m in zip(polynomial, moments)) / denominator)
    return weights


def _moments(h):
    """UniPC's right-hand sides (b_1, b_2, b_3) and B for a step of h in λ.

    In data-prediction form the integrator runs in −h: with φ̂_1 = e^{−h} − 1
    and φ̂_{k+1} = φ̂_k/(−h) − 1/k!, b_i = i! φ̂_{i+1}/B, and B = φ̂_1 (UniPC's
    "B_2(h)"; B_1(h) = −h is infinite on the last step, to σ = 0).
    """
    hh = -h
    b_h = ops.expm1(hh)
    moments, factorial = [], 1.0
    phi = b_h / hh - 1.0
    for i in (1, 2, 3):
        moments.append(phi * factorial / b_h)
        factorial *= i + 1
        phi = phi / hh - 1.0 / factorial
    return moments, b_h


def _unipc_coefficients(h, r1, r2, alpha_t, order, corrector):
    """Scalars (c_s, c_1, c_2, c_t) of x_t = (σ_t/σ_s) x_s + c_s m_s + c_1 m_1 + c_2 m_2 + c_t m_t.

    m_1, m_2 are the predictions before s, at r_1, r_2 (in units of h); m_t, the
    prediction at the predicted x_t, is the corrector's alone (c_t = 0 for the
    predictor). `order` (traced int32, 1–3) counts the history used.
    """
    one = ops.ones_like(h)
    safe_h = ops.where(ops.isfinite(h) & (h > 0), h, one)
    # History nodes lie before s: r < 0. Unused ones get harmless values.
    safe_r1 = ops.where(ops.isfinite(r1) & (r1 < 0), r1, -one)
    safe_r2 = ops.where(ops.isfinite(r2) & (r2 < safe_r1), r2, 2.0 * safe_r1)
    (b1, b2, b3), b_h = _moments(safe_h)
    zero = ops.zeros_like(h)
    if corrector:
        first = (zero, zero, 0.5 * one)
        rho1, rho_t = _lagrange_weights([safe_r1, 1.0], [b1, b2])
        second = (rho1, zero, rho_t)
        third = tuple(_lagrange_weights([safe_r1, safe_r2, 1.0], [b1, b2, b3]))
    else:
        first = (zero, zero, zero)
        second = (0.5 * one, zero, zero)  # UniP-2 = DPM-Solver++(2M), as UniPC fixes it
        rho1, rho2 = _lagrange_weights([safe_r1, safe_r2], [b1, b2])
        third = (rho1, rho2, zero)
    rho1, rho2, rho_t = [
        ops.where(order >= 3, c3, ops.where(order >= 2, c2, c1))
        for c1, c2, c3 in zip(first, second, third)
    ]
    # Σ ρ_k D_k with D_k = (m_k − m_s)/r_k and D_t = m_t − m_s.
    scale = -alpha_t * b_h
    c1, c2, c_t = scale * rho1 / safe_r1, scale * rho2 / safe_r2, scale * rho_t
    c_s = -alpha_t * ops.expm1(-h) - c1 - c2 - c_t
    return c_s, c1, c2, c_t


def unipc_sample(
    denoise_fn,
    initial_noise,
    schedule,
    steps=None,
    order=None,
    timestep_spacing=None,
    prediction_type="epsilon",
    clip=True,
    start=0,
):
    """UniPC sampling: DPM-Solver++ multistep steps, each corrected by UniC (Zhao et al. 2023).

    Step k evaluates the network at the predicted x at τ_k, corrects that
    point with the step from τ_{k−1} re-solved through the new prediction
    (UniC, one order higher than the predictor, no extra evaluation), then
    predicts τ_{k+1} from the corrected point with DPM-Solver++ of order
    `order` (UniP; lower while the history fills, first order after an
    infinite λ jump). As in `dpm_solver_sample` the last step returns x̂_0
    at the last visited index, so NFE = `steps`.

    Args:
        denoise_fn: callable `(x_t, t) -> prediction`.
        initial_noise: x at index `start` of the sequence, float32 `[B, ...]`.
        schedule: the `NoiseSchedule`.
        steps: number of steps (= NFE) in [1, T], int or int32 scalar tensor.
            Defaults to `None`: the `"unipc"` record's default steps.
        order: the predictor's order, 1, 2 or 3 (Python int); the corrector's
            is one higher. Defaults to `None`: the record's default.
        timestep_spacing: see `timestep_sequence`. Defaults to `None`: the
            record's default spacing (`"logsnr"`).
        prediction_type: what `denoise_fn` predicts. Defaults to `"epsilon"`.
        clip: clip every x̂_0 to [−1, 1]. Defaults to `True`.
        start: the first step (int or int32 scalar tensor), for a run that
            begins part-way (image-to-image); the history starts empty there.
            Defaults to `0`.

    Returns:
        x_0, float32, shaped like `initial_noise`.

    Example:

    >>> x0 = unipc_sample(denoise, noise, schedule, steps=10, order=2)

    References:
        - Zhao, Bai, Rao, Zhou & Lu, "UniPC: A Unified Predictor-Corrector
          Framework for Fast Sampling of Diffusion Models", NeurIPS 2023.
    """
    _, steps, timestep_spacing, options = resolve(
        "unipc", schedule.timesteps, steps, timestep_spacing, order=order
    )
    order = options["order"]
    x, steps, sequence = prepare(schedule, initial_noise, steps, timestep_spacing, prediction_type)
    batch = ops.shape(x)[0]
    start = ops.cast(start, "int32")
    def update(s, t, x_s, m_s, m1, m2, m_t, lam_s, lam_1, lam_2, order, corrector):
        """One UniP (or UniC) step from index s to t, float32."""
        lam_t = half_log_snr_at(schedule, t)
        h = lam_t - lam_s
        alpha_t = ops.sqrt(schedule.alphas_cumprod_at(t))
        sigma_ratio = ops.sqrt(1.0 - schedule.alphas_cumprod_at(t)) / ops.sqrt(
            1.0 - schedule.alphas_cumprod_at(s)
        )
        c_s, c1, c2, c_t = [
            ops.cast(c, "float32")
            for c in _unipc_coefficients(
                h, (lam_1 - lam_s) / h, (lam_2 - lam_s) / h, alpha_t, order, corrector
            )
        ]
        x_t = ops.cast(sigma_ratio, "float32") * x_s + c_s * m_s + c1 * m1 + c2 * m2
        return x_t + c_t * m_t if corrector else x_t

    def history_order(lam_s, lam_1, lam_2):
        """How many predictions with finite λ steps between them end at s (1–3)."""
        h0, h1 = lam_s - lam_1, lam_1 - lam_2
        return ops.where(ops.isfinite(h0), ops.where(ops.isfinite(h1), 3, 2), 1)

    def body(k, x, x_s, m1, m2, m3, lam1, lam2, lam3, last_order):
        t, next_t = sequence[k], sequence[k + 1]
        m_t, _ = x0_estimate(
            denoise_fn(x, per_image(t, batch)), x, schedule.alphas_cumprod_at(t),
            prediction_type, clip,
        )
        lam_t = half_log_snr_at(schedule, t)
        # 1. UniC: re-solve τ_{k−1} → τ_k through m_t (not after the first step of a
        #    run, nor after an infinite jump in λ).
        corrected = update(
            sequence[ops.maximum(k - 1, 0)], t, x_s, m1, m2, m3, m_t, lam1, lam2, lam3,
            last_order, corrector=True,
        )
        x = ops.where((k > start) & ops.isfinite(lam_t - lam1), corrected, x)
        # 2. UniP (DPM-Solver++) from the corrected point, of order at most the steps
        #    left (first order to the clean data), as diffusers' `lower_order_final`.
        step_order = ops.minimum(order, history_order(lam_t, lam1, lam2))
        step_order = ops.cast(ops.minimum(step_order, steps - k), "int32")
        x_next = update(
            t, next_t, x, m_t, m1, m2, None, lam_t, lam1, lam2, step_order, corrector=False
        )
        return k + 1, x_next, x, m_t, m1, m2, lam_t, lam1, lam2, step_order

    nan = ops.full((), np.nan, precise_float())
    zeros = ops.zeros_like(x)
    _, x, *_ = ops.while_loop(
        lambda k, *_: k < steps,
        body,
        (start, x, x, zeros, zeros, zeros, nan, nan, nan, ops.ones((), "int32")),
    )
    return x


# The registry's entry point.
run = multistep_run(unipc_sample)
