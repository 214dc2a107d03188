"""Records what `unconditional.keras` generates with the counter-based noise of `keras_ddpm.rng`.

Run once, at the commit that introduced that noise (see README.md):

    python tests/legacy/make_counter_rng_outputs.py tests/legacy

`tests/test_legacy_files.py` then requires these images from every later
version, through the default call and under each `jit_compile` mode.
"""

import os
import sys

import numpy as np

import keras_ddpm

SAMPLERS = ("ddpm", "ddim", "dpm_solver")


def main(folder):
    model = keras_ddpm.load_model(os.path.join(folder, "unconditional.keras"))
    outputs = {}
    for sampler in SAMPLERS:
        for use_ema, suffix in ((True, ""), (False, "_raw")):
            outputs[f"generate_{sampler}{suffix}"] = model.generate(
                4, sampler=sampler, seed=3, use_ema=use_ema, jit_compile=False, verbose=0
            )
    np.savez(os.path.join(folder, "counter_rng_outputs.npz"), **outputs)


if __name__ == "__main__":
    main(sys.argv[1])
