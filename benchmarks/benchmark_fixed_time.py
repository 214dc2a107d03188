"""Digits sample quality after the same wall-clock training time, keras_ddpm against PyTorch.

Issue 17 asks for speed because, within a fixed time, more steps give better samples. This
measures that outcome directly. Each side trains the quick-start U-Net
(`examples/train_digits.py`: width 32, one residual block a level, attention at 4x4, 701,345
parameters) on the embedded digits with the quick-start recipe (batch 128, Adam at 2e-3, EMA
0.999 with warm-up) for `--seconds` of wall time, counted from before the model is built (so our
tracing counts against us), then draws `--num` images with the EMA weights and 20
DPM-Solver++(2M) steps: `DDPM.generate` here, diffusers' scheduler in PyTorch
(`pytorch_digits_in_fixed_time.py`). Sides alternate, each in its own process. Each library
samples with its own defaults, which differ: `generate` clips x̂_0 to [-1, 1] at every step and
spaces the steps in log-SNR, diffusers' scheduler does neither; so our side also draws the
same number with `clip=False, timestep_spacing="trailing"` (`*_noclip_trailing`), to tell the
sampler's part of a difference from the training's.

Both sets are judged by the digit classifier of `sample_quality_digits.py` (trained here on
1,500 real digits, 99 % held-out accuracy):

- `KID`: the kernel inception distance (Bińkowski et al., 2018) between the 1,797 real digits
  and the samples, on the classifier's 2,048 penultimate features (×1000; lower is better;
  the real digits against themselves give about 0);
- `confident`: the share of samples given one class with probability > 0.9 (real digits 0.99);
- `entropy`: of the predicted class histogram (3.32 bits when all ten digits are equally common).

    python benchmarks/benchmark_fixed_time.py --pytorch /path/to/venv/bin/python --seconds 300

`--recipes quickstart,diffusers` adds the PyTorch side trained with diffusers'
`train_unconditional.py` defaults (see `pytorch_digits_in_fixed_time.py`); `--variants` picks
our side's variants (`VARIANTS`) for the recipe ablation.

References:
    - [Ho et al., 2020. Denoising Diffusion Probabilistic Models](https://arxiv.org/abs/2006.11239)
    - [Bińkowski et al., 2018. Demystifying MMD GANs](https://arxiv.org/abs/1801.01401)
"""

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# Our side's training variants (`--variants`) over the quick-start recipe, for the ablation of
# issue 38 (done-when 5): DDPM keyword arguments (`model`), and `cosine`: the learning rate
# follows a cosine from 2e-3 to 0 over the wall-clock budget (as the PyTorch side's
# `diffusers` recipe does after its warm-up).
VARIANTS = {
    "base": {},
    "immiscible": {"model": {"noise_assignment": "immiscible"}},
    "no_ema_warmup": {"model": {"ema_warmup": False}},
    "cosine": {"cosine": True},
}


def train_ours(args):
    """The quick-start model, trained for `args.seconds`; saves `args.num` samples."""
    import keras
    import numpy as np

    import keras_ddpm

    sys.path.insert(0, HERE)
    from benchmark_speed import MODELS

    start = time.perf_counter()
    keras.utils.set_random_seed(args.seed)
    network = keras_ddpm.UNet(**MODELS["quickstart"][0])
    model = keras_ddpm.DDPM(
        network, schedule=keras_ddpm.NoiseSchedule("linear", timesteps=1000),
        ema_decay=0.999, seed=args.seed, **VARIANTS[args.variant].get("model", {}),
    )
    model.compile(optimizer=keras.optimizers.Adam(2e-3))

    class Deadline(keras.callbacks.Callback):
        """Stops at the first batch that ends after the budget; records Keras' running loss.

        Keras logs the epoch's mean so far, so `last_100_loss` lags the PyTorch side's mean of
        its last 100 batch losses a little; the samples, not the loss, are what is compared.
        """

        losses = []

        def on_train_batch_end(self, batch, logs=None):
            Deadline.losses.append(float(logs["loss"]))
            if time.perf_counter() - start >= args.seconds:
                self.model.stop_training = True

    class TimeCosine(keras.callbacks.Callback):
        """The learning rate 2e-3 · ½(1 + cos(π · elapsed / budget)), set before each batch."""

        def on_train_batch_begin(self, batch, logs=None):
            progress = min(1.0, (time.perf_counter() - start) / args.seconds)
            self.model.optimizer.learning_rate.assign(1e-3 * (1.0 + math.cos(math.pi * progress)))

    callbacks = [Deadline()]
    if VARIANTS[args.variant].get("cosine"):
        callbacks.append(TimeCosine())
    data = keras_ddpm.data.load_digits(batch_size=128, seed=args.seed)
    history = model.fit(data, epochs=10_000, verbose=0, callbacks=callbacks)
    train_s = time.perf_counter() - start
    steps = int(model.optimizer.iterations)
    epochs = len(history.history["loss"])
    # Every full epoch is 1,797 images in 15 batches; the last epoch may have stopped early.
    seen = 1797 * (epochs - 1) + min(1797, 128 * (steps - 15 * (epochs - 1)))
    start = time.perf_counter()
    images = model.generate(args.num, sampler="dpm_solver", steps=20, seed=args.seed, verbose=0)
    sample_s = time.perf_counter() - start
    np.save(args.out, np.asarray(images))
    # The same network with diffusers' defaults instead of ours: no x̂_0 clipping, steps spaced
    # evenly from T - 1 rather than in log-SNR, so that the sampler's part of a gap shows.
    images = model.generate(args.num, sampler="dpm_solver", steps=20, seed=args.seed, verbose=0,
                            clip=False, timestep_spacing="trailing")
    np.save(variant_path(args.out), np.clip(images, -1.0, 1.0))
    return {
        "framework": "keras_ddpm", "variant": args.variant, "keras_ddpm": keras_ddpm.__version__,
        "train_s": round(train_s, 1), "steps": steps, "epochs_started": epochs,
        "images_per_s": round(seen / train_s, 1),
        "last_100_loss": round(float(np.mean(Deadline.losses[-100:])), 4),
        "sample_s": round(sample_s, 2), "parameters": network.count_params(),
    }


def side_name(result):
    """A run's name in the tables: the framework, and its variant or recipe unless the base one."""
    variant = result.get("variant", result.get("recipe", "base"))
    return result["framework"] + ("" if variant in ("base", "quickstart") else f"_{variant}")


def variant_path(out):
    """Where `train_ours` saves its samples drawn with diffusers' default settings."""
    return out[: -len(".npy")] + "_noclip_trailing.npy"


def run(command):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    output = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def judge(paths):
    """KID x 1000 on the classifier's features, confident share and class entropy per file."""
    import keras
    import numpy as np

    import keras_ddpm
    from sample_quality_digits import classify
    from sample_quality_digits import train_classifier

    classifier, accuracy = train_classifier()
    features = keras.Model(classifier.inputs, classifier.layers[-2].output)
    real, _ = keras_ddpm.data.load_digits_arrays()
    scores = {"classifier_accuracy": round(float(accuracy), 4)}
    for name, path in [("real", None), *paths.items()]:
        images = real if path is None else np.load(path)
        kid = keras_ddpm.metrics.KID(feature_extractor=features, subset_size=500, seed=0)
        kid.update_state(real, images)
        confident, _, entropy = classify(classifier, images)
        scores[name] = {
            "kid_x1000": round(1000 * float(kid.result()), 2),
            "kid_std_x1000": round(1000 * float(kid.result_std()), 2),
            "confident": round(confident, 3),
            "entropy_bits": round(entropy, 2),
        }
    return scores


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pytorch", metavar="PYTHON", help="an interpreter with torch and diffusers")
    parser.add_argument("--recipes", default="quickstart",
                        help="the PyTorch side's recipes, comma-separated, of quickstart,diffusers "
                             "(pytorch_digits_in_fixed_time.RECIPES)")
    parser.add_argument("--seconds", type=float, default=300.0, help="training budget a side")
    parser.add_argument("--num", type=int, default=500, help="samples a side")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds (seeds 0, 1, …)")
    parser.add_argument("--output", default=None, help="JSON file for the results")
    parser.add_argument("--variants", default="base",
                        help=f"our side's variants, comma-separated, of {list(VARIANTS)}")
    parser.add_argument("--variant", default="base", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--phase", choices=["ours"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "ours":
        print(json.dumps(train_ours(args)))
        return

    sys.path.insert(0, HERE)
    import numpy as np

    import keras_ddpm
    from benchmark_speed import _cpu_name

    flags = sorted(f for f in keras_ddpm.backend.hardware.cpu_flags() or () if f.startswith(("avx", "amx")))
    folder = tempfile.mkdtemp(prefix="fixed_time_")
    digits = os.path.join(folder, "digits.npy")
    np.save(digits, keras_ddpm.data.load_digits_arrays()[0])
    runs, paths = [], {}
    for seed in range(args.rounds):
        sides = [
            ("keras_ddpm" if variant == "base" else f"keras_ddpm_{variant}",
             [sys.executable, __file__, "--phase", "ours", "--variant", variant])
            for variant in args.variants.split(",")
        ]
        for recipe in args.recipes.split(",") if args.pytorch else ():
            name = "pytorch" if recipe == "quickstart" else f"pytorch_{recipe}"
            script = os.path.join(HERE, "pytorch_digits_in_fixed_time.py")
            sides.append((name, [args.pytorch, script, digits, "--recipe", recipe]))
        for name, command in sides if seed % 2 == 0 else sides[::-1]:
            out = os.path.join(folder, f"{name}_{seed}.npy")
            if name.startswith("keras_ddpm"):
                command = [*command, "--out", out]
            else:
                command = [*command, out]
            command += ["--seconds", str(args.seconds), "--num", str(args.num), "--seed", str(seed)]
            result = run(command)
            result["seed"] = seed
            runs.append(result)
            paths[f"{name}_{seed}"] = out
            if name.startswith("keras_ddpm"):
                paths[f"{name}_{seed}_noclip_trailing"] = variant_path(out)
            print(json.dumps(result), flush=True)
    scores = judge(paths)
    print(f"\n{_cpu_name()}, {os.cpu_count()} cores; flags {' '.join(flags)}")
    print(f"budget {args.seconds:.0f} s a side; digit classifier held-out accuracy "
          f"{scores['classifier_accuracy']:.3f}")
    print(f"{'run':<30}{'steps':>7}{'img/s':>8}{'loss':>8}{'KIDx1000':>14}{'confident':>11}{'entropy':>9}")
    for key in ["real", *paths]:
        run_ = next((r for r in runs if f"{side_name(r)}_{r['seed']}" == key), {})
        s = scores[key]
        print(f"{key:<30}{run_.get('steps', ''):>7}{run_.get('images_per_s', ''):>8}"
              f"{run_.get('last_100_loss', ''):>8}{s['kid_x1000']:>8} ±{s['kid_std_x1000']:<4}"
              f"{s['confident']:>11}{s['entropy_bits']:>9}")
    output = args.output or os.path.join(
        HERE, "results", time.strftime("fixed_time_%Y%m%d_%H%M%S.json"))
    with open(output, "w") as file:
        json.dump({"cpu": _cpu_name(), "flags": flags, "python": platform.python_version(),
                   "seconds": args.seconds, "runs": runs, "scores": scores}, file, indent=1)
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
