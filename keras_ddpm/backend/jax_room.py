"""The JAX backend's room: `jax.jit` loops that run their schedule arithmetic in float64."""

import functools

import jax

def _float64_enabled():
    """A context in which JAX traces float64 (`jax.enable_x64`; older releases: experimental)."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64  # JAX before 0.7

    return enable_x64(True)


fused_group_normalization = None  # XLA fuses the keras.ops maths itself
conv2d_3x3 = None


def precise_float():
    """float64 where JAX has it (inside `compile_loop`'s loops, or `jax_enable_x64` on), else float32."""
    return "float64" if jax.config.jax_enable_x64 else "float32"


def compile_loop(function, signature, jit_compile):
    """`function` under `jax.jit`, traced with float64 enabled, whatever `jit_compile`.

    Its inputs are arrays whose values are traced: a new step count, η or guidance scale
    reuses the compiled loop; a new batch or image shape compiles one more. The schedule's
    coefficients are float64 inside (as on TensorFlow), the images float32.
    """
    del signature, jit_compile
    jitted = jax.jit(function)

    @functools.wraps(function)
    def run(*args):
        with _float64_enabled():
            return jitted(*args)

    return run
