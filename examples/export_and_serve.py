"""Export a digits DDPM as a TensorFlow SavedModel, reload it without keras_ddpm and sample.

Trains the quick-start network briefly on the embedded 8x8 digits (or loads a
trained `.keras` file with --model), writes a SavedModel whose `generate`
endpoint runs DDIM, reloads it with plain `tf.saved_model.load`, generates a
grid of digits and prints the `saved_model_cli` command that serves the same
endpoint from a shell (TensorFlow Serving uses the same signature).

    python examples/export_and_serve.py --output outputs/export
    python examples/export_and_serve.py --model outputs/digits/digits.keras
"""

import argparse
import os
import time

import keras
import tensorflow as tf

import keras_ddpm


def build_and_train(args):
    keras.utils.set_random_seed(args.seed)
    network = keras_ddpm.UNet(
        image_shape=(8, 8, 1),
        base_channels=8 if args.smoke else 32,
        channel_multipliers=(1,) if args.smoke else (1, 2),
        num_res_blocks=1,
        attention_resolutions=() if args.smoke else (4,),
        dropout=0.0,
        norm_groups=8 if args.smoke else 32,
    )
    schedule = keras_ddpm.NoiseSchedule("linear", timesteps=50 if args.smoke else 1000)
    model = keras_ddpm.DDPM(network, schedule=schedule, ema_decay=0.999, seed=args.seed)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    data = keras_ddpm.data.load_digits(batch_size=128, seed=args.seed)
    model.fit(data.take(2) if args.smoke else data, epochs=1 if args.smoke else args.epochs)
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="outputs/export", help="folder for the SavedModel and the grid")
    parser.add_argument("--model", default=None, help="a trained .keras file (default: train one briefly)")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs without --model")
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps of the generated grid")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="a tiny network, two batches: seconds")
    args = parser.parse_args(argv)
    os.makedirs(args.output, exist_ok=True)

    # 1. A trained model: loaded (errors name the file) or trained here.
    model = keras_ddpm.load_model(args.model) if args.model else build_and_train(args)

    # 2. Export: generate = DDIM (the sampler is an input of generate_with_sampler).
    path = os.path.join(args.output, "savedmodel")
    start = time.time()
    model.export(path, sampler="ddim")
    print(f"exported in {time.time() - start:.1f} s")

    # 3. Reload with TensorFlow alone (a serving process needs no keras_ddpm) and sample.
    start = time.time()
    loaded = tf.saved_model.load(path)
    images = loaded.generate(num_images=64, steps=min(args.steps, model.schedule.timesteps), seed=args.seed)
    print(f"loaded and generated 64 images in {time.time() - start:.1f} s")
    grid = keras_ddpm.utils.save_image_grid(images.numpy(), os.path.join(args.output, "grid.png"))
    print(f"wrote {grid}")

    # 4. The same endpoint from a shell.
    print(
        "serve it from a shell:\n"
        f"  saved_model_cli run --dir {path} --tag_set serve --signature_def serving_default "
        "--input_exprs 'num_images=4;steps=50;seed=0' --outdir /tmp/ddpm_images"
    )
    return loaded


if __name__ == "__main__":
    main()
