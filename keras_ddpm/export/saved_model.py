"""`export_saved_model`: writes the endpoints of `endpoints.ENDPOINTS` as a SavedModel."""

import os
import shutil

import tensorflow as tf

from keras_ddpm import backend
from keras_ddpm import checks
from keras_ddpm import generation
from keras_ddpm.backend import graph_lifetime
from keras_ddpm import samplers
from keras_ddpm.export import ON_TENSORFLOW
from keras_ddpm.export import endpoints
from keras_ddpm.export import inputs
from keras_ddpm.runs import atomic
from keras_ddpm.samplers.spacing import optimized_indices


def export_saved_model(
    model,
    filepath,
    *,
    sampler=samplers.DEFAULT_SAMPLER,
    timestep_spacing=None,
    clip=True,
    use_ema=True,
    jit_compile=False,
    image_shape=None,
    resample_steps=samplers.RESAMPLE_STEPS,
    jump_length=samplers.JUMP_LENGTH,
    verbose=True,
    **sampler_options,
):
    """Writes a `DDPM` as a TensorFlow SavedModel with generate, edit, inpaint and denoise endpoints.

    The SavedModel loads with `tf.saved_model.load(filepath)` in a process that
    has neither Keras nor keras_ddpm imported, and serves with TensorFlow
    Serving (`serving_default` is `generate`). See the module docstring for
    the endpoints and why the sampler has two of them.

    Args:
        model: the `keras_ddpm.DDPM` to export.
        filepath: str or path-like, the SavedModel directory: new, empty, or an
            earlier export (replaced whole; a non-empty folder holding no
            SavedModel is refused). It is written beside the target and renamed
            into place, so a kill never leaves half a SavedModel.
        sampler: the sampler of the `generate`, `edit` and `inpaint`
            endpoints, a name of `keras_ddpm.samplers.sampler_names()`.
            Defaults to `keras_ddpm.samplers.DEFAULT_SAMPLER`, as
            `DDPM.generate`.
        timestep_spacing: spacing of every sampler's steps (see
            `samplers.timestep_sequence`). Defaults to `None`: each sampler's
            default, as in `DDPM.generate`. `"optimized"` exports the steps of
            `model.optimize_steps()`: every endpoint then runs those, and its
            `steps` input must be their number (or 0).
        clip: clip x̂_0 at every step (the output is always clipped to
            [−1, 1] before becoming uint8). Defaults to `True`.
        use_ema: export the EMA weights when the model keeps them. Defaults
            to `True`.
        jit_compile: compile each reverse loop with XLA (the loading process
            then needs XLA, which standard TensorFlow builds include).
            Defaults to `False`.
        image_shape: `(H, W, C)` for a network that does not declare its input
            shape (a subclassed model that was never built); it is built by
            one call on zeros. Defaults to `None` (the network's own shape).
        resample_steps: RePaint passes of the `inpaint` endpoint (see
            `DDPM.inpaint`). Defaults to `samplers.RESAMPLE_STEPS`.
        jump_length: steps per RePaint block of the `inpaint` endpoint.
            Defaults to `samplers.JUMP_LENGTH`.
        verbose: print the path and the endpoints. Defaults to `True`.
        **sampler_options: any option of a registered sampler
            (`samplers.resolve_everywhere`). A runtime option, such as DDIM's
            `eta=`, is the value the `generate` endpoint uses (the sampler must
            take it); `generate_with_sampler` takes it as an input. An option
            fixed when a loop is traced, such as DPM-Solver++'s `order=`,
            applies to every sampler that takes it. Each defaults to its
            record's value.

    Returns:
        `filepath` as a string.

    Example:

    >>> keras_ddpm.export.export_saved_model(model, "digits_savedmodel", sampler="ddim")
    >>> loaded = tf.saved_model.load("digits_savedmodel")   # no keras_ddpm needed
    >>> images = loaded.generate(num_images=16, steps=50, seed=0)   # uint8 (16, 8, 8, 1)
    >>> images = loaded.generate_with_sampler(
    ...     num_images=16, steps=20, seed=0, sampler="dpm_solver", eta=0.0)

    References:
        - TensorFlow, "Using the SavedModel format",
          https://www.tensorflow.org/guide/saved_model
    """
    # The graphs are traced with TensorFlow's ops: the model's layers must be TensorFlow's too.
    backend.require_tensorflow("export_saved_model (a TensorFlow SavedModel)", ON_TENSORFLOW)
    if not callable(getattr(model, "reverse_process", None)):
        raise TypeError(
            f"`model` must be a keras_ddpm.DDPM. Received: model of type {type(model).__name__}."
        )
    # Every sampler's options at export time, checked as DDPM.generate checks them.
    options = samplers.resolve_everywhere(
        sampler, model.schedule.timesteps, timestep_spacing, **sampler_options
    )
    if timestep_spacing == samplers.OPTIMIZED:
        optimized_indices(model.schedule)  # a ValueError now for a model that has none
    resample_steps = checks.positive_int("resample_steps", resample_steps)
    jump_length = checks.positive_int("jump_length", jump_length)
    shape = inputs.exported_image_shape(model, image_shape)
    filepath = os.fspath(filepath)
    if os.path.exists(filepath) and not os.path.isdir(filepath):
        raise ValueError(
            f"`filepath` must name a directory for the SavedModel. Received: {filepath!r}, "
            "an existing file."
        )
    if (
        os.path.isdir(filepath)
        and os.listdir(filepath)
        and not os.path.exists(os.path.join(filepath, "saved_model.pb"))
    ):
        raise ValueError(
            f"`filepath` {filepath!r} is a non-empty folder that holds no SavedModel; export "
            "into a new or empty folder (or an earlier export, which is replaced)."
        )

    # A process of its own, built as `generate`'s: the loops traced for the file go with the
    # module instead of staying cached on the model.
    process = model.reverse_process(use_ema)
    process = generation.ReverseProcess(
        process.network, process.schedule, process.prediction_type, process.variance,
        process.num_classes, process.image_shape or shape,
    )
    exported = endpoints.Exported(
        process, shape, getattr(model, "num_classes", None), sampler, options, timestep_spacing,
        bool(clip), bool(jit_compile), resample_steps, jump_length,
    )
    module, signatures = build_module(exported)
    # Every graph is traced once, inside `save` (a trace made before it would be redone).
    # Custom-gradient tracing (an inference export needs none) would double the export time.
    save_options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    # Written beside the target and renamed into place: a kill never leaves half a SavedModel.
    target, replaced = filepath.rstrip(os.sep) or filepath, None
    # The graphs traced for the file are freed with `module` (see `graph_lifetime`).
    with atomic.atomic_write(target) as tmp, graph_lifetime.release_traced_graphs():
        tf.saved_model.save(module, tmp, signatures=signatures, options=save_options)
        if os.path.isdir(target):  # an earlier export, or an empty folder: set aside
            replaced = atomic.partial_path(target + "-replaced")
            os.rename(target, replaced)
    if replaced is not None:
        shutil.rmtree(replaced, ignore_errors=True)
    if verbose:
        print(f"Saved SavedModel at {filepath!r} with endpoints:")
        for endpoint in endpoints.ENDPOINTS:
            names = ", ".join(spec.name for spec in signatures[endpoint.name].input_signature)
            print(f"  {endpoint.name}({names})")
        print(f"  serving_default = {endpoints.SERVING_DEFAULT}")
    return filepath


def build_module(exported):
    """The `tf.Module` of `endpoints.ENDPOINTS` and its signatures, for `tf.saved_model.save`.

    Each endpoint is a function of the module and a signature returning its named output;
    `serving_default` is `endpoints.SERVING_DEFAULT`.
    """
    module = tf.Module(name="ddpm")
    functions, signatures = {}, {}
    for endpoint in endpoints.ENDPOINTS:
        specs = endpoint.inputs(exported)
        body = endpoint.body(exported, functions)
        if "images" in specs:  # uint8 in the signature; any of inputs.IMAGE_DTYPES on the module
            function, module_function = inputs.image_functions(body, specs, endpoint.name)
        else:
            function = module_function = inputs.named_function(body, specs, endpoint.name)
        functions[endpoint.name] = function
        setattr(module, endpoint.name, module_function)
        # Signatures return named outputs (what TF Serving and saved_model_cli show).
        signatures[endpoint.name] = inputs.named_function(
            lambda function=function, output=endpoint.output, **given: {output: function(**given)},
            specs, endpoint.name,
        )
    signatures["serving_default"] = signatures[endpoints.SERVING_DEFAULT]
    # The weights the graphs read, tracked so that the SavedModel stores them. The plain
    # tf.Variables under the Keras variables keep their names in the graph, which the
    # session-based loaders of TF Serving and saved_model_cli restore by.
    module.network_variables = [_tf_variable(w) for w in exported.process.network.weights]
    return module, signatures


def _tf_variable(weight):
    """The `tf.Variable` holding a Keras variable's value (the variable itself if it is one)."""
    value = getattr(weight, "value", weight)
    return value if isinstance(value, tf.Variable) else weight
