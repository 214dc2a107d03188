"""Class-conditional models and classifier-free guidance.

The exact tests use a weightless conditional oracle: for class c the data is
N(μ_c, s²) and the null label's "unconditional" data N(0, s²). Both optimal ε
predictions are affine in x_t, and so is their guided mix,

    ε_∅ + w (ε_c − ε_∅) = σ (x_t − a·wμ_c) / (a²s² + σ²),

which is exactly the optimal ε for N(wμ_c, s²) data. Sampling with guidance
scale w must therefore reproduce the exact output moments of a sampler driven
by the Gaussian oracle of mean wμ_c.
"""

import keras
from keras import ops
import numpy as np
import pytest

import keras_ddpm
from keras_ddpm import NoiseSchedule
from keras_ddpm import samplers
from keras_ddpm.guidance import classifier_free_guidance
from networks import tiny_unet
from oracles import respaced_output_moments

pytestmark = pytest.mark.backends

MEANS = (-0.6, -0.2, 0.3, 0.7)  # μ_c of the oracle's four classes
STD = 0.1
NUM_CLASSES = len(MEANS)


class ConditionalOracleLayer(keras.layers.Layer):
    """The optimal ε for N(μ_label, s²) data; the null label has μ = 0."""

    def __init__(self, schedule, means, std, **kwargs):
        super().__init__(**kwargs)
        self.schedule = schedule
        self.means = means + (0.0,)
        self.std = std

    def call(self, inputs):
        x_t, t, labels = inputs
        a, sigma = self.schedule.signal_and_noise_rates(t, len(x_t.shape))
        means = ops.convert_to_tensor(self.means, "float32")
        mean = ops.reshape(ops.take(means, labels), (-1, 1, 1, 1))
        return sigma * (x_t - a * mean) / (a * a * self.std**2 + sigma * sigma)


def conditional_oracle(schedule, image_shape=(4, 4, 1)):
    x_t = keras.Input(shape=image_shape, name="x_t")
    t = keras.Input(shape=(), dtype="int32", name="t")
    labels = keras.Input(shape=(), dtype="int32", name="labels")
    out = ConditionalOracleLayer(schedule, MEANS, STD)([x_t, t, labels])
    network = keras.Model([x_t, t, labels], out, name="conditional_oracle")
    network.num_classes = NUM_CLASSES
    return network


def tiny_conditional_unet(**kwargs):
    config = dict(
        image_shape=(8, 8, 1), base_channels=8, channel_multipliers=(1,), num_res_blocks=1,
        attention_resolutions=(), norm_groups=4, dropout=0.0, num_classes=10,
    )
    config.update(kwargs)
    return keras_ddpm.UNet(**config)


# ----------------------------------------------------------------------------
# The network
# ----------------------------------------------------------------------------
def test_unet_class_embedding_reaches_the_output_and_round_trips():
    network = tiny_conditional_unet()
    assert [tensor.name for tensor in network.inputs] == ["x_t", "t", "labels"]
    assert network.null_label == 10
    embedding = network.get_layer("class_embedding")
    assert tuple(embedding.embeddings.shape) == (11, 32)  # K + 1 rows, width 4·base
    # A fresh network ignores its conditioning (zero-initialised residual branches and
    # output convolution); give those weights values.
    rng = np.random.default_rng(0)
    for weight in network.weights:
        if not np.any(np.asarray(weight)):
            weight.assign(rng.normal(size=weight.shape) * 0.1)
    x = np.random.default_rng(1).normal(size=(3, 8, 8, 1)).astype("float32")
    t = np.full((3,), 5, "int32")
    outputs = [
        ops.convert_to_numpy(network([x, t, np.full((3,), c, "int32")])) for c in (0, 1, 10)
    ]
    assert np.abs(outputs[0] - outputs[1]).max() > 1e-4
    assert np.abs(outputs[0] - outputs[2]).max() > 1e-4
    clone = keras_ddpm.UNet.from_config(network.get_config())
    assert clone.num_classes == 10
    clone.set_weights(network.get_weights())
    np.testing.assert_array_equal(
        ops.convert_to_numpy(clone([x, t, np.zeros(3, "int32")])), outputs[0]
    )


def test_unet_rejects_a_bad_num_classes():
    with pytest.raises(ValueError, match="num_classes"):
        tiny_conditional_unet(num_classes=0)


# ----------------------------------------------------------------------------
# Guidance
# ----------------------------------------------------------------------------
@pytest.mark.tensorflow_only  # counts Python calls: JAX traces every branch of a cond (runs one)
def test_guidance_mixes_predictions_in_one_network_call():
    calls = []

    def denoise(x, t, labels):
        calls.append(int(x.shape[0]))
        return x * 0.0 + ops.reshape(ops.cast(labels, "float32"), (-1, 1))

    x = ops.zeros((3, 1))
    t = ops.zeros((3,), "int32")
    labels = ops.convert_to_tensor([1, 2, 4])
    for scale, expected_calls in ((3.0, [6]), (1.0, [3]), (0.0, [3])):
        calls.clear()
        guided = classifier_free_guidance(denoise, labels, 9, scale)
        out = np.asarray(guided(x, t))[:, 0]
        # The null label (9) stands for the unconditional prediction.
        np.testing.assert_allclose(out, 9.0 + scale * (np.array([1, 2, 4]) - 9.0))
        assert calls == expected_calls


@pytest.mark.parametrize("scale", [0.0, 1.0, 2.5])
def test_guided_ddim_has_the_exact_distribution_of_the_shifted_gaussian(scale):
    schedule = NoiseSchedule("linear", timesteps=200)
    model = keras_ddpm.DDPM(conditional_oracle(schedule), schedule=schedule)
    labels = np.arange(4096) % NUM_CLASSES
    images = model.generate(
        4096, sampler="ddim", steps=20, seed=0, labels=labels, guidance_scale=scale,
        clip=False, verbose=0, jit_compile=False,
    )
    sequence = np.asarray(samplers.timestep_sequence(schedule, 20, "trailing"))[:20]
    for label, mean in enumerate(MEANS):
        values = images[labels == label].ravel()  # 16,384 values per class
        expected_mean, expected_std = respaced_output_moments(
            schedule, scale * mean, STD, sequence, eta=0.0
        )
        standard_error = expected_std / np.sqrt(values.size)
        assert abs(values.mean() - expected_mean) < 5 * standard_error
        assert abs(values.std() - expected_std) < 5 * expected_std / np.sqrt(2 * values.size)
        # A guidance bug (scale applied to the wrong branch, or none) moves the
        # mean by |μ_c|(w − 1) or more: far outside the tolerance for w ≠ 1.
        if scale != 1.0:
            assert abs(values.mean() - mean) > 50 * standard_error


def test_guided_ancestral_sampling_has_the_exact_distribution():
    schedule = NoiseSchedule("linear", timesteps=200)
    model = keras_ddpm.DDPM(conditional_oracle(schedule), schedule=schedule)
    labels = np.arange(4096) % NUM_CLASSES
    images = model.generate(
        4096, sampler="ddpm", steps=25, seed=1, labels=labels, guidance_scale=2.0,
        clip=False, verbose=0, jit_compile=False,
    )
    sequence = np.asarray(samplers.timestep_sequence(schedule, 25, "trailing"))[:25]
    for label, mean in enumerate(MEANS):
        values = images[labels == label].ravel()
        expected_mean, expected_std = respaced_output_moments(schedule, 2.0 * mean, STD, sequence)
        assert abs(values.mean() - expected_mean) < 5 * expected_std / np.sqrt(values.size)
        assert abs(values.std() - expected_std) < 5 * expected_std / np.sqrt(2 * values.size)


def test_unlabelled_sampling_is_the_null_label_and_guidance_zero():
    schedule = NoiseSchedule("linear", timesteps=50)
    model = keras_ddpm.DDPM(conditional_oracle(schedule), schedule=schedule)
    for sampler in samplers.SAMPLERS:
        unlabelled = model.generate(8, sampler=sampler, steps=10, seed=3, clip=False, verbose=0)
        zero = model.generate(
            8, sampler=sampler, steps=10, seed=3, labels=2, guidance_scale=0.0, clip=False,
            verbose=0,
        )
        np.testing.assert_array_equal(unlabelled, zero)
        # N(0, s²) for the null label: the samples centre on 0, not on μ_2 = 0.3.
        assert abs(unlabelled.mean()) < 0.1


# ----------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------
def test_class_dropout_replaces_labels_at_the_requested_rate():
    model = keras_ddpm.DDPM(tiny_conditional_unet(), seed=0, class_dropout=0.25)
    labels = np.arange(20000) % 10
    images = np.zeros((20000, 8, 8, 1), "float32")
    dropped = np.asarray(model._training_labels((images, labels), training=True))
    null = dropped == 10
    # Binomial(20000, 0.25): standard deviation 61 labels.
    assert abs(null.sum() - 5000) < 4 * 61
    np.testing.assert_array_equal(dropped[~null], labels[~null])
    kept = np.asarray(model._training_labels((images, labels), training=False))
    np.testing.assert_array_equal(kept, labels)


def test_conditional_fit_accepts_every_labelled_form(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras_ddpm.DDPM(
        tiny_conditional_unet(), NoiseSchedule("linear", 50), seed=0, class_dropout=0.2,
        ema_decay=0.5,
    )
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    images, labels = keras_ddpm.data.load_digits_arrays()
    images, labels = images[:256], labels[:256]
    tuples = keras_ddpm.data.from_array(images, labels, 64, seed=0)
    losses = model.fit(tuples, epochs=3, verbose=0).history["loss"]
    assert losses[-1] < losses[0]
    # TFDS-style dicts: the training step reads their "label" (checked eagerly, sparing
    # a third trace of the step).
    batch = {"image": images[:8], "label": labels[:8]}
    np.testing.assert_array_equal(model._training_labels(batch, training=False), labels[:8])
    arrays = model.fit(images, labels, batch_size=128, epochs=1, verbose=0)
    assert np.isfinite(arrays.history["loss"][0])

    # The trained conditional model round-trips through a .keras file.
    path = str(tmp_path / "conditional.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.num_classes == 10 and loaded.class_dropout == 0.2
    kwargs = dict(sampler="ddim", steps=5, seed=4, labels=[1, 7, 7], guidance_scale=2.0,
                  verbose=0, jit_compile=False)
    np.testing.assert_array_equal(model.generate(3, **kwargs), loaded.generate(3, **kwargs))


def test_sample_and_class_weights_scale_the_loss_and_the_gradient():
    """Keras' `sample_weight` and `class_weight` reach the step: with plain SGD, weights of 2
    double the logged loss and every weight's move."""
    images, labels = keras_ddpm.data.load_digits_arrays()
    images, labels = images[:16], labels[:16]
    keras.utils.set_random_seed(0)
    initial = tiny_conditional_unet().get_weights()
    moves, losses = {}, {}
    for form in ("none", "sample_weight", "class_weight"):
        model = keras_ddpm.DDPM(
            tiny_conditional_unet(), NoiseSchedule("linear", 20), seed=0, class_dropout=0.0,
            ema_decay=None,
        )
        model.network.set_weights(initial)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        weighting = {
            "none": {},
            "sample_weight": {"sample_weight": np.full(16, 2.0)},
            "class_weight": {"class_weight": {label: 2.0 for label in range(10)}},
        }[form]
        history = model.fit(images, labels, batch_size=16, shuffle=False, verbose=0, **weighting)
        losses[form] = history.history["loss"][0]
        moves[form] = [w - w0 for w, w0 in zip(model.network.get_weights(), initial)]
    for form in ("sample_weight", "class_weight"):
        np.testing.assert_allclose(losses[form], 2 * losses["none"], rtol=1e-6)
        for ours, unweighted in zip(moves[form], moves["none"]):
            np.testing.assert_allclose(ours, 2 * unweighted, rtol=1e-3, atol=1e-7)
    assert max(np.abs(move).max() for move in moves["none"]) > 1e-4  # SGD moved them


class _WeightedBatch(keras.utils.PyDataset):
    """One `{"image", "sample_weight"}` batch: an unconditional model's weighted images."""

    def __init__(self, images, weights):
        super().__init__()
        self.images, self.weights = images, weights

    def __len__(self):
        return 1

    def __getitem__(self, index):
        return {"image": self.images, "sample_weight": self.weights}


def test_an_unconditional_models_sample_weights_reach_the_step():
    """Keras drops an array's `sample_weight` without labels; an unconditional `fit` and
    `evaluate` carry it to the step, from arrays (seeded order or their own), a held-out
    split, and `{"image", "sample_weight"}` batches: weights of 2 double the loss. What
    cannot be carried is one line."""
    images = keras_ddpm.data.load_digits_arrays()[0][:16]
    twos = np.full(16, 2.0, "float32")
    keras.utils.set_random_seed(0)
    # One model, its weights kept (learning rate 0) and its noise drawn again for each call
    # (the seed generator's state reset): the calls differ only in their weights.
    model = keras_ddpm.DDPM(tiny_unet(), NoiseSchedule("linear", 20), seed=0, ema_decay=None)
    draw = np.random.default_rng(0)  # no zero output layer: the loss depends on the images
    for weight in model.network.weights:
        weight.assign(draw.normal(0, 0.2, weight.shape).astype("float32"))
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    state = model.seed_generator.state.numpy()

    def logs(call, *args, **kwargs):
        model.seed_generator.state.assign(state)
        return call(*args, verbose=0, **kwargs)

    losses = {}
    for name, kwargs in [("seeded", {}), ("in order", {"shuffle": False}),
                         ("held out", {"validation_split": 0.25})]:
        plain = logs(model.fit, images, batch_size=16, **kwargs).history
        doubled = logs(model.fit, images, sample_weight=twos, batch_size=16, **kwargs).history
        for key in plain:
            np.testing.assert_allclose(doubled[key], 2 * np.array(plain[key]), rtol=1e-6)
        losses[name] = plain["loss"]
    assert not np.allclose(losses["seeded"], losses["in order"])  # the orders do differ
    # The same batch, in order, from a PyDataset of dicts.
    batches = logs(model.fit, _WeightedBatch(images, twos)).history["loss"]
    np.testing.assert_allclose(batches, 2 * np.array(losses["in order"]), rtol=1e-6)
    plain = logs(model.evaluate, images, batch_size=8)
    np.testing.assert_allclose(
        logs(model.evaluate, images, sample_weight=twos, batch_size=8), 2 * plain, rtol=1e-6
    )

    for kwargs, match in [
        ({"sample_weight": twos, "steps_per_epoch": 1}, "takes `sample_weight` beside"),
        ({"class_weight": {0: 1.0}}, "cannot take `class_weight`"),
    ]:
        _one_line_error(lambda: model.fit(images, verbose=0, **kwargs), match)


def _labelled_batches(images, labels, batch_size, form):
    """A Python generator of `(images, labels)` tuples or TFDS-style dicts, in order."""
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size], labels[start:start + batch_size]
        yield chunk if form == "tuple" else {"image": chunk[0], "label": chunk[1]}


def test_conditional_fit_reads_labels_from_pydatasets_generators_and_data_loaders():
    """Labels that `fit` cannot see before training (a keras_ddpm PyDataset, a generator, a
    PyTorch `DataLoader`) are read in the step: the same batches train to the same weights."""
    images, labels = keras_ddpm.data.load_digits_arrays()
    images, labels = images[:96], labels[:96]
    keras.utils.set_random_seed(0)
    initial = tiny_conditional_unet().get_weights()
    trained = {}
    for form in ("pydataset", "tuple", "dataloader"):
        model = keras_ddpm.DDPM(
            tiny_conditional_unet(), NoiseSchedule("linear", 20), seed=0, class_dropout=0.2
        )
        model.network.set_weights(initial)
        model.compile(optimizer=keras.optimizers.Adam(3e-3))
        if form == "pydataset":
            data = keras_ddpm.data.from_array_batches(images, labels, 32, shuffle=False)
        elif form == "dataloader":
            import torch

            pairs = torch.utils.data.TensorDataset(torch.from_numpy(images), torch.from_numpy(labels))
            data = torch.utils.data.DataLoader(pairs, batch_size=32)
        else:
            data = _labelled_batches(images, labels, 32, form)
        history = model.fit(data, epochs=1, verbose=0).history
        assert np.isfinite(history["loss"][0])
        trained[form] = model.network.get_weights()
    for form in ("tuple", "dataloader"):
        for ours, expected in zip(trained[form], trained["pydataset"]):
            np.testing.assert_array_equal(ours, expected)
    assert any(not np.array_equal(a, b) for a, b in zip(trained["pydataset"], initial))
    # The digits' own PyDataset with labels, as the command line reads them without TensorFlow.
    digits = keras_ddpm.data.load_digits_batches(batch_size=32, with_labels=True)
    history = model.fit(digits, epochs=1, steps_per_epoch=2, verbose=0).history  # no retrace
    assert np.isfinite(history["loss"][0])


def _one_line_error(call, match):
    with pytest.raises(ValueError, match=match) as caught:
        call()
    assert "\n" not in str(caught.value), str(caught.value)


def test_labels_missing_misplaced_or_out_of_range_in_a_generator_are_one_line():
    images, labels = keras_ddpm.data.load_digits_arrays()
    conditional = keras_ddpm.DDPM(tiny_conditional_unet(), NoiseSchedule("linear", 20))
    conditional.compile(optimizer="adam")
    batches = np.split(images[:16], 2)
    _one_line_error(
        lambda: conditional.fit((b for b in batches), epochs=1, verbose=0),
        r"^This model is class-conditional \(num_classes=10\) and needs labels",
    )
    wrong = np.full(16, 12)
    _one_line_error(
        lambda: conditional.fit(_labelled_batches(images[:16], wrong, 8, "tuple"), verbose=0),
        r"labels outside \[0, 10\)",
    )
    network = keras_ddpm.UNet((8, 8, 1), base_channels=8, channel_multipliers=(1,),
                              num_res_blocks=1, attention_resolutions=(), norm_groups=4)
    unconditional = keras_ddpm.DDPM(network, NoiseSchedule("linear", 20))
    unconditional.compile(optimizer="adam")
    _one_line_error(
        lambda: unconditional.fit(
            keras_ddpm.data.from_array_batches(images[:16], labels[:16], 8), verbose=0
        ),
        r"^This model is unconditional .* received labels",
    )
    # A TFDS-style dict's "label" is left alone: the model reads its "image".
    history = unconditional.fit(_labelled_batches(images[:16], labels[:16], 8, "dict"),
                                verbose=0).history
    assert np.isfinite(history["loss"][0])


# ----------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def conditional_model():
    return keras_ddpm.DDPM(tiny_conditional_unet(), NoiseSchedule("linear", 20))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(labels=10), ValueError, r"labels` must lie in \[0, 10\). Received labels in \[10, 10\]"),
        (dict(labels=[-1, 0, 1]), ValueError, r"Received labels in \[-1, 1\]"),
        (dict(labels=[1, 2]), ValueError, r"one label per image: shape \(3,\). Received 2 labels"),
        (dict(labels=[0.5, 1, 2]), TypeError, "`labels` must be an int"),
        (dict(labels=1, guidance_scale=-1.0), ValueError, "guidance_scale=-1.0"),
        (dict(guidance_scale=3.0), ValueError, "`guidance_scale` needs `labels`"),
    ],
)
def test_generate_rejects_bad_labels(conditional_model, kwargs, error, match):
    with pytest.raises(error, match=match):
        conditional_model.generate(3, steps=2, **kwargs)


def test_unconditional_model_refuses_labels():
    network = keras_ddpm.UNet((8, 8, 1), base_channels=8, channel_multipliers=(1,),
                              num_res_blocks=1, attention_resolutions=(), norm_groups=4)
    model = keras_ddpm.DDPM(network, NoiseSchedule("linear", 20))
    with pytest.raises(ValueError, match="need a class-conditional model.*labels=7"):
        model.generate(2, labels=7)


def test_conditional_fit_without_labels_is_an_error(conditional_model):
    conditional_model.compile(optimizer="adam")
    images, labels = keras_ddpm.data.load_digits_arrays()
    with pytest.raises(ValueError, match="class-conditional \\(num_classes=10\\) and needs labels"):
        conditional_model.fit(keras_ddpm.data.load_digits(64), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="needs labels"):
        conditional_model.fit(images[:64], epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"Class labels must lie in \[0, 10\). Received labels in \[0, 12\]"):
        conditional_model.fit(images[:4], np.array([0, 1, 2, 12]), epochs=1, verbose=0)


@pytest.mark.parametrize("class_dropout", [-0.1, 1.5, "0.1"])
def test_bad_class_dropout(class_dropout):
    with pytest.raises(ValueError, match="class_dropout"):
        keras_ddpm.DDPM(tiny_conditional_unet(), class_dropout=class_dropout)


def test_encode_and_interpolate_follow_each_images_label():
    """Per-class inversion: the latent of an image of class c is on class c's exact ODE path."""
    schedule = NoiseSchedule("linear", timesteps=200)
    model = keras_ddpm.DDPM(conditional_oracle(schedule), schedule=schedule)
    labels = np.arange(8) % NUM_CLASSES
    z = np.random.default_rng(0).standard_normal((8, 4, 4, 1))
    images = (np.array(MEANS)[labels].reshape(-1, 1, 1, 1) + STD * z).astype("float32")
    first = np.asarray(samplers.timestep_sequence(schedule, 50, "trailing"))[0]
    alpha_bar = schedule.alphas_cumprod[first]
    exact = np.sqrt(alpha_bar) * np.array(MEANS)[labels].reshape(-1, 1, 1, 1) + np.sqrt(
        alpha_bar * STD**2 + 1 - alpha_bar) * z
    errors = {}
    for name, given in (("right", labels), ("wrong", (labels + 2) % NUM_CLASSES)):
        latents = model.encode(images, steps=50, labels=given, verbose=0)
        errors[name] = np.sqrt(np.mean((latents - exact) ** 2))
    # Measured: 0.078 with the right labels, 7.3 with labels shifted by two classes.
    assert errors["right"] < 0.15 and errors["wrong"] > 1.0, errors
    rows = model.interpolate(images[:2], images[4:6], num=3, steps=50, labels=[0, 1], verbose=0)
    assert rows.shape == (2, 3, 4, 4, 1)
    # The end frames reconstruct their images: their labels reached both passes.
    for frame, ends in ((0, images[:2]), (-1, images[4:6])):
        error = np.sqrt(np.mean((rows[:, frame] - ends) ** 2))
        assert error < 0.04, error  # measured 0.020; mixed-up labels would be off by ≥ 0.4


def test_inpaint_with_labels_and_guidance_is_guided_generation_when_nothing_is_kept():
    schedule = NoiseSchedule("linear", timesteps=50)
    model = keras_ddpm.DDPM(conditional_oracle(schedule), schedule=schedule)
    images = np.zeros((8, 4, 4, 1), "float32")
    labels = np.arange(8) % NUM_CLASSES
    common = dict(steps=10, seed=5, labels=labels, guidance_scale=2.0, verbose=0)
    filled = model.inpaint(images, np.zeros((4, 4)), resample_steps=1, **common)
    np.testing.assert_array_equal(filled, model.generate(8, **common))
    # Keeping the left half keeps it; the right half follows each image's own class.
    half = np.zeros((4, 4))
    half[:, :2] = 1
    filled = model.inpaint(images, half, resample_steps=2, jump_length=5, clip=False, **common)
    np.testing.assert_array_equal(filled[:, :, :2], 0.0)
    right = filled[:, :, 2:].reshape(8, -1).mean(1)
    np.testing.assert_allclose(right, 2.0 * np.array(MEANS)[labels], atol=0.15)
