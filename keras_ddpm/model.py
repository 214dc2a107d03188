"""`DDPM`: a `keras.Model` that trains a denoiser with `fit` and samples with `generate`.

Data flows one way: a batch of images → `train_step` draws t and ε →
`schedule.add_noise` → `network` → mean squared error; and noise → sampler →
`network` → images.
"""

import warnings

import keras
from keras import ops

from keras_ddpm import checks
from keras_ddpm import divergence
from keras_ddpm import ema
from keras_ddpm import inputs
from keras_ddpm import backend
from keras_ddpm import objectives
from keras_ddpm import sample_weights
from keras_ddpm import saved_seeds
from keras_ddpm import training_noise
from keras_ddpm.file_methods import FileMethods
from keras_ddpm.fit_methods import FitMethods
from keras_ddpm.generation_methods import GenerationMethods
from keras_ddpm.schedules import NoiseSchedule
from keras_ddpm.schedules import check_variance

# The constructor arguments get_config returns as they are (network and schedule are serialized).
_PLAIN_CONFIG = (
    "ema_decay", "variance", "seed", "prediction_type", "ema_warmup", "loss_weighting",
    "min_snr_gamma", "class_dropout", "max_skipped_steps",
)
NO_TRAINABLE_WEIGHTS = (
    "The network has no trainable weights (network.trainable is False?): fit computes the "
    "loss but changes no weight."
)


@keras.saving.register_keras_serializable(package="keras_ddpm")
class DDPM(
    GenerationMethods, FileMethods, FitMethods, inputs.NetworkCall, inputs.GeneratorBatches,
    backend.StepFunctions, backend.StateKept, keras.Model,
):
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
            applied steps (`ema.decay_at`). Defaults to `True`.
        loss_weighting: `"simple"` (every timestep weighted 1) or `"min_snr"`
            (Min-SNR-γ, Hang et al. 2023, weighted for the prediction type; see
            `objectives.loss_weight`). Defaults to `"simple"`.
        min_snr_gamma: γ of Min-SNR-γ. Defaults to `5.0`.
        class_dropout: for a class-conditional network (one with a
            `num_classes` attribute, called as `network([x_t, t, labels])`),
            the probability that a training label is replaced by the null
            label `num_classes`, so that the one network also learns the
            unconditional prediction that classifier-free guidance needs (Ho &
            Salimans 2022). Ignored for an unconditional network. Defaults to
            `0.1`.
        max_skipped_steps: a training step whose loss or gradients are not
            finite is skipped (weights, EMA and optimizer state untouched; the
            logs count them as `skipped_steps`), in float32 as under mixed
            precision. After this many skipped steps in a row `fit` stops with
            `keras_ddpm.divergence.TrainingDiverged`, naming the step, the
            learning rate and the first weight with a non-finite gradient.
            `None` never stops. Defaults to `20`.
        noise_assignment: which drawn noise goes with which image of a
            batch: `"independent"` (its own, Ho et al. 2020) or `"immiscible"`
            (the same draws, only reordered so that each image gets a near one,
            Li et al. 2024; `keras_ddpm.noise_assignment`). Defaults to
            `"independent"`.

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
        max_skipped_steps=20,
        noise_assignment=training_noise.DEFAULT_NOISE_ASSIGNMENT,
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
        check_variance(variance)
        objectives.check_prediction_type(prediction_type, schedule)
        objectives.check_loss_weighting(loss_weighting, min_snr_gamma)
        checks.optional_seed("seed", seed)
        if not checks.is_number(class_dropout) or not 0.0 <= class_dropout <= 1.0:
            raise ValueError(
                "`class_dropout` must be a probability in [0, 1]. "
                f"Received: class_dropout={class_dropout!r}."
            )
        if max_skipped_steps is not None:
            checks.positive_int("max_skipped_steps", max_skipped_steps)
        training_noise.check_noise_assignment(noise_assignment)
        num_classes = getattr(network, "num_classes", None)
        if num_classes is not None and (not checks.is_int(num_classes) or num_classes < 1):
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
        self.max_skipped_steps = max_skipped_steps
        self.noise_assignment = noise_assignment

        self.seed_generator = keras.random.SeedGenerator(seed, name="noise_seed")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.ema_network = None
        if ema_decay is not None and network.weights:
            self.ema_network = ema.clone_network(network)
            ema.copy_weights(self.network, self.ema_network)
        self._reverse_processes = {}
        # Written by train_step, read by DivergenceGuard; not saved (bypasses Keras' tracking).
        self.__dict__["divergence_state"] = divergence.DivergenceState()
        self.built = True

    @property
    def image_shape(self):
        """(H, W, C) the network expects, or `None` if it does not declare it."""
        inputs = getattr(self.network, "inputs", None)
        if not inputs:
            return None
        return tuple(inputs[0].shape[1:])

    @property
    def null_label(self):
        """The label asking for the unconditional prediction: `num_classes` (`None` if unconditional)."""
        return self.num_classes

    @property
    def ema_weights(self):
        """The EMA weights (empty when `ema_decay=None`)."""
        return [] if self.ema_network is None else self.ema_network.weights

    @property
    def metrics(self):
        return [self.loss_tracker]

    def diffusion_loss(self, images, labels=None, training=True, sample_weight=None):
        """The loss E_{t, ε} w(t) ‖target − network(x_t, t)‖² for a batch.

        w(t) is 1 for `loss_weighting="simple"` and the Min-SNR-γ weight of
        the prediction type for `"min_snr"` (`objectives.loss_weight`).

        Args:
            images: float32 clean images in [−1, 1], `[B, H, W, C]`.
            labels: int32 class labels `[B]` of a conditional network (dropped
                to the null label where intended), else `None`.
            training: passed to the network (dropout). Defaults to `True`.
            sample_weight: optional float32 weight of each example's loss `[B]`
                (`fit`'s `sample_weight`), averaged as Keras averages weighted
                losses: over the batch size. Defaults to `None`.

        Returns the scalar float32 loss (mean over the batch and every pixel).
        """
        # t uniform over the T timestep indices, ε ~ N(0, I) (Algorithm 1).
        t, noise = self.draw_training_noise(images)
        return objectives.diffusion_loss(
            lambda x_t, t: self.network(self._network_inputs(x_t, t, labels), training=training),
            self.schedule, images, t, noise, self.prediction_type, self.loss_weighting,
            self.min_snr_gamma, sample_weight,
        )

    def draw_training_noise(self, images):
        """Draws the timestep indices t `[B]` (int32) and the noise ε for a batch.

        Both come from the model's `SeedGenerator` through `training_noise.draw`:
        reproducible from `seed`, kept in saved models and checkpoints, the
        same with or without XLA, and drawn per replica under a strategy.

        Args:
            images: the float32 batch `[B, H, W, C]` (one replica's part of the
                global batch under a strategy).

        Returns:
            `(t, noise)`: t uniform over `0 … T − 1`, noise ~ N(0, I) shaped like
            `images` (its examples permuted by `noise_assignment`).
        """
        return training_noise.draw(
            images, self.schedule.timesteps, self.seed_generator, self.noise_assignment
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
        labels = inputs.labels_from_batch(data, self.num_classes)
        if labels is not None and training and self.class_dropout > 0:
            labels = training_noise.drop_labels(
                labels, self.class_dropout, self.null_label, self.seed_generator
            )
        return labels

    @property
    def metrics_variables(self):
        # Keras' JAX trainer threads these through each step: the divergence counters too.
        return super().metrics_variables + self.divergence_state.variables

    def train_step(self, *args):
        # (data) on TensorFlow, (state, data) on JAX: the backend room adapts the one step.
        return backend.room().train_step(self, *args)

    def test_step(self, *args):
        return backend.room().test_step(self, *args)

    def stateful_train_step(self, data):
        """One training step on `data`, assigning to the model's variables (any backend)."""
        room = backend.room()
        images = inputs.images_from_batch(data, self.image_shape)
        labels = self._training_labels(data, training=True)
        sample_weight = sample_weights.from_batch(data)
        weights = self.network.trainable_weights
        if not weights:  # as Keras' own steps say it
            warnings.warn(NO_TRAINABLE_WEIGHTS, stacklevel=2)

        def losses():
            loss = self.diffusion_loss(
                images, labels=labels, training=True, sample_weight=sample_weight
            )
            # The optimizer sums gradients over replicas; scale so they average.
            return loss, self.optimizer.scale_loss(loss / room.replicas())

        loss, gradients = room.loss_and_gradients(losses, weights)
        # A non-finite step changes nothing, on every replica (divergence.py).
        flags = divergence.gradient_flags(gradients)
        if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
            finite = ops.all(flags)
            applied, poisoned = room.skip_on_any_replica(finite, gradients)
            room.apply_gradients(self.optimizer, poisoned, weights)  # it skips such steps itself
        else:
            finite = divergence.all_finite(loss, flags)
            applied, _ = room.skip_on_any_replica(finite, gradients)
            room.apply_if_finite(self.optimizer, gradients, weights, applied)
        skipped = self.divergence_state.record(applied, flags)
        if self.ema_network is not None:
            decay = ema.decay_at(self.ema_decay, self.ema_warmup, self.optimizer.iterations, applied)
            ema.update(self.network, self.ema_network, decay)
        # A non-finite loss is left out of the epoch's mean (weight 0, and 0 for the NaN).
        finite_loss = ops.isfinite(loss)
        self.loss_tracker.update_state(
            ops.where(finite_loss, loss, ops.zeros_like(loss)),
            sample_weight=ops.cast(finite_loss, loss.dtype),
        )
        return backend.room().shape_logs(
            {"loss": self.loss_tracker.result(), "skipped_steps": ops.cast(skipped, "float32")}
        )

    def stateful_test_step(self, data):
        """One evaluation step on `data`, assigning to the loss tracker (any backend)."""
        images = inputs.images_from_batch(data, self.image_shape)
        labels = self._training_labels(data, training=False)
        sample_weight = sample_weights.from_batch(data)
        loss = self.diffusion_loss(
            images, labels=labels, training=False, sample_weight=sample_weight
        )
        self.loss_tracker.update_state(loss)
        return backend.room().shape_logs({"loss": self.loss_tracker.result()})

    def get_config(self):
        config = super().get_config()
        config.update({key: getattr(self, key) for key in _PLAIN_CONFIG})
        if self.noise_assignment != training_noise.DEFAULT_NOISE_ASSIGNMENT:
            # Only when set: configs stay as earlier versions wrote them.
            config["noise_assignment"] = self.noise_assignment
        for key in ("network", "schedule"):
            config[key] = keras.saving.serialize_keras_object(getattr(self, key))
        return config

    def save_own_variables(self, store):
        # The RNG states travel with the weights (`saved_seeds`): a loaded model or a restored
        # backup draws the t, ε and dropout masks the original would have drawn.
        super().save_own_variables(store)
        saved_seeds.save(self, store)

    def load_own_variables(self, store):
        super().load_own_variables(saved_seeds.load(self, store))

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["network"] = keras.saving.deserialize_keras_object(config["network"])
        config["schedule"] = keras.saving.deserialize_keras_object(config["schedule"])
        return cls(**config)
