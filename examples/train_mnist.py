"""Train a DDPM on MNIST from TensorFlow Datasets.

The digits are resized to 32x32 so that the U-Net can halve them twice. TFDS
downloads MNIST (~20 MB) on the first run. On a GPU an epoch takes about a
minute; recognisable digits appear after a few epochs.

    python examples/train_mnist.py --output outputs/mnist --epochs 20

Re-running the same command resumes an interrupted run (`RunBackup`, whose backups
a kill cannot damage; it is removed only once `model.keras` is written).
`--smoke` shrinks everything (network, schedule, data) to check that the
script runs, in seconds.
"""

import argparse
import os

import keras

import keras_ddpm

# Hyperparameters (Ho et al. 2020, scaled down for 32x32 grayscale digits).
IMAGE_SIZE = 32
NETWORK = dict(
    base_channels=64,
    channel_multipliers=(1, 2, 2),
    num_res_blocks=2,
    attention_resolutions=(8,),
    dropout=0.1,
)
TIMESTEPS = 1000
LEARNING_RATE = 2e-4
WARMUP_STEPS = 5000
EMA_DECAY = 0.9999
# Smoke mode: the smallest settings that exercise every line.
SMOKE_NETWORK = dict(
    base_channels=8,
    channel_multipliers=(1,),
    num_res_blocks=1,
    attention_resolutions=(),
    dropout=0.0,
    norm_groups=4,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="outputs/mnist")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny settings, to test the script")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    smoke = args.smoke

    # 1. Data: uint8 MNIST -> float32 [-1, 1], 32x32x1.
    dataset = keras_ddpm.data.load_tfds(
        "mnist", image_size=IMAGE_SIZE, batch_size=4 if smoke else args.batch_size, seed=args.seed
    )

    # 2. Model: U-Net denoiser, linear schedule, EMA of the weights.
    network = keras_ddpm.UNet((IMAGE_SIZE, IMAGE_SIZE, 1), **(SMOKE_NETWORK if smoke else NETWORK))
    schedule = keras_ddpm.NoiseSchedule("linear", timesteps=20 if smoke else TIMESTEPS)
    model = keras_ddpm.DDPM(network, schedule=schedule, ema_decay=EMA_DECAY, seed=args.seed)

    # 3. Optimizer: Adam with a linear warm-up, then constant (see keras_ddpm.callbacks).
    learning_rate = keras.optimizers.schedules.CosineDecay(
        0.0,
        decay_steps=1,
        alpha=1.0,
        warmup_target=LEARNING_RATE,
        warmup_steps=2 if smoke else WARMUP_STEPS,
    )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate, global_clipnorm=1.0))

    # 4. Train with resumable checkpoints, sample grids and TensorBoard logs.
    # Kept until model.keras is written: a kill at any moment loses at most one epoch.
    backup = keras_ddpm.callbacks.RunBackup(
        os.path.join(args.output, "backup"), delete_checkpoint=False
    )
    callbacks = [
        backup,
        keras.callbacks.TensorBoard(os.path.join(args.output, "logs")),
        keras_ddpm.callbacks.SampleGrid(
            os.path.join(args.output, "samples"),
            num_images=4 if smoke else 64,
            tensorboard_dir=os.path.join(args.output, "logs", "samples"),
            # For a smoke run, compiling the sampling loop would cost more than it saves.
            **({"jit_compile": False} if smoke else {}),
        ),
    ]
    model.fit(dataset, epochs=1 if smoke else args.epochs, callbacks=callbacks)
    path = os.path.join(args.output, "model.keras")
    model.save(path)  # written atomically
    backup.delete()
    print(f"wrote {path}; samples in {os.path.join(args.output, 'samples')}")
    return model


if __name__ == "__main__":
    main()
