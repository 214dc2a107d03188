"""`DDPM`'s file methods: save, save_weights, export, from_pretrained, save_pretrained, and
the compile config a `.keras` file holds.

A mixin of `keras_ddpm.DDPM`, kept apart from the training code of `model.py` as
`generation_methods.py` keeps the sampling methods. `save` and `save_weights` write under a
temporary name and rename into place (`atomic`), and refuse a diverged model's weights
(`divergence`); `export` writes the SavedModel of `keras_ddpm.export`; `from_pretrained` and
`save_pretrained` read and write diffusers' format (`keras_ddpm.pretrained`). The compile
config names the optimizer's public class whichever backend wrote it
(`compile_configs.public_optimizers`). The methods read `network`, `ema_weights` and what
those modules read of the model.
"""

import keras

from keras_ddpm import backend
from keras_ddpm import compile_configs
from keras_ddpm import divergence
from keras_ddpm.runs import atomic


class FileMethods:
    """The file methods of `DDPM` (see the module docstring)."""

    def save(self, filepath, overwrite=True, zipped=None, allow_non_finite=False, **kwargs):
        """`keras.Model.save`, written so that a kill cannot truncate the file.

        A local `.keras` file is written under a temporary name in the same folder
        and renamed into place: after a crash at any instant, `filepath` holds
        either the previous model or the new one, complete. Other targets
        (`zipped=False`, remote paths, `overwrite=False` onto an existing file)
        are passed to Keras unchanged. A model whose weights or EMA weights hold
        a NaN or an infinity (a diverged run) is refused with a `ValueError`
        unless `allow_non_finite=True`, so that it never replaces a good file.
        """
        if not allow_non_finite:
            weight = divergence.first_non_finite_weight([*self.network.weights, *self.ema_weights])
            if weight is not None:
                raise ValueError(
                    f"Not saving {str(filepath)!r}: weight {weight.path} holds NaN or "
                    "infinite values (the run diverged). Pass allow_non_finite=True to save it "
                    "anyway."
                )
        path = atomic.replaceable_path(filepath, overwrite)
        if path is None or not path.endswith(".keras") or zipped is False:
            return super().save(filepath, overwrite=overwrite, zipped=zipped, **kwargs)
        with atomic.atomic_write(path) as tmp:
            super().save(tmp, overwrite=True, zipped=zipped, **kwargs)

    def get_compile_config(self):
        """Keras' compile config, its optimizer named by its public class (a file written on
        PyTorch then loads on every backend)."""
        return compile_configs.public_optimizers(super().get_compile_config())

    def compile_from_config(self, config):
        """Re-compiles a loaded model (and restores its optimizer) from its compile config,
        also a file of an earlier version written on PyTorch."""
        config = compile_configs.without_loss(compile_configs.public_optimizers(config))
        self.compile(**keras.saving.deserialize_keras_object(config))

    def save_weights(self, filepath, overwrite=True, max_shard_size=None):
        """`keras.Model.save_weights`, written under a temporary name and renamed into place
        (as `save`; used by `ModelCheckpoint(save_weights_only=True)` and the backups)."""
        path = atomic.replaceable_path(filepath, overwrite)
        if path is None or max_shard_size is not None:
            return super().save_weights(filepath, overwrite=overwrite, max_shard_size=max_shard_size)
        with atomic.atomic_write(path) as tmp:
            super().save_weights(tmp, overwrite=True)

    def export(self, filepath, format="tf_saved_model", verbose=True, **kwargs):
        """Writes a TensorFlow SavedModel with `generate` and `denoise` endpoints.

        Delegates to `keras_ddpm.export.export_saved_model`, which documents
        the endpoints and the keyword arguments. The SavedModel loads with
        `tf.saved_model.load` without Keras or keras_ddpm; `serving_default`
        is `generate`. `format` must be `"tf_saved_model"`. Returns `filepath`.

        Example:

        >>> model.export("digits_savedmodel", sampler="ddim")
        >>> loaded = tf.saved_model.load("digits_savedmodel")
        >>> images = loaded.generate(num_images=16, steps=50, seed=0)  # uint8
        """
        from keras_ddpm import export  # export imports nothing of model.py

        if format != "tf_saved_model":
            raise ValueError(
                "DDPM.export writes format='tf_saved_model' (a SavedModel with generate and "
                f"denoise endpoints). Received: format={format!r}."
            )
        backend.require_tensorflow("DDPM.export (a TensorFlow SavedModel)", export.ON_TENSORFLOW)
        return export.export_saved_model(self, filepath, verbose=verbose, **kwargs)

    @classmethod
    def from_pretrained(cls, source, /, allow_pickle=False, dtype=None, dropout=None, **kwargs):
        """A DDPM from a diffusers checkpoint, such as the DDPM authors' trained models.

        The `UNet2DModel` becomes a `keras_ddpm.UNet` with the same weights
        (`UNet.from_pretrained`), and the scheduler config a `NoiseSchedule` plus the
        variance and prediction type: `beta_schedule` `linear`, `scaled_linear`,
        `squaredcos_cap_v2` (`"cosine"`) or `sigmoid`, `variance_type` `fixed_small` or
        `fixed_large`, `prediction_type` `epsilon`, `v_prediction` or `sample`. Anything with
        no keras_ddpm equivalent is refused with one `ValueError`. The EMA copy starts equal
        to the loaded weights (the `google/ddpm-ema-*` checkpoints already hold EMA weights).
        The result trains, generates, saves and exports like any other `DDPM`.

        Args:
            source: a diffusers pipeline folder (`model_index.json`, `unet/`,
                `scheduler/scheduler_config.json`), a model folder (then the default
                schedule is used, with a warning), or a hub id such as
                `"google/ddpm-cifar10-32"` (`pip install keras-ddpm[hub]`). Positional only.
            allow_pickle: also read a pickled `.bin` when there is no `.safetensors`
                (unpickling can run arbitrary code; needs PyTorch). Defaults to `False`.
            dtype: the network's dtype policy. Defaults to `None` (the global policy).
            dropout: replaces the checkpoint's dropout rate. Defaults to `None`.
            **kwargs: other `DDPM` arguments (`ema_decay`, `seed`, `loss_weighting`, ...);
                `variance` and `prediction_type` override the scheduler's.

        Returns:
            A `DDPM`.

        Example:

        ```python
        model = keras_ddpm.DDPM.from_pretrained("google/ddpm-cifar10-32")
        images = model.generate(16, sampler="dpm_solver", steps=20, seed=0)
        model.save("ddpm_cifar10.keras")
        ```

        References:
            - Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
        """
        from keras_ddpm.pretrained import convert
        from keras_ddpm.unet import UNet

        return convert.load_ddpm(
            cls, UNet, source, allow_pickle=allow_pickle, dtype=dtype, dropout=dropout, **kwargs
        )

    def save_pretrained(self, folder, use_ema=True):
        """Writes a diffusers `DDPMPipeline` folder that `DDPMPipeline.from_pretrained` loads.

        The folder holds `model_index.json`, `unet/config.json` +
        `unet/diffusion_pytorch_model.safetensors` and `scheduler/scheduler_config.json`
        (a `DDPMScheduler` with this model's schedule, variance and prediction type).
        A model diffusers cannot represent (a class-conditional network, a network that is
        not a `keras_ddpm.UNet`, ...) raises a `ValueError` naming what is missing, before
        anything is written.

        Args:
            folder: a new or empty folder, or one holding a diffusers checkpoint (replaced).
            use_ema: write the EMA weights when the model keeps them (the ones `generate`
                uses). Defaults to `True`.

        Returns:
            `folder`.

        Example:

        ```python
        model.save_pretrained("digits_diffusers")
        # elsewhere: diffusers.DDPMPipeline.from_pretrained("digits_diffusers")
        ```
        """
        from keras_ddpm.pretrained import convert
        from keras_ddpm.unet import UNet

        return convert.save_pipeline(self, folder, UNet, use_ema=use_ema)
