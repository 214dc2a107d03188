"""Editing with any trained model: inpainting, inversion (`encode`) and interpolation.

Functions over a `generation.ReverseProcess`, called by `DDPM.inpaint`,
`DDPM.encode` and `DDPM.interpolate`: each checks its inputs in one place, runs
compiled loops of the process in chunks with a progress bar, and returns NumPy
arrays. The SavedModel's `edit` and `inpaint` endpoints
(`keras_ddpm.export.editing`) run the same compiled loops.
Image-to-image (SDEdit) lives in `ReverseProcess.generate` itself
(`initial_images=`, `strength=`), since it is generation started part-way.
"""

import math

import numpy as np
from keras import ops

from keras_ddpm import checks
from keras_ddpm import samplers
from keras_ddpm import utils
from keras_ddpm.samplers.spacing import resolve_optimized
from keras_ddpm.sampling_inputs import check_images
from keras_ddpm.sampling_inputs import check_labels
from keras_ddpm.sampling_inputs import image_seeds
from keras_ddpm.sampling_inputs import initial_noise
from keras_ddpm.sampling_inputs import run_seed

INTERPOLATION_INPUTS = ("images", "noise")


def check_mask(mask, shape):
    """A mask for images of `shape` `(N, H, W, C)`, broadcast to it as float32 NumPy.

    `(H, W)`, `(H, W, 1)`, `(H, W, C)`, `(N, H, W, 1)`, `(1, H, W, C)` and
    the full shape all work; values must lie in [0, 1] (booleans too).
    """
    array = checks.as_numpy(mask)
    if not (array.dtype == bool or np.issubdtype(array.dtype, np.number)):
        raise TypeError(f"`mask` must hold numbers in [0, 1]; received dtype {array.dtype}.")
    given = array.shape
    if array.ndim == 2:  # (H, W): one mask for every channel and image
        array = array[..., None]
    try:
        array = np.broadcast_to(array.astype(np.float32), shape)
    except ValueError:
        raise ValueError(
            f"`mask` of shape {given} does not broadcast to the images' shape {shape}; pass "
            "(H, W), (H, W, 1), (N, H, W, 1) or the images' shape."
        ) from None
    if not np.all(np.isfinite(array)):
        raise ValueError("`mask` must hold values in [0, 1]; received NaN or infinite values.")
    if array.min() < 0.0 or array.max() > 1.0:
        raise ValueError(
            "`mask` must hold values in [0, 1] (1 keeps a pixel, 0 fills it); received values "
            f"in [{array.min():.3g}, {array.max():.3g}]."
        )
    return array


def _image_batch(images, process):
    """`images` checked as a non-empty batch of floats in [−1, 1] for `process`'s network."""
    images = check_images("images", images, image_shape=process.image_shape)
    if len(images) == 0:
        raise ValueError(f"`images` must hold at least one image; received shape {images.shape}.")
    return images


def inpaint(
    process, images, mask, sampler=samplers.DEFAULT_SAMPLER, steps=None,
    resample_steps=samplers.RESAMPLE_STEPS, jump_length=samplers.JUMP_LENGTH,
    timestep_spacing=None, seed=None, clip=True, batch_size=None, verbose="auto",
    jit_compile="auto", labels=None, guidance_scale=None, variance=None, **options,
):
    """Fills the pixels where `mask` is 0; the arguments are `DDPM.inpaint`'s.

    Returns:
        float32 NumPy array shaped like `images`, equal to them where `mask` is 1.
    """
    images = _image_batch(images, process)
    num_images = len(images)
    mask = check_mask(mask, images.shape)
    batch_size = num_images if batch_size is None else checks.positive_int("batch_size", batch_size)
    resample_steps = checks.positive_int("resample_steps", resample_steps)
    jump_length = checks.positive_int("jump_length", jump_length)
    record = samplers.get_sampler(sampler)
    if record.step is None:
        raise ValueError(
            f"`inpaint` needs a sampler that steps from the current state alone, one of "
            f"{samplers.single_step_samplers()}; received sampler={sampler!r}, a multistep "
            "solver whose history a jump back would break."
        )
    steps, timestep_spacing = resolve_optimized(process.schedule, steps, timestep_spacing)
    if steps is None:
        steps = record.inpaint_steps_for(process.schedule.timesteps)
    record, steps, spacing, options = samplers.resolve(
        sampler, process.schedule.timesteps, steps, timestep_spacing, **options
    )
    labels, guidance_scale = check_labels(labels, guidance_scale, num_images, process.num_classes)
    chunks = math.ceil(num_images / batch_size)
    seed, jit_compile, static, runtime = process.run_settings(
        record, options, seed, jit_compile, min(batch_size, num_images), images.shape[1:],
        evaluations=steps * resample_steps * chunks)
    run = process.inpaint_loop(record.name, spacing, clip, jit_compile, variance, **static)
    repeats = tuple(ops.convert_to_tensor(v, "int32") for v in (resample_steps, jump_length))
    blocks = -(-steps // jump_length)
    show = verbose == 1 or (verbose == "auto" and steps * resample_steps > 100)
    bounds, progress = process.progress(show, True, chunks, 0, blocks)

    def start(chunk, begin, end):
        noise_keys, loop_keys = image_seeds(seed, begin, end)
        x = initial_noise(noise_keys, images.shape[1:])
        part = ops.convert_to_tensor(images[begin:end]), ops.convert_to_tensor(mask[begin:end])
        return x, (*part, loop_keys)

    filled = process.run_chunks(
        run, num_images, batch_size, steps, bounds, progress, start, labels, guidance_scale,
        after=(*repeats, *runtime),
    )
    return np.clip(filled, -1.0, 1.0) if clip else filled


def encode(
    process, images, sampler=samplers.INVERSION_SAMPLER, steps=None, timestep_spacing=None,
    batch_size=None, verbose="auto", jit_compile="auto", labels=None, guidance_scale=None, **options,
):
    """Runs a deterministic sampler backwards: images → x_T; the arguments are `DDPM.encode`'s.

    Returns:
        float32 NumPy array shaped like `images`.
    """
    images = _image_batch(images, process)
    num_images = len(images)
    batch_size = num_images if batch_size is None else checks.positive_int("batch_size", batch_size)
    steps, timestep_spacing = resolve_optimized(process.schedule, steps, timestep_spacing)
    record, steps, spacing = samplers.resolve_inverse(
        sampler, process.schedule.timesteps, steps, timestep_spacing, **options
    )
    labels, guidance_scale = check_labels(labels, guidance_scale, num_images, process.num_classes)
    chunks = math.ceil(num_images / batch_size)
    jit_compile = process.auto_jit(jit_compile, min(batch_size, num_images), images.shape[1:],
                                   evaluations=steps * chunks)
    run = process.inverse_loop(record.name, spacing, jit_compile)
    show = verbose == 1 or (verbose == "auto" and steps > 100)
    bounds, progress = process.progress(show, record.resumable, chunks, 0, steps)
    return process.run_chunks(
        run, num_images, batch_size, steps, bounds, progress,
        lambda chunk, begin, end: (ops.convert_to_tensor(images[begin:end]), ()), labels, guidance_scale,
    )


def _endpoints(a, b, image_shape):
    """`a` and `b` as batches `[N, H, W, C]` of one shape, and whether they were batched."""
    a, b = checks.as_numpy(a), checks.as_numpy(b)
    batched = a.ndim == 4
    pair_a, pair_b = (a[None], b[None]) if a.ndim == 3 else (a, b)
    if a.shape != b.shape or pair_a.ndim != 4 or (
        image_shape and pair_a.shape[1:] != tuple(image_shape)
    ):
        expected = "(H, W, C) or (N, H, W, C)" if not image_shape else (
            f"{tuple(image_shape)} or (N, {', '.join(map(str, image_shape))})"
        )
        raise ValueError(
            f"`a` and `b` must have one shape, {expected}; received shapes {a.shape} and "
            f"{b.shape}."
        )
    return pair_a, pair_b, batched


def interpolate(
    process, a=None, b=None, num=8, inputs="images", sampler=samplers.INVERSION_SAMPLER,
    steps=None, timestep_spacing=None, seed=None, clip=True, batch_size=None, verbose="auto",
    jit_compile="auto", labels=None, guidance_scale=None, **options,
):
    """Frames morphing `a` into `b` through slerp of their x_T; the arguments are `DDPM.interpolate`'s.

    Returns:
        float32 NumPy array `(num, H, W, C)` for one pair, `(N, num, H, W,
        C)` for batches of N pairs.
    """
    num = checks.positive_int("num", num)
    if num < 2:
        raise ValueError(f"`num` must be at least 2 (both ends); received num={num}.")
    checks.one_of("inputs", inputs, INTERPOLATION_INPUTS)
    seed = run_seed(seed)
    if (a is None) != (b is None):
        raise ValueError(
            "Pass both `a` and `b` (images or noise to interpolate between), or neither to draw "
            f"two x_T from `seed`; received {'a' if b is None else 'b'} only."
        )
    if a is None:
        if process.image_shape is None:
            raise ValueError("The network does not declare its input shape; pass `a` and `b`.")
        noise = np.asarray(initial_noise(image_seeds(seed, 0, 2)[0], process.image_shape))
        a, b, batched, drawn = noise[:1], noise[1:], False, True
    else:
        (a, b, batched), drawn = _endpoints(a, b, process.image_shape), False
    pairs = len(a)
    check_labels(labels, guidance_scale, pairs, process.num_classes)  # one label per pair
    ends_labels = frame_labels = labels
    if labels is not None and np.ndim(labels) == 1:
        ends_labels, frame_labels = np.tile(labels, 2), np.repeat(labels, num)
    if inputs == "images" and not drawn:
        a, b = check_images("a", a), check_images("b", b)
        encoded = encode(
            process, np.concatenate([a, b]), sampler=sampler, steps=steps,
            timestep_spacing=timestep_spacing, batch_size=batch_size, verbose=verbose,
            jit_compile=jit_compile, labels=ends_labels, guidance_scale=guidance_scale, **options,
        )
        a, b = encoded[:pairs], encoded[pairs:]
    elif not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("`a` and `b` must be finite noise; received NaN or infinite values.")
    frames = utils.slerp(a, b, np.linspace(0.0, 1.0, num))  # [num, N, H, W, C]
    frames = np.swapaxes(frames, 0, 1).reshape((pairs * num,) + a.shape[1:])
    images = process.generate(
        pairs * num, sampler=sampler, steps=steps, timestep_spacing=timestep_spacing, seed=seed,
        initial_noise=frames, clip=clip, batch_size=batch_size, verbose=verbose,
        jit_compile=jit_compile, labels=frame_labels, guidance_scale=guidance_scale, **options,
    ).reshape((pairs, num) + a.shape[1:])
    return images if batched else images[0]

