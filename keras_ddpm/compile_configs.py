"""Compile configs that load on every backend: optimizers named by their public class, and no
Keras loss or metric (a DDPM computes its own loss).

`DDPM` writes and reads its compile config through `public_optimizers`
(`file_methods.FileMethods.get_compile_config` and `compile_from_config`).
"""

import warnings

import keras

# Where Keras keeps a backend's own optimizer classes: on PyTorch, `keras.optimizers.Adam(...)`
# is `keras.src.backend.torch.optimizers.torch_adam.Adam` (Keras 3.15), and is saved so.
_BACKEND_OPTIMIZERS = ("keras.src.backend.", ".optimizers")


def public_optimizers(config):
    """A serialized Keras config with every backend's own optimizer class named as its public one.

    Keras' PyTorch backend makes `keras.optimizers.Adam` (and SGD, AdamW, RMSprop, ...) an
    instance of its own subclass, and `model.save` names that subclass's module. Another
    backend would import the PyTorch backend to load it (failing without PyTorch, and crashing
    the process where TensorFlow and a CUDA build of PyTorch are installed together: Triton's
    libraries load after TensorFlow's), and then train with PyTorch's update on its own tensors
    ("expected Tensor as element 0 in argument 0"). The public class of the same name
    (`keras.optimizers.Adam`) takes the same config and state on every backend.

    Args:
        config: a dict or list from `keras.saving.serialize_keras_object`, e.g. a compile
            config (nested optimizers, as a `LossScaleOptimizer`'s, included).

    Returns:
        A copy of `config`, each such optimizer's `module` being `"keras.optimizers"`.
    """
    if isinstance(config, list):
        return [public_optimizers(value) for value in config]
    if not isinstance(config, dict):
        return config
    config = {key: public_optimizers(value) for key, value in config.items()}
    module, name = config.get("module"), config.get("class_name")
    prefix, part = _BACKEND_OPTIMIZERS
    if (
        isinstance(module, str) and module.startswith(prefix) and part in module
        and isinstance(name, str) and isinstance(getattr(keras.optimizers, name, None), type)
    ):
        config["module"] = "keras.optimizers"
    return config


# `compile` arguments a DDPM has no use for: it computes its own loss (`objectives`) and
# reports it with `skipped_steps`; there is no target to compare a prediction with.
LOSS_ARGUMENTS = ("loss", "loss_weights", "metrics", "weighted_metrics")


def _given(value):
    """Whether a loss argument holds something: not `None` and not an empty list or dict."""
    return value is not None and not (isinstance(value, (list, tuple, dict)) and not value)


def check_no_loss(arguments):
    """Refuses, in one line, a Keras loss or metric given to a DDPM's `compile`.

    Keras would pass the model's output for a batch of images to it: on JAX and PyTorch that
    failed in the model's `call`, on TensorFlow it was silently unused.

    Args:
        arguments: `compile`'s arguments by name (`backend.keras_arguments`).

    Returns:
        `arguments` without the empty ones (`metrics=[]`: Keras' JAX trainer would still
        trace the model's `call` for it).

    Raises:
        ValueError: naming the argument and the value received.
    """
    for name in LOSS_ARGUMENTS:
        value = arguments.get(name)
        if _given(value):
            raise ValueError(
                f"DDPM.compile takes no `{name}` (received {value!r}): the model trains on "
                "its own diffusion loss, chosen with DDPM(prediction_type=..., "
                "loss_weighting=...), and logs `loss` and `skipped_steps`. Pass the optimizer "
                "only."
            )
    return {key: value for key, value in arguments.items() if key not in LOSS_ARGUMENTS}


def check_compiled(model, method):
    """One line for `fit` or `evaluate` before `compile` (Keras raised an AttributeError from
    PyTorch's `evaluate` and JAX's `fit`)."""
    if not getattr(model, "compiled", False):
        raise ValueError(
            f"Call model.compile(optimizer=...) before model.{method}(): the model has no "
            "optimizer yet (a model loaded with compile=False has none either)."
        )


def record_trainables(model):
    """Notes which weights `compile` built the optimizer for (`check_trainables` reads it)."""
    model.__dict__["_compiled_trainables"] = {id(w) for w in model.network.trainable_weights}


def check_trainables(model):
    """One line when `fit` would train weights the optimizer was not built for (LoRA enabled
    or layers unfrozen after `compile`; Keras' optimizer fails on them deep inside the step)."""
    compiled = model.__dict__.get("_compiled_trainables")
    if compiled is None:
        return
    new = [w.path for w in model.network.trainable_weights if id(w) not in compiled]
    if new:
        raise ValueError(
            f"The network has {len(new)} trainable weights that it did not have at compile "
            f"time ({new[0]}, …): LoRA was enabled or layers were unfrozen. Call "
            "model.compile(optimizer=...) again before model.fit()."
        )


def without_loss(config):
    """A saved compile config with its Keras loss and metrics left out (a file written while
    `compile` still let them pass unused), with a warning naming them."""
    given = [name for name in LOSS_ARGUMENTS if _given(config.get(name))]
    if given:
        warnings.warn(
            f"The saved compile config names {', '.join(given)}, which a DDPM does not use "
            "(it trains on its own diffusion loss); they are left out.",
            stacklevel=3,
        )
    return {key: value for key, value in config.items() if key not in LOSS_ARGUMENTS}
