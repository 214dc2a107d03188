"""Callbacks for watching a diffusion run: sample grids, and how to warm up.

`SampleGrid` is the one thing a diffusion run needs that Keras lacks: the loss
of a DDPM says little about sample quality, so the way to watch a run is to
look at samples drawn from the same noise after every few epochs.

Everything else comes from Keras:

- Checkpoints that resume: `RunBackup(directory)` (from `keras_ddpm.runs.backup`)
  is `keras.callbacks.BackupAndRestore` with backups that a kill cannot
  damage; both restore the network, the EMA weights, the optimizer and the
  training-noise RNG state of a `DDPM` (all of them are variables of the model).
- Loss curves: `keras.callbacks.TensorBoard(log_dir)`; `SampleGrid` can add
  its grids to the same TensorBoard run (`tensorboard_dir`).
- Learning-rate warm-up: Ho et al. (2020) warm the learning rate up linearly
  over 5,000 steps and then keep it constant. Keras' `CosineDecay` does
  exactly that with `alpha=1.0` (the "decay" then stays at the target):

  ```python
  learning_rate = keras.optimizers.schedules.CosineDecay(
      initial_learning_rate=0.0,
      decay_steps=1,
      alpha=1.0,  # constant after the warm-up
      warmup_target=2e-4,
      warmup_steps=5000,
  )
  model.compile(optimizer=keras.optimizers.Adam(learning_rate))
  ```

  With `alpha=0.0` and `decay_steps=N` the same class gives warm-up followed
  by a cosine decay over N steps.

References:
    - Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models",
      NeurIPS 2020 (appendix B: warm-up, EMA, sample grids).
"""

import inspect
import os

import keras
import numpy as np

from keras_ddpm import backend
from keras_ddpm import checks
from keras_ddpm import samplers
from keras_ddpm import utils
from keras_ddpm.runs.backup import RunBackup  # noqa: F401 - public here, beside SampleGrid

# The grids' sampler (the registry's `GRID_SAMPLER`): few steps, and deterministic.
DEFAULT_SAMPLER = samplers.GRID_SAMPLER


class SampleGrid(keras.callbacks.Callback):
    """Writes a grid of samples every few epochs, always from the same noise.

    After every `every_n_epochs`-th epoch the model's `generate` draws
    `num_images` images with the same `seed` (so the frames of a run show the
    same samples improving) using the EMA weights, and the grid is written to
    `directory/epoch_0001.png`, `epoch_0002.png`, … The numbers are the
    1-based epochs of Keras' progress bar, also when training resumes with
    `fit(..., initial_epoch=k)` or `BackupAndRestore`.

    For a class-conditional model (one with `num_classes`) image i shows class
    `i % num_classes` unless `labels` are passed in `**generate_kwargs`; with
    8 columns and 10 classes that makes diagonal stripes of equal digits.

    When training ends, the grid of the last completed epoch is written if it
    was not already, so that the end state of every run is on disk (for
    example `epoch_0007.png` after 7 epochs with `every_n_epochs=5`). The path
    of the newest grid is `last_path`.

    The grids are drawn with DPM-Solver++ (Lu et al. 2022) in its default 20
    steps, not with `generate`'s default ancestral sampler: 20 network
    evaluations instead of T = 1000, and a deterministic map from the noise to
    the image, so the frames of a run differ only by what training changed,
    and a grid costs a fiftieth of an ancestral one (figures: the README's
    "Measurements behind the design").
    `sampler="ddpm"` draws the paper's ancestral samples instead.

    A run that writes several grids calls the same compiled sampling loop each
    time, so `generate`'s `jit_compile="auto"` is resolved as for a loop run
    many times: with XLA for small networks on a CPU, although a single call
    of 20 or 50 steps would not earn back the compile time.

    Args:
        directory: str or path-like, the folder for the PNG files (created
            when missing).
        every_n_epochs: int, write a grid after epochs N, 2N, … Defaults to
            `1`.
        num_images: int, images per grid. Defaults to `64`.
        seed: int, the sampling seed, the same for every grid. Defaults to
            `0`.
        sampler: name of a registered sampler
            (`keras_ddpm.samplers.sampler_names()`), passed to
            `generate(sampler=...)`, or `None` to pass none (`generate`'s
            own default, `"ddpm"`). Defaults to `"dpm_solver"`.
        steps: optional number of sampling steps passed to
            `generate(steps=...)`, or `"optimized"` for the model's own steps
            (`DDPM.optimize_steps`, checked when training begins). Defaults to
            `None` (not passed: the sampler's default, 20 for `"dpm_solver"`).
        tensorboard_dir: optional str, a folder where each grid is also
            written as a TensorBoard image summary named `"samples"` at step
            = epoch (for example the `log_dir` of `keras.callbacks.TensorBoard`
            plus `"/samples"`). Defaults to `None`.
        **generate_kwargs: further arguments of `generate` (for example
            `batch_size`, `clip`, `guidance_scale` or, with samplers that take
            it, `eta`).

    Example:

    ```python
    grids = keras_ddpm.callbacks.SampleGrid("run/samples", every_n_epochs=5)
    model.fit(dataset, epochs=50, callbacks=[grids])
    ```

    References:
        - Lu, Zhou, Bao, Chen, Li & Zhu, "DPM-Solver++: Fast Solver for Guided
          Sampling of Diffusion Probabilistic Models", 2022
          (https://arxiv.org/abs/2211.01095).
    """

    def __init__(
        self,
        directory,
        every_n_epochs=1,
        num_images=64,
        seed=0,
        sampler=DEFAULT_SAMPLER,
        steps=None,
        tensorboard_dir=None,
        **generate_kwargs,
    ):
        super().__init__()
        self.directory = os.fspath(directory)
        self.every_n_epochs = checks.positive_int("every_n_epochs", every_n_epochs)
        self.num_images = checks.positive_int("num_images", num_images)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"`seed` must be an int. Received: seed={seed!r}.")
        self.seed = int(seed)
        if steps is not None and steps != samplers.OPTIMIZED:
            steps = checks.positive_int("steps", steps)
        if sampler is not None:
            samplers.get_sampler(sampler)  # A ValueError listing the samplers, before training.
        self.tensorboard_dir = None if tensorboard_dir is None else os.fspath(tensorboard_dir)
        if self.tensorboard_dir is not None:
            backend.require_installed("tensorflow", "SampleGrid(tensorboard_dir=...)")
        self.generate_kwargs = dict(generate_kwargs)
        if sampler is not None:
            self.generate_kwargs["sampler"] = sampler
        if steps is not None:
            self.generate_kwargs["steps"] = steps
        for name in ("num_images", "seed", "verbose"):
            if name in self.generate_kwargs:
                raise TypeError(
                    f"SampleGrid sets `{name}` itself; do not pass it in **generate_kwargs."
                )
        self.sampler = sampler
        self.steps = steps
        self.last_path = None
        self._last_epoch = None
        self._written_epoch = None
        self._grids = 0
        self._writer = None

    def check_model(self):
        """Checks the grids' arguments against the model set by `set_model`.

        `generate` must take them, and the sampler, its steps and options must
        fit the model's schedule (`samplers.resolve`): a wrong value is an error
        when training begins, not after the first epochs. `on_train_begin`
        calls it.
        """
        generate = getattr(self.model, "generate", None)
        if generate is None:
            raise TypeError(
                "SampleGrid needs a model with a `generate` method (a keras_ddpm.DDPM). "
                f"Received: {type(self.model).__name__}."
            )
        parameters = inspect.signature(generate).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        unknown = [k for k in self.generate_kwargs if k not in parameters and not takes_any]
        if unknown:
            hint = ""
            if "sampler" in unknown and self.sampler == DEFAULT_SAMPLER:
                hint = f" (SampleGrid passes sampler={DEFAULT_SAMPLER!r} unless sampler=None)"
            raise TypeError(
                f"{type(self.model).__name__}.generate does not accept {unknown}; "
                f"it takes {[p for p in parameters]}{hint}."
            )
        kwargs = self.generate_kwargs
        # The sampler the grids will use: the one passed, else the registry's default (for a
        # generate that takes samplers).
        takes_samplers = "sampler" in parameters or takes_any
        sampler = kwargs.get("sampler", samplers.DEFAULT_SAMPLER if takes_samplers else None)
        schedule = getattr(self.model, "schedule", None)
        if schedule is not None and isinstance(sampler, str):
            options = {o.name: kwargs[o.name] for o in samplers.all_options() if o.name in kwargs}
            # steps="optimized" (or that spacing) needs the model's optimized steps.
            steps, spacing = samplers.resolve_optimized(
                schedule, kwargs.get("steps"), kwargs.get("timestep_spacing")
            )
            samplers.resolve(sampler, schedule.timesteps, steps, spacing, **options)

    def on_train_begin(self, logs=None):
        self.check_model()
        self._last_epoch = None
        self._written_epoch = None
        # Grids after epochs N, 2N, ... and one at the end if the last epoch is not among them.
        self._grids = -(-(self.params or {}).get("epochs", 0) // self.every_n_epochs)

    def _repeated_jit(self, kwargs):
        """`generate`'s `jit_compile` for a run that writes several grids, or `None` to leave it.

        `"auto"` weighs a single call's network evaluations against XLA's
        compile time on a CPU (`hardware.xla_pays`); the grids of a run call
        the same compiled loop again and again, so `"auto"` is resolved here
        as for a loop run many times. A `jit_compile` passed in
        `**generate_kwargs` wins.
        """
        reverse_process = getattr(self.model, "reverse_process", None)
        if "jit_compile" in kwargs or reverse_process is None or self._grids < 2:
            return None
        batch_size = min(kwargs.get("batch_size") or self.num_images, self.num_images)
        return reverse_process(kwargs.get("use_ema", True)).auto_jit("auto", batch_size)

    def on_epoch_end(self, epoch, logs=None):
        number = epoch + 1  # Keras counts from 0, its progress bar from 1.
        self._last_epoch = number
        if number % self.every_n_epochs == 0:
            self.write_grid(number)

    def on_train_end(self, logs=None):
        if self._last_epoch is not None and self._written_epoch != self._last_epoch:
            self.write_grid(self._last_epoch)
        if self._writer is not None:
            self._writer.flush()

    def path_for(self, epoch):
        """The file of the grid after `epoch` (1-based): `directory/epoch_0001.png`, ..."""
        return os.path.join(self.directory, f"epoch_{epoch:04d}.png")

    def write_grid(self, epoch):
        """Generates the grid for `epoch` (1-based), writes it and returns its path."""
        kwargs = dict(self.generate_kwargs)
        num_classes = getattr(self.model, "num_classes", None)
        if num_classes and "labels" not in kwargs:
            kwargs["labels"] = np.arange(self.num_images) % num_classes
        jit_compile = self._repeated_jit(kwargs)
        if jit_compile is not None:
            kwargs["jit_compile"] = jit_compile
        images = self.model.generate(self.num_images, seed=self.seed, verbose=0, **kwargs)
        path = self.path_for(epoch)
        utils.save_image_grid(images, path)
        if self.tensorboard_dir is not None:
            tf = backend.import_tensorflow()  # TensorBoard's writer, on every backend

            if self._writer is None:
                self._writer = tf.summary.create_file_writer(self.tensorboard_dir)
            grid = utils.make_image_grid(images)
            with self._writer.as_default():
                tf.summary.image("samples", grid[np.newaxis], step=epoch)
            self._writer.flush()
        self.last_path = path
        self._written_epoch = epoch
        return path
