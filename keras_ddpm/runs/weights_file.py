"""`WeightsFileWriter`: `keras.Model.save_weights` for a model saved again and again.

To write `model.weights.h5`, Keras walks the whole object tree of the model (every attribute
of every layer, both networks of a `DDPM`, the optimizer, the metrics), and then asks each
object it found to write its variables. For the same model the walk finds the same objects
every time, and it is most of the cost of a save; a backup after every epoch of the default
`keras-ddpm train` run paid that walk in each epoch.

`WeightsFileWriter.write` saves with Keras' own code once and records, in order, each object
that wrote its variables and the group of the file it wrote them to; afterwards it asks the
same objects to write into the same groups (`save_own_variables`), which is what Keras does
after its walk. The file is the one `save_weights` writes, so `load_weights` (and
`RunBackup`'s restore) read it unchanged (figures: the README's "Measurements behind the design"). The recording is used only for the same model while
its variables and its optimizer's are the same objects as when it was made; otherwise it is
`save_weights`, as it is (with a warning) wherever Keras' internals differ from what
`keras_ddpm.backend.internals.saving_lib` checks.
"""

import keras

from keras_ddpm.backend import internals


def _variable_ids(model):
    """The identities of every variable of `model` and of its optimizer, in order."""
    variables = list(model.variables)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and hasattr(optimizer, "variables"):
        variables += list(optimizer.variables)
    return tuple(id(variable) for variable in variables)


class WeightsFileWriter:
    """Writes `model.weights.h5` files of one model, walking its objects once.

    Example:

    ```python
    writer = WeightsFileWriter()
    writer.write(model, "a.weights.h5")   # Keras' save_weights, recorded
    model.fit(dataset, epochs=1)
    writer.write(model, "b.weights.h5")   # the same file layout, today's values
    ```
    """

    def __init__(self):
        self._records = None  # [(object, group path, group metadata), ...]
        self._saving_lib = None  # Keras' saving module the records were made with
        self._model_id = None
        self._variable_ids = None

    def write(self, model, filepath):
        """Writes the weights of `model` to `filepath` (ending in `.weights.h5`)."""
        filepath = str(filepath)
        if not filepath.endswith(".weights.h5") or not model.built:
            keras.Model.save_weights(model, filepath)  # and its errors
            return
        variable_ids = _variable_ids(model)
        if (
            self._records is not None
            and self._model_id == id(model)
            and self._variable_ids == variable_ids
        ):
            internals.replay_weights_walk(self._saving_lib, self._records, filepath)
            return
        saving_lib = internals.saving_lib()
        if saving_lib is None:
            keras.Model.save_weights(model, filepath)
            return
        self._saving_lib = saving_lib
        self._records = internals.record_weights_walk(saving_lib, model, filepath)
        self._model_id = id(model)
        self._variable_ids = variable_ids
