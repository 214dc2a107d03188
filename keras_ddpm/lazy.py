"""Names of a package that load from its submodules on first use.

`keras_ddpm.data` and `keras_ddpm.export` hold TensorFlow code, and `keras_ddpm.metrics` some
(the 2015 Inception graph, the bound); the package imports on every backend, and the command
line reads their light parts before Keras loads, so those names load when first asked for.
"""

import importlib
import sys


def lazy_names(package, table, requires=None, then=None):
    """`(__getattr__, __dir__)` for the package `package`, to assign in its `__init__`.

    Args:
        package: the package's full name, e.g. `"keras_ddpm.export"`.
        table: dict, each lazy name -> the submodule (of `package`) that defines it. A
            submodule's own name loads that submodule.
        requires: the import name of a package these names need on every backend (a first
            use without it is one `ValueError`, `backend.require_installed`), a dict of
            submodule -> such a package for the submodules that need one, or `None`.
        then: what to do once that package is installed (`require_installed`), or `None`.

    Example:

    ```python
    __getattr__, __dir__ = lazy_names(__name__, {"export_saved_model": "saved_model"})
    ```
    """

    def __getattr__(name):
        if name in table or name in table.values():
            submodule = table.get(name, name)
            needed = requires.get(submodule) if isinstance(requires, dict) else requires
            if needed is not None:
                from keras_ddpm import backend  # on first use: imports Keras

                backend.require_installed(needed, f"{package}.{name}", then)
            module = importlib.import_module(f"{package}.{submodule}")
            return module if submodule == name else getattr(module, name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(table))

    return __getattr__, __dir__
