"""Reverse-process samplers: plain functions over any denoiser.

A sampler takes

- `denoise_fn(x_t, t) -> prediction`: any callable (a Keras network, a closed-form
  oracle, a guided wrapper) mapping float32 images `[B, ...]` and integer
  timestep indices `[B]` to the prediction named by `prediction_type`;
- the starting noise x_T;
- a `NoiseSchedule`;
- the number of network evaluations `steps` (an int or an int32 scalar tensor);
- for the stochastic samplers, a key of `keras_ddpm.rng` (int32 `[2]`, or one
  per image, `[B, 2]`), so that a sample is a pure function of its inputs.

Each sampler is one while loop (`keras.ops.while_loop`, any backend) whose timestep sequence is computed inside
the graph from `steps` (and whose DDIM η is a tensor too), so one traced (and
XLA-compiled) function serves every step count and every η.

Timesteps. A run of S steps visits the decreasing indices τ_0 > τ_1 > … > τ_{S−1}
chosen by `timestep_sequence`; step k goes from τ_k to τ_{k+1}, and the last
step goes from τ_{S−1} to the clean data (written τ_S = −1, ᾱ_{−1} = 1). Every
sampler calls the network once per step, only at the integer indices τ_k, so
S is also the number of function evaluations (NFE). Skipping timesteps keeps ᾱ
at the kept indices and uses β_k = 1 − ᾱ_{τ_k}/ᾱ_{τ_{k+1}} for the jump
(Nichol & Dhariwal 2021, section 4).

Notation: t is the timestep index (0 … T−1, index i holding step i + 1 of the
paper), ᾱ_t the cumulative product of α, α_t = √ᾱ_t and σ_t = √(1 − ᾱ_t) the
signal and noise rates of DPM-Solver, λ_t = log(α_t/σ_t) the half log-SNR,
x̂_0 the clean-sample estimate.

Layout: `options` (the option checks) and `registry` (the records; neither imports
TensorFlow), `spacing`
(timestep sequences), `loop` (what every sampler shares), and one module per
sampler: `ancestral`, `ddim`, `dpm_solver`, `ipndm`, `unipc`, and `inversion` (DDIM run
backwards, for `encode`) and `repaint` (inpainting with any single-step
sampler); `step_search` finds a model's own steps (`DDPM.optimize_steps`). `sample` runs
any registered sampler by name.
"""

import importlib

from keras_ddpm.samplers.registry import DEFAULT_SAMPLER
from keras_ddpm.samplers.registry import GRID_SAMPLER
from keras_ddpm.samplers.registry import INPAINT_STEPS
from keras_ddpm.samplers.registry import INVERSION_SAMPLER
from keras_ddpm.samplers.options import IPNDM_ORDERS
from keras_ddpm.samplers.options import KARRAS_RHO
from keras_ddpm.samplers.options import OPTIMIZED
from keras_ddpm.samplers.registry import JUMP_LENGTH
from keras_ddpm.samplers.options import ORDERS
from keras_ddpm.samplers.registry import RESAMPLE_STEPS
from keras_ddpm.samplers.registry import SAMPLERS
from keras_ddpm.samplers.options import TIMESTEP_SPACINGS
from keras_ddpm.samplers.registry import Sampler
from keras_ddpm.samplers.options import SamplerOption
from keras_ddpm.samplers.registry import all_options
from keras_ddpm.samplers.registry import check_eta
from keras_ddpm.samplers.options import check_order
from keras_ddpm.samplers.options import check_spacing
from keras_ddpm.samplers.options import check_steps
from keras_ddpm.samplers.registry import get_sampler
from keras_ddpm.samplers.registry import invertible_samplers
from keras_ddpm.samplers.registry import register_sampler
from keras_ddpm.samplers.registry import resolve
from keras_ddpm.samplers.registry import resolve_everywhere
from keras_ddpm.samplers.registry import resolve_inverse
from keras_ddpm.samplers.registry import sampler_names
from keras_ddpm.samplers.registry import single_step_samplers
from keras_ddpm.samplers.registry import takers
from keras_ddpm.samplers.registry import unregister_sampler
from keras_ddpm.schedule_math import VARIANCES
from keras_ddpm.schedule_math import check_variance

# The TensorFlow parts load on first use, so that the registry (read by the
# command line before TensorFlow loads) imports no TensorFlow.
_LAZY = {
    "ddpm_sample": "ancestral",
    "ddpm_step": "ancestral",
    "log_variance_table": "ancestral",
    "ddim_sample": "ddim",
    "ddim_step": "ddim",
    "ddim_invert": "inversion",
    "ddim_invert_step": "inversion",
    "repaint_sample": "repaint",
    "dpm_solver_sample": "dpm_solver",
    "ipndm_sample": "ipndm",
    "unipc_sample": "unipc",
    "timestep_sequence": "spacing",
    "resolve_optimized": "spacing",
    "search_timesteps": "step_search",
    "sample": "run",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"keras_ddpm.samplers.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'keras_ddpm.samplers' has no attribute {name!r}")


def check_sampler(sampler):
    """Raises a `ValueError` unless `sampler` names a registered sampler."""
    get_sampler(sampler)


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
