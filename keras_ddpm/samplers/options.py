"""What a sampler is asked: the spacings, step counts and orders, and the option record.

The checks here are the one place each accepted value is written; the registry's records
(`keras_ddpm.samplers.registry`) name their options with `SamplerOption`. No TensorFlow: the
command line reads these before TensorFlow loads.
"""

import dataclasses
from typing import Any
from typing import Callable
from typing import Optional

from keras_ddpm import checks

# The spacing whose indices a model's schedule stores (`DDPM.optimize_steps`).
OPTIMIZED = "optimized"
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace", "logsnr", "karras", OPTIMIZED)
# ρ of the `"karras"` spacing: EDM's choice (Karras et al. 2022, eq. 5 and section 3).
KARRAS_RHO = 7.0


def check_spacing(timestep_spacing):
    """Raises a `ValueError` unless `timestep_spacing` is a known convention."""
    return checks.one_of("timestep_spacing", timestep_spacing, TIMESTEP_SPACINGS)


def check_steps(steps, timesteps):
    """Raises unless a Python `steps` is an integer in [1, timesteps] (tensors pass)."""
    if checks.is_tensor(steps):
        return steps
    if not checks.is_int(steps):
        raise TypeError(f"`steps` must be an integer in [1, {timesteps}]. Received: steps={steps!r}.")
    if not 1 <= steps <= timesteps:
        raise ValueError(
            f"`steps` must be in [1, {timesteps}] (the schedule's timesteps). "
            f"Received: steps={steps}."
        )
    return int(steps)


# The orders of DPM-Solver++ and of iPNDM (Adams–Bashforth).
ORDERS = (1, 2, 3)
IPNDM_ORDERS = (1, 2, 3, 4)


def check_order(order, orders=ORDERS):
    """Raises a `ValueError` unless `order` is one of `orders` (DPM-Solver++'s by default)."""
    if not checks.is_int(order) or order not in orders:
        raise ValueError(f"`order` must be one of {list(orders)}. Received: order={order!r}.")
    return int(order)


@dataclasses.dataclass(frozen=True)
class SamplerOption:
    """An option a sampler accepts beyond the common ones.

    Args:
        name: the keyword of `generate`, `export` and the sampler function.
        default: the value used when the option is not given.
        check: `value -> value`, raising `ValueError`/`TypeError` for a bad
            one. Defaults to `None`: a number within `bounds`.
        runtime: `True` for a float that is a tensor input of the compiled
            loop (changing it never retraces, and the SavedModel takes it as an
            input); `False` for a choice fixed when the loop is traced.
            Defaults to `False`.
        bounds: `(low, high)` of a runtime option, also checked inside the
            SavedModel. Defaults to `None`.
        neutral: the value that means "not used"; another sampler accepts it
            (and `None`) silently. Defaults to `None`.
        help: one line for the command line's help.
    """

    name: str
    default: Any
    check: Optional[Callable[[Any], Any]] = None
    runtime: bool = False
    bounds: Optional[tuple] = None
    neutral: Any = None
    help: str = ""

    def validate(self, value):
        """`value` checked (a Python number within `bounds` is returned as a float)."""
        if self.check is not None:
            return self.check(value)
        if self.bounds is not None:
            return checks.number_in(self.name, value, *self.bounds)
        return value
