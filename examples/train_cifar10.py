"""Train the DDPM of Ho et al. (2020) on CIFAR-10 from TensorFlow Datasets.

The paper's setup: the 35.7M-parameter U-Net (`UNet.from_preset("ddpm_cifar10")`),
T = 1000 linear steps, Adam at 2e-4 after a 5,000-step linear warm-up,
gradients clipped to norm 1, random horizontal flips, EMA decay 0.9999, batch
128 for 800k steps (about 2,050 epochs: days on one GPU). TFDS downloads
CIFAR-10 (~160 MB) on the first run. Afterwards, for FID against the test set:

    python examples/train_cifar10.py --output outputs/cifar10
    keras-ddpm evaluate outputs/cifar10 --dataset tfds:cifar10 --split test --num 50000

Re-running the same command resumes an interrupted run (`RunBackup`, whose backups
a kill cannot damage; it is removed only once `model.keras` is written).
`--smoke` shrinks everything to check that the script runs, in seconds.
"""

import argparse
import os

import keras

import keras_ddpm

# Hyperparameters (Ho et al. 2020, appendix B).
TIMESTEPS = 1000
LEARNING_RATE = 2e-4
WARMUP_STEPS = 5000
GRADIENT_CLIP_NORM = 1.0
EMA_DECAY = 0.9999
TRAINING_STEPS = 800_000
STEPS_PER_EPOCH = 50_000 // 128
# Smoke mode: the preset with the smallest overrides that exercise every line.
SMOKE_OVERRIDES = dict(
    base_channels=8,
    channel_multipliers=(1,),
    num_res_blocks=1,
    attention_resolutions=(),
    dropout=0.0,
    norm_groups=4,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="outputs/cifar10")
    parser.add_argument("--epochs", type=int, default=TRAINING_STEPS // STEPS_PER_EPOCH)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--sample-every", type=int, default=10, help="epochs between sample grids")
    parser.add_argument(
        "--mixed-precision", action="store_true", help="train in mixed_float16 (GPUs)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny settings, to test the script")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    smoke = args.smoke
    if args.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")

    # 1. Data: uint8 32x32x3 -> float32 [-1, 1], flipped at random.
    dataset = keras_ddpm.data.load_tfds(
        "cifar10", batch_size=4 if smoke else args.batch_size, random_flip=True, seed=args.seed
    )

    # 2. Model: the paper's U-Net, linear schedule, EMA of the weights.
    network = keras_ddpm.UNet.from_preset("ddpm_cifar10", **(SMOKE_OVERRIDES if smoke else {}))
    schedule = keras_ddpm.NoiseSchedule("linear", timesteps=20 if smoke else TIMESTEPS)
    model = keras_ddpm.DDPM(network, schedule=schedule, ema_decay=EMA_DECAY, seed=args.seed)

    # 3. Optimizer: linear warm-up, then constant (see keras_ddpm.callbacks).
    learning_rate = keras.optimizers.schedules.CosineDecay(
        0.0,
        decay_steps=1,
        alpha=1.0,
        warmup_target=LEARNING_RATE,
        warmup_steps=2 if smoke else WARMUP_STEPS,
    )
    optimizer = keras.optimizers.Adam(learning_rate, global_clipnorm=GRADIENT_CLIP_NORM)
    model.compile(optimizer=optimizer)

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
            every_n_epochs=1 if smoke else args.sample_every,
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
