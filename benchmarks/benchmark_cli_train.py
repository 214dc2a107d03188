"""Where the time of a whole `keras-ddpm train` run goes: start-up, epochs, backups, grids.

    python benchmarks/benchmark_cli_train.py                         # the default run, 2 rounds
    python benchmarks/benchmark_cli_train.py --variant "--sampler ddpm" --variant ""
    python benchmarks/benchmark_cli_train.py --epochs 10 --rounds 1 --variant "--backup-every 100000"
    python benchmarks/benchmark_cli_train.py --variant "PYTHONPATH=/tmp/old_checkout" --variant ""

A user's first command is `keras-ddpm train --output runs/digits`: the quick-start U-Net on the
embedded digits, 40 epochs, a backup after every epoch and a sample grid after epochs 20 and 40.
Each variant (extra arguments for that command; the empty string is the default run) runs in a
fresh process, the variants alternating over `--rounds`; a variant may start with
`NAME=VALUE` environment settings, so `PYTHONPATH=DIR` compares another checkout of the package. Every line the command prints is
time-stamped as it arrives (`--verbose 2`: one line an epoch), which splits the run into:

- start-up: from launching the command to its first epoch (importing TensorFlow, reading
  the data, building the model);
- the first epoch (tracing and optimising the training step);
- an ordinary epoch: the median of the epochs that write no grid (training, the backup, the
  other callbacks);
- a grid: what an epoch that writes a grid takes beyond an ordinary epoch;
- the end: from the last epoch to the exit (the final save);
- the whole command.

Results go to `benchmarks/results/cli_train_<date>.json`.
"""

import argparse
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchmark_speed import machine, write_results  # noqa: E402

_EPOCH = re.compile(r"^Epoch (\d+)/(\d+)")


def run_command(extra, epochs):
    """Runs one `keras-ddpm train` in a fresh process; returns its time-stamped epochs.

    `extra` holds the command's extra arguments, after optional `NAME=VALUE` environment
    settings (`PYTHONPATH=/path/to/another/checkout` runs that checkout's package).
    """
    words = shlex.split(extra)
    env = dict(os.environ)
    while words and "=" in words[0] and not words[0].startswith("-"):
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    folder = tempfile.mkdtemp(prefix="cli_train_")
    command = [sys.executable, "-m", "keras_ddpm", "train", "--output", os.path.join(folder, "run"),
               "--verbose", "2", *words]
    if epochs is not None:
        command += ["--epochs", str(epochs)]
    starts = {}  # epoch -> seconds from launch when its line appeared
    start = time.perf_counter()
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   text=True, env=env)
        for line in process.stdout:
            match = _EPOCH.match(line)
            if match:
                starts[int(match.group(1))] = time.perf_counter() - start
        code = process.wait()
        total = time.perf_counter() - start
        grids = sorted(os.listdir(os.path.join(folder, "run", "samples")))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if code != 0 or not starts:
        raise RuntimeError(f"{' '.join(command)} failed (exit {code})")
    return {"epoch_starts_s": starts, "total_s": total, "grids": grids}


def split(run):
    """The run's time split into start-up, first epoch, ordinary epoch, grid and end."""
    starts = run["epoch_starts_s"]
    last = max(starts)
    # An epoch lasts from its line to the next one; the last one is not closed by a line.
    durations = {epoch: starts[epoch + 1] - starts[epoch] for epoch in starts if epoch < last}
    grid_epochs = {int(name[len("epoch_"):-len(".png")]) for name in run["grids"]}
    ordinary = [d for epoch, d in durations.items() if epoch > 1 and epoch not in grid_epochs]
    median = statistics.median(ordinary) if ordinary else None
    grid = [durations[e] - median for e in grid_epochs if e in durations and median is not None]
    return {
        "start_up_s": starts[1],
        "first_epoch_s": durations.get(1),
        "ordinary_epoch_s": median,
        "grid_s": statistics.median(grid) if grid else None,
        "grids": len(grid_epochs),
        "last_epoch_and_end_s": run["total_s"] - starts[last],
        "total_s": run["total_s"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", action="append", default=None,
                        help="extra arguments of `keras-ddpm train` (repeat for several; "
                        "default: the old grid sampler `--sampler ddpm` and the default run)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="--epochs of the command (default: the command's own, 40)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each variant")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    variants = args.variant if args.variant is not None else ["--sampler ddpm", ""]

    description, flags = machine()
    print(f"{description}; {args.rounds} rounds, variants alternating")
    runs = {variant: [] for variant in variants}
    for round_ in range(args.rounds):
        order = variants if round_ % 2 == 0 else variants[::-1]
        for variant in order:
            result = split(run_command(variant, args.epochs))
            runs[variant].append(result)
            print(f"round {round_ + 1} {variant or '(default)':<28} " + "  ".join(
                f"{key[:-2]} {value:.1f} s" for key, value in result.items()
                if key.endswith("_s") and value is not None))
    print("medians:")
    summary = {}
    for variant, results in runs.items():
        summary[variant] = {key: statistics.median(r[key] for r in results if r[key] is not None)
                            for key in results[0] if results[0][key] is not None}
        print(f"  {variant or '(default)':<28} " + "  ".join(
            f"{key[:-2]} {value:.1f} s" for key, value in summary[variant].items()
            if key.endswith("_s")))
    result = {"cpu": platform.processor() or platform.machine(), "cpu_flags": flags,
              "epochs": args.epochs, "rounds": args.rounds, "runs": runs, "medians": summary}
    write_results(result, "cli_train", args.output)


if __name__ == "__main__":
    main()
