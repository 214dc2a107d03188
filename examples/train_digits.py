"""Train a DDPM on the embedded 8x8 digits and write a sample grid and a saved model.

This is the README quick start as a script: no download, a few minutes on a
2-core CPU.

    python examples/train_digits.py --output outputs/digits --epochs 50

The grid is sampled with DPM-Solver++ in 20 steps (`--sampler`, `--steps`): on this
model it gave digits as recognisable as the paper's 1000 ancestral steps (README,
"Samplers on the digits"), and 64 images took 2.1 s against 20.4-21.1 s.
"""

import argparse
import os
import time

import keras

import keras_ddpm


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="outputs/digits", help="folder for the PNG grid and the .keras model")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--base-channels", type=int, default=32)
    parser.add_argument("--num-res-blocks", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sampler", default="dpm_solver", help="a name of keras_ddpm.samplers.sampler_names()")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps; the sampler's default if omitted")
    args = parser.parse_args(argv)
    os.makedirs(args.output, exist_ok=True)
    keras.utils.set_random_seed(args.seed)

    schedule = keras_ddpm.NoiseSchedule("linear", timesteps=1000)
    network = keras_ddpm.UNet(
        image_shape=(8, 8, 1),
        base_channels=args.base_channels,
        channel_multipliers=(1, 2),
        num_res_blocks=args.num_res_blocks,
        attention_resolutions=(4,),
        dropout=0.0,
    )
    model = keras_ddpm.DDPM(network, schedule=schedule, ema_decay=0.999, seed=args.seed)
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate))

    start = time.time()
    model.fit(keras_ddpm.data.load_digits(batch_size=args.batch_size, seed=args.seed), epochs=args.epochs)
    print(f"trained {args.epochs} epochs in {time.time() - start:.0f} s")

    start = time.time()
    # float32 (64, 8, 8, 1) in [-1, 1]
    images = model.generate(64, sampler=args.sampler, steps=args.steps, seed=args.seed)
    print(f"sampled 64 images ({args.sampler}) in {time.time() - start:.1f} s")
    grid = keras_ddpm.utils.save_image_grid(images, os.path.join(args.output, "digits.png"))
    model_path = os.path.join(args.output, "digits.keras")
    model.save(model_path)
    print(f"wrote {grid} and {model_path}")
    return model


if __name__ == "__main__":
    main()
