"""LoRA fine-tuning: `DDPM.enable_lora`, `UNet.enable_lora`, and what a file keeps of it."""

import keras
import numpy as np
import pytest

import keras_ddpm
from keras_ddpm import lora
from keras_ddpm.runs.backup import RunBackup
from networks import tiny_unet
from training_state import assert_same_state
from training_state import training_state as state

pytestmark = pytest.mark.backends

IMAGES = keras_ddpm.data.load_digits_arrays()[0][:32]
ATTENTION = ["q", "k", "v", "proj_out"]


def _fitted_model(num_classes=None):
    """Fitted first: a fresh U-Net's output convolution is zero, and frozen it passes no
    gradient to the updates before it."""
    keras.utils.set_random_seed(0)
    model = keras_ddpm.DDPM(tiny_unet(num_classes=num_classes),
                            keras_ddpm.NoiseSchedule("cosine", 20), seed=0, ema_decay=0.9)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    labels = None if num_classes is None else np.arange(len(IMAGES)) % num_classes
    model.fit(IMAGES, labels, batch_size=16, epochs=1, verbose=0)
    return model


def _base_kernel(layer):
    """The frozen kernel variable (`layer.kernel` reads kernel + (α/r)·A·B once adapted)."""
    return next(w for w in layer.weights if w.name == "kernel")


def _samples(model, **kwargs):
    return model.generate(3, sampler="ddim", steps=4, seed=0, verbose=0, **kwargs)


@pytest.fixture(scope="module")
def adapted():
    """A fitted model, its samples before LoRA, then LoRA on the attention layers, one fit."""
    model = _fitted_model()
    before = {"ema": _samples(model), "raw": _samples(model, use_ema=False)}
    layers = lora.adaptable_layers(model.network)
    kernels = {path: np.array(layer.kernel) for path, layer in layers.items()}
    paths = model.enable_lora(2, target_names=ATTENTION)
    after_enable = {"ema": _samples(model), "raw": _samples(model, use_ema=False)}
    with pytest.raises(ValueError, match="did not have at compile time") as refused:
        model.fit(IMAGES, batch_size=16, epochs=1, verbose=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(IMAGES, batch_size=16, epochs=2, verbose=0)
    return model, before, after_enable, kernels, paths, str(refused.value)


def test_enabling_lora_changes_no_output_and_leaves_only_the_updates_to_train(adapted):
    model, before, after_enable, _, paths, refused = adapted
    assert paths == ["mid_attn_1/k", "mid_attn_1/proj_out", "mid_attn_1/q", "mid_attn_1/v"]
    # B starts at zero: the network and its EMA copy give the same images as before.
    np.testing.assert_array_equal(after_enable["ema"], before["ema"])
    np.testing.assert_array_equal(after_enable["raw"], before["raw"])
    # fit before compiling again is one line naming what changed.
    assert "\n" not in refused and "lora_kernel" in refused
    layers = lora.adaptable_layers(model.network)
    trainable = {id(w) for w in model.network.trainable_weights}
    # Only the updates and the adapted layers' biases train; every other weight is frozen.
    expected = set()
    for path in paths:
        expected |= {id(layers[path].lora_kernel_a), id(layers[path].lora_kernel_b),
                     id(layers[path].bias)}
    assert trainable == expected
    # The EMA copy has the same weights in the same order, so they pair one to one.
    assert [w.path for w in model.network.weights] == [w.path for w in model.ema_network.weights]
    assert [tuple(w.shape) for w in model.network.weights] == [
        tuple(w.shape) for w in model.ema_network.weights
    ]


def test_a_lora_fit_moves_the_updates_and_not_the_frozen_kernels(adapted):
    model, before, _, kernels, paths, _ = adapted
    layers = lora.adaptable_layers(model.network)
    for path in paths:
        np.testing.assert_array_equal(np.array(_base_kernel(layers[path])), kernels[path])
        assert np.abs(np.array(layers[path].lora_kernel_b)).max() > 0
    for path in set(layers) - set(paths):  # frozen as well
        np.testing.assert_array_equal(np.array(layers[path].kernel), kernels[path])
    # The EMA copy follows the updates.
    ema_layer = lora.adaptable_layers(model.ema_network)[paths[0]]
    assert np.abs(np.array(ema_layer.lora_kernel_b)).max() > 0
    assert not np.allclose(_samples(model), before["ema"], atol=1e-6)


def test_a_saved_lora_model_loads_with_the_same_layers_and_images(adapted, tmp_path):
    model, *_ , paths, _ = adapted
    config = model.network.get_config()
    assert sorted(config["lora_layers"]) == paths
    assert config["lora_layers"][paths[0]] == [2, 2.0]
    model.save(tmp_path / "lora.keras")
    loaded = keras.saving.load_model(tmp_path / "lora.keras")
    assert lora.recorded(loaded.network) == lora.recorded(model.network)
    assert lora.recorded(loaded.ema_network) == lora.recorded(model.network)
    trained = [w.path for w in model.network.trainable_weights]
    assert [w.path for w in loaded.network.trainable_weights] == trained
    np.testing.assert_allclose(_samples(loaded), _samples(model), atol=1e-5)
    np.testing.assert_allclose(
        _samples(loaded, use_ema=False), _samples(model, use_ema=False), atol=1e-5
    )
    # W, A and B come back as they were (Keras alone writes W + ΔW and zeroes A and B), so
    # the loaded model trains on exactly as the saved one does.
    for network, copy in ((model.network, loaded.network), (model.ema_network, loaded.ema_network)):
        saved, restored = lora.adaptable_layers(network), lora.adaptable_layers(copy)
        for path in paths:
            for name in ("lora_kernel_a", "lora_kernel_b"):
                np.testing.assert_array_equal(
                    np.array(getattr(restored[path], name)), np.array(getattr(saved[path], name))
                )
            np.testing.assert_array_equal(
                np.array(_base_kernel(restored[path])), np.array(_base_kernel(saved[path]))
            )
    for trained in (model, loaded):
        trained.fit(IMAGES, batch_size=16, epochs=1, verbose=0)
    for one, two in zip(model.weights, loaded.weights):
        np.testing.assert_allclose(np.array(one), np.array(two), atol=1e-6, err_msg=one.path)


def test_layer_by_layer_lora_is_mirrored_into_the_ema_copy_by_compile():
    model = _fitted_model()
    model.network.get_layer("mid_attn_1").q.enable_lora(3, lora_alpha=6)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    assert lora.recorded(model.ema_network) == {"mid_attn_1/q": [3, 6.0]}
    history = model.fit(IMAGES, batch_size=16, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])


def test_lora_arguments_are_checked_in_one_line():
    network = tiny_unet()
    with pytest.raises(ValueError, match=r"`rank` must be a positive integer. Received: rank=0"):
        network.enable_lora(0)
    with pytest.raises(ValueError, match=r"\['query'\] match no layer of .*'proj_out'"):
        network.enable_lora(2, target_names=["q", "query"])
    with pytest.raises(TypeError, match="Received: target_names='q'"):
        network.enable_lora(2, target_names="q")
    with pytest.raises(ValueError, match="`lora_alpha` must be"):
        network.enable_lora(2, lora_alpha=-1)
    assert lora.recorded(network) == {}  # nothing was enabled by a refused call
    every = network.enable_lora(2)
    assert len(every) == len(lora.adaptable_layers(network)) > len(ATTENTION)
    with pytest.raises(ValueError, match="already enabled"):
        network.enable_lora(2, target_names=["q"])


def test_save_pretrained_merges_the_updates_into_the_kernels(adapted, tmp_path):
    model, *_ = adapted
    folder = model.network.save_pretrained(tmp_path / "unet")
    plain = keras_ddpm.UNet.from_pretrained(folder)
    assert lora.recorded(plain) == {} and "lora_layers" not in plain.get_config()
    x_t = IMAGES[:4]
    t = np.array([0, 5, 10, 19], "int32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(plain([x_t, t])),
        keras.ops.convert_to_numpy(model.network([x_t, t])),
        atol=1e-5,
    )
    pipeline = model.save_pretrained(tmp_path / "pipeline")  # the EMA network, merged
    loaded = keras_ddpm.DDPM.from_pretrained(pipeline)
    # The merged kernels differ by float rounding, which 1/√ᾱ enlarges along the steps.
    np.testing.assert_allclose(_samples(loaded), _samples(model), atol=1e-3)


def test_a_lora_run_resumed_from_its_backup_is_the_uninterrupted_run(tmp_path):
    def lora_model():
        keras.utils.set_random_seed(0)  # as in a new process
        model = keras_ddpm.DDPM(tiny_unet(), keras_ddpm.NoiseSchedule("cosine", 20), seed=0,
                                ema_decay=0.9)
        model.enable_lora(2)  # every kernel: conv_out's update lets the others learn
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        return model

    def fit(model, epochs, callbacks=()):
        model.fit(IMAGES, batch_size=16, epochs=epochs, verbose=0, callbacks=list(callbacks))
        return model

    folder = str(tmp_path / "backup")
    uninterrupted = fit(lora_model(), 3)
    assert all(np.abs(np.array(w)).max() > 0 for w in uninterrupted.network.trainable_weights
               if w.name.endswith("_b"))  # every update moved
    fit(lora_model(), 2, [RunBackup(folder, delete_checkpoint=False)])
    resumed = fit(lora_model(), 3, [RunBackup(folder)])
    assert_same_state(state(uninterrupted), state(resumed))


def test_a_conditional_models_class_embedding_takes_and_keeps_an_update(tmp_path):
    model = _fitted_model(num_classes=3)
    assert model.enable_lora(2, target_names=["class_embedding", "q"]) == [
        "class_embedding", "mid_attn_1/q"
    ]
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    labels = np.arange(len(IMAGES)) % 3
    model.fit(IMAGES, labels, batch_size=16, epochs=1, verbose=0)
    model.save(tmp_path / "conditional.keras")
    loaded = keras.saving.load_model(tmp_path / "conditional.keras")
    saved, restored = (lora.adaptable_layers(m.network)["class_embedding"] for m in (model, loaded))
    assert np.abs(np.array(saved.lora_embeddings_b)).max() > 0
    for one, two in zip(saved.weights, restored.weights, strict=True):
        np.testing.assert_array_equal(np.array(one), np.array(two))
    guided = dict(labels=[0, 1, 2], guidance_scale=2.0)
    np.testing.assert_allclose(_samples(loaded, **guided), _samples(model, **guided), atol=1e-5)
