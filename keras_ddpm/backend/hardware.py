"""What this machine offers that decides how fast a dtype trains and whether XLA pays.

bfloat16 pays on a CPU only with instructions for it: AVX512_BF16 (Intel Cooper
Lake and later, AMD Zen 4 and later) or AMX-BF16 (Intel Sapphire Rapids and
later). Without them oneDNN converts every product to float32 and back, and
`mixed_bfloat16` is several times slower than float32 (issue 17 measured 10x),
so `DDPM.compile` and `keras-ddpm train` say so in one line.

XLA pays on a CPU only for small reverse-loop steps, where TensorFlow's per-op
dispatch is a large part of the step, and only for calls long enough to earn back
its compile time (see `xla_pays`).
"""

import functools
import warnings

_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=None)
def cpu_flags(path="/proc/cpuinfo"):
    """The CPU's feature flags (Linux), or `None` where they cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            for line in file:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        return None
    return None


@functools.lru_cache(maxsize=None)
def accelerator_present():
    """Whether the running backend sees a GPU or a TPU."""
    from keras_ddpm import backend

    return backend.room().accelerator_present()


# Below this many parameter-pixels a batch (parameters x H x W x batch size), an XLA-compiled
# reverse loop beat TensorFlow's own kernels on a 2-core AVX-512 CPU (issue 17): the quick-start
# U-Net (701k parameters, 8x8, 64 images: 2.9e9) 1.45x faster, the digits preset with 16 images
# (4.1e9) 1.28x. Above it XLA was no faster and held 200-230 MB more: the digits preset with 64
# images (16e9) ran at the same speed, the width-64 32x32 U-Net with 64 (590e9) 1.14x slower.
XLA_CPU_WORK_LIMIT = 8e9

# Fewest network evaluations in one call (steps x chunks) for which "auto" compiles with XLA on
# a CPU: compiling costs about a second once, and each evaluation then saves a few ms. Measured
# on 2 AVX-512 cores, 20 DPM-Solver++ steps, two runs (`benchmarks/benchmark_first_call.py`):
# compiling took 1.2-1.9 s more on the first call and saved 5.5-9.6 ms an evaluation, so XLA paid
# within the call from 141-162 evaluations (quick-start U-Net, 64 images), 192-209 (16 images)
# and 231-345 (the digits preset, 16 images). 20- and 50-step calls run without it, 1000-step
# DDPM calls with it.
XLA_CPU_MIN_EVALUATIONS = 250


def xla_pays(parameters, pixels, batch_size, evaluations=None):
    """Whether `jit_compile="auto"` compiles a reverse loop with XLA.

    Always on a GPU or a TPU. On a CPU only for small steps, `parameters x pixels x batch_size
    < XLA_CPU_WORK_LIMIT`, in calls of at least `XLA_CPU_MIN_EVALUATIONS` network evaluations:
    XLA removes TensorFlow's per-op dispatch, which dominates small steps, but its CPU
    convolutions are no faster than oneDNN's, compiling takes time, and the compiled program
    holds memory for the rest of the process (figures: the README's "Measurements behind the
    design"). The choice depends on the call alone, never on what ran before, so that the same
    call gives the same images.

    Args:
        parameters: the network's parameter count.
        pixels: pixels of one image (H x W).
        batch_size: images denoised at once.
        evaluations: network evaluations of the call (steps x chunks); `None` for a loop run
            many times, where the compile time does not count.
    """
    if accelerator_present():
        return True
    if evaluations is not None and evaluations < XLA_CPU_MIN_EVALUATIONS:
        return False
    return parameters * pixels * batch_size < XLA_CPU_WORK_LIMIT


def slow_bfloat16_message():
    """A one-line warning if bfloat16 would run on a CPU without bfloat16 instructions, else `None`.

    `None` too when a GPU or TPU is present (it does the arithmetic) or when the
    flags cannot be read (not Linux): then nothing is known to be wrong.
    """
    flags = cpu_flags()
    if flags is None or any(flag in flags for flag in _BF16_FLAGS) or accelerator_present():
        return None
    return (
        "mixed_bfloat16 will train slower than float32 here: this CPU has no bfloat16 "
        "instructions (AVX512_BF16 or AMX-BF16), so every product is converted to float32 and "
        "back; use float32."
    )


def warn_if_slow_bfloat16(compute_dtype):
    """`warnings.warn`s `slow_bfloat16_message()` when `compute_dtype` is bfloat16."""
    if compute_dtype != "bfloat16":
        return
    message = slow_bfloat16_message()
    if message:
        warnings.warn(message, stacklevel=3)
