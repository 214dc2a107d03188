"""The PyTorch backend's room: eager loops, float64 coefficients, Keras' stateful step."""

import warnings

import torch

from keras_ddpm.backend import room_defaults

fused_group_normalization = None
conv2d_3x3 = None

# Warned when a training step is compiled with `jit_compile=True` (measured: README, "Backends").
SLOW_COMPILE = (
    "compile(jit_compile=True) on PyTorch is Keras' torch.compile of the training step, "
    "compiled in pieces (graph breaks at the gradient and the batch checks) for each batch "
    "shape: minutes before the first step (the quick-start U-Net: 479 s on a 2-core CPU, then "
    "5% more images/s than eager). jit_compile=False, Keras' default here, starts at once."
)
# What a failed `checked_in_step` raises out of a step (its message inside).
STEP_CHECK_ERRORS = (ValueError,)


def precise_float():
    """The dtype of the schedule's coefficient arithmetic: float64."""
    return "float64"


def accelerator_present():
    """Whether PyTorch sees a CUDA (or ROCm) GPU."""
    return torch.cuda.is_available()


def compile_loop(function, signature, jit_compile):
    """`function` as it is: Keras runs PyTorch eagerly, and the loop with it."""
    del signature, jit_compile

    def run(*args):
        with torch.no_grad():
            return function(*args)

    return run


def checked_in_step(value, condition, message):
    """`value`, once the boolean scalar `condition` holds: else a `ValueError(message)`."""
    if not bool(condition):
        raise ValueError(message)
    return value


def make_step_function(model, kind, make_keras_function, step_function, force):
    """Keras' own `{kind}_function`; with `jit_compile=True` (Keras' `torch.compile`) it compiles
    a graph for each batch shape it meets: compiled for any batch size, the U-Net failed
    inside PyTorch 2.13's inductor ("cannot determine truth value of Relational: 1 < s69").
    Compiling the training step warns (`SLOW_COMPILE`)."""
    function = room_defaults.make_step_function(
        model, kind, make_keras_function, step_function, force
    )
    if not model.jit_compile or getattr(function, "static_shapes", False):
        return function
    if kind == "train":
        warnings.warn(SLOW_COMPILE, stacklevel=2)

    def static_shapes(data):
        with torch._dynamo.config.patch(automatic_dynamic_shapes=False):
            return function(data)

    static_shapes.static_shapes = True
    setattr(model, f"{kind}_function", static_shapes)
    return static_shapes


# Keras' PyTorch trainer runs one replica a process: `room_defaults` answers the replica
# questions (`__getattr__` below), and `untrained_step` too.
def train_step(model, data):
    """Keras' PyTorch trainer calls `train_step(data)`: the model's step as it is."""
    return model.stateful_train_step(data)


def test_step(model, data):
    """Keras' PyTorch trainer calls `test_step(data)`: the model's step as it is."""
    with torch.no_grad():
        return model.stateful_test_step(data)


def skip_batches(model, data):
    """Nothing to read: Keras' PyTorch trainer hands the train function its batches."""
    del model, data


def loss_and_gradients(losses, weights):
    """`(loss, gradients)`: `losses()` returns `(loss, scaled_loss)`; the gradients are the
    scaled loss's with respect to `weights`, by `torch.autograd.grad`."""
    loss, scaled_loss = losses()
    values = [weight.value for weight in weights]
    if not values:  # a frozen network (`autograd.grad` refuses an empty list)
        return loss, []
    gradients = torch.autograd.grad(scaled_loss, values, allow_unused=True)
    return loss, list(gradients)


def apply_gradients(optimizer, gradients, weights):
    """`optimizer.apply` (a `LossScaleOptimizer` skips non-finite steps itself; no gradients,
    of a frozen network, change nothing, where `apply_gradients` could not unzip them)."""
    optimizer.apply(list(gradients), list(weights))


def apply_if_finite(optimizer, gradients, weights, finite):
    """`optimizer.apply_gradients` when `finite`, nothing otherwise (eager: a Python branch)."""
    if bool(finite):
        apply_gradients(optimizer, gradients, weights)


def __getattr__(name):
    """What this room does not define, `room_defaults` answers."""
    return getattr(room_defaults, name)
