"""DDIM inversion: the deterministic DDIM ODE run forward, from images to x_T.

Reverse DDIM (η = 0) step k maps x at τ_k to τ_{k+1} with the prediction at
(x_{τ_k}, τ_k). Running it backwards exactly would need that prediction at the
unknown x_{τ_k}; inversion takes it at the known x_{τ_{k+1}} instead, still
with the timestep τ_k, so each step is explicit and the first one (from the
clean data, τ_S = −1) is defined. The error of that substitution shrinks with
the step size, so `ddim_sample(ddim_invert(x))` returns to x at first order in
1/steps (Song, Meng & Ermon 2021, section 4.3; Dhariwal & Nichol 2021,
appendix F; measured in tests/test_encode.py).

References:
    - Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021
      (eq. 14 and section 4.3: encoding with the ODE).
    - Dhariwal & Nichol, "Diffusion Models Beat GANs on Image Synthesis",
      NeurIPS 2021 (appendix F: DDIM inversion).
"""

from keras import ops

from keras_ddpm import objectives
from keras_ddpm.samplers.loop import broadcast
from keras_ddpm.samplers.loop import per_image
from keras_ddpm.samplers.loop import prepare
from keras_ddpm.samplers.loop import run_steps
from keras_ddpm.samplers.registry import resolve_inverse


def ddim_invert_step(schedule, x_s, s, t, prediction, prediction_type="epsilon"):
    """One inverse DDIM step x_s → x_t, from a less noisy index `s` to `t` > `s`.

    Args:
        schedule: the `NoiseSchedule`.
        x_s: float32 images at index `s`, `[B, ...]`.
        s: integer indices `[B]`, −1 for the clean data.
        t: the indices to step to, `[B]`.
        prediction: the denoiser's output for `(x_s, t)`: the input of the
            step, seen at the timestep of its output.
        prediction_type: `"epsilon"`, `"v"` or `"x0"`. Defaults to `"epsilon"`.

    Returns:
        x_t, float32, shaped like `x_s`.
    """
    x_s = ops.convert_to_tensor(x_s, "float32")
    ndim = len(x_s.shape)
    # 1. ᾱ of both ends (ᾱ_{−1} = 1).
    alpha_bar_s = schedule.alphas_cumprod_at(s)
    alpha_bar_t = schedule.alphas_cumprod_at(t)
    # 2. ε̂ as the network sees x_s at timestep t, then the x̂_0 it implies at s.
    epsilon = objectives.to_epsilon(
        ops.cast(prediction, "float32"), x_s, broadcast(ops.sqrt(alpha_bar_t), ndim),
        broadcast(ops.sqrt(1.0 - alpha_bar_t), ndim), prediction_type,
    )
    x0 = (x_s - broadcast(ops.sqrt(1.0 - alpha_bar_s), ndim) * epsilon) / broadcast(
        ops.sqrt(alpha_bar_s), ndim
    )
    # 3. The DDIM update (Song et al. 2021, eq. 12 at η = 0) towards t.
    return broadcast(ops.sqrt(alpha_bar_t), ndim) * x0 + broadcast(
        ops.sqrt(1.0 - alpha_bar_t), ndim
    ) * epsilon


def ddim_invert(
    denoise_fn,
    images,
    schedule,
    steps=None,
    timestep_spacing=None,
    prediction_type="epsilon",
    start=0,
    stop=None,
):
    """Encodes images into the x_T that deterministic DDIM decodes back to them.

    Step j of the S steps goes from τ_{S−j} to τ_{S−1−j} of the reverse
    sequence (τ_S = −1 is the clean data), so the encoding visits the same
    timesteps as `ddim_sample(..., steps=S, timestep_spacing=...)`, in the
    opposite order.

    Args:
        denoise_fn: callable `(x_t, t) -> prediction`.
        images: clean images, or the state entering step `start`, float32
            `[B, ...]`.
        schedule: the `NoiseSchedule`.
        steps: number of steps (= NFE) in [1, T], int or int32 scalar tensor.
            Defaults to `None`: the `"ddim"` record's default steps.
        timestep_spacing: see `timestep_sequence`. Defaults to `None`: the
            `"ddim"` record's default spacing.
        prediction_type: what `denoise_fn` predicts. Defaults to `"epsilon"`.
        start: first step. Defaults to `0`.
        stop: one past the last step. Defaults to `steps`.

    Returns:
        x at τ_0 (x_T with the `"trailing"` spacing) after a full run, float32.

    Example:

    >>> latents = ddim_invert(denoise, images, schedule, steps=50)
    >>> again = ddim_sample(denoise, latents, schedule, np.array([0, 0]), steps=50, clip=False)
    """
    _, steps, timestep_spacing = resolve_inverse("ddim", schedule.timesteps, steps, timestep_spacing)
    x, steps, sequence = prepare(schedule, images, steps, timestep_spacing, prediction_type)
    batch = ops.shape(x)[0]

    def body(j, x):
        s = per_image(ops.take(sequence, steps - j), batch)
        t = per_image(ops.take(sequence, steps - 1 - j), batch)
        return ddim_invert_step(schedule, x, s, t, denoise_fn(x, t), prediction_type)

    return run_steps(body, x, steps, start, stop)


def run(denoise_fn, x, schedule, *, steps, timestep_spacing, prediction_type, start=0,
        stop=None):
    """The registry's inverse entry point (see `keras_ddpm.samplers.Sampler`)."""
    return ddim_invert(
        denoise_fn, x, schedule, steps=steps, timestep_spacing=timestep_spacing,
        prediction_type=prediction_type, start=start, stop=stop,
    )
