"""diffusers checkpoints: agreement with diffusers, and the cost of converting real sizes.

Two parts, printed as one JSON object each:

1. **agreement**: the golden fixtures of tests/fixtures/diffusers (written by
   diffusers itself) are loaded with `DDPM.from_pretrained`; prints the largest
   difference of the network outputs (against diffusers' float32 and float64
   runs), of the 10-step DDIM trajectory and of the schedule tables.
2. **scale**: a DDPM with the google/ddpm-cifar10-32 architecture
   (`UNet.from_preset("ddpm_cifar10")`, 35.7M parameters; untrained weights: the
   figures do not depend on them) is written with `save_pretrained`, then, in a
   fresh process, read back with `DDPM.from_pretrained` (time and peak resident
   memory of that process, before and after the load) and converted with
   `keras-ddpm convert FOLDER OUT.keras` (wall time of the whole command).
   `--networks ddpm_cifar10,ddpm_celebahq256` adds the 113.7M network of the
   256x256 checkpoints.

    python benchmarks/benchmark_pretrained.py
    python benchmarks/benchmark_pretrained.py --networks ddpm_cifar10,ddpm_celebahq256

Nothing is downloaded: google/ddpm-cifar10-32 itself has the same tensor names
and shapes as the folder written here (tests/test_pretrained.py checks the layout
against what diffusers writes).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

import keras_ddpm
from keras_ddpm.samplers.ddim import ddim_step

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "diffusers")

# What the `keras-ddpm` entry point runs.
CLI = "import sys; from keras_ddpm.cli import main; sys.exit(main(sys.argv[1:]))"

# Runs in a fresh process: the cost a user pays for `DDPM.from_pretrained(folder)`.
LOAD = """
import json, sys, time

def memory_mb():  # (resident now, peak resident) of this process, from /proc
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return tuple(round(int(fields[key].split()[0]) / 1024) for key in ("VmRSS", "VmHWM"))

start = time.perf_counter()
import keras, keras_ddpm
keras.ops.zeros(1)  # TensorFlow's runtime is up before the clock starts
imported = time.perf_counter()
rss_before, _ = memory_mb()
model = keras_ddpm.DDPM.from_pretrained(sys.argv[1])
loaded = time.perf_counter()
rss_after, peak = memory_mb()
print(json.dumps({
    "import_s": round(imported - start, 2),
    "from_pretrained_s": round(loaded - imported, 2),
    "rss_mb_before_load": rss_before,
    "rss_mb_after_load": rss_after,
    "peak_rss_mb": peak,
    "parameters": model.network.count_params(),
}))
"""


def cpu_description():
    name, flags = platform.processor(), set()
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    return {"cpu": name, "flags": [flag for flag in wanted if flag in flags], "cores": os.cpu_count()}


def ddim_difference(model, reference, name, clip, trajectory):
    key = f"{name}/ddim"
    timesteps = [int(step) for step in reference[f"{key}/timesteps"]]
    x, worst = reference[f"{key}/x_T"], 0.0
    for i, step in enumerate(timesteps):
        now = np.full(len(x), step, "int32")
        prev = np.full(len(x), timesteps[i + 1] if i + 1 < len(timesteps) else -1, "int32")
        prediction = np.asarray(model.network([x, now]))
        ours = np.asarray(
            ddim_step(model.schedule, x, now, prev, prediction, np.zeros_like(x), clip=clip)
        )
        theirs = reference[f"{key}/{trajectory}"][i]
        scale = 1.0 if clip else np.abs(theirs).max()
        worst = max(worst, float(np.abs(ours - theirs).max() / scale))
        x = theirs
    return worst


def agreement():
    with np.load(os.path.join(FIXTURES, "reference.npz")) as data:
        reference = {key: data[key] for key in data.files}
    results = {}
    for name in ("cifar10_like", "celebahq_like"):
        model = keras_ddpm.DDPM.from_pretrained(os.path.join(FIXTURES, name), ema_decay=None)
        x, t = reference[f"{name}/x"], reference[f"{name}/t"].astype("int32")
        ours = np.asarray(model.network([x, t]), "float64")
        theirs = reference[f"{name}/out"]
        row = {
            "parameters": model.network.count_params(),
            "output_scale": float(np.abs(theirs).max()),
            "max_diff_vs_diffusers_f32": float(np.abs(ours - theirs).max()),
        }
        if f"{name}/out_f64" in reference:
            row["max_diff_vs_diffusers_f64"] = float(np.abs(ours - reference[f"{name}/out_f64"]).max())
        # DDIM, 10 "leading" steps from diffusers' x_T, each step from diffusers' previous x;
        # without clipping a random network's x reaches |x| ~ 1e3, so relative to each step's
        # largest value; with clipping (use_clipped_model_output=True there), absolute.
        for clip, trajectory in ((False, "x_noclip"), (True, "x_clipped_eps")):
            row[f"ddim_10_steps_{trajectory}_max_diff"] = ddim_difference(
                model, reference, name, clip, trajectory
            )
        row["alphas_cumprod_max_diff_vs_f64"] = float(
            np.abs(model.schedule.alphas_cumprod - reference[f"{name}/schedule/alphas_cumprod_f64"]).max()
        )
        results[name] = row
    return results


def scale(network_name, workdir):
    model = keras_ddpm.DDPM(keras_ddpm.UNet.from_preset(network_name), ema_decay=None)
    folder = os.path.join(workdir, network_name)
    start = time.perf_counter()
    model.save_pretrained(folder)
    saved = time.perf_counter() - start
    weights = os.path.join(folder, "unet", "diffusion_pytorch_model.safetensors")
    row = {
        "network": network_name,
        "parameters": model.network.count_params(),
        "save_pretrained_s": round(saved, 2),
        "safetensors_mb": round(os.path.getsize(weights) / 2**20, 1),
    }
    del model
    load = subprocess.run(
        [sys.executable, "-c", LOAD, folder], capture_output=True, text=True, check=True
    )
    row.update(json.loads(load.stdout.strip().splitlines()[-1]))
    out = os.path.join(workdir, network_name + ".keras")
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", CLI, "convert", folder, out],
        capture_output=True, text=True, check=True,
    )
    row["cli_convert_s"] = round(time.perf_counter() - start, 2)
    row["keras_file_mb"] = round(os.path.getsize(out) / 2**20, 1)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", default="ddpm_cifar10",
                        help="comma-separated UNet presets (default: %(default)s)")
    parser.add_argument("--skip-agreement", action="store_true")
    args = parser.parse_args()
    print(json.dumps({"machine": cpu_description()}))
    if not args.skip_agreement:
        print(json.dumps({"agreement": agreement()}))
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.networks.split(","):
            print(json.dumps({"scale": scale(name.strip(), workdir)}))


if __name__ == "__main__":
    main()
