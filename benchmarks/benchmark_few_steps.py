"""Sample quality against network evaluations (NFE) on the digits, per sampler and spacing.

Issue 38, done-when 4. A trained digits model generates `--num` images for each sampler,
order, spacing and NFE; quality is the KID (`keras_ddpm.metrics.KID`, ×10³) between those
images and the 1,797 real digits, with the features of a classifier trained here on the real
digits (the flattened activations of `sample_quality_digits.train_classifier`'s second
convolution; 99 % held-out accuracy): the Inception features of FID/KID mean nothing on 8×8
digits. The same seed gives every row the same starting noise, so rows differ only by the
sampler. The 1000-step ancestral row (`--reference-num` images) is the full chain's quality.

    python examples/train_digits.py --output outputs/digits
    python benchmarks/benchmark_few_steps.py outputs/digits/digits.keras [--num 1000]
"""

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_ddpm  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from sample_quality_digits import train_classifier  # noqa: E402

NFES = (5, 8, 10, 15, 20, 50)
# (sampler, options, spacing); the spacing None is the record's default.
CONFIGS = [
    ("ddim", {}, "trailing"),
    ("dpm_solver", {"order": 2}, "logsnr"),
    ("dpm_solver", {"order": 3}, "logsnr"),
    ("ipndm", {"order": 3}, "karras"),
    ("ipndm", {"order": 3}, "logsnr"),
    ("ipndm", {"order": 3}, "trailing"),
    ("ipndm", {"order": 4}, "karras"),
    ("ipndm", {"order": 4}, "logsnr"),
    ("unipc", {"order": 2}, "logsnr"),
    ("unipc", {"order": 3}, "logsnr"),
    ("unipc", {"order": 3}, "karras"),
    ("unipc", {"order": 3}, "trailing"),
    ("unipc", {"order": 2}, "trailing"),
    ("unipc", {"order": 2}, "karras"),
    ("dpm_solver", {"order": 2}, "trailing"),
    ("dpm_solver", {"order": 2}, "karras"),
    # `model.optimize_steps(num_steps=NFE)` first (256 trajectories; its time is printed).
    ("dpm_solver", {"order": 2}, "optimized"),
    ("ipndm", {"order": 3}, "optimized"),
    ("ipndm", {"order": 4}, "optimized"),
    ("unipc", {"order": 3}, "optimized"),
    ("unipc", {"order": 2}, "optimized"),
]


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(line for line in f if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return platform.processor()
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    return ", ".join(flag for flag in wanted if flag in flags)


def feature_model(classifier):
    """The classifier up to its flattened convolution features."""
    flatten = next(layer for layer in classifier.layers if isinstance(layer, keras.layers.Flatten))
    return keras.Model(classifier.inputs, flatten.output)


def kid(features, real, images):
    metric = keras_ddpm.metrics.KID(feature_extractor=features)
    metric.update_state(real, images)
    return float(metric.result()) * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a trained digits model (.keras)")
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--reference-num", type=int, default=500)
    parser.add_argument("--nfes", default=",".join(map(str, NFES)))
    parser.add_argument("--json", default=None, help="write the table here too")
    parser.add_argument("--only", default=None,
                        help="run the rows whose spacing is one of these (comma-separated)")
    parser.add_argument("--samplers", default=None,
                        help="run the rows of these samplers (comma-separated)")
    args = parser.parse_args()
    nfes = [int(n) for n in args.nfes.split(",")]

    classifier, accuracy = train_classifier()
    features = feature_model(classifier)
    real, _ = keras_ddpm.data.load_digits_arrays()
    model = keras.models.load_model(args.model)
    print(f"{args.model}; classifier held-out accuracy {accuracy:.3f}; {os.cpu_count()} cores "
          f"({cpu_flags()}); KID x1e3 against the {len(real)} real digits, {args.num} images a row")
    shuffled = real[np.random.default_rng(0).permutation(len(real))]
    half = len(real) // 2
    floor = kid(features, shuffled[:half], shuffled[half:])
    print(f"real against real (two random halves): {floor:.2f}")
    rows = []
    if args.reference_num:  # --reference-num 0 leaves the 1000-step row out
        start = time.perf_counter()
        images = model.generate(args.reference_num, sampler="ddpm", seed=0, verbose=0)
        reference = kid(features, real, images)
        print(f"ddpm, 1000 steps ({args.reference_num} images, "
              f"{time.perf_counter() - start:.0f} s): {reference:.2f}")
        rows.append({"sampler": "ddpm", "spacing": "trailing", "nfe": 1000, "kid_x1e3": reference})
    header = f"| {'sampler':16} | {'spacing':8} |" + "".join(f" {n:>4} |" for n in nfes)
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    searches = {}
    for sampler, options, spacing in CONFIGS:
        if args.only and spacing not in args.only.split(","):
            continue
        if args.samplers and sampler not in args.samplers.split(","):
            continue
        name = sampler + "".join(f"({v})" for v in options.values())
        values = []
        for nfe in nfes:
            if spacing == "optimized":
                start = time.perf_counter()
                model.optimize_steps(num_steps=nfe)
                searches[nfe] = time.perf_counter() - start
            images = model.generate(
                args.num, sampler=sampler, steps=nfe, timestep_spacing=spacing, seed=0,
                verbose=0, **options,
            )
            values.append(kid(features, real, images))
            rows.append({"sampler": name, "spacing": spacing, "nfe": nfe, "kid_x1e3": values[-1]})
        print(f"| {name:16} | {spacing:8} |" + "".join(f" {v:4.1f} |" for v in values), flush=True)
    if searches:
        print("optimize_steps seconds per NFE: "
              + ", ".join(f"{n}: {t:.1f}" for n, t in searches.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "num": args.num, "cpu": cpu_flags(),
                       "real_floor": floor, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
