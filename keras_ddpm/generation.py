"""Generation: the cached, compiled reverse loop and what surrounds it.

A `ReverseProcess` is built from explicit inputs — a denoising network, its
`NoiseSchedule`, what it predicts, the reverse variance and its number of
classes — and owns everything between "draw N images" and the samplers of
`keras_ddpm.samplers`: argument checks (through the sampler registry and
`keras_ddpm.sampling_inputs`), class labels and classifier-free guidance,
seed → noise, one compiled while loop per sampler choice, cached and compiled
by the backend's room (also the inverse loop of `encode` and the inpainting
loop of `inpaint`), chunking and the progress bar.
`DDPM.generate` is a thin call into it, and the SavedModel export uses the
same compiled loops without importing `keras_ddpm.model`.

Same seed, same images: image i of a run seeded s draws x_T and its loop's
noise under keys of s and i alone (`sampling_inputs.image_seeds`,
counter-based: `keras_ddpm.rng`), whatever XLA, the device, the chunking or
the SavedModel.
"""

import math

import keras
import numpy as np
from keras import ops

from keras_ddpm import backend
from keras_ddpm import checks
from keras_ddpm import guidance
from keras_ddpm.backend import hardware
from keras_ddpm import objectives
from keras_ddpm import samplers
from keras_ddpm.backend import internals
from keras_ddpm import sampling_inputs
from keras_ddpm.sampling_inputs import check_edit
from keras_ddpm.sampling_inputs import check_initial_noise
from keras_ddpm.sampling_inputs import check_labels
from keras_ddpm.sampling_inputs import steps_to_run
from keras_ddpm.samplers.spacing import resolve_optimized
from keras_ddpm.schedules import check_variance

# Progress-bar updates per sampling run when `generate` reports progress.
PROGRESS_SEGMENTS = 20
# Loop input specs: keys (one per image, `keras_ddpm.rng`), int32 and float32 scalars.
# `(shape, dtype)` pairs, as the backend room's `compile_loop` takes them.
KEYS_SPEC = ((None, 2), "int32")
INT_SPEC = ((), "int32")
FLOAT_SPEC = ((), "float32")


class ReverseProcess:
    """The reverse process of one denoising network: compiled sampling loops and `generate`.

    Args:
        network: a Keras model called as `network([x_t, t])` (or
            `network([x_t, t, labels])` when `num_classes` is set).
        schedule: the `NoiseSchedule` it was trained on.
        prediction_type: what it predicts: `"epsilon"`, `"v"` or `"x0"`.
            Defaults to `"epsilon"`.
        variance: `"fixed_small"` or `"fixed_large"`, for ancestral sampling.
            Defaults to `"fixed_small"`.
        num_classes: the number of classes of a class-conditional network
            (its null label is `num_classes`), else `None`. Defaults to `None`.
        image_shape: `(H, W, C)`, or `None` for the network's declared input shape.

    Example:

    >>> process = ReverseProcess(network, NoiseSchedule("linear", 1000))
    >>> images = process.generate(16, sampler="ddim", steps=50, seed=0)
    """

    def __init__(
        self, network, schedule, prediction_type="epsilon", variance="fixed_small",
        num_classes=None, image_shape=None,
    ):
        objectives.check_prediction_type(prediction_type, schedule)
        check_variance(variance)
        self.network = network
        self.schedule = schedule
        self.prediction_type = prediction_type
        self.variance = variance
        self.num_classes = num_classes
        if image_shape is None and getattr(network, "inputs", None):
            image_shape = tuple(network.inputs[0].shape[1:])
        known = image_shape is not None and None not in tuple(image_shape)  # (None, None, C): no
        self.image_shape = tuple(image_shape) if known else None
        self.loops = {}

    def denoiser(self, labels=None, guidance_scale=None):
        """`(x_t, t) -> prediction`: the one way sampling and the likelihood call the network.

        Args:
            labels: int32 `[B]` classes of a conditional network (the null
                label for unconditional predictions); `None` gives null labels
                to a conditional network. Defaults to `None`.
            guidance_scale: classifier-free guidance weight w (a float32
                tensor or number). Defaults to `None` (1: plain conditional).
        """
        network = self.network
        if self.num_classes is None:
            return lambda x_t, t: network([x_t, t], training=False)
        scale = 1.0 if guidance_scale is None else guidance_scale
        if labels is None:
            return lambda x_t, t: network(
                [x_t, t, ops.full_like(t, self.num_classes)],
                training=False,
            )
        return guidance.classifier_free_guidance(
            lambda x_t, t, c: network([x_t, t, c], training=False),
            labels, self.num_classes, scale,
        )

    def supports_jit(self):
        """Whether every layer of the network can be compiled with XLA."""
        return all(layer.supports_jit for layer in internals.flatten_layers(self.network))

    def auto_jit(self, jit_compile, batch_size, image_shape=None, evaluations=None):
        """`jit_compile` with `"auto"` resolved for batches of `batch_size` images.

        `"auto"` compiles with XLA when every layer supports it and XLA pays:
        on a GPU or TPU, or on a CPU for small steps in calls of enough
        network `evaluations` (`hardware.xla_pays`; `None`: a loop run many
        times).
        """
        if jit_compile != "auto":
            return jit_compile
        shape = image_shape or self.image_shape
        pixels = math.prod(shape[:-1]) if shape else 1
        parameters = self.network.count_params() if self.network.built else 0
        return self.supports_jit() and hardware.xla_pays(
            parameters, pixels, batch_size, evaluations)

    def loop(self, sampler, timestep_spacing=None, clip=True, jit_compile=False, **static_options):
        """The cached compiled reverse loop of one sampler choice.

        Its inputs are `(x, seed, start, stop, steps, *runtime_options)` —
        float32 `[B, H, W, C]`, int32 keys `[B, 2]` (one per image), three int32 scalars and one
        float32 scalar per runtime option of the sampler (DDIM's η) — then,
        for a conditional network, int32 labels `[B]` and the float32
        guidance scale. Steps, step range, runtime options, labels and the
        guidance scale are tensors: changing them never retraces.

        Args:
            sampler: a registered sampler's name.
            timestep_spacing: `None` for the sampler's default.
            clip: clip x̂_0 at every step. Defaults to `True`.
            jit_compile: compile with XLA. Defaults to `False`.
            **static_options: the sampler's trace-time options (e.g. `order`).
        """
        record, spacing = self._record(sampler, timestep_spacing)
        key = (sampler, spacing, bool(clip), bool(jit_compile), tuple(sorted(static_options.items())))
        runtime = [option.name for option in record.runtime_options]

        def body():
            function = record.function()

            def run(x, seed, start, stop, steps, *extra):
                options = dict(zip(runtime, extra[: len(runtime)]), **static_options)
                conditioning = extra[len(runtime):]
                return function(
                    self.denoiser(*conditioning), x, self.schedule, seed=seed, steps=steps,
                    timestep_spacing=spacing, prediction_type=self.prediction_type,
                    clip=bool(clip), variance=self.variance, start=start, stop=stop, **options,
                )

            return run

        specs = (KEYS_SPEC, INT_SPEC, INT_SPEC, INT_SPEC, *[FLOAT_SPEC] * len(runtime))
        return self.cached_loop(key, specs, jit_compile, body)

    def inverse_loop(self, sampler, timestep_spacing=None, jit_compile=False):
        """The cached compiled inverse (images → x_T) of a deterministic sampler, for `encode`.

        Its inputs are `(x, start, stop, steps)` — float32 `[B, H, W, C]` and
        three int32 scalars — then, for a conditional network, int32 labels
        `[B]` and the float32 guidance scale.
        """
        record, spacing = self._record(sampler, timestep_spacing)
        key = ("inverse", sampler, spacing, bool(jit_compile))

        def body():
            function = record.inverse_function()

            def run(x, start, stop, steps, *conditioning):
                return function(
                    self.denoiser(*conditioning), x, self.schedule, steps=steps,
                    timestep_spacing=spacing, prediction_type=self.prediction_type, start=start,
                    stop=stop,
                )

            return run

        return self.cached_loop(key, (INT_SPEC, INT_SPEC, INT_SPEC), jit_compile, body)

    def inpaint_loop(self, sampler, timestep_spacing=None, clip=True, jit_compile=False,
                     variance=None, **static_options):
        """The cached compiled inpainting loop (`samplers.repaint_sample`) of a single-step sampler.

        Its inputs are `(x, images, mask, seed, start, stop, steps,
        resample_steps, jump_length, *runtime_options)` — three float32
        `[B, H, W, C]`, int32 keys `[B, 2]`, five int32 scalars (`start` and `stop`
        count blocks) and the sampler's runtime options — then, for a
        conditional network, int32 labels `[B]` and the float32 guidance scale.
        `variance` overrides the process's reverse variance (`None`: its own).
        """
        record, spacing = self._record(sampler, timestep_spacing)
        variance = variance or self.variance
        check_variance(variance)
        key = ("inpaint", sampler, spacing, bool(clip), bool(jit_compile), variance,
               tuple(sorted(static_options.items())))
        runtime = [option.name for option in record.runtime_options]

        def body():
            step, repaint_sample = record.step_function(), samplers.repaint_sample

            def run(x, images, mask, seed, start, stop, steps, resample_steps, jump_length,
                    *extra):
                options = dict(zip(runtime, extra[: len(runtime)]), **static_options)
                conditioning = extra[len(runtime):]

                def one_step(x, t, prev_t, prediction, noise):
                    return step(
                        self.schedule, x, t, prev_t, prediction, noise,
                        prediction_type=self.prediction_type, clip=bool(clip),
                        variance=variance, **options,
                    )

                return repaint_sample(
                    one_step, self.denoiser(*conditioning), x, images, mask, self.schedule,
                    seed, steps=steps, resample_steps=resample_steps, jump_length=jump_length,
                    timestep_spacing=spacing, prediction_type=self.prediction_type, start=start,
                    stop=stop,
                )

            return run

        image = self._signature()[0]
        specs = (image, image, KEYS_SPEC, *[INT_SPEC] * 5, *[FLOAT_SPEC] * len(runtime))
        return self.cached_loop(key, specs, jit_compile, body)

    @staticmethod
    def _record(sampler, timestep_spacing):
        """`(record, spacing)`: the sampler's record and the spacing with its default filled in."""
        record = samplers.get_sampler(sampler)
        return record, samplers.check_spacing(timestep_spacing or record.default_spacing)

    def cached_loop(self, key, specs, jit_compile, body):
        """The compiled loop cached under `key`; on a miss, `body()` makes its Python function.

        Its inputs are the images `[B, H, W, C]`, then `specs`, then a
        conditional network's labels and guidance scale (`_signature`).
        """
        if key not in self.loops:
            self.loops[key] = backend.room().compile_loop(
                body(), self._signature(*specs), jit_compile
            )
        return self.loops[key]

    def _signature(self, *specs):
        """A loop's input signature: images, then `specs`, then labels and w if conditional."""
        shape = self.image_shape or (None, None, None)
        signature = [((None,) + tuple(shape), "float32"), *specs]
        if self.num_classes is not None:
            signature += [((None,), "int32"), FLOAT_SPEC]
        return signature

    def conditioning(self, labels, guidance_scale, begin, end):
        """The loop inputs after the sampler's for images `begin:end`: `()` if unconditional."""
        if labels is None:
            return ()
        return (
            ops.convert_to_tensor(labels[begin:end], "int32"),
            ops.convert_to_tensor(guidance_scale, "float32"),
        )

    def run_settings(self, record, options, seed, jit_compile, batch_size, image_shape=None,
                     evaluations=None):
        """`(seed, jit_compile, static options, runtime option tensors)` of one run.

        The seed becomes a Python int (`sampling_inputs.run_seed`); `jit_compile="auto"` is resolved
        by `auto_jit` for batches of `batch_size` images of `image_shape`
        (defaults to the network's) in a call of `evaluations` network
        evaluations; `options` are the sampler's, as `samplers.resolve`
        returns them.
        """
        seed = sampling_inputs.run_seed(seed)
        jit_compile = self.auto_jit(jit_compile, batch_size, image_shape, evaluations)
        static = {o.name: options[o.name] for o in record.static_options}
        runtime = [
            ops.convert_to_tensor(options[o.name], "float32") for o in record.runtime_options
        ]
        return seed, jit_compile, static, runtime

    @staticmethod
    def progress(show, resumable, chunks, first, steps):
        """`(bounds, progress bar or None)`: the step ranges a chunk runs in, and the bar."""
        segments = PROGRESS_SEGMENTS if show and resumable else 1
        bounds = np.linspace(first, steps, min(segments, steps - first) + 1).round().astype(int)
        return bounds, (keras.utils.Progbar(chunks * (steps - first)) if show else None)

    def run_chunks(self, run, num_images, batch_size, steps, bounds, progress, start,
                   labels=None, guidance_scale=None, after=()):
        """`run` over `num_images` images in chunks of `batch_size`: the outputs, concatenated.

        The one driver of `generate`, `inpaint` and `encode`. `start(chunk, begin, end)`
        returns the chunk's first state and the loop inputs between it and the step range;
        `after` are those between the step range and the chunk's labels and guidance scale.

        Returns:
            float32 NumPy array `(num_images, H, W, C)`.
        """
        outputs = []
        for chunk, begin in enumerate(range(0, num_images, batch_size)):
            end = min(num_images, begin + batch_size)
            x, before = start(chunk, begin, end)
            conditioning = self.conditioning(labels, guidance_scale, begin, end)
            x = self.run_ranges(
                run, x, bounds, steps, progress, before=before, after=(*after, *conditioning)
            )
            outputs.append(ops.convert_to_numpy(x))
        return np.concatenate(outputs, axis=0)

    @staticmethod
    def run_ranges(run, x, bounds, steps, progress, before=(), after=()):
        """`x` through `run(x, *before, start, stop, steps, *after)` for each range of `bounds`."""
        for start, stop in zip(bounds[:-1], bounds[1:]):
            x = run(
                x, *before, *(ops.convert_to_tensor(v, "int32") for v in (start, stop, steps)),
                *after,
            )
            if progress is not None:
                progress.add(int(stop - start))
        return x

    def generate(
        self, num_images, sampler=samplers.DEFAULT_SAMPLER, steps=None, timestep_spacing=None,
        seed=None, initial_noise=None, clip=True, batch_size=None, verbose="auto",
        jit_compile="auto", labels=None, guidance_scale=None, initial_images=None, strength=None,
        **options,
    ):
        """Samples images from pure noise, or edits `initial_images`; the arguments are `DDPM.generate`'s.

        Returns:
            float32 NumPy array `(num_images, H, W, C)`, clipped to [−1, 1]
            when `clip`.
        """
        num_images = checks.positive_int("num_images", num_images)
        batch_size = num_images if batch_size is None else checks.positive_int("batch_size", batch_size)
        steps, timestep_spacing = resolve_optimized(self.schedule, steps, timestep_spacing)
        record, steps, spacing, options = samplers.resolve(
            sampler, self.schedule.timesteps, steps, timestep_spacing, **options
        )
        labels, guidance_scale = check_labels(labels, guidance_scale, num_images, self.num_classes)
        initial_noise = check_initial_noise(
            initial_noise, num_images, self.image_shape, initial_images is not None
        )
        initial_images, strength = check_edit(
            initial_images, strength, num_images, self.image_shape
        )
        given = initial_noise if initial_noise is not None else initial_images
        # SDEdit: the last round(strength * steps) steps, from the images noised to their start.
        first = 0 if strength is None else steps - steps_to_run(strength, steps)
        chunks = math.ceil(num_images / batch_size)
        seed, jit_compile, static, runtime = self.run_settings(
            record, options, seed, jit_compile, min(batch_size, num_images),
            None if given is None else given.shape[1:], evaluations=(steps - first) * chunks)
        run = self.loop(sampler, spacing, clip, jit_compile, **static)
        if first == steps:  # strength 0 (or too few steps to take one): the images as they are
            return np.clip(initial_images, -1.0, 1.0) if clip else initial_images.copy()
        sequence = None
        if first > 0:
            sequence = samplers.timestep_sequence(self.schedule, steps, spacing)
        show = verbose == 1 or (verbose == "auto" and steps - first > 100)
        bounds, progress = self.progress(show, record.resumable, chunks, first, steps)

        def start(chunk, begin, end):
            noise_keys, loop_keys = sampling_inputs.image_seeds(seed, begin, end)
            if initial_noise is None:
                shape = initial_images.shape[1:] if initial_images is not None else self.image_shape
                x = sampling_inputs.initial_noise(noise_keys, shape)
            else:
                x = ops.convert_to_tensor(initial_noise[begin:end])
            if first > 0:  # x_τ ~ q(x_τ | x_0) at the timestep the first step denoises
                t = ops.full((end - begin,), sequence[first], "int32")
                x = self.schedule.add_noise(initial_images[begin:end], x, t)
            return x, (loop_keys,)

        images = self.run_chunks(
            run, num_images, batch_size, steps, bounds, progress, start, labels, guidance_scale,
            after=runtime,
        )
        return np.clip(images, -1.0, 1.0) if clip else images
