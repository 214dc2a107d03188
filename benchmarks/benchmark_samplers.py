"""Sampler accuracy and speed: the exact Gaussian ODE solution and wall time.

Accuracy. For data x_0 ~ N(μ, s²) the probability-flow ODE has a closed form:
the marginal at t is N(√ᾱ_t μ, ᾱ_t s² + 1 − ᾱ_t) and the ODE keeps
z = (x_t − √ᾱ_t μ)/√(ᾱ_t s² + 1 − ᾱ_t) constant, so x_0 = μ + s z exactly.
Each deterministic sampler starts from the exact x at the first index of its
timestep sequence, is driven by the weightless ε-oracle (the exact optimal
network) and is scored by max |x̂_0 − (μ + s z)| over the samples.

Speed. Wall time per image of `DDPM.generate` with a small digits UNet
(random weights: speed only), after a warm-up call that traces and compiles.

Run:  python benchmarks/benchmark_samplers.py [--samples 2000] [--no-speed]
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_ddpm  # noqa: E402
from keras_ddpm import NoiseSchedule  # noqa: E402
from keras_ddpm import samplers  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from oracles import GaussianOracleLayer  # noqa: E402

MEAN, STD = 0.2, 0.5
NFES = (5, 10, 20, 50)
CONFIGS = [
    ("ddim", 1), ("dpm_solver", 1), ("dpm_solver", 2), ("dpm_solver", 3),
    ("ipndm", 2), ("ipndm", 3), ("ipndm", 4),
]


def ode_errors(kind, sampler, order, spacing, z):
    schedule = NoiseSchedule(kind, timesteps=1000)
    oracle = GaussianOracleLayer(schedule, MEAN, STD)
    run = tf.function(
        lambda x, steps: samplers.sample(
            lambda x_t, t: oracle([x_t, t]), x, schedule, sampler=sampler, steps=steps,
            timestep_spacing=spacing, order=None if sampler == "ddim" else order, clip=False,
        )
    )
    errors = []
    for nfe in NFES:
        first = int(samplers.timestep_sequence(schedule, nfe, spacing)[0])
        ab = schedule.alphas_cumprod[first]
        x = np.sqrt(ab) * MEAN + np.sqrt(ab * STD**2 + 1 - ab) * z
        out = run(tf.constant(x, tf.float32), tf.constant(nfe)).numpy()
        errors.append(np.abs(out - (MEAN + STD * z)).max())
    return errors


def accuracy_table(samples):
    z = tf.random.stateless_normal((samples, 1, 1, 1), seed=[3, 4], dtype=tf.float64).numpy()
    print(f"Max |x0 error| vs the exact ODE solution, N(μ={MEAN}, s={STD}) data, "
          f"T=1000, {samples} samples, float32")
    header = f"| {'schedule':8} | {'sampler':14} | {'spacing':8} |" + "".join(
        f" {n:>3} NFE  |" for n in NFES
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    best = {}
    for kind in ("linear", "cosine"):
        for sampler, order in CONFIGS:
            name = {"ddim": "ddim", "dpm_solver": f"dpm_solver({order}M)"}.get(
                sampler, f"{sampler}({order})"
            )
            for spacing in [s for s in samplers.TIMESTEP_SPACINGS if s != samplers.OPTIMIZED]:
                errors = ode_errors(kind, sampler, order, spacing, z)
                print(f"| {kind:8} | {name:14} | {spacing:8} |"
                      + "".join(f" {e:9.2e} |" for e in errors))
                for nfe, error in zip(NFES, errors):
                    key = (kind, nfe)
                    if error < best.get(key, (np.inf,))[0]:
                        best[key] = (error, name, spacing)
    for (kind, nfe), (error, name, spacing) in best.items():
        print(f"best at {nfe} NFE on {kind}: {name}, {spacing}: {error:.2e}")


def speed_table():
    network = keras_ddpm.UNet(
        image_shape=(8, 8, 1), base_channels=16, channel_multipliers=(1, 2),
        num_res_blocks=1, attention_resolutions=(4,), dropout=0.0, norm_groups=4,
    )
    model = keras_ddpm.DDPM(network, ema_decay=None)
    batch = 64
    print(f"\nWall time per image, generate(), tiny digits UNet (8x8x1), batch {batch}, "
          f"{os.cpu_count()} CPU cores, XLA")
    print("| sampler          |" + "".join(f" {n:>3} NFE (ms) |" for n in NFES))
    print("|------------------|" + "---------------|" * len(NFES))
    for sampler, kwargs in (
        ("ddpm", {}), ("ddim", {}), ("ddim", {"eta": 1.0}), ("dpm_solver", {"order": 2}),
        ("ipndm", {"order": 3}),
    ):
        name = sampler + ("(eta=1)" if kwargs.get("eta") else "")
        model.generate(batch, sampler=sampler, steps=NFES[0], seed=0, verbose=0, **kwargs)
        times = []
        for nfe in NFES:
            start = time.perf_counter()
            model.generate(batch, sampler=sampler, steps=nfe, seed=1, verbose=0, **kwargs)
            times.append((time.perf_counter() - start) / batch * 1e3)
        print(f"| {name:16} |" + "".join(f" {t:13.3f} |" for t in times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args()
    accuracy_table(args.samples)
    if not args.no_speed:
        speed_table()


if __name__ == "__main__":
    main()
