"""`DDPM`: a `keras.Model` that trains a denoiser with `fit` and samples with `generate`.

Data flows one way: a batch of images → `train_step` draws t and ε →
`schedule.add_noise` → `network` → mean squared error; and noise → sampler →
`network` → images.
"""

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_ddpm import guidance
from keras_ddpm import objectives
from keras_ddpm import samplers
from keras_ddpm.inputs import check_training_data
from keras_ddpm.inputs import check_training_labels
from keras_ddpm.inputs import images_from_batch
from keras_ddpm.inputs import labels_from_batch
from keras_ddpm.schedules import NoiseSchedule

# Progress-bar updates per sampling run when `generate` reports progress.
_PROGRESS_SEGMENTS = 20
# Where `save_own_variables` keeps the training-noise RNG state.
_RNG_STATE_KEY = "noise_seed_state"


def _clone_network(network):
    """A structurally identical, separately weighted copy of `network` (for EMA)."""
    try:
        # Rebuilding from the config keeps the class (a UNet stays a UNet).
        config = network.get_config()
        if isinstance(config, dict) and "name" in config:
            config = {**config, "name": f"ema_{config['name']}"}
        clone = type(network).from_config(config)
    except Exception:  # noqa: BLE001 - fall back to Keras' generic cloning.
        try:
            clone = keras.models.clone_model(network)
        except Exception as error:
            raise TypeError(
                "DDPM keeps an exponential moving average (EMA) copy of the network, "
                f"which needs a network that can be rebuilt from its config; "
                f"{type(network).__name__} could not be ({error}). Give it a "
                "get_config() or pass ema_decay=None."
            ) from error
    clone.trainable = False
    return clone


@keras.saving.register_keras_serializable(package="keras_ddpm")
class DDPM(keras.Model):
    """Denoising diffusion probabilistic model around a denoising network.

    Training draws, for every example, a timestep index t uniformly from
    `0 … T − 1` and noise ε ~ N(0, I), forms x_t = √ᾱ_t·x_0 + √(1 − ᾱ_t)·ε and
    regresses the network's output on the target of its prediction type (ε,
    v or x_0), with weight 1 (the "simple" loss, Ho et al. 2020, eq. 14) or
    the Min-SNR-γ weight, in float32 whatever the dtype policy. After every applied step an
    exponential moving average (EMA) of the weights is updated; `generate`
    samples with it by default.

    Args:
        network: a Keras model called as `network([x_t, t])` with float images
            `x_t` `[B, H, W, C]` and int32 timestep indices `t` `[B]`, returning a
            tensor shaped like `x_t` (for example `keras_ddpm.UNet`).
        schedule: a `NoiseSchedule`. Defaults to `NoiseSchedule("linear", 1000)`.
        ema_decay: decay of the weight EMA, or `None` to keep no EMA.
            Defaults to `0.9999` (Ho et al. 2020).
        variance: reverse-process variance for `generate`: `"fixed_small"`
            (σ_t² = β̃_t) or `"fixed_large"` (σ_t² = β_t). Defaults to
            `"fixed_small"`.
        seed: integer seed of the training noise (t and ε). Defaults to `None`.
        prediction_type: what the network predicts: `"epsilon"`, `"v"` or
            `"x0"`. Defaults to `"epsilon"`.
        ema_warmup: use the decay min(ema_decay, (1 + n)/(10 + n)) after n
            applied steps, as `tf.train.ExponentialMovingAverage` does, so that
            short runs are not dominated by the initial weights. Defaults to
            `True`.
        loss_weighting: `"simple"` (every timestep weighted 1) or `"min_snr"`
            (Min-SNR-γ, Hang et al. 2023, with the weight matching the
            prediction type: min(SNR, γ)/SNR for ε, min(SNR, γ) for x0,
            min(SNR, γ)/(SNR + 1) for v). Defaults to `"simple"`.
        min_snr_gamma: γ of Min-SNR-γ. Defaults to `5.0`.
        class_dropout: for a class-conditional network (one with a
            `num_classes` attribute, called as `network([x_t, t, labels])`),
            the probability that a training label is replaced by the null
            label `num_classes`, so that the one network also learns the
            unconditional prediction that classifier-free guidance needs (Ho &
            Salimans 2022). Ignored for an unconditional network. Defaults to
            `0.1`.

    A zero-terminal-SNR schedule (`NoiseSchedule(...,
    rescale_zero_terminal_snr=True)`) needs `prediction_type="v"` or `"x0"`:
    an ε-prediction gives no x̂_0 at t = T.

    Example:

    >>> network = keras_ddpm.UNet(image_shape=(8, 8, 1), base_channels=64,
    ...                           channel_multipliers=(1, 2), num_res_blocks=2,
    ...                           attention_resolutions=(4,), dropout=0.0)
    >>> model = keras_ddpm.DDPM(network, ema_decay=0.999)
    >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))
    >>> model.fit(keras_ddpm.data.load_digits(batch_size=128), epochs=50)
    >>> images = model.generate(64, seed=0)   # float32, [-1, 1]

    References:
        - Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models",
          NeurIPS 2020 (Algorithms 1 and 2).
        - Salimans & Ho, "Progressive Distillation for Fast Sampling of
          Diffusion Models", ICLR 2022 (v-prediction).
        - Hang et al., "Efficient Diffusion Training via Min-SNR Weighting
          Strategy", ICCV 2023.
        - Ho & Salimans, "Classifier-Free Diffusion Guidance", 2022
          (arXiv:2207.12598).
    """

    def __init__(
        self,
        network,
        schedule=None,
        ema_decay=0.9999,
        variance="fixed_small",
        seed=None,
        prediction_type="epsilon",
        ema_warmup=True,
        loss_weighting="simple",
        min_snr_gamma=5.0,
        class_dropout=0.1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not callable(network):
            raise TypeError(
                f"`network` must be a Keras model called as network([x_t, t]). "
                f"Received: {network!r}."
            )
        if schedule is None:
            schedule = NoiseSchedule("linear", timesteps=1000)
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(
                f"`schedule` must be a keras_ddpm.NoiseSchedule. Received: {schedule!r}."
            )
        if ema_decay is not None and not 0.0 <= ema_decay < 1.0:
            raise ValueError(
                f"`ema_decay` must be in [0, 1) or None. Received: ema_decay={ema_decay}."
            )
        samplers.check_variance(variance)
        objectives.check_prediction_type(prediction_type)
        if prediction_type == "epsilon" and schedule.zero_terminal_snr:
            raise ValueError(
                "prediction_type='epsilon' cannot be used with a zero-terminal-SNR "
                "schedule (at t = T no ε-prediction gives x̂_0). Use "
                "prediction_type='v' or 'x0'."
            )
        objectives.check_loss_weighting(loss_weighting, min_snr_gamma)
        if seed is not None and not isinstance(seed, int):
            raise TypeError(f"`seed` must be an int or None. Received: seed={seed!r}.")
        if isinstance(class_dropout, bool) or not isinstance(
            class_dropout, (int, float, np.integer, np.floating)
        ) or not 0.0 <= class_dropout <= 1.0:
            raise ValueError(
                "`class_dropout` must be a probability in [0, 1]. "
                f"Received: class_dropout={class_dropout!r}."
            )
        num_classes = getattr(network, "num_classes", None)
        if num_classes is not None and (
            isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer))
            or num_classes < 1
        ):
            raise TypeError(
                "`network.num_classes` must be a positive int (class-conditional) or None. "
                f"Received: num_classes={num_classes!r}."
            )

        self.network = network
        self.schedule = schedule
        self.ema_decay = ema_decay
        self.variance = variance
        self.seed = seed
        self.prediction_type = prediction_type
        self.ema_warmup = bool(ema_warmup)
        self.loss_weighting = loss_weighting
        self.min_snr_gamma = float(min_snr_gamma)
        self.class_dropout = float(class_dropout)
        self.num_classes = None if num_classes is None else int(num_classes)

        self.seed_generator = keras.random.SeedGenerator(seed, name="noise_seed")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.ema_network = None
        if ema_decay is not None and network.weights:
            self.ema_network = _clone_network(network)
            self._copy_weights_to_ema()
        self._sampling_functions = {}
        self.built = True

    # ------------------------------------------------------------------
    # Properties
    # ------------------------------------------------------------------
    @property
    def image_shape(self):
        """(H, W, C) the network expects, or `None` if it does not declare it."""
        inputs = getattr(self.network, "inputs", None)
        if not inputs:
            return None
        return tuple(inputs[0].shape[1:])

    @property
    def null_label(self):
        """The label asking a conditional network for its unconditional prediction.

        `num_classes` (labels run over `0 … num_classes − 1`), or `None` for an
        unconditional model.
        """
        return self.num_classes

    @property
    def ema_weights(self):
        """The EMA weights (empty when `ema_decay=None`)."""
        return [] if self.ema_network is None else self.ema_network.weights

    @property
    def metrics(self):
        return [self.loss_tracker]

    # ------------------------------------------------------------------
    # Keras plumbing
    # ------------------------------------------------------------------
    def call(self, inputs, training=False):
        """The network's prediction for `[x_t, t]` (`[x_t, t, labels]` if conditional)."""
        return self.network(inputs, training=training)

    def compile(self, *args, **kwargs):
        super().compile(*args, **kwargs)
        # Creating the optimizer's slots eagerly here, not inside the first traced
        # step, spares tf.function a second trace of the whole training step.
        if self.optimizer is not None and not self.optimizer.built:
            self.optimizer.build(self.network.trainable_weights)
        self._sampling_functions = {}

    def compile_from_config(self, config):
        """Re-compiles a loaded model (and restores its optimizer) from its compile config."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)

    def fit(self, x=None, y=None, *args, **kwargs):
        check_training_data(x, self.image_shape)
        if self.num_classes is not None:
            check_training_labels(x, y, self.num_classes)
        if isinstance(x, tf.data.Dataset) and len(args) < 7:
            # A dataset brings its own order; Keras warns about its default shuffle=True.
            kwargs.setdefault("shuffle", False)
        return super().fit(x, y, *args, **kwargs)

    # ------------------------------------------------------------------
    # Training
    # ------------------------------------------------------------------
    def diffusion_loss(self, images, labels=None, training=True):
        """The loss E_{t, ε} w(t) ‖target − network(x_t, t)‖² for a batch.

        w(t) is 1 for `loss_weighting="simple"` and the Min-SNR-γ weight of
        the prediction type for `"min_snr"` (`objectives.loss_weight`).

        Args:
            images: float32 clean images in [−1, 1], `[B, H, W, C]`.
            labels: int32 class labels `[B]` for a class-conditional network
                (already dropped to the null label where intended), else `None`.
            training: passed to the network (dropout). Defaults to `True`.

        Returns:
            The scalar float32 loss (mean over the batch and every pixel).
        """
        # 1. t uniform over the T timestep indices, ε ~ N(0, I) (Algorithm 1).
        t, noise = self.draw_training_noise(images)
        # 2. Corrupt: x_t = √ᾱ_t·x_0 + √(1 − ᾱ_t)·ε (eq. 4).
        x_t = self.schedule.add_noise(images, noise, t)
        # 3. Predict and regress on the target, in float32.
        prediction = ops.cast(
            self.network(self._network_inputs(x_t, t, labels), training=training), "float32"
        )
        signal_rate, noise_rate = self.schedule.signal_and_noise_rates(t, len(images.shape))
        target = objectives.training_target(
            images, noise, signal_rate, noise_rate, self.prediction_type
        )
        squared_error = ops.square(prediction - target)
        if self.loss_weighting == "simple":
            return ops.mean(squared_error)
        # 4. Min-SNR-γ: a weight per example, [B, 1, 1, 1].
        weights = objectives.loss_weight(
            self.schedule.snr(t, len(images.shape)),
            self.prediction_type,
            self.loss_weighting,
            self.min_snr_gamma,
        )
        return ops.mean(weights * squared_error)

    def draw_training_noise(self, images):
        """Draws the timestep indices t `[B]` (int32) and the noise ε for a batch.

        Both come from the model's `SeedGenerator`, so they are reproducible
        from `seed` and travel with saved models and checkpoints.

        Under a `tf.distribute` strategy with several replicas, the generator's
        state is a mirrored variable, identical on every replica, so its two
        seeds are folded with the global replica id
        (`replica_id_in_sync_group`, which counts the replicas of every worker):
        each replica draws its own t and ε for its part of the global batch.
        With one replica the draws are those of the generator itself.

        Args:
            images: the float32 batch `[B, H, W, C]` (one replica's part of the
                global batch under a strategy).

        Returns:
            `(t, noise)`: t uniform over `0 … T − 1`, noise ~ N(0, I) shaped like
            `images`.
        """
        batch = ops.shape(images)[0]
        t_seed = self._replica_seed()
        if t_seed is None:
            t = keras.random.randint(
                (batch,), 0, self.schedule.timesteps, dtype="int32", seed=self.seed_generator
            )
            noise = keras.random.normal(ops.shape(images), seed=self.seed_generator)
            return t, noise
        noise_seed = self._replica_seed()
        t = tf.random.stateless_uniform(
            (batch,), t_seed, minval=0, maxval=self.schedule.timesteps, dtype=tf.int32
        )
        noise = tf.random.stateless_normal(ops.shape(images), noise_seed)
        return t, noise

    def _replica_seed(self):
        """This replica's stateless seed for one draw, or `None` with a single replica.

        The generator's next seed, cast to int32 the way `keras.random` casts
        it, folded with the global replica id (see `draw_training_noise`).
        """
        replica = tf.distribute.get_replica_context()
        if replica is None or replica.num_replicas_in_sync == 1:
            return None
        seed = tf.math.floormod(self.seed_generator.next(), tf.int32.max - 1)
        return tf.random.experimental.stateless_fold_in(
            tf.cast(seed, tf.int32), replica.replica_id_in_sync_group
        )

    def _network_inputs(self, x_t, t, labels):
        if self.num_classes is None:
            return [x_t, t]
        if labels is None:
            raise ValueError(
                f"This model is class-conditional (num_classes={self.num_classes}); "
                "the network needs labels. Received labels=None."
            )
        return [x_t, t, labels]

    def _training_labels(self, data, training):
        """The batch's labels, with class dropout while training; `None` if unconditional."""
        if self.num_classes is None:
            return None
        labels = labels_from_batch(data, self.num_classes)
        if training and self.class_dropout > 0:
            seed = self._replica_seed()  # Each replica drops its own labels.
            if seed is None:
                uniform = keras.random.uniform(ops.shape(labels), seed=self.seed_generator)
            else:
                uniform = tf.random.stateless_uniform(ops.shape(labels), seed)
            keep = uniform >= self.class_dropout
            labels = ops.where(keep, labels, self.null_label)
        return labels

    def train_step(self, data):
        images = images_from_batch(data, self.image_shape)
        labels = self._training_labels(data, training=True)
        weights = self.network.trainable_weights
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            loss = self.diffusion_loss(images, labels=labels, training=True)
            # The optimizer sums gradients over replicas; scale so they average.
            scaled_loss = self.optimizer.scale_loss(loss / replicas)
        gradients = tape.gradient(scaled_loss, weights)
        applied = True
        if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
            applied = self.optimizer.check_finite(gradients)
            replica = tf.distribute.get_replica_context()
            if replica is not None and replicas > 1:
                # The optimizer checks each replica's own gradients before they
                # are summed: an overflow on one replica must skip the step
                # (and halve the scale) on every replica, so poison them all.
                overflows = replica.all_reduce(
                    "sum", ops.cast(ops.logical_not(applied), "float32")
                )
                applied = ops.equal(overflows, 0.0)
                poison = ops.where(applied, 0.0, np.nan)
                gradients = [
                    g if g is None else g + ops.cast(poison, g.dtype) for g in gradients
                ]
        self.optimizer.apply_gradients(zip(gradients, weights))
        self._update_ema(applied)
        self.loss_tracker.update_state(loss)
        return self._logs()

    def test_step(self, data):
        images = images_from_batch(data, self.image_shape)
        labels = self._training_labels(data, training=False)
        self.loss_tracker.update_state(self.diffusion_loss(images, labels=labels, training=False))
        return self._logs()

    def _logs(self):
        """`{"loss": mean so far}`, shaped for Keras' cross-worker averaging."""
        result = self.loss_tracker.result()
        strategy = tf.distribute.get_strategy()
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and (
            strategy.num_replicas_in_sync > len(strategy.extended.worker_devices)
        ):
            # Several workers: Keras averages the logs with
            # strategy.reduce("MEAN", value, axis=0), which needs an axis
            # (tensorflow/tensorflow#72388); the result is the scalar global mean.
            result = ops.reshape(result, (1,))
        return {"loss": result}

    def _copy_weights_to_ema(self):
        for weight, ema_weight in zip(self.network.weights, self.ema_network.weights):
            ema_weight.assign(weight)

    def _update_ema(self, applied):
        """ema ← d·ema + (1 − d)·w after an applied step (d = 1 for a skipped one)."""
        if self.ema_network is None:
            return
        decay = ops.convert_to_tensor(self.ema_decay, "float32")
        if self.ema_warmup:
            steps = ops.cast(self.optimizer.iterations, "float32")
            decay = ops.minimum(decay, (1.0 + steps) / (10.0 + steps))
        decay = ops.where(applied, decay, 1.0)
        for weight, ema_weight in zip(self.network.weights, self.ema_network.weights):
            if not keras.backend.is_float_dtype(weight.dtype):
                continue
            ema_weight.assign(
                decay * ema_weight + (1.0 - decay) * ops.cast(weight, ema_weight.dtype)
            )

    # ------------------------------------------------------------------
    # Sampling
    # ------------------------------------------------------------------
    def _denoiser(self, network, labels=None, guidance_scale=None):
        """`(x_t, t) -> prediction` of `network`, with classifier-free guidance if labelled."""
        if labels is None:
            return lambda x_t, t: network([x_t, t], training=False)
        return guidance.classifier_free_guidance(
            lambda x_t, t, c: network([x_t, t, c], training=False),
            labels,
            self.null_label,
            guidance_scale,
        )

    def _sampling_function(
        self, use_ema, clip, jit_compile=True, sampler="ddpm", timestep_spacing=None, order=2
    ):
        """One cached compiled reverse loop per Python-level choice.

        The key is (weights, clip, XLA, sampler, spacing, order); the number of
        steps, η, the seed and the step range are tensor inputs, so every step
        count and η reuses the same traced function. For a class-conditional
        model the function takes two more inputs, the labels `[B]` (int32, the
        null label for an unconditional sample) and the guidance scale w
        (float32), and applies classifier-free guidance at every step.
        """
        spacing = timestep_spacing or samplers.DEFAULT_SPACINGS[sampler]
        order = order if sampler == "dpm_solver" else None
        key = (use_ema, clip, jit_compile, sampler, spacing, order)
        if key not in self._sampling_functions:
            network = self.ema_network if use_ema else self.network

            image_shape = tuple(self.image_shape or (None, None, None))
            signature = [
                tf.TensorSpec((None,) + image_shape, tf.float32),
                tf.TensorSpec((2,), tf.int32),
                tf.TensorSpec((), tf.int32),
                tf.TensorSpec((), tf.int32),
                tf.TensorSpec((), tf.int32),
                tf.TensorSpec((), tf.float32),
            ]
            if self.num_classes is not None:
                signature += [tf.TensorSpec((None,), tf.int32), tf.TensorSpec((), tf.float32)]

            @tf.function(
                input_signature=signature, jit_compile=jit_compile, reduce_retracing=True
            )
            def run(x, seed, start, stop, steps, eta, labels=None, guidance_scale=None):
                # DPM-Solver's multistep history does not survive a split run,
                # so it always runs whole (generate passes 0, steps).
                denoise = self._denoiser(network, labels, guidance_scale)
                common = dict(prediction_type=self.prediction_type, clip=clip)
                if sampler == "ddpm":
                    return samplers.ddpm_sample(
                        denoise, x, self.schedule, seed, variance=self.variance,
                        start=start, stop=stop, steps=steps, timestep_spacing=spacing,
                        **common,
                    )
                if sampler == "ddim":
                    return samplers.ddim_sample(
                        denoise, x, self.schedule, seed, steps=steps, eta=eta,
                        timestep_spacing=spacing, start=start, stop=stop, **common,
                    )
                return samplers.dpm_solver_sample(
                    denoise, x, self.schedule, steps=steps, order=order,
                    timestep_spacing=spacing, **common,
                )

            self._sampling_functions[key] = run
        return self._sampling_functions[key]

    def generate(
        self,
        num_images,
        sampler="ddpm",
        steps=None,
        eta=0.0,
        timestep_spacing=None,
        seed=None,
        initial_noise=None,
        clip=True,
        use_ema=True,
        order=None,
        batch_size=None,
        verbose="auto",
        jit_compile="auto",
        labels=None,
        guidance_scale=None,
    ):
        """Samples images by running a reverse-process sampler from pure noise.

        The reverse loop is one compiled `tf.while_loop` per sampler (and
        spacing, order, weights, clip), traced once and cached: the number of
        steps and η are tensor inputs, so changing them does not retrace.
        The samplers are the functions of `keras_ddpm.samplers`, driven by the
        network's prediction type.

        Args:
            num_images: how many images to generate.
            sampler: `"ddpm"` (ancestral, Ho et al. 2020; respaced when
                `steps < T`, Nichol & Dhariwal 2021), `"ddim"` (Song et al.
                2021) or `"dpm_solver"` (DPM-Solver++ multistep, Lu et al.
                2022). Defaults to `"ddpm"`.
            steps: number of network evaluations, in [1, T]. Defaults to
                `None`: T for `"ddpm"` (the full chain), 50 for `"ddim"`, 20 for
                `"dpm_solver"` (capped at T).
            eta: DDIM's η in [0, 1] (0 deterministic, 1 ancestral-like);
                another sampler refuses a non-zero η. Defaults to `0.0`.
            timestep_spacing: `"leading"`, `"trailing"`, `"linspace"` or
                `"logsnr"` (see `samplers.timestep_sequence`). Defaults to
                `None`: `"trailing"` for `"ddpm"` and `"ddim"`, `"logsnr"` for
                `"dpm_solver"` (the lowest errors in
                benchmarks/benchmark_samplers.py).
            seed: integer seed; the same seed (and `batch_size`) gives the same
                images. Defaults to `None` (a fresh random seed).
            initial_noise: optional x_T, shape `(num_images, H, W, C)`, used
                instead of drawing it from the seed.
            clip: clip x̂_0 at every step and the output to [−1, 1]; `False`
                leaves every value alone. Defaults to `True`.
            use_ema: sample with the EMA weights when the model keeps them.
                Defaults to `True`.
            order: DPM-Solver++ order, 1, 2 or 3; only for
                `sampler="dpm_solver"`. Defaults to `None` (2, the 2M solver).
            batch_size: images denoised at once. Defaults to `num_images`.
            verbose: `0` silent, `1` a progress bar, `"auto"` a bar for runs of
                more than 100 steps. DPM-Solver runs each batch in one piece
                (its multistep history stays inside the loop), so its bar
                advances once per batch. Defaults to `"auto"`.
            jit_compile: compile the reverse loop with XLA. `"auto"` does so
                when every layer of the network supports it (on a 2-core CPU
                this made a sampling step 2.3x faster). Defaults to `"auto"`.
            labels: for a class-conditional model, the classes to draw: one int
                for every image, or a sequence of `num_images` ints in
                `[0, num_classes)`. Defaults to `None` (unconditional samples).
            guidance_scale: classifier-free guidance weight w ≥ 0 (Ho &
                Salimans 2022): ε̂ = ε̂_∅ + w·(ε̂_c − ε̂_∅), one batched network
                call per step; 1 is plain conditional sampling, 0
                unconditional, larger values follow the class more closely at
                the cost of diversity. Needs `labels`. Defaults to `None` (1).

        Returns:
            float32 NumPy array `(num_images, H, W, C)`, in [−1, 1] with
            `clip=True`.

        Example:

        >>> images = model.generate(16, sampler="dpm_solver", steps=20, seed=0)
        >>> images = model.generate(16, sampler="ddim", steps=50, eta=0.5)
        >>> sevens = model.generate(16, labels=7, guidance_scale=3.0)  # conditional
        """
        num_images = _check_count("num_images", num_images)
        batch_size = num_images if batch_size is None else _check_count("batch_size", batch_size)
        samplers.check_sampler(sampler)
        spacing = timestep_spacing or samplers.DEFAULT_SPACINGS[sampler]
        samplers.check_spacing(spacing)
        if steps is None:
            default_steps = {"ddpm": self.schedule.timesteps, "ddim": 50, "dpm_solver": 20}
            steps = min(default_steps[sampler], self.schedule.timesteps)
        samplers.check_steps(steps, self.schedule.timesteps)
        steps = int(steps)
        samplers.check_eta(eta)
        if sampler != "ddim" and eta != 0:
            raise ValueError(
                f"`eta` only applies to sampler='ddim'. Received: eta={eta} with "
                f"sampler={sampler!r}."
            )
        if order is not None and sampler != "dpm_solver":
            raise ValueError(
                f"`order` only applies to sampler='dpm_solver'. Received: order={order!r} "
                f"with sampler={sampler!r}."
            )
        order = 2 if order is None else order
        samplers.check_order(order)
        labels, guidance_scale = self._check_labels(labels, guidance_scale, num_images)
        image_shape = self.image_shape
        if initial_noise is not None:
            initial_noise = np.asarray(initial_noise, dtype=np.float32)
            expected = (num_images,) + tuple(image_shape or initial_noise.shape[1:])
            if initial_noise.shape != expected:
                raise ValueError(
                    f"`initial_noise` must have shape {expected} (num_images, H, W, C). "
                    f"Received shape {initial_noise.shape}."
                )
        elif image_shape is None:
            raise ValueError(
                "The network does not declare its input shape; pass `initial_noise`."
            )
        if seed is None:
            seed = int(np.random.default_rng().integers(0, 2**31 - 1))
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"`seed` must be an int or None. Received: seed={seed!r}.")

        network_ema = bool(use_ema and self.ema_network is not None)
        if jit_compile == "auto":
            network = self.ema_network if network_ema else self.network
            jit_compile = all(layer.supports_jit for layer in network._flatten_layers())
        run = self._sampling_function(
            network_ema, bool(clip), bool(jit_compile), sampler, spacing, order
        )
        chunks = math.ceil(num_images / batch_size)
        show = verbose == 1 or (verbose == "auto" and steps > 100)
        segments = _PROGRESS_SEGMENTS if show and sampler != "dpm_solver" else 1
        bounds = np.linspace(0, steps, min(segments, steps) + 1).round().astype(int)
        progress = keras.utils.Progbar(chunks * steps) if show else None
        steps_tensor = tf.constant(steps, tf.int32)
        eta_tensor = tf.constant(eta, tf.float32)
        guidance_tensor = tf.constant(guidance_scale, tf.float32)

        outputs = []
        for chunk in range(chunks):
            begin, end = chunk * batch_size, min(num_images, (chunk + 1) * batch_size)
            noise_seed, loop_seed = tf.random.experimental.stateless_split(
                tf.constant([seed % 2**31, chunk], tf.int32), 2
            )
            if initial_noise is None:
                x = tf.random.stateless_normal((end - begin,) + image_shape, seed=noise_seed)
            else:
                x = tf.constant(initial_noise[begin:end])
            loop_seed = tf.cast(loop_seed, tf.int32)
            conditioning = ()
            if labels is not None:
                conditioning = (tf.constant(labels[begin:end]), guidance_tensor)
            for start, stop in zip(bounds[:-1], bounds[1:]):
                x = run(
                    x, loop_seed, tf.constant(start, tf.int32), tf.constant(stop, tf.int32),
                    steps_tensor, eta_tensor, *conditioning,
                )
                if progress is not None:
                    progress.add(int(stop - start))
            outputs.append(x.numpy())
        images = np.concatenate(outputs, axis=0)
        return np.clip(images, -1.0, 1.0) if clip else images

    def _check_labels(self, labels, guidance_scale, num_images):
        """`generate`'s labels as an int32 array (null labels when unconditional) and w."""
        if self.num_classes is None:
            if labels is not None or guidance_scale is not None:
                raise ValueError(
                    "`labels` and `guidance_scale` need a class-conditional model "
                    "(a network built with num_classes); this one is unconditional. "
                    f"Received: labels={labels!r}, guidance_scale={guidance_scale!r}."
                )
            return None, 1.0
        if labels is None:
            if guidance_scale is not None:
                raise ValueError(
                    "`guidance_scale` needs `labels` (the classes to guide towards). "
                    f"Received: guidance_scale={guidance_scale!r} with labels=None."
                )
            return np.full((num_images,), self.null_label, np.int32), 1.0
        guidance_scale = 1.0 if guidance_scale is None else guidance_scale
        guidance.check_guidance_scale(guidance_scale)
        array = np.asarray(labels)
        if not np.issubdtype(array.dtype, np.integer) or array.size == 0:
            raise TypeError(
                f"`labels` must be an int or a sequence of ints in [0, {self.num_classes}). "
                f"Received: labels={labels!r}."
            )
        if array.ndim == 0:
            array = np.full((num_images,), int(array))
        if array.shape != (num_images,):
            raise ValueError(
                f"`labels` must hold one label per image: shape ({num_images},). "
                f"Received {array.shape[0] if array.ndim == 1 else array.shape} labels "
                f"for num_images={num_images}."
            )
        if array.min() < 0 or array.max() >= self.num_classes:
            raise ValueError(
                f"`labels` must lie in [0, {self.num_classes}). Received labels in "
                f"[{array.min()}, {array.max()}]."
            )
        return array.astype(np.int32), float(guidance_scale)

    def export(self, filepath, format="tf_saved_model", verbose=True, **kwargs):
        """Writes a TensorFlow SavedModel with `generate` and `denoise` endpoints.

        Delegates to `keras_ddpm.export.export_saved_model`, which documents
        the endpoints and the keyword arguments (`sampler`, `eta`,
        `timestep_spacing`, `order`, `clip`, `use_ema`, `jit_compile`,
        `image_shape`). The SavedModel loads with `tf.saved_model.load` without
        Keras or keras_ddpm, and `serving_default` is `generate`.

        Args:
            filepath: str or path-like, the SavedModel directory.
            format: only `"tf_saved_model"`. Defaults to `"tf_saved_model"`.
            verbose: print the path and the endpoints. Defaults to `True`.
            **kwargs: passed to `export_saved_model`.

        Returns:
            `filepath` as a string.

        Example:

        >>> model.export("digits_savedmodel", sampler="ddim")
        >>> loaded = tf.saved_model.load("digits_savedmodel")
        >>> images = loaded.generate(num_images=16, steps=50, seed=0)  # uint8
        """
        from keras_ddpm import export

        if format != "tf_saved_model":
            raise ValueError(
                "DDPM.export writes format='tf_saved_model' (a SavedModel with generate and "
                f"denoise endpoints). Received: format={format!r}."
            )
        return export.export_saved_model(self, filepath, verbose=verbose, **kwargs)

    # ------------------------------------------------------------------
    # Serialization
    # ------------------------------------------------------------------
    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "network": keras.saving.serialize_keras_object(self.network),
                "schedule": keras.saving.serialize_keras_object(self.schedule),
                "ema_decay": self.ema_decay,
                "variance": self.variance,
                "seed": self.seed,
                "prediction_type": self.prediction_type,
                "ema_warmup": self.ema_warmup,
                "loss_weighting": self.loss_weighting,
                "min_snr_gamma": self.min_snr_gamma,
                "class_dropout": self.class_dropout,
            }
        )
        return config

    def save_own_variables(self, store):
        # The training-noise RNG state travels with the weights, so that a loaded
        # model or a restored checkpoint draws the same t and ε as the original.
        super().save_own_variables(store)
        store[_RNG_STATE_KEY] = self.seed_generator.state.numpy()

    def load_own_variables(self, store):
        keys = list(store.keys())
        if _RNG_STATE_KEY in keys:
            self.seed_generator.state.assign(store[_RNG_STATE_KEY])
        super().load_own_variables({k: store[k] for k in keys if k != _RNG_STATE_KEY})

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["network"] = keras.saving.deserialize_keras_object(config["network"])
        config["schedule"] = keras.saving.deserialize_keras_object(config["schedule"])
        return cls(**config)


def _check_count(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}.")
    return int(value)
