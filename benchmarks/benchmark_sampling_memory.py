"""Where the sampling memory goes: keras_ddpm's resident memory stage by stage, against PyTorch.

    python benchmarks/benchmark_sampling_memory.py                    # width-64 32x32 U-Net
    python benchmarks/benchmark_sampling_memory.py --model digits     # the digits preset
    python benchmarks/benchmark_sampling_memory.py --pytorch /path/to/venv/bin/python

Issue 17 asks for sampling memory no higher than PyTorch's. The workload is the `sample` phase
of `benchmark_speed.py`: 64 images, 20 DPM-Solver++(2M) steps, untrained weights. Each
measurement runs in a process of its own (peak memory is per process):

1. keras_ddpm with the reverse loop compiled by XLA and without it (`jit_compile=True` and
   `False`). Resident memory after importing keras_ddpm, after building the model (network and
   EMA copy; not compiled, so without optimizer moments, as `keras-ddpm sample` loads it),
   after the first `generate` (tracing, compiling, running), after handing freed
   heap back to the OS (`malloc_trim`: the first call's garbage), and after a second
   `generate`. Each stage is split into anonymous memory (the process's own: heap, tensors,
   compiled code) and file-backed pages (the shared libraries' code and data, shared between
   processes and reclaimable by the kernel under memory pressure).
2. With `--pytorch PYTHON`: `benchmark_pytorch_reference.py --sample` (diffusers'
   `DPMSolverMultistepScheduler` on the same network), its resident memory after importing
   torch and its peak, split the same way.

The peaks: total resident memory is the kernel's high-water mark (`VmHWM`); the peak of
anonymous memory is polled every 5 ms by a thread. Results go to
`benchmarks/results/sampling_memory_<model>_<date>.json`.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchmark_memory import _json_from  # noqa: E402
from benchmark_speed import MODELS, AnonPeak, peak_rss_mb, status_mb, write_results  # noqa: E402


def resident_mb():
    """`{"anon": MiB, "file": MiB}`: this process's anonymous and file-backed resident memory."""
    fields = status_mb("RssAnon", "RssFile", "RssShmem")
    return {"anon": round(fields["RssAnon"]), "file": round(fields["RssFile"] + fields["RssShmem"])}


# ===== Inside a measuring process =====


def measure(args):
    """Builds the model and samples twice, recording resident memory at every stage."""
    anon_peak = AnonPeak()
    import keras_ddpm
    from keras_ddpm.backend.step_functions import release_free_heap

    stages = {"imported": resident_mb()}
    config, _ = MODELS[args.model]
    network = keras_ddpm.UNet(**config)
    # Not compiled, as the command line loads a model to sample: no optimizer moments.
    model = keras_ddpm.DDPM(network, ema_decay=0.9999, seed=0)
    stages["model built"] = resident_mb()

    def generate():
        start = time.perf_counter()
        model.generate(args.num_images, sampler="dpm_solver", steps=args.steps, seed=0,
                       verbose=0, jit_compile=args.jit)
        return time.perf_counter() - start

    first_s = generate()
    stages["first generate"] = resident_mb()
    first_peak = peak_rss_mb()
    release_free_heap()
    stages["garbage returned"] = resident_mb()
    second_s = generate()
    stages["second generate"] = resident_mb()
    return {
        "jit_compile": args.jit,
        "parameters": int(network.count_params()),
        "first_s": round(first_s, 1),
        "second_s": round(second_s, 1),
        "rss_mb": stages,
        "peak_rss_first_call_mb": round(first_peak),
        "peak_rss_mb": round(peak_rss_mb()),
        "peak_anon_mb": round(anon_peak.peak),
    }


# ===== Driver =====


def run_ours(args, jit):
    command = [sys.executable, os.path.abspath(__file__), "--measure", "--model", args.model,
               "--num-images", str(args.num_images), "--steps", str(args.steps)]
    return _json_from(subprocess.run(command + (["--jit"] if jit else []),
                                     capture_output=True, text=True))


def run_pytorch(args):
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "benchmark_pytorch_reference.py")
    command = [args.pytorch, script, "--model", args.model, "--sample", str(args.num_images),
               "--sample-steps", str(args.steps), "--sample-repeats", "1"]
    return _json_from(subprocess.run(command, capture_output=True, text=True))


def table(runs):
    """Rows of MB: each stage of each of our runs, then PyTorch's."""
    lines = []
    for name in ("xla", "no_xla"):
        run = runs[name]
        lines.append(f"  keras_ddpm, jit_compile={run['jit_compile']}: first call {run['first_s']} s, "
                     f"second {run['second_s']} s")
        for stage, rss in run["rss_mb"].items():
            lines.append(f"    {stage:<18} {rss['anon'] + rss['file']:>6} MB "
                         f"(anonymous {rss['anon']}, file-backed {rss['file']})")
        lines.append(f"    {'peak':<18} {run['peak_rss_mb']:>6} MB (anonymous {run['peak_anon_mb']})")
    if "pytorch" in runs:
        torch_run = runs["pytorch"]
        lines.append(f"  PyTorch {torch_run['torch']}: {torch_run['total_s']} s")
        lines.append(f"    {'imported':<18} {torch_run['peak_rss_at_start_mb']:>6} MB")
        lines.append(f"    {'peak':<18} {torch_run['peak_rss_mb']:>6} MB "
                     f"(anonymous {torch_run.get('peak_anon_mb')})")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--jit", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=sorted(MODELS), default="cifar10")
    parser.add_argument("--num-images", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="DPM-Solver++ steps.")
    parser.add_argument("--pytorch", metavar="PYTHON", default=None,
                        help="an interpreter with torch and diffusers for the reference.")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args)))
        return

    from keras_ddpm.backend import hardware

    runs = {"xla": run_ours(args, jit=True), "no_xla": run_ours(args, jit=False)}
    if args.pytorch:
        runs["pytorch"] = run_pytorch(args)
    flags = hardware.cpu_flags() or set()
    result = {
        "model": args.model,
        "num_images": args.num_images,
        "steps": args.steps,
        "cpu": platform.processor() or platform.machine(),
        "cpu_flags": sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}),
        "runs": runs,
    }
    print(f"{args.model} U-Net, sampling {args.num_images} images with {args.steps} "
          f"DPM-Solver++ steps, float32; CPU flags {' '.join(result['cpu_flags'])}")
    print(table(runs))
    write_results(result, f"sampling_memory_{args.model}", args.output)


if __name__ == "__main__":
    main()
