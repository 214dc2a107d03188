"""The sampler registry: one record per sampler, read by everything that offers a choice.

A record holds a sampler's name, its default number of steps and timestep
spacing, the options it accepts (with their checks) and the function that
runs it. `DDPM.generate`, `DDPM.export` (the SavedModel's `tf.switch_case`),
the command line's `--sampler` choices and help, and `SampleGrid` all ask the
registry, so adding a sampler is one new module and one `register_sampler`
call.

This module imports no TensorFlow: the command line reads the names and
checks the options before it loads TensorFlow. A record's `run` may therefore
be a `"module:function"` string, imported on first use.

Example:

>>> def my_sampler(denoise_fn, x, schedule, *, seed, steps, timestep_spacing,
...                prediction_type, clip, variance, start, stop):
...     ...  # a tf.while_loop over timestep_sequence(schedule, steps, ...)
>>> register_sampler(Sampler("mine", my_sampler, default_steps=25))
>>> model.generate(16, sampler="mine")
"""

import dataclasses
import importlib
from typing import Any
from typing import Optional

from keras_ddpm import checks
from keras_ddpm.samplers.options import IPNDM_ORDERS
from keras_ddpm.samplers.options import SamplerOption
from keras_ddpm.samplers.options import check_order
from keras_ddpm.samplers.options import check_spacing
from keras_ddpm.samplers.options import check_steps

def _load(function):
    """A function, or the one a `"module:function"` string names (imported now)."""
    if isinstance(function, str):
        module, name = function.split(":")
        return getattr(importlib.import_module(module), name)
    return function


@dataclasses.dataclass(frozen=True)
class Sampler:
    """One sampler's record.

    Args:
        name: the name passed as `sampler=`.
        run: the function, or a `"module:function"` string. It is called as
            `run(denoise_fn, x, schedule, *, seed, steps, timestep_spacing,
            prediction_type, clip, variance, start, stop, **options)` inside a
            compiled function and returns the state after step `stop − 1`
            (x_0 for a full run): `denoise_fn(x_t, t)` is the only way it
            reaches the network, `seed` int32 keys `[B, 2]` (one per image, `keras_ddpm.rng`),
            `steps`, `start` and `stop` int32 scalars, runtime options float32 tensors.
        default_steps: steps when none are given (capped at T), or `None` for
            T (the full chain). Defaults to `None`.
        default_spacing: the timestep spacing when none is given. Defaults to
            `"trailing"`.
        options: the `SamplerOption`s it accepts. Defaults to `()`.
        resumable: whether a run can be split into step ranges
            (`start`/`stop`), which lets `generate` advance a progress bar;
            `False` for multistep solvers whose history lives in the loop.
            Defaults to `True`.
        description: one line for help texts.
        inverse: for a deterministic sampler, the function (or
            `"module:function"`) that runs it backwards, images to x_T, for
            `encode`: called as `inverse(denoise_fn, x, schedule, *, steps,
            timestep_spacing, prediction_type, start, stop)` with the options
            at their neutral values. `None` for a sampler that cannot be
            inverted (a stochastic one). Defaults to `None`.
        step: for a sampler whose update needs only the current state, the
            function (or `"module:function"`) of one step, called as
            `step(schedule, x, t, prev_t, prediction, noise, *,
            prediction_type, clip, variance, **options)`; `inpaint` needs it
            to replace the kept pixels and to resample between steps. `None`
            for a multistep solver, whose history a jump back would break.
            Defaults to `None`.
    """

    name: str
    run: Any
    default_steps: Optional[int] = None
    default_spacing: str = "trailing"
    options: tuple = ()
    resumable: bool = True
    description: str = ""
    inverse: Any = None
    step: Any = None

    def function(self):
        """The sampler function (a `"module:function"` string is imported now)."""
        return _load(self.run)

    def inverse_function(self):
        """The inverse function (`encode`), or `None` when the sampler has none."""
        return None if self.inverse is None else _load(self.inverse)

    def step_function(self):
        """The single-step function (`inpaint`), or `None` for a multistep solver."""
        return None if self.step is None else _load(self.step)

    def steps_for(self, timesteps):
        """The default number of steps on a schedule of `timesteps` steps."""
        return timesteps if self.default_steps is None else min(self.default_steps, timesteps)

    def inpaint_steps_for(self, timesteps):
        """`inpaint`'s default steps: `steps_for`, at most RePaint's `INPAINT_STEPS`."""
        return min(self.steps_for(timesteps), INPAINT_STEPS)

    def option(self, name):
        """The `SamplerOption` called `name`, or `None` if this sampler does not take it."""
        return next((option for option in self.options if option.name == name), None)

    @property
    def runtime_options(self):
        return tuple(option for option in self.options if option.runtime)

    @property
    def static_options(self):
        return tuple(option for option in self.options if not option.runtime)


_ETA = SamplerOption(
    "eta", 0.0, runtime=True, bounds=(0, 1), neutral=0.0,
    help="DDIM's eta in [0, 1]: 0 deterministic, 1 ancestral-like",
)
_ORDER = SamplerOption("order", 2, check_order, help="DPM-Solver++ order: 1, 2 or 3")
# Order 3 by default: on the Gaussian oracle at 5–15 steps it was the most even (order 4's
# error jumped between 0.05 and 0.27 across data widths; benchmarks/benchmark_samplers.py).
_IPNDM_ORDER = SamplerOption(
    "order", 3, lambda order: check_order(order, IPNDM_ORDERS),
    help="iPNDM's highest Adams-Bashforth order: 1 to 4",
)

# Order 2, as diffusers: order 3 swung on the Gaussian oracle (0.18 / 0.18 at 5 / 10 "logsnr"
# steps, 0.019 / 0.76 "karras") and was behind on the digits (KID x1e3 65 / 64 against 58 / 41;
# README, "Few steps").
_UNIPC_ORDER = SamplerOption(
    "order", 2, check_order, help="UniPC's predictor order: 1, 2 or 3 (the corrector's is one higher)",
)


def check_eta(eta):
    """Raises unless a Python `eta` is a number in [0, 1] (tensors pass)."""
    return _ETA.validate(eta)


BUILT_IN = (
    # Justified in each sampler's docstring (measurements from
    # benchmarks/benchmark_samplers.py with the exact Gaussian oracle).
    Sampler(
        "ddpm", "keras_ddpm.samplers.ancestral:run", default_steps=None,
        description="ancestral sampling (Ho et al. 2020), respaced below T steps",
        step="keras_ddpm.samplers.ancestral:step",
    ),
    Sampler(
        "ddim", "keras_ddpm.samplers.ddim:run", default_steps=50, options=(_ETA,),
        description="DDIM (Song et al. 2021), deterministic at eta=0",
        inverse="keras_ddpm.samplers.inversion:run", step="keras_ddpm.samplers.ddim:step",
    ),
    Sampler(
        "dpm_solver", "keras_ddpm.samplers.dpm_solver:run", default_steps=20,
        default_spacing="logsnr", options=(_ORDER,), resumable=False,
        description="DPM-Solver++ multistep (Lu et al. 2022)",
    ),
    Sampler(
        # "trailing": on the digits (benchmarks/benchmark_few_steps.py) the best fixed spacing
        # at 5-10 steps (KID x1e3 70 / 48, "karras" 259 / 58), though "karras" is better on
        # the Gaussian oracle (README, "Few steps").
        "ipndm", "keras_ddpm.samplers.ipndm:run", default_steps=10,
        default_spacing="trailing", options=(_IPNDM_ORDER,), resumable=False,
        description="iPNDM, Adams-Bashforth in sigma (Zhang & Chen 2023)",
    ),
    Sampler(
        "unipc", "keras_ddpm.samplers.unipc:run", default_steps=10,
        default_spacing="logsnr", options=(_UNIPC_ORDER,), resumable=False,
        description="UniPC, DPM-Solver++ with the UniC corrector (Zhao et al. 2023)",
    ),
)
# The built-in samplers' names; `sampler_names()` also lists registered ones.
SAMPLERS = tuple(record.name for record in BUILT_IN)
# `generate`'s, `inpaint`'s, the SavedModel's and the command line's sampler when none is named.
DEFAULT_SAMPLER = "ddpm"
# `encode`'s and `interpolate`'s: the deterministic sampler with an inverse.
INVERSION_SAMPLER = "ddim"
# The training grids' (`SampleGrid`, `keras-ddpm train --sampler`): few steps, deterministic.
GRID_SAMPLER = "dpm_solver"
# RePaint (Lugmayr et al. 2022): `inpaint`'s cap on steps, passes over each block, block length.
INPAINT_STEPS, RESAMPLE_STEPS, JUMP_LENGTH = 250, 10, 10
_REGISTRY = {record.name: record for record in BUILT_IN}


def register_sampler(record, overwrite=False):
    """Adds a `Sampler` record; `generate`, `export`, the CLI and `SampleGrid` then offer it.

    Args:
        record: the `Sampler`.
        overwrite: replace a record of the same name. Defaults to `False`.

    Returns:
        `record`.
    """
    if not isinstance(record, Sampler):
        raise TypeError(
            f"`record` must be a keras_ddpm.samplers.Sampler. Received: {record!r}."
        )
    if record.name in _REGISTRY and not overwrite:
        raise ValueError(
            f"A sampler named {record.name!r} is registered already; pass overwrite=True to "
            "replace it."
        )
    check_spacing(record.default_spacing)
    _REGISTRY[record.name] = record
    return record


def unregister_sampler(name):
    """Removes a registered sampler (the built-in ones stay)."""
    if name in SAMPLERS:
        raise ValueError(f"The built-in sampler {name!r} cannot be removed.")
    _REGISTRY.pop(name, None)


def sampler_names():
    """The names of every registered sampler, built-in ones first."""
    return tuple(_REGISTRY)


def get_sampler(name):
    """The `Sampler` record called `name`; a `ValueError` lists the names otherwise."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"Unknown sampler={name!r}. Expected one of {list(_REGISTRY)}.")
    return _REGISTRY[name]


def all_options(runtime=None):
    """Every `SamplerOption` of the registered samplers, one per name, in registration order.

    Args:
        runtime: `True` for the runtime options only, `False` for the static
            ones, `None` for all. Defaults to `None`.
    """
    found = {}
    for record in _REGISTRY.values():
        for option in record.options:
            if runtime is None or option.runtime == runtime:
                found.setdefault(option.name, option)
    return tuple(found.values())


def takers(name):
    """The names of the registered samplers that accept the option `name`."""
    return [record.name for record in _REGISTRY.values() if record.option(name)]


def invertible_samplers():
    """The names of the registered samplers that `encode` can run backwards."""
    return [record.name for record in _REGISTRY.values() if record.inverse is not None]


def single_step_samplers():
    """The names of the registered samplers that `inpaint` can run (they have a `step`)."""
    return [record.name for record in _REGISTRY.values() if record.step is not None]


def resolve_inverse(sampler, timesteps, steps=None, timestep_spacing=None, **options):
    """`resolve` for `encode`: the sampler must have an inverse and its options be neutral.

    Returns:
        `(record, steps, timestep_spacing)`.
    """
    record, steps, spacing, resolved = resolve(sampler, timesteps, steps, timestep_spacing, **options)
    if record.inverse is None:
        raise ValueError(
            f"`encode` needs a deterministic sampler it can run backwards, one of "
            f"{invertible_samplers()}; received sampler={sampler!r}, which has no inverse."
        )
    for option in record.options:
        value = resolved[option.name]
        if not checks.is_tensor(value) and value != option.neutral:
            raise ValueError(
                f"`encode` inverts the deterministic {sampler!r} ({option.name}="
                f"{option.neutral!r}); received {option.name}={value!r}."
            )
    return record, steps, spacing


def resolve(sampler, timesteps, steps=None, timestep_spacing=None, **options):
    """Checks a sampler call and fills in its defaults: the one place that does.

    Args:
        sampler: a registered sampler's name.
        timesteps: T, the schedule's number of timesteps.
        steps: number of steps (= network evaluations) in [1, T], or `None`
            for the sampler's default.
        timestep_spacing: a spacing name, or `None` for the sampler's default.
        **options: the sampler options given (`eta=`, `order=`, …); `None`
            means "not given". An option the sampler does not take must be
            `None` or its neutral value.

    Returns:
        `(record, steps, timestep_spacing, options)`, with `options` holding
        every option of this sampler, checked.
    """
    record = get_sampler(sampler)
    steps = record.steps_for(timesteps) if steps is None else check_steps(steps, timesteps)
    spacing = check_spacing(timestep_spacing or record.default_spacing)
    known = {option.name: option for option in all_options()}
    resolved = {}
    for name, value in options.items():
        option = record.option(name)
        if option is None:
            if name not in known:
                raise TypeError(f"Unknown sampler option {name}={value!r}. Known: {list(known)}.")
            if value is not None and not checks.is_tensor(value) and value != known[name].neutral:
                names = takers(name)
                where = f"sampler={names[0]!r}" if len(names) == 1 else f"the samplers {names}"
                raise ValueError(
                    f"`{name}` only applies to {where}. Received: {name}={value!r} with "
                    f"sampler={sampler!r}."
                )
            continue
        resolved[name] = option.validate(option.default if value is None else value)
    for option in record.options:
        resolved.setdefault(option.name, option.validate(option.default))
    return record, steps, spacing, resolved


def resolve_everywhere(sampler, timesteps, timestep_spacing=None, **options):
    """`resolve` for options chosen once for every sampler, as an export chooses them.

    Args:
        sampler: the sampler run when none is named (the SavedModel's `generate`).
        timesteps: T, the schedule's number of timesteps.
        timestep_spacing: a spacing name, or `None` for each sampler's default.
        **options: registered options (`None`: not given). A runtime one (DDIM's
            η) is `sampler`'s, which must take it unless it is neutral; a static
            one (DPM-Solver++'s order) applies to every sampler that takes it.

    Returns:
        `{name: options}`: every registered sampler's options, all checked.
    """
    known = {option.name: option for option in all_options()}
    for name, value in options.items():
        if name not in known:
            raise TypeError(f"Unknown sampler option {name}={value!r}. Known: {list(known)}.")
    runtime = {name: value for name, value in options.items() if known[name].runtime}
    static = {
        name: known[name].validate(value)
        for name, value in options.items()
        if not known[name].runtime and value is not None
    }
    resolve(sampler, timesteps, timestep_spacing=timestep_spacing, **runtime)
    resolved = {}
    for record in _REGISTRY.values():
        given = {name: value for name, value in static.items() if record.option(name)}
        if record.name == sampler:
            given.update(runtime)
        resolved[record.name] = resolve(record.name, timesteps, **given)[3]
    return resolved
