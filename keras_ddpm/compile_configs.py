"""Compile configs that load on every backend: optimizers named by their public class.

`DDPM` writes and reads its compile config through `public_optimizers`
(`file_methods.FileMethods.get_compile_config` and `compile_from_config`).
"""

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
