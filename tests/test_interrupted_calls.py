"""A `fit`, `evaluate` or `predict` that raises leaves the model as the last finished step did.

On JAX, Keras' trainer empties every variable while a call runs and fills it again at its
end; where the call raised first (a batch that cannot be read, inputs the network refuses,
a Ctrl-C in `evaluate`), the weights read as freshly initialised ones or as `None`
(`backend.StateKept` and the JAX room's `state_kept` put them back). Here the same holds on
every backend.
"""

import keras
import numpy as np
import pytest

import keras_ddpm
from networks import tiny_unet

pytestmark = pytest.mark.backends

IMAGES = keras_ddpm.data.load_digits_arrays()[0][:48]


class Batches(keras.utils.PyDataset):
    """Three batches of 16 digits; batch `fail_at` raises `error` instead, or (`error=None`)
    holds values in [0, 2], which the step's own check refuses."""

    def __init__(self, fail_at=None, error=RuntimeError):
        super().__init__()
        self.fail_at, self.error = fail_at, error

    def __len__(self):
        return 3

    def __getitem__(self, index):
        images = IMAGES[16 * index : 16 * index + 16]
        if index == self.fail_at and self.error is None:
            return images + 1.0  # float images outside [-1, 1]
        if index == self.fail_at:
            raise self.error("batch could not be read")
        return images


@pytest.fixture(scope="module")
def model():
    """One model for the module, fitted once: each test starts where the last one left it
    (as a user's session goes on after an error) and counts steps from there."""
    keras.utils.set_random_seed(0)
    model = keras_ddpm.DDPM(tiny_unet(), keras_ddpm.NoiseSchedule("cosine", 20), seed=0,
                            ema_decay=0.9)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(Batches(), epochs=1, shuffle=False, verbose=0)
    return model


class Finished(keras.callbacks.Callback):
    """Counts the steps of a call that finished."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def _one_more(self, batch, logs=None):
        self.count += 1

    on_train_batch_end = on_test_batch_end = _one_more


def _iterations(model):
    return int(np.asarray(model.optimizer.iterations))


def _state(model):
    return [np.array(v) for v in [*model.variables, *model.optimizer.variables]]


def _assert_same(before, model, skip=()):
    after = _state(model)
    assert len(after) == len(before)
    for i, (one, two) in enumerate(zip(before, after)):
        if i not in skip:
            np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("fail_at, error", [(0, RuntimeError), (1, KeyboardInterrupt)])
def test_an_evaluate_that_raises_keeps_every_variable(model, fail_at, error):
    """Every weight as before; the noise seed advanced by one draw a finished step."""
    before = _state(model)
    seed = [i for i, v in enumerate(model.variables) if "seed_generator_state" in v.path]
    assert len(seed) == 1
    finished = Finished()
    with pytest.raises(error, match="could not be read"):
        model.evaluate(Batches(fail_at, error), callbacks=[finished], verbose=0)
    assert finished.count <= fail_at  # steps before the failing batch (prefetching may stop it)
    _assert_same(before, model, skip=seed)
    np.testing.assert_array_equal(
        np.array(model.variables[seed[0]]), before[seed[0]] + [0, finished.count]
    )
    images = model.generate(2, steps=3, seed=0, verbose=0)
    assert images.shape == (2, 8, 8, 1) and np.all(np.isfinite(images))


def test_a_predict_with_inputs_the_network_refuses_keeps_every_variable(model):
    before = _state(model)
    with pytest.raises(ValueError):
        model.predict(IMAGES[:4], verbose=0)  # the network takes [x_t, t]
    _assert_same(before, model)
    t = np.full((4,), 5, "int32")
    np.testing.assert_allclose(
        model.predict([IMAGES[:4], t], verbose=0),
        keras.ops.convert_to_numpy(model([IMAGES[:4], t])),
        atol=1e-5,
    )


def test_a_fit_whose_first_batch_raises_keeps_every_variable_and_fits_again(model):
    start, before = _iterations(model), _state(model)
    with pytest.raises(RuntimeError, match="could not be read"):
        model.fit(Batches(fail_at=0), epochs=1, shuffle=False, verbose=0)
    _assert_same(before, model)
    history = model.fit(Batches(), epochs=2, shuffle=False, verbose=0).history
    assert np.all(np.isfinite(history["loss"]))
    assert _iterations(model) == start + 6


@pytest.mark.parametrize("method", ["fit", "evaluate"])
def test_a_first_batch_refused_inside_the_step_keeps_every_variable(model, method):
    """The range check runs inside the compiled step; on JAX the step had been handed the
    variables' buffers (donated) when it raised, and the model was left without weights."""
    start, before = _iterations(model), _state(model)
    seed = [i for i, v in enumerate(model.variables) if "seed_generator_state" in v.path]
    keywords = {"shuffle": False} if method == "fit" else {}
    with pytest.raises(ValueError, match=r"outside \[-1, 1\]") as raised:
        getattr(model, method)(Batches(fail_at=0, error=None), verbose=0, **keywords)
    assert "\n" not in str(raised.value)
    _assert_same(before, model, skip=seed)
    history = model.fit(Batches(), epochs=1, shuffle=False, verbose=0).history
    assert np.all(np.isfinite(history["loss"]))
    assert _iterations(model) == start + 3


def test_a_later_batch_refused_inside_the_step_keeps_the_steps_before_it(model):
    """Batch 1 is refused: batch 0's step stays, the refused one changes nothing (JAX may
    raise one step later, batch 2's step staying too), and the model trains on."""
    start = _iterations(model)
    with pytest.raises(ValueError, match=r"outside \[-1, 1\]"):
        model.fit(Batches(fail_at=1, error=None), epochs=1, shuffle=False, verbose=0)
    assert _iterations(model) in (start + 1, start + 2)
    assert all(np.all(np.isfinite(np.array(v))) for v in model.trainable_variables)
    history = model.fit(Batches(), epochs=1, shuffle=False, verbose=0).history
    assert np.all(np.isfinite(history["loss"]))


def test_a_fit_that_raises_later_keeps_the_steps_it_finished(model):
    """Batch 1 raises: the model holds the steps that finished before it (as Keras keeps
    them), on every backend."""
    start, finished = _iterations(model), Finished()
    with pytest.raises(RuntimeError, match="could not be read"):
        model.fit(Batches(fail_at=1), epochs=1, shuffle=False, callbacks=[finished], verbose=0)
    assert finished.count <= 1
    assert _iterations(model) == start + finished.count
    assert all(np.all(np.isfinite(np.array(v))) for v in model.trainable_variables)
