"""What XLA costs and saves in `generate` on a CPU: the first call of a process against later ones.

    python benchmarks/benchmark_first_call.py                 # quick start and digits preset
    python benchmarks/benchmark_first_call.py --rounds 3 --steps 20

A process that samples once (`keras-ddpm sample`, a script) pays for tracing the reverse loop
and, with XLA, for compiling it; a process that samples many times (`SampleGrid`, a notebook)
pays once and then gains XLA's faster steps. For each network and batch, every measurement
runs in a fresh process with `jit_compile=True` and then `False` (alternating over
`--rounds`): the first `generate` of `--steps` DPM-Solver++ steps, then `--repeats` more. From
the medians:

- compile cost = (first − later) with XLA − (first − later) without: what XLA adds once;
- saving per network evaluation = (later without − later with XLA) / steps;
- break-even = compile cost / saving: the network evaluations (steps × chunks) a call needs
  before XLA pays within it; `keras_ddpm.backend.hardware.XLA_CPU_MIN_EVALUATIONS` is set from these.

Untrained weights (the speed does not depend on them). Results go to
`benchmarks/results/first_call_<date>.json`.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchmark_memory import _json_from  # noqa: E402
from benchmark_speed import MODELS, machine, write_results  # noqa: E402

# (model, images denoised at once): where `jit_compile="auto"` can choose XLA on a CPU.
CASES = (("quickstart", 64), ("quickstart", 16), ("digits", 16))


def measure(args):
    """In a fresh process: the first `generate` and `--repeats` later ones, in seconds."""
    import keras_ddpm

    config, _ = MODELS[args.model]
    model = keras_ddpm.DDPM(keras_ddpm.UNet(**config), ema_decay=0.9999, seed=0)

    def generate():
        start = time.perf_counter()
        model.generate(args.num_images, sampler="dpm_solver", steps=args.steps, seed=0,
                       verbose=0, jit_compile=args.jit)
        return time.perf_counter() - start

    first = generate()
    later = [generate() for _ in range(args.repeats)]
    return {"first_s": first, "later_s": statistics.median(later)}


def run_one(args, model, num_images, jit):
    command = [sys.executable, os.path.abspath(__file__), "--measure", "--model", model,
               "--num-images", str(num_images), "--steps", str(args.steps),
               "--repeats", str(args.repeats)]
    return _json_from(subprocess.run(command + (["--jit"] if jit else []),
                                     capture_output=True, text=True))


def summarise(runs, steps):
    """The medians of both sides and what XLA costs once and saves per network evaluation."""
    median = {jit: {key: statistics.median(run[key] for run in runs[jit])
                    for key in ("first_s", "later_s")} for jit in runs}
    xla, plain = median["xla"], median["no_xla"]
    compile_s = (xla["first_s"] - xla["later_s"]) - (plain["first_s"] - plain["later_s"])
    saving_ms = 1000 * (plain["later_s"] - xla["later_s"]) / steps
    break_even = compile_s * 1000 / saving_ms if saving_ms > 0 else None
    return {"xla": xla, "no_xla": plain, "compile_s": compile_s,
            "saving_ms_per_evaluation": saving_ms, "break_even_evaluations": break_even}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--jit", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=sorted(MODELS), default="quickstart",
                        help=argparse.SUPPRESS)
    parser.add_argument("--num-images", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=20, help="DPM-Solver++ steps a call.")
    parser.add_argument("--repeats", type=int, default=3, help="later calls a process.")
    parser.add_argument("--rounds", type=int, default=2, help="processes a side and case.")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args)))
        return

    description, flags = machine()
    print(f"{description}; {args.steps} DPM-Solver++ steps a call, {args.rounds} rounds")
    print(f"{'network':<11}{'images':>7}  {'first call XLA / without':>25}  "
          f"{'later calls XLA / without':>26}  {'compile':>8}  {'saved':>14}  break-even")
    cases = []
    for model, num_images in CASES:
        runs = {"xla": [], "no_xla": []}
        for round_ in range(args.rounds):
            order = (True, False) if round_ % 2 == 0 else (False, True)
            for jit in order:
                runs["xla" if jit else "no_xla"].append(run_one(args, model, num_images, jit))
        summary = summarise(runs, args.steps)
        cases.append({"model": model, "num_images": num_images, "runs": runs, **summary})
        even = summary["break_even_evaluations"]
        print(f"{model:<11}{num_images:>7}  "
              f"{summary['xla']['first_s']:>11.2f} / {summary['no_xla']['first_s']:.2f} s  "
              f"{summary['xla']['later_s']:>12.3f} / {summary['no_xla']['later_s']:.3f} s  "
              f"{summary['compile_s']:>6.2f} s  "
              f"{summary['saving_ms_per_evaluation']:>5.1f} ms/eval  "
              f"{'never' if even is None else f'{even:.0f} evaluations'}")
    result = {"cpu": platform.processor() or platform.machine(), "cpu_flags": flags,
              "steps": args.steps, "rounds": args.rounds, "repeats": args.repeats,
              "cases": cases}
    write_results(result, "first_call", args.output)


if __name__ == "__main__":
    main()
