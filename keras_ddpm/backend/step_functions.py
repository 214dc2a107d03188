"""The functions `fit` and `evaluate` call once per batch, traced as one `tf.function`.

Keras' TensorFlow trainer wraps every step in two nested `tf.function`s: an
inner one that runs the step on a batch (the one XLA compiles) and an outer one
that reads the batch from the iterator (`steps_per_execution` of them in a
loop). With one step per execution and no XLA, the outer function only reads
one batch, yet the runtime keeps both graphs and their buffers. `one_function`
reads the batch and runs the step in a single traced function instead, which
lowers the step's peak memory and the first step's time.

Each time the function is traced and first run, the heap its tracing and graph
optimisation freed is handed back to the system (`release_free_heap`, glibc's
`malloc_trim`). Left in the allocator, that garbage was not reused by later
steps, whose resident memory crept above the first step's. Figures:
the README's "Measurements behind the design".

Every other case keeps Keras' own function: `run_eagerly`, `jit_compile`
(XLA cannot compile the iterator read), `steps_per_execution` > 1, and inputs
that are not TensorFlow iterators.

`DDPM` and `UNet` get these functions through the `keras_ddpm.backend.StepFunctions`
mixin, which asks the TensorFlow room for them (`make_step_function`).
"""

import ctypes

import tensorflow as tf

from keras_ddpm.backend import internals
from keras_ddpm.backend.graph_lifetime import release_traced_graphs
from keras_ddpm.backend.graph_lifetime import releasing

_ITERATORS = (tf.data.Iterator, tf.distribute.DistributedIterator)


def release_free_heap():
    """Hands the C heap's free pages back to the system; `False` where that is not possible.

    glibc keeps freed memory for reuse, in every thread's arena; `malloc_trim(0)`
    returns what is free. Other C libraries (macOS, Windows, musl) are left alone.
    """
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


def applies(model):
    """Whether `model`'s step can be traced as one function (see the module docstring)."""
    return (
        not model.run_eagerly
        and not model.jit_compile
        and model.steps_per_execution == 1
    )


class OneFunctionStep:
    """Calls `step_function` on the iterator's next batch inside one `tf.function`.

    Inputs that are not TensorFlow iterators go to `fallback` (Keras' own
    function for the same step), as do all calls if the model's settings
    change after it was built.

    Args:
        model: the `keras.Model` whose `distribute_strategy` runs the step.
        step_function: `model.train_step` or `model.test_step`.
        fallback: Keras' function for the same step, called with the iterator.
    """

    def __init__(self, model, step_function, fallback):
        self.model = model
        self.fallback = fallback
        strategy = model.distribute_strategy
        reduce = internals.reduce_per_replica()  # Keras' reduction of per-replica outputs

        @tf.function(reduce_retracing=True, autograph=False)
        def step_on_iterator(iterator):
            outputs = strategy.run(step_function, args=(iterator.get_next(),))
            return reduce(outputs, strategy, reduction="auto")

        self.step_on_iterator = step_on_iterator
        self.traces_released = 0  # traces whose garbage was handed back

    def __call__(self, iterator):
        # At the input's end `get_next` raises OutOfRangeError, which fit turns into
        # the end of the epoch, as it does for Keras' own function.
        with release_traced_graphs():  # a trace lives as long as this function
            if not (isinstance(iterator, _ITERATORS) and applies(self.model)):
                return self.fallback(iterator)
            outputs = self.step_on_iterator(iterator)
        traces = self.step_on_iterator.experimental_get_tracing_count()
        if traces != self.traces_released:  # this call traced, optimised and instantiated
            self.traces_released = traces
            release_free_heap()
        return outputs


def one_function(model, step_function, keras_function):
    """`OneFunctionStep` for `step_function` if it `applies` to `model`, else `keras_function`.

    Either way, a trace lives only as long as the function returned
    (`keras_ddpm.backend.graph_lifetime`).
    """
    if not applies(model) or internals.reduce_per_replica() is None:
        return releasing(keras_function)
    return OneFunctionStep(model, step_function, keras_function)


def make_step_function(model, kind, make_keras_function, step_function, force):
    """`model`'s `{kind}_function`, replaced once when Keras builds it (see `StepFunctions`).

    The training and evaluation steps get `one_function` (one traced function per step where
    that applies, Keras' own otherwise), the prediction step Keras' own; every one of them
    frees its traces with it (`keras_ddpm.backend.graph_lifetime`).
    """
    attribute = f"{kind}_function"
    if getattr(model, attribute) is None or force:
        make_keras_function(force=force)
        function = getattr(model, attribute)
        if step_function is None:
            setattr(model, attribute, releasing(function))
        else:
            setattr(model, attribute, one_function(model, step_function, function))
    return getattr(model, attribute)
