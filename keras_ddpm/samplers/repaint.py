"""Inpainting with any single-step sampler: known-region replacement and RePaint resampling.

The reverse process runs over the whole image. After every step to index s,
the kept pixels (mask 1) are replaced by a fresh draw of q(x_s | x_0) from the
original image, so that the state's known region always has the law the
network was trained on; the unknown pixels (mask 0) come from the sampler
step. At s = −1 the kept pixels are the original ones exactly. With one pass
this is the replacement baseline, which is biased when pixels are correlated:
each step sees a known region that was drawn independently of what the
unknown region already became.

RePaint's resampling (Lugmayr et al. 2022) lets the two regions agree: the S
steps are cut into blocks of `jump_length` steps; after denoising a block,
the whole state is sent back to the block's first index with the forward
process, q(x_τ | x_s) = N(√(ᾱ_τ/ᾱ_s) x_s, (1 − ᾱ_τ/ᾱ_s) I) in one jump (the
same law as the step-by-step forward chain), and the block is denoised again,
`resample_steps` passes in all. Every block is resampled, the noisiest too.
Network evaluations: S · `resample_steps`.

Notation as in `keras_ddpm.samplers`: position p in 0 … S holds the state at
τ_p (τ_S = −1, the clean data); step p goes from τ_p to τ_{p+1}.

References:
    - Lugmayr, Danelljan, Romero, Yu, Timofte & Van Gool, "RePaint:
      Inpainting using Denoising Diffusion Probabilistic Models", CVPR 2022
      (Algorithm 1, section 4.3).
"""

from keras import ops

from keras_ddpm import rng
from keras_ddpm.samplers.loop import broadcast
from keras_ddpm.samplers.loop import per_image
from keras_ddpm.samplers.loop import prepare
from keras_ddpm.samplers.registry import INPAINT_STEPS
from keras_ddpm.samplers.registry import JUMP_LENGTH
from keras_ddpm.samplers.registry import RESAMPLE_STEPS

# Streams of the noise besides the steps', folded into the seed after the position and the pass.
_KNOWN, _JUMP = 1, 2


def _noise(like, keys, position, repeat, stream=None):
    """Standard normal noise shaped like `like`, a function of the image keys and its coordinates.

    The first pass's step noise (`stream=None`, `repeat` 0) is the noise step
    `position` of `generate` draws, under `fold_in(keys, position)`: with
    nothing kept and one pass, inpainting is exactly generation.
    """
    step_keys = rng.fold_in(keys, position)
    other = rng.fold_in(rng.fold_in(step_keys, repeat), 0 if stream is None else stream)
    if stream is None:
        step_keys = ops.where(ops.equal(repeat, 0), step_keys, other)
    else:
        step_keys = other
    return rng.normal(step_keys, ops.shape(like)[1:])


def repaint_sample(
    step,
    denoise_fn,
    initial_noise,
    images,
    mask,
    schedule,
    seed,
    steps=INPAINT_STEPS,
    resample_steps=RESAMPLE_STEPS,
    jump_length=JUMP_LENGTH,
    timestep_spacing="trailing",
    prediction_type="epsilon",
    start=0,
    stop=None,
):
    """Fills the pixels where `mask` is 0 so that they agree with the kept ones.

    Args:
        step: one reverse step, `(x, t, prev_t, prediction, noise) -> x_prev`
            (e.g. `ddpm_step` or `ddim_step` with their options bound).
        denoise_fn: callable `(x_t, t) -> prediction`.
        initial_noise: x at τ_0, float32 `[B, ...]`, or the state entering
            block `start`.
        images: the images to complete, float32 `[B, ...]`, in [−1, 1].
        mask: float32 shaped like `images`: 1 where pixels are kept, 0 where
            they are filled (values between blend the two).
        schedule: the `NoiseSchedule`.
        seed: int32 key `[2]`, or one per image `[B, 2]` (`keras_ddpm.rng`).
        steps: reverse steps S in [1, T] (int or int32 scalar tensor).
            Defaults to `250`.
        resample_steps: passes over each block, r ≥ 1 (1: the replacement
            baseline). int or int32 scalar tensor. Defaults to `10`.
        jump_length: steps per block, j ≥ 1. int or int32 scalar tensor.
            Defaults to `10`.
        timestep_spacing: see `timestep_sequence`. Defaults to `"trailing"`.
        prediction_type: what `denoise_fn` predicts. Defaults to `"epsilon"`.
        start: first block. Defaults to `0`.
        stop: one past the last block. Defaults to all, ⌈S / j⌉.

    Returns:
        The state after block `stop − 1` (the inpainted images after a full
        run), float32.

    Example:

    >>> step = lambda x, t, s, prediction, noise: ddpm_step(schedule, x, t, prediction, noise, prev_t=s)
    >>> filled = repaint_sample(step, denoise, noise, images, mask, schedule, np.array([0, 0]))
    """
    x, steps, sequence = prepare(schedule, initial_noise, steps, timestep_spacing, prediction_type)
    images = ops.convert_to_tensor(images, "float32")
    mask = ops.convert_to_tensor(mask, "float32")
    ndim = len(x.shape)
    batch = ops.shape(x)[0]
    seed = rng.as_image_keys(seed, batch)
    resample_steps = ops.maximum(ops.cast(resample_steps, "int32"), 1)
    jump_length = ops.maximum(ops.cast(jump_length, "int32"), 1)
    num_blocks = (steps + jump_length - 1) // jump_length
    stop = num_blocks if stop is None else ops.minimum(ops.cast(stop, "int32"), num_blocks)

    def index(position):
        return per_image(ops.take(sequence, position), batch)

    def with_known(x, position, repeat):
        """x with the kept pixels replaced by a draw of q(x_{τ_position} | x_0)."""
        alpha_bar = schedule.alphas_cumprod_at(index(position))  # 1 at the clean data
        known = broadcast(ops.sqrt(alpha_bar), ndim) * images + broadcast(
            ops.sqrt(1.0 - alpha_bar), ndim
        ) * _noise(x, seed, position, repeat, _KNOWN)
        return mask * known + (1.0 - mask) * x

    def denoise(position, repeat, x):
        t, prev_t = index(position), index(position + 1)
        noise = _noise(x, seed, position, repeat)
        return with_known(step(x, t, prev_t, denoise_fn(x, t), noise), position + 1, repeat)

    def jump_back(first, last, repeat, x):
        """x at τ_last sent back to τ_first by the forward process, in one jump."""
        ratio = schedule.alphas_cumprod_at(index(first)) / schedule.alphas_cumprod_at(index(last))
        return broadcast(ops.sqrt(ratio), ndim) * x + broadcast(
            ops.sqrt(1.0 - ratio), ndim
        ) * _noise(x, seed, last, repeat, _JUMP)

    def block(b, x):
        first = b * jump_length
        last = ops.minimum(first + jump_length, steps)

        def one_pass(repeat, x):
            _, x = ops.while_loop(
                lambda p, _: p < last,
                lambda p, x: (p + 1, denoise(p, repeat, x)),
                (first, x),
            )
            return ops.cond(
                repeat + 1 < resample_steps,
                lambda: jump_back(first, last, repeat, x),
                lambda: x,
            )

        _, x = ops.while_loop(
            lambda repeat, _: repeat < resample_steps,
            lambda repeat, x: (repeat + 1, one_pass(repeat, x)),
            (ops.zeros((), "int32"), x),
        )
        return x

    start = ops.convert_to_tensor(start, "int32")
    # The state entering the first block has its kept pixels at τ_0 already.
    x = ops.cond(start == 0, lambda: with_known(x, 0, -1), lambda: x)
    _, x = ops.while_loop(
        lambda b, _: b < stop,
        lambda b, x: (b + 1, block(b, x)),
        (start, x),
    )
    return x


def blocks(steps, jump_length):
    """The number of blocks a run of `steps` steps with jumps of `jump_length` has."""
    return -(-int(steps) // int(jump_length))
