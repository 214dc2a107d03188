"""Training and sampling speed on one NVIDIA GPU: keras_ddpm on JAX against diffusers on PyTorch.

Issue 37's GPU figures, measured in one run on a machine with a GPU, JAX and PyTorch but no
TensorFlow and no network (Keras, diffusers and what they need arrive as wheels; keras_ddpm is
this checkout, on `PYTHONPATH`):

1. `jax float32` and `jax mixed_bfloat16`: `keras_ddpm.DDPM` around `UNet.from_preset(PRESET)`
   (default `ddpm_cifar10`, 35.7M parameters, 32x32x3) trained with `fit` on NumPy arrays, Adam
   (2e-4) with the EMA on, batch `--batch-size` (128). `--warmup` steps (which compile the
   step) then `--steps` timed steps in one `fit`; images a second = steps x batch / its time.
2. `torch bf16`: diffusers' `UNet2DModel` built from the same U-Net's config
   (`keras_ddpm.pretrained.diffusers_unet_config`, so the two networks are the same
   architecture), trained as diffusers' own examples do: eager, `torch.autocast` to bfloat16,
   the same ε-prediction MSE at t uniform over 1000 steps of the linear schedule, Adam (fused)
   and an EMA of the weights; images on the GPU. Warm-up and timed steps as above, timed
   between two `torch.cuda.synchronize()`.
3. `jax sample`: `DDPM.generate(--sample-images, sampler="dpm_solver", steps=--sample-steps)`
   (DPM-Solver++(2M), 256 images in 20 steps by default), float32: the first call (compiling)
   and the best of two more.
4. `jax folder`: part 1's `mixed_bfloat16` run with its images read from a folder of PNGs
   (`--steps` x `--batch-size` random pictures at the U-Net's size, written first) through
   `keras_ddpm.data.load_image_folder_batches` with `--workers` threads, not from arrays:
   whether decoding keeps up with the GPU (its img/s against part 2's). Also one pass over
   the batches in this thread alone (`read_images_per_second`), the decoding bound.

Each part runs in its own process (each framework takes the GPU's memory for itself); the
script prints one table and writes the figures as JSON (`--output`). `--quick` shrinks every
size so that the script can be checked on a CPU in a minute (`--preset digits`, batch 8,
2 steps, 8 images in 3 steps); its figures mean nothing.

On the device machine (the `device` tool), from the repository root, wheels in `.whl`
(`benchmarks/gpu/fetch_wheels.sh` downloads them here):

    bash benchmarks/gpu/run_on_gpu.sh          # installs the wheels, runs this, figures in $OUT

References:
    - Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020 (the
      CIFAR-10 U-Net: 35.7M parameters, batch 128).
    - Lu et al., "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic
      Models", 2022.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PARTS = ("jax float32", "jax mixed_bfloat16", "torch bf16", "jax sample", "jax folder")
RESULT_PREFIX = "RESULT "


def random_images(count, shape, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, size=(count, *shape)).astype("float32")


def unet_config(preset):
    """`UNet.from_preset(preset).get_config()`, built on the CPU."""
    import keras_ddpm

    return keras_ddpm.UNet.from_preset(preset).get_config()


# ===== JAX =====


def jax_train(args, policy):
    import jax
    import keras
    import keras_ddpm

    keras.mixed_precision.set_global_policy(policy)
    model = keras_ddpm.DDPM(keras_ddpm.UNet.from_preset(args.preset), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(2e-4))
    shape = tuple(model.image_shape)
    fit = dict(batch_size=args.batch_size, epochs=1, shuffle=False, verbose=0)
    started = time.perf_counter()
    model.fit(random_images(args.warmup * args.batch_size, shape), **fit)
    warmup = time.perf_counter() - started
    images = random_images(args.steps * args.batch_size, shape, seed=1)
    started = time.perf_counter()
    history = model.fit(images, **fit)  # its loss, read back at the end, waits for every step
    seconds = time.perf_counter() - started
    return {
        "part": f"jax {policy}", "device": str(jax.devices()[0]),
        "parameters": model.network.count_params(), "batch_size": args.batch_size,
        "steps": args.steps, "seconds": seconds, "images_per_second":
        args.steps * args.batch_size / seconds, "warmup_seconds": warmup,
        "loss": history.history["loss"][-1],
        "tensorflow_loaded": sys.modules.get("tensorflow") is not None,
    }


def jax_folder(args):
    """Part 1 in `mixed_bfloat16`, its timed images read from a folder of PNGs."""
    import tempfile

    import jax
    import keras
    import numpy as np
    from PIL import Image

    import keras_ddpm

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = keras_ddpm.DDPM(keras_ddpm.UNet.from_preset(args.preset), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(2e-4))
    shape = tuple(model.image_shape)
    count = args.steps * args.batch_size
    folder = tempfile.mkdtemp(prefix="folder_benchmark_")
    pixels = np.random.default_rng(0).integers(0, 256, (count, *shape), dtype=np.uint8)
    for i, picture in enumerate(pixels):
        Image.fromarray(picture[..., 0] if shape[2] == 1 else picture).save(
            os.path.join(folder, f"{i:05d}.png"))
    options = dict(image_size=shape[:2], batch_size=args.batch_size, channels=shape[2], seed=0)
    started = time.perf_counter()
    batches = keras_ddpm.data.load_image_folder_batches(folder, workers=1, **options)
    check_seconds = time.perf_counter() - started  # lists and decodes every file once
    started = time.perf_counter()
    for index in range(len(batches)):
        batches[index]
    read_seconds = time.perf_counter() - started
    fit = dict(epochs=1, verbose=0)
    batches = keras_ddpm.data.load_image_folder_batches(folder, workers=args.workers, **options)
    started = time.perf_counter()
    model.fit(batches, steps_per_epoch=args.warmup, **fit)  # compiles the step for a PyDataset
    warmup = time.perf_counter() - started
    batches = keras_ddpm.data.load_image_folder_batches(folder, workers=args.workers, **options)
    started = time.perf_counter()
    history = model.fit(batches, **fit)
    seconds = time.perf_counter() - started
    return {
        "part": "jax folder", "device": str(jax.devices()[0]),
        "parameters": model.network.count_params(), "batch_size": args.batch_size,
        "steps": args.steps, "workers": args.workers, "seconds": seconds,
        "images_per_second": count / seconds, "warmup_seconds": warmup,
        "check_seconds": check_seconds, "read_images_per_second": count / read_seconds, "loss": history.history["loss"][-1],
    }


def jax_sample(args):
    import jax
    import keras_ddpm

    model = keras_ddpm.DDPM(keras_ddpm.UNet.from_preset(args.preset), seed=0)
    call = dict(sampler="dpm_solver", steps=args.sample_steps, seed=0, verbose=0)
    times = []
    for _ in range(3):
        started = time.perf_counter()
        images = model.generate(args.sample_images, **call)  # NumPy: every step has run
        times.append(time.perf_counter() - started)
    return {
        "part": "jax sample", "device": str(jax.devices()[0]),
        "parameters": model.network.count_params(), "images": args.sample_images,
        "sample_steps": args.sample_steps, "first_call_seconds": times[0],
        "seconds": min(times[1:]), "finite": bool((abs(images) < 1e9).all()),
    }


# ===== PyTorch (diffusers) =====


def torch_train(args):
    import torch
    import torch.nn.functional as F
    from diffusers import UNet2DModel

    from keras_ddpm.pretrained import diffusers_unet_config

    config = {
        key: value for key, value in diffusers_unet_config(unet_config(args.preset)).items()
        if not key.startswith("_") and key != "num_train_timesteps"
    }
    device = "cuda" if torch.cuda.is_available() else "cpu"
    network = UNet2DModel(**config).to(device).train()
    params = [p for p in network.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=2e-4, fused=device == "cuda")
    ema = [p.detach().clone() for p in params]
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64, device=device)
    alphas_cumprod = torch.cumprod(1.0 - betas, 0).float()
    generator = torch.Generator(device=device).manual_seed(0)
    shape = (args.batch_size, config["in_channels"], *([config["sample_size"]] * 2))

    def step():
        x0 = torch.rand(shape, generator=generator, device=device) * 2.0 - 1.0
        t = torch.randint(0, 1000, (args.batch_size,), generator=generator, device=device)
        noise = torch.randn(shape, generator=generator, device=device)
        abar = alphas_cumprod[t].view(-1, 1, 1, 1)
        x_t = abar.sqrt() * x0 + (1.0 - abar).sqrt() * noise
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            prediction = network(x_t, t).sample
        loss = F.mse_loss(prediction.float(), noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, params, 1.0 - 0.9999)
        return loss

    def synchronize():
        if device == "cuda":
            torch.cuda.synchronize()

    started = time.perf_counter()
    for _ in range(args.warmup):
        step()
    synchronize()
    warmup = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    synchronize()
    seconds = time.perf_counter() - started
    return {
        "part": "torch bf16", "device": torch.cuda.get_device_name() if device == "cuda" else
        "cpu", "parameters": sum(p.numel() for p in params), "batch_size": args.batch_size,
        "steps": args.steps, "seconds": seconds,
        "images_per_second": args.steps * args.batch_size / seconds, "warmup_seconds": warmup,
        "loss": float(loss), "torch": torch.__version__,
    }


# ===== The driver =====


def run_part(part, args):
    """Runs `part` in a child process; its result dict, or one with the error."""
    environment = dict(os.environ, KERAS_BACKEND="jax")
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [ROOT, environment.get("PYTHONPATH")])
    )
    if part.startswith("torch"):
        environment["JAX_PLATFORMS"] = "cpu"  # keras_ddpm builds the config; the GPU is torch's
    command = [sys.executable, os.path.abspath(__file__), "--part", part, *child_arguments(args)]
    started = time.perf_counter()
    done = subprocess.run(command, env=environment, capture_output=True, text=True,
                          timeout=args.part_timeout)
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX):])
            result["process_seconds"] = time.perf_counter() - started
            return result
    return {"part": part, "error": (done.stderr or done.stdout)[-2000:]}


def child_arguments(args):
    names = ("preset", "batch_size", "steps", "warmup", "sample_images", "sample_steps", "workers")
    return [item for name in names for item in (f"--{name.replace('_', '-')}",
                                                  str(getattr(args, name)))]


def table(results):
    lines = [
        "| part | device | parameters | figure | seconds (first call / warm-up) |",
        "|---|---|---|---|---|",
    ]
    for result in results:
        if "error" in result:
            lines.append(f"| {result['part']} | failed | | see JSON | |")
            continue
        if "images_per_second" in result:
            figure = f"{result['images_per_second']:.1f} img/s (batch {result['batch_size']})"
            first = result["warmup_seconds"]
        else:
            figure = (f"{result['seconds']:.2f} s for {result['images']} images, "
                      f"{result['sample_steps']} steps")
            first = result["first_call_seconds"]
        lines.append(f"| {result['part']} | {result['device']} | {result.get('parameters', '')} "
                     f"| {figure} | {first:.1f} |")
    by_part = {result["part"]: result for result in results if "images_per_second" in result}
    if "jax folder" in by_part:
        folder = by_part["jax folder"]
        lines.append(f"\njax folder: decoding alone {folder['read_images_per_second']:.0f} img/s "
                     f"on one thread; fit with {folder['workers']} threads "
                     f"{folder['images_per_second']:.1f} img/s")
        if "jax mixed_bfloat16" in by_part:
            ratio = folder["images_per_second"] / by_part["jax mixed_bfloat16"][
                "images_per_second"]
            lines.append(f"jax folder / jax mixed_bfloat16 (arrays): {ratio:.2f}x")
    if "torch bf16" in by_part:
        for part in ("jax float32", "jax mixed_bfloat16"):
            if part in by_part:
                ratio = by_part[part]["images_per_second"] / by_part["torch bf16"][
                    "images_per_second"]
                lines.append(f"\n{part} / torch bf16: {ratio:.2f}x")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=PARTS, help="run one part here (the driver's child)")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated parts to run")
    parser.add_argument("--preset", default="ddpm_cifar10")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=40, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--sample-images", type=int, default=256)
    parser.add_argument("--sample-steps", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4, help="jax folder's decoding threads")
    parser.add_argument("--part-timeout", type=int, default=300, help="seconds a part may take")
    parser.add_argument("--output", help="where to write the JSON figures")
    parser.add_argument("--quick", action="store_true", help="tiny sizes to check it on a CPU")
    args = parser.parse_args(argv)
    if args.quick:
        args.preset, args.batch_size, args.steps, args.warmup = "digits", 8, 2, 1
        args.sample_images, args.sample_steps = 8, 3
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.part:
        run = {"jax float32": lambda: jax_train(args, "float32"),
               "jax mixed_bfloat16": lambda: jax_train(args, "mixed_bfloat16"),
               "torch bf16": lambda: torch_train(args), "jax sample": lambda: jax_sample(args),
               "jax folder": lambda: jax_folder(args)}
        print(RESULT_PREFIX + json.dumps(run[args.part]()), flush=True)
        return
    results = []
    for part in args.parts.split(","):
        results.append(run_part(part, args))
        print(json.dumps(results[-1]), flush=True)
        if args.output:  # after every part, so that a run cut short keeps what it measured
            with open(args.output, "w") as file:
                json.dump({"machine": platform.node(), "arguments": vars(args),
                           "results": results}, file, indent=1)
    print(table(results))


if __name__ == "__main__":
    main()
