"""Where the training memory goes: keras_ddpm's resident memory stage by stage, against PyTorch.

    python benchmarks/benchmark_memory.py                      # width-64 32x32 U-Net, batch 32
    python benchmarks/benchmark_memory.py --model digits       # the digits preset, batch 128
    python benchmarks/benchmark_memory.py --pytorch /path/to/venv/bin/python

Issue 17 asks for training peak memory no higher than PyTorch's and for a breakdown of the
difference. Each measurement runs in a process of its own (peak RSS is per process):

1. `stages`: resident memory (RSS) after importing keras_ddpm, after building the model with
   its EMA copy and Adam's moments, after tracing the function `fit` calls for each batch
   (keras_ddpm's single `tf.function`, `keras_ddpm.backend.step_functions`; the op count of its
   graph is printed), after the first step (TensorFlow optimises and instantiates the graph, then
   runs it; the step function then hands the freed heap back, `release_free_heap`), after
   handing it back once more (what is left), and after `--steps` more steps; the peak is
   the process's, with the peak of the first step beside it.
2. `tensors`: the same run with TensorFlow's BFC allocator (`TF_CPU_ALLOCATOR_USE_BFC`),
   whose counters give the bytes held by tensors: persistent (weights, EMA, Adam) and at the
   peak of a step (those plus the activations kept for the backward pass).
3. The same two at batch size 1: what does not grow with the batch (the graph, the runtime).
   And, at the batch size, the peak with Keras' own two nested step functions instead.
4. With `--pytorch PYTHON`: `benchmark_pytorch_reference.py` on the same network, its RSS
   after importing torch and its peak, at the batch size and at 1.

The rows then split our peak into the libraries, the model, the traced graph, the runtime's
graph and its garbage, and the tensors. Results go to `benchmarks/results/memory_<date>.json`.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchmark_speed import MODELS, peak_rss_mb, rss_mb, write_results  # noqa: E402


# ===== Inside a measuring process =====


def measure(args):
    """Builds, traces and trains the model, recording RSS (and tensor bytes under BFC)."""
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_ddpm
    from keras_ddpm.backend.step_functions import OneFunctionStep, release_free_heap

    stages = {"imported": rss_mb()}
    config, _ = MODELS[args.model]
    network = keras_ddpm.UNet(**config)
    model = keras_ddpm.DDPM(network, ema_decay=0.9999, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(2e-4))
    model.optimizer.build(model.network.trainable_variables)
    stages["model built"] = rss_mb()

    images = np.random.default_rng(0).uniform(-1, 1, (args.batch_size, *config["image_shape"]))
    batch = tf.constant(images.astype("float32"))
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
    # The function fit calls for each batch: keras_ddpm's single tf.function, or with
    # --keras-functions Keras' own two nested ones (which cannot be traced apart from running).
    model.make_train_function()
    if args.keras_functions:
        keras.Model.make_train_function(model, force=True)
    step = model.train_function
    start = time.perf_counter()
    operations = None
    if isinstance(step, OneFunctionStep):
        graph = step.step_on_iterator.get_concrete_function(iterator).graph.as_graph_def()
        # The step's ops, those of its branches (the skip-if-non-finite update) included.
        operations = len(graph.node) + sum(len(f.node_def) for f in graph.library.function)
    trace_s = time.perf_counter() - start
    stages["step traced"] = rss_mb()

    start = time.perf_counter()
    float(step(iterator)["loss"])
    first_step_s = time.perf_counter() - start
    stages["first step"] = rss_mb()
    first_peak = peak_rss_mb()
    trimmed = release_free_heap()
    stages["garbage returned"] = rss_mb()
    start = time.perf_counter()
    for _ in range(args.steps):
        float(step(iterator)["loss"])
    step_s = (time.perf_counter() - start) / max(args.steps, 1)
    stages["later steps"] = rss_mb()

    result = {
        "batch_size": args.batch_size,
        "parameters": int(network.count_params()),
        "graph_operations": operations,
        "trace_s": round(trace_s, 1),
        "first_step_s": round(first_step_s, 1),
        "step_s": round(step_s, 3),
        "rss_mb": {name: round(value) for name, value in stages.items()},
        "peak_rss_first_step_mb": round(first_peak),
        "peak_rss_mb": round(peak_rss_mb()),
        "malloc_trim": trimmed,
    }
    if os.environ.get("TF_CPU_ALLOCATOR_USE_BFC") == "true":
        info = tf.config.experimental.get_memory_info("CPU:0")
        result["tensor_mb"] = {"now": round(info["current"] / 2**20),
                               "peak": round(info["peak"] / 2**20)}
    return result


# ===== Driver =====


def run_ours(args, batch_size, bfc, keras_functions=False):
    env = dict(os.environ)
    if bfc:
        env["TF_CPU_ALLOCATOR_USE_BFC"] = "true"
    command = [sys.executable, os.path.abspath(__file__), "--measure", "--model", args.model,
               "--batch-size", str(batch_size), "--steps", str(args.steps)]
    if keras_functions:
        command.append("--keras-functions")
    return _json_from(subprocess.run(command, env=env, capture_output=True, text=True))


def run_pytorch(args, batch_size):
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "benchmark_pytorch_reference.py")
    command = [args.pytorch, script, "--model", args.model, "--batch-size", str(batch_size),
               "--warmup", "1", "--steps", str(args.steps)]
    result = _json_from(subprocess.run(command, capture_output=True, text=True))
    return {"batch_size": batch_size, "imported_mb": result["peak_rss_at_start_mb"],
            "peak_rss_mb": result["peak_rss_mb"], "torch": result["torch"]}


def _json_from(process):
    if process.returncode != 0:
        raise RuntimeError(f"a measuring process failed:\n{process.stderr[-3000:]}")
    return json.loads(process.stdout.strip().splitlines()[-1])


def breakdown(full, full_bfc, one):
    """Our peak split into parts (MB), from the runs at the batch size and at batch 1."""
    rss, tensors = full["rss_mb"], full_bfc["tensor_mb"]
    fixed_runtime = one["peak_rss_first_step_mb"] - one["rss_mb"]["step traced"]
    return {
        "TensorFlow, Keras, keras_ddpm imported": rss["imported"],
        "model, EMA copy, Adam moments": rss["model built"] - rss["imported"],
        f"traced graph ({full['graph_operations']} ops, Python objects)":
            rss["step traced"] - rss["model built"],
        "runtime graph and first-step garbage (batch 1 run)": fixed_runtime,
        "of which returned by malloc_trim": one["peak_rss_first_step_mb"]
        - one["rss_mb"]["garbage returned"],
        "tensors at the step's peak beyond the persistent ones (BFC)":
            tensors["peak"] - tensors["now"],
        "rest (allocator, oneDNN, fragmentation)": full["peak_rss_mb"] - rss["step traced"]
        - fixed_runtime - (tensors["peak"] - tensors["now"]),
        "peak": full["peak_rss_mb"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=sorted(MODELS), default="cifar10")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="images per step; defaults to the model's (32 or 128).")
    parser.add_argument("--steps", type=int, default=10, help="steps after the first one.")
    parser.add_argument("--keras-functions", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--pytorch", metavar="PYTHON", default=None,
                        help="an interpreter with torch and diffusers for the reference.")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    args.batch_size = args.batch_size or MODELS[args.model][1]
    if args.measure:
        print(json.dumps(measure(args)))
        return

    from keras_ddpm.backend import hardware

    runs = {
        "ours": run_ours(args, args.batch_size, bfc=False),
        "ours_bfc": run_ours(args, args.batch_size, bfc=True),
        "ours_batch_1": run_ours(args, 1, bfc=False),
        "ours_keras_functions": run_ours(args, args.batch_size, bfc=False, keras_functions=True),
    }
    if args.pytorch:
        runs["pytorch"] = run_pytorch(args, args.batch_size)
        runs["pytorch_batch_1"] = run_pytorch(args, 1)
    parts = breakdown(runs["ours"], runs["ours_bfc"], runs["ours_batch_1"])
    flags = hardware.cpu_flags() or set()
    result = {
        "model": args.model,
        "batch_size": args.batch_size,
        "cpu": platform.processor() or platform.machine(),
        "cpu_flags": sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}),
        "runs": runs,
        "breakdown_mb": parts,
    }
    width = max(len(name) for name in parts)
    print(f"{args.model} U-Net, batch {args.batch_size}, training (Adam + EMA), float32; "
          f"CPU flags {' '.join(result['cpu_flags'])}")
    for name, value in parts.items():
        print(f"  {name:<{width}}  {value:>6} MB")
    if args.pytorch:
        torch_full, torch_one = runs["pytorch"], runs["pytorch_batch_1"]
        print(f"  PyTorch {torch_full['torch']}: imported {torch_full['imported_mb']} MB, "
              f"peak {torch_full['peak_rss_mb']} MB (batch 1: {torch_one['peak_rss_mb']} MB)")
        print(f"  ours at batch 1: peak {runs['ours_batch_1']['peak_rss_mb']} MB")
    print(f"  with Keras' nested step functions instead: peak "
          f"{runs['ours_keras_functions']['peak_rss_mb']} MB")
    write_results(result, f"memory_{args.model}", args.output)


if __name__ == "__main__":
    main()
