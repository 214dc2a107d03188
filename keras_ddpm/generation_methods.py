"""`DDPM`'s sampling and editing methods: generate, inpaint, encode, interpolate.

A mixin of `keras_ddpm.DDPM`, kept apart from the training code of `model.py`.
Each method is a thin, documented call into `generation.ReverseProcess` (the
cached compiled loops) or `editing` (inpainting, inversion, interpolation) for
the EMA or raw network; it reads `network`, `ema_network`, `schedule`,
`prediction_type`, `variance`, `num_classes`, `image_shape` and the
`_reverse_processes` cache (emptied by `compile`) of the model.
"""

from keras_ddpm import editing
from keras_ddpm import samplers
from keras_ddpm.generation import ReverseProcess


class GenerationMethods:
    """The sampling and editing methods of `DDPM` (see the module docstring)."""

    def reverse_process(self, use_ema=True):
        """The `generation.ReverseProcess` of the EMA (or raw) network, cached until `compile`.

        Args:
            use_ema: the EMA weights when the model keeps them. Defaults to `True`.
        """
        network_ema = bool(use_ema and self.ema_network is not None)
        if network_ema not in self._reverse_processes:
            self._reverse_processes[network_ema] = ReverseProcess(
                self.ema_network if network_ema else self.network,
                self.schedule,
                prediction_type=self.prediction_type,
                variance=self.variance,
                num_classes=self.num_classes,
                image_shape=self.image_shape,
            )
        return self._reverse_processes[network_ema]

    def generate(
        self,
        num_images,
        sampler=samplers.DEFAULT_SAMPLER,
        steps=None,
        timestep_spacing=None,
        seed=None,
        initial_noise=None,
        clip=True,
        use_ema=True,
        batch_size=None,
        verbose="auto",
        jit_compile="auto",
        labels=None,
        guidance_scale=None,
        initial_images=None,
        strength=None,
        **sampler_options,
    ):
        """Samples images by running a reverse-process sampler from pure noise (or edits images).

        The reverse loop is one compiled while loop per sampler choice
        (spacing, order, weights, clip, XLA), traced once and cached by
        `reverse_process()`: steps and runtime options (DDIM's η) are tensor
        inputs, so changing them does not retrace.

        Args:
            num_images: how many images to generate.
            sampler: a name of `keras_ddpm.samplers.sampler_names()`: `"ddpm"`
                (ancestral, Ho et al. 2020; respaced when `steps < T`),
                `"ddim"` (Song et al. 2021), `"dpm_solver"` (DPM-Solver++
                multistep, Lu et al. 2022), `"ipndm"` (Adams–Bashforth in σ,
                Zhang & Chen 2023) or a registered one. Defaults to
                `keras_ddpm.samplers.DEFAULT_SAMPLER` (ancestral).
            steps: network evaluations, in [1, T]. Defaults to `None`: the
                sampler record's `default_steps` (T for `"ddpm"`), capped at T.
            timestep_spacing: one of `samplers.TIMESTEP_SPACINGS` (see
                `samplers.timestep_sequence`). Defaults to
                `None`: the sampler record's `default_spacing`.
            seed: an int: the same seed gives the same images, however they
                are split into batches; a `keras.random.SeedGenerator`: each
                call takes the next seed of its sequence
                (`sampling_inputs.run_seed`). Defaults to `None`: a seed from
                Python's `random`, which `keras.utils.set_random_seed` seeds.
            initial_noise: optional x_T, shape `(num_images, H, W, C)`, used
                instead of drawing it from the seed.
            clip: clip x̂_0 at every step and the output to [−1, 1].
                Defaults to `True`.
            use_ema: sample with the EMA weights when the model keeps them.
                Defaults to `True`.
            batch_size: images denoised at once. Defaults to `num_images`.
            verbose: `0` silent, `1` a progress bar, `"auto"` a bar for runs of
                more than 100 steps (a non-resumable sampler such as
                DPM-Solver advances it once per batch). Defaults to `"auto"`.
            jit_compile: compile the reverse loop with XLA; `"auto"` does so
                when every layer supports it and XLA pays: on a GPU or TPU,
                and on a CPU for small steps (parameters x pixels x batch
                under `hardware.XLA_CPU_WORK_LIMIT`, where XLA's removal of
                per-op dispatch pays; larger networks run as fast without it
                and lighter) in calls of at least `hardware.XLA_CPU_MIN_EVALUATIONS` (250) network
                evaluations (steps x batches), which earn back the second
                or so that compiling takes. To sample many short calls in
                one process, pass `True`. Defaults to `"auto"`.
            labels: for a class-conditional model, one int for every image or
                `num_images` ints in `[0, num_classes)`. Defaults to `None`
                (unconditional samples).
            guidance_scale: classifier-free guidance weight w ≥ 0 (Ho &
                Salimans 2022): ε̂ = ε̂_∅ + w·(ε̂_c − ε̂_∅); 1 is plain
                conditional sampling. Needs `labels`. Defaults to `None` (1).
            initial_images: float images in [−1, 1], `(num_images, H, W, C)`,
                to edit instead of sampling from scratch (SDEdit, Meng et al.
                2022): they are noised with `schedule.add_noise` to the
                timestep where the last `round(strength · steps)` steps of the
                sampler's sequence begin, and those steps run. Needs
                `strength`. Defaults to `None`.
            strength: in [0, 1], the fraction of the steps to run: 1 ignores
                the images (exactly `generate`'s images for the same seed), 0
                returns them; in between, higher keeps less of them. Works with
                every sampler. Defaults to `None`.
            **sampler_options: the options of the sampler's record
                (`keras_ddpm.samplers.get_sampler(sampler).options`), each
                defaulting to the record's value: `eta=` (DDIM's η in [0, 1],
                0 deterministic) for `"ddim"`, `order=` (1–3) for
                `"dpm_solver"` and (1–4) for `"ipndm"`, or those of a registered sampler. Another
                sampler refuses an option unless it is neutral (η = 0).

        Returns:
            float32 NumPy array `(num_images, H, W, C)`, in [−1, 1] with
            `clip=True`.

        Example:

        >>> images = model.generate(16, sampler="dpm_solver", steps=20, seed=0)
        >>> images = model.generate(16, sampler="ddim", steps=50, eta=0.5)
        >>> sevens = model.generate(16, labels=7, guidance_scale=3.0)  # conditional
        >>> edited = model.generate(16, sampler="ddim", steps=50, initial_images=x, strength=0.6)

        References:
            - Meng, He, Song, Song, Wu, Zhu & Ermon, "SDEdit: Guided Image
              Synthesis and Editing with Stochastic Differential Equations",
              ICLR 2022.
        """
        return self.reverse_process(use_ema).generate(
            num_images, sampler=sampler, steps=steps, timestep_spacing=timestep_spacing,
            seed=seed, initial_noise=initial_noise, clip=clip, batch_size=batch_size,
            verbose=verbose, jit_compile=jit_compile, labels=labels,
            guidance_scale=guidance_scale, initial_images=initial_images, strength=strength, **sampler_options,
        )

    def inpaint(
        self, images, mask, sampler=samplers.DEFAULT_SAMPLER, steps=None,
        resample_steps=samplers.RESAMPLE_STEPS, jump_length=samplers.JUMP_LENGTH, timestep_spacing=None, seed=None, clip=True,
        use_ema=True, batch_size=None, verbose="auto", jit_compile="auto", labels=None,
        guidance_scale=None, variance=None, **sampler_options,
    ):
        """Fills the masked-out pixels of images so that they agree with the kept ones.

        The reverse process runs over whole images; after each step the kept
        pixels (mask 1) are replaced by the original ones noised to that
        step's timestep, so only the others are generated. With
        `resample_steps > 1` each block of `jump_length` steps is sent back
        with the forward process and denoised again (RePaint, Lugmayr et al.
        2022), which lets the filled region agree with the kept one; with
        `resample_steps=1` this is the plain replacement, faster but biased
        when pixels are correlated. Network evaluations: `steps ·
        resample_steps`.

        Args:
            images: float images in [−1, 1], `(N, H, W, C)`. Pixels under
                mask 0 are ignored.
            mask: 1 where pixels are kept, 0 where they are filled (values
                between blend the two); `(H, W)`, `(H, W, 1)`, `(N, H, W, 1)`
                or any shape that broadcasts to the images'.
            sampler: a sampler with a single-step update:
                `keras_ddpm.samplers.single_step_samplers()`, `"ddpm"` or
                `"ddim"` (a multistep solver cannot jump back). Defaults to
                `keras_ddpm.samplers.DEFAULT_SAMPLER` (ancestral).
            steps: reverse steps in [1, T]. Defaults to `None`: the sampler's
                default, at most `samplers.INPAINT_STEPS` (RePaint's 250).
            resample_steps: passes over each block, ≥ 1. Defaults to
                `samplers.RESAMPLE_STEPS` (RePaint's 10).
            jump_length: steps per block, ≥ 1. Defaults to
                `samplers.JUMP_LENGTH` (RePaint's 10).
            timestep_spacing: as in `generate`. Defaults to `None`.
            seed: as in `generate`. Defaults to `None`.
            clip: as in `generate`. Defaults to `True`.
            use_ema: use the EMA weights when kept. Defaults to `True`.
            batch_size: images filled at once. Defaults to all of them.
            verbose: `0`, `1` or `"auto"` (a bar above 100 network
                evaluations). Defaults to `"auto"`.
            jit_compile: as in `generate`. Defaults to `"auto"`.
            labels: for a conditional model, one int or one per image.
                Defaults to `None`.
            guidance_scale: as in `generate`. Defaults to `None` (1).
            variance: the ancestral steps' variance, `"fixed_small"` (β̃) or
                `"fixed_large"` (β). With resampling, β̃ (the variance given
                x_0) shrinks the filled region's spread a little more at
                every pass, and β keeps it: with an exact oracle for
                correlated Gaussian pixels, 10 passes over 1,000 steps gave
                the filled pixels' covariance within 2.3 times its sampling
                noise with β̃ (variances 8.5 % low) and 1.1 times with β.
                Defaults to `None`: the model's `variance`.
            **sampler_options: the sampler's options (`eta=` for `"ddim"`).

        Returns:
            float32 NumPy array shaped like `images`, equal to them where the
            mask is 1.

        Example:

        >>> mask = np.ones((32, 32), "float32"); mask[16:] = 0  # refill the bottom half
        >>> filled = model.inpaint(images, mask, steps=250, seed=0, variance="fixed_large")

        References:
            - Lugmayr, Danelljan, Romero, Yu, Timofte & Van Gool, "RePaint:
              Inpainting using Denoising Diffusion Probabilistic Models",
              CVPR 2022.
        """
        return editing.inpaint(
            self.reverse_process(use_ema), images, mask, sampler=sampler, steps=steps,
            resample_steps=resample_steps, jump_length=jump_length,
            timestep_spacing=timestep_spacing, seed=seed, clip=clip, batch_size=batch_size,
            verbose=verbose, jit_compile=jit_compile, labels=labels,
            guidance_scale=guidance_scale, variance=variance, **sampler_options,
        )

    def encode(
        self, images, sampler=samplers.INVERSION_SAMPLER, steps=None, timestep_spacing=None,
        use_ema=True, batch_size=None, verbose="auto", jit_compile="auto", labels=None, guidance_scale=None,
        **sampler_options,
    ):
        """Inverts images into the noise x_T that a deterministic sampler turns back into them.

        Runs the sampler's ODE forward, from the clean images to x_T, one
        network evaluation per step (DDIM inversion: Song et al. 2021, section
        4.3). `generate(len(x), sampler="ddim", steps=s, clip=False,
        initial_noise=model.encode(x, steps=s))` returns `x` up to an error
        that falls at first order in 1/s (each inverse step evaluates the
        network at its input rather than at its unknown output). Use the same
        `steps` and `timestep_spacing` to decode.

        Args:
            images: float images in [−1, 1], `(N, H, W, C)`.
            sampler: a sampler with an inverse:
                `keras_ddpm.samplers.invertible_samplers()`, `"ddim"` (with
                η = 0). Defaults to `samplers.INVERSION_SAMPLER` (`"ddim"`).
            steps: network evaluations, in [1, T]. Defaults to `None`: the
                sampler's default (50 for `"ddim"`).
            timestep_spacing: as in `generate`. Defaults to `None`: the
                sampler's default.
            use_ema: encode with the EMA weights when the model keeps them.
                Defaults to `True`.
            batch_size: images encoded at once. Defaults to all of them.
            verbose: `0`, `1` or `"auto"` (a bar above 100 steps).
                Defaults to `"auto"`.
            jit_compile: as in `generate`. Defaults to `"auto"`.
            labels: for a class-conditional model, the images' classes (one
                int or one per image). Defaults to `None` (unconditional).
            guidance_scale: as in `generate`; inversion is most accurate at
                1. Defaults to `None` (1).
            **sampler_options: the sampler's options at their neutral values
                (`eta=0`); anything else is refused.

        Returns:
            float32 NumPy array x_T, shaped like `images`.

        Example:

        >>> latents = model.encode(images, steps=100)
        >>> again = model.generate(len(images), sampler="ddim", steps=100, initial_noise=latents)

        References:
            - Song, Meng & Ermon, "Denoising Diffusion Implicit Models",
              ICLR 2021 (section 4.3).
            - Dhariwal & Nichol, "Diffusion Models Beat GANs on Image
              Synthesis", NeurIPS 2021 (appendix F).
        """
        return editing.encode(
            self.reverse_process(use_ema), images, sampler=sampler, steps=steps,
            timestep_spacing=timestep_spacing, batch_size=batch_size, verbose=verbose,
            jit_compile=jit_compile, labels=labels, guidance_scale=guidance_scale,
            **sampler_options,
        )

    def interpolate(
        self, a=None, b=None, num=8, inputs="images", sampler=samplers.INVERSION_SAMPLER,
        steps=None, timestep_spacing=None, seed=None, clip=True, use_ema=True, batch_size=None,
        verbose="auto", jit_compile="auto", labels=None, guidance_scale=None,
        **sampler_options,
    ):
        """A row of frames that morphs `a` into `b`, by slerp between their noise x_T.

        Images are first inverted with `encode`; the `num` frames are the
        x_T's spherically interpolated at fractions 0, 1/(num − 1), …, 1
        (`keras_ddpm.utils.slerp`), decoded by `generate` with the same
        sampler (Song et al. 2021, section 5.3). The end frames are the
        reconstructions of `a` and `b`.

        Args:
            a: one image `(H, W, C)` or a batch `(N, H, W, C)`: floats in
                [−1, 1] (`inputs="images"`) or noise x_T (`inputs="noise"`).
                `None` with `b=None` draws two x_T from `seed`. Defaults to
                `None`.
            b: the other end, shaped like `a`. Defaults to `None`.
            num: frames per row, at least 2. Defaults to `8`.
            inputs: `"images"` or `"noise"`: what `a` and `b` hold.
                Defaults to `"images"`.
            sampler: the sampler decoding the frames (and, for images,
                encoding them: it must then be invertible). Defaults to
                `"ddim"`.
            steps: network evaluations per pass. Defaults to `None`: the
                sampler's default.
            timestep_spacing: as in `generate`. Defaults to `None`.
            seed: the seed of drawn ends and of a stochastic decoder, as in
                `generate`. Defaults to `None`.
            clip: as in `generate`. Defaults to `True`.
            use_ema: use the EMA weights when kept. Defaults to `True`.
            batch_size: images run at once. Defaults to all of them.
            verbose: as in `generate`. Defaults to `"auto"`.
            jit_compile: as in `generate`. Defaults to `"auto"`.
            labels: for a conditional model, one int or one per pair.
                Defaults to `None`.
            guidance_scale: as in `generate`. Defaults to `None` (1).
            **sampler_options: the sampler's options.

        Returns:
            float32 NumPy array `(num, H, W, C)` for one pair, `(N, num, H,
            W, C)` for N pairs.

        Example:

        >>> row = model.interpolate(x[0], x[1], num=8, steps=50)
        >>> keras_ddpm.utils.save_image_grid(row, "row.png", ncols=8)

        References:
            - Song, Meng & Ermon, "Denoising Diffusion Implicit Models",
              ICLR 2021 (section 5.3).
        """
        return editing.interpolate(
            self.reverse_process(use_ema), a, b, num=num, inputs=inputs, sampler=sampler,
            steps=steps, timestep_spacing=timestep_spacing, seed=seed, clip=clip,
            batch_size=batch_size, verbose=verbose, jit_compile=jit_compile, labels=labels,
            guidance_scale=guidance_scale, **sampler_options,
        )

    def optimize_steps(self, num_steps=10, num_samples=256, grid_size=100, seed=0,
                       use_ema=True, clip=True):
        """Searches the `num_steps` timesteps that sample this model best, and keeps them.

        Runs `num_samples` accurate trajectories of the model from seeded noise
        (iPNDM on a fine grid of `grid_size` `"karras"` indices) and picks, by
        dynamic programming over that grid, the steps whose one-step DDIM errors
        against those trajectories sum least (GITS, Chen et al. 2024; see
        `keras_ddpm.samplers.step_search`). The result becomes the schedule's
        `optimized_timesteps`, saved with the model and run by
        `generate(steps="optimized")` (or `timestep_spacing="optimized"`) with
        any sampler; best with `"ipndm"`, as in the paper.

        Args:
            num_steps: the number of steps (network evaluations) to optimize
                for, in [1, grid_size]. Defaults to `10`.
            num_samples: trajectories searched over. Defaults to `256`.
            grid_size: the fine grid's size (capped at T). Defaults to `100`.
            seed: the seed of the trajectories' x_T, as in `generate`.
                Defaults to `0`.
            use_ema: search with the EMA weights when the model keeps them.
                Defaults to `True`.
            clip: clip x̂_0 to [−1, 1] on the trajectories, as `generate` does
                by default. Defaults to `True`.

        Returns:
            The indices found (a tuple of ints, the noisiest first).

        Example:

        >>> model.optimize_steps(num_steps=10)
        >>> images = model.generate(64, sampler="ipndm", steps="optimized", seed=0)

        References:
            - Chen, Zhou, Ye, Zhou, Chen & Lyu, "On the Trajectory Regularity of
              ODE-based Diffusion Sampling", ICML 2024.
        """
        from keras_ddpm import checks
        from keras_ddpm import sampling_inputs
        from keras_ddpm.samplers.step_search import search_timesteps

        num_steps = checks.positive_int("num_steps", num_steps)
        num_samples = checks.positive_int("num_samples", num_samples)
        grid_size = checks.positive_int("grid_size", grid_size)
        process = self.reverse_process(use_ema)
        if process.image_shape is None:
            raise ValueError(
                "`optimize_steps` needs the network's image shape; this network does not "
                "declare one (build it on an input of known height, width and channels)."
            )
        noise_keys, _ = sampling_inputs.image_seeds(sampling_inputs.run_seed(seed), 0, num_samples)
        noise = sampling_inputs.initial_noise(noise_keys, process.image_shape)
        indices, _ = search_timesteps(
            process.denoiser(), noise, self.schedule, num_steps, grid_size=grid_size,
            prediction_type=self.prediction_type, clip=clip,
        )
        self.schedule = self.schedule.with_optimized_timesteps(indices)
        self._reverse_processes = {}  # their loops read the schedule they were built with
        return indices
