"""Resident memory over repeated traces: recompiling one model, or a sweep of models, in a process.

    python benchmarks/benchmark_retrace_memory.py                  # quick-start U-Net
    python benchmarks/benchmark_retrace_memory.py --model digits --repeats 6

Two patterns users run in one process (a notebook, a hyperparameter sweep):

- recompile: one model; each round `compile`s a new Adam, trains `--steps` batches and samples
  8 images with a sampler not used before (a new training trace and a new reverse loop);
- sweep: each round builds a new model, trains it the same way, samples 8 images and
  deletes it.

After each round the garbage collector runs and the C heap's free pages go back to the
system; the resident memory then is what the process holds on to. Each case runs in a fresh
process twice: as the package runs today, and with the traced graphs kept as TensorFlow keeps
them (`keras_ddpm.backend.graph_lifetime` turned off). The growth per round is the slope from the
first round to the last. Results go to `benchmarks/results/retrace_memory_<date>.json`.
"""

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchmark_memory import _json_from  # noqa: E402
from benchmark_speed import MODELS, machine, status_mb, write_results  # noqa: E402

# A different sampler each round: each is a new reverse loop, traced once.
SAMPLERS = (("dpm_solver", {}), ("ddim", {}), ("ddpm", {}), ("dpm_solver", {"order": 1}),
            ("ddim", {"clip": False}), ("dpm_solver", {"order": 3}))


def measure(args):
    """In a fresh process: resident MiB after each round of `args.case`."""
    import keras
    import numpy as np

    import keras_ddpm
    from keras_ddpm.backend import graph_lifetime
    from keras_ddpm.backend.step_functions import release_free_heap

    if args.keep_graphs:  # TensorFlow's own behaviour: every traced graph stays registered
        graph_lifetime._gradient_registry = lambda: None
    config, batch_size = MODELS[args.model]
    images = np.random.default_rng(0).uniform(
        -1, 1, (batch_size * args.steps, *config["image_shape"])).astype("float32")

    def build():
        return keras_ddpm.DDPM(keras_ddpm.UNet(**config), ema_decay=0.999, seed=0)

    def settle():
        gc.collect()
        release_free_heap()
        return status_mb("VmRSS")["VmRSS"]

    rss, model = [], build() if args.case == "recompile" else None
    start = time.perf_counter()
    for round_ in range(args.repeats):
        if args.case == "sweep":
            model = build()
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        model.fit(images, batch_size=batch_size, epochs=1, verbose=0)
        sampler, options = SAMPLERS[round_ % len(SAMPLERS)]
        model.generate(8, sampler=sampler, steps=5, seed=0, verbose=0, **options)
        if args.case == "sweep":
            model = None
        rss.append(settle())
    return {"rss_mb": rss, "seconds": time.perf_counter() - start}


def run_one(args, case, keep_graphs):
    command = [sys.executable, os.path.abspath(__file__), "--measure", "--case", case,
               "--model", args.model, "--repeats", str(args.repeats), "--steps", str(args.steps)]
    return _json_from(subprocess.run(command + (["--keep-graphs"] if keep_graphs else []),
                                     capture_output=True, text=True))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--case", choices=("recompile", "sweep"), help=argparse.SUPPRESS)
    parser.add_argument("--keep-graphs", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=sorted(MODELS), default="quickstart",
                        help="the U-Net (benchmark_speed.MODELS). Defaults to quickstart.")
    parser.add_argument("--repeats", type=int, default=6, help="rounds a process.")
    parser.add_argument("--steps", type=int, default=2, help="training batches a round.")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args)))
        return

    description, flags = machine()
    print(f"{description}; {args.model} U-Net, {args.repeats} rounds, resident MB after each")
    cases = []
    for case in ("recompile", "sweep"):
        for keep_graphs in (False, True):
            run = run_one(args, case, keep_graphs)
            rss = run["rss_mb"]
            slope = (rss[-1] - rss[0]) / max(len(rss) - 1, 1)
            label = "graphs kept (TensorFlow's)" if keep_graphs else "graphs released (now)"
            print(f"{case:<10}{label:<28}{' '.join(f'{v:6.0f}' for v in rss)}   "
                  f"{slope:+6.1f} MB a round   {run['seconds']:.0f} s")
            cases.append({"case": case, "keep_graphs": keep_graphs,
                          "growth_mb_per_round": slope, **run})
    result = {"cpu": platform.processor() or platform.machine(), "cpu_flags": flags,
              "model": args.model, "repeats": args.repeats, "steps": args.steps,
              "cases": cases}
    write_results(result, "retrace_memory", args.output)


if __name__ == "__main__":
    main()
