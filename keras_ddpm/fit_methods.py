"""`DDPM`'s Keras entry points for training: compile, fit, evaluate and `enable_lora`.

A mixin of `keras_ddpm.DDPM`, kept apart from its training step (`model.py`). Each method
checks what Keras would take silently or fail on deep inside (a Keras loss, labels or weights
that do not fit, a call before `compile`) in one line, then hands Keras its arguments with
what keeps a run reproducible: the (seed, epoch) order of arrays and PyDatasets
(`fit_order`), a keras_ddpm loader's starting epoch, and the divergence guard. It reads the
model's `network`, `ema_network`, `image_shape`, `num_classes` and `max_skipped_steps`.
"""

from keras_ddpm import backend
from keras_ddpm import compile_configs
from keras_ddpm import divergence
from keras_ddpm import fit_order
from keras_ddpm import inputs
from keras_ddpm import lora
from keras_ddpm import quantization
from keras_ddpm import sample_weights
from keras_ddpm.backend import hardware
from keras_ddpm.data import loader_common
from keras_ddpm.runs import backup


class FitMethods:
    """`compile`, `fit`, `evaluate` and `enable_lora` of `DDPM` (see the module docstring);
    put before `keras.Model` among the bases."""

    def compile(self, *args, **kwargs):
        arguments = backend.keras_arguments("compile", self, *args, **kwargs)
        arguments = compile_configs.check_no_loss(arguments)
        hardware.warn_if_slow_bfloat16(self.network.dtype_policy.compute_dtype)
        self.follow_network_changes()  # LoRA enabled layer by layer (`layer.enable_lora`)
        super().compile(**arguments)
        # Slots made here, not in the first traced step, spare tf.function a second trace.
        if self.optimizer is not None and not self.optimizer.built:
            self.optimizer.build(self.network.trainable_weights)
        compile_configs.record_trainables(self)
        self._reverse_processes = {}

    def fit(self, x=None, y=None, *args, **kwargs):
        compile_configs.check_compiled(self, "fit")
        compile_configs.check_trainables(self)
        backup.SkipTrainedBatches.remove(self)  # left by a restored fit that was interrupted
        arguments = inputs.fit_arguments(self, x, y, *args, **kwargs)
        inputs.check_fit_arguments(x, arguments.get("batch_size"))
        inputs.check_training_data(x, self.image_shape)
        if self.num_classes is not None:
            inputs.check_training_labels(x, y, self.num_classes)
        else:
            inputs.check_no_labels(x, y)
        added = []
        if self.max_skipped_steps is not None:
            added.append(divergence.DivergenceGuard(self.max_skipped_steps))
        ordered = fit_order.epoch_ordered(arguments)  # takes weights without labels along
        sample_weights.check_none_dropped(arguments, self.num_classes)
        if ordered is not None:
            # Keras would shuffle with the process's RNG: a resumed run would see another order.
            x = ordered
            added.append(fit_order.OrderSeed(ordered))
        counter = getattr(x, loader_common.EPOCH_COUNTER, None)
        if inputs.brings_its_own_order(x) or counter is not None:
            # A keras_ddpm loader orders its passes by epoch: Keras' shuffle would be unseeded.
            arguments.setdefault("shuffle", False)
        if counter is not None:
            # A keras_ddpm loader's order depends on the epoch: start it at the right one.
            added.append(loader_common.StartEpoch(counter))
        if added:
            arguments["callbacks"] = inputs.with_callbacks(arguments.get("callbacks"), added)
        return _batch_errors_in_one_line(super().fit, arguments)

    def evaluate(self, *args, **kwargs):
        compile_configs.check_compiled(self, "evaluate")
        arguments = backend.keras_arguments("evaluate", self, *args, **kwargs)
        if self.num_classes is None:
            fit_order.carry_weights_alone(arguments)
        sample_weights.check_none_dropped(arguments, self.num_classes)
        return _batch_errors_in_one_line(super().evaluate, arguments)

    quantize = quantization.refuse  # Keras has no quantized convolution (one clear error)

    def enable_lora(self, rank, lora_alpha=None, target_names=None):
        """Fine-tunes a low-rank update of the network's kernels instead of the kernels.

        Each chosen `Dense`, `Conv2D` or `Embedding` layer computes with W + (α/r)·A·B, A and
        B of rank r, B starting at zero, so images are unchanged until it trains. As in
        keras-hub, every other layer is frozen: only A, B and the adapted layers' biases
        (earlier ones' too) train. The EMA copy takes the same updates. Call `compile`
        afterwards: the trainable weights have changed.

        Args:
            rank: int, the rank r of each update.
            lora_alpha: positive number α; updates are scaled by α/r. Defaults to `None`
                (α = r).
            target_names: layer names or paths to adapt. Defaults to `None`: every
                `Dense`, `Conv2D` and `Embedding` layer.

        Returns:
            The sorted paths of the layers adapted.

        Example:

        ```python
        model = keras_ddpm.DDPM.from_pretrained("google/ddpm-cifar10-32")
        model.enable_lora(8)
        model.compile(optimizer=keras.optimizers.AdamW(1e-4))
        model.fit(my_images, epochs=10)
        ```

        References:
            - [Hu et al., 2021. LoRA: Low-Rank Adaptation of Large Language Models](
                https://arxiv.org/abs/2106.09685)
        """
        paths = lora.enable(self.network, rank, lora_alpha=lora_alpha, target_names=target_names)
        self.follow_network_changes()
        return paths

    def follow_network_changes(self):
        """Gives the EMA copy the LoRA updates enabled on the network since it was made."""
        if self.ema_network is not None:
            lora.mirror(self.network, self.ema_network)


def _batch_errors_in_one_line(call, arguments):
    """`call(**arguments)`, a batch's failed data check in a step raised as one line."""
    try:
        return call(**arguments)
    except backend.room().STEP_CHECK_ERRORS as error:
        one_line = inputs.batch_error(error)
        if one_line is None:
            raise
        raise one_line from None
