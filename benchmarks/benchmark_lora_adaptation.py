"""Does fine-tuning adapt a trained model? The digits model taught to draw one digit.

A model trained on all ten digits draws each about one time in ten. Fine-tuned on the images
of one digit only (the sevens by default), its samples should become that digit. For each
way of training (every weight; LoRA on every kernel; LoRA on the attention layers only), the
same trained model is loaded, fine-tuned for the same number of Adam steps, and sampled
(DPM-Solver++, 20 steps, with the EMA weights as `generate` does by default); an independent
classifier (`sample_quality_digits.train_classifier`) judges the images. Prints the share of
the target digit before and after, the share the classifier is sure of (p > 0.99: still
digits), the trainable weights and the fine-tuning time. Run from the repository root:

    keras-ddpm train --output runs/digits                     # the quick start, 40 epochs
    python benchmarks/benchmark_lora_adaptation.py runs/digits/model.keras

Figures are wall-clock on whatever machine runs them, with its CPU flags printed beside them.
"""

import argparse
import os
import sys
import time

import keras
import numpy as np

import keras_ddpm

sys.path.insert(0, os.path.dirname(__file__))
from benchmark_lora import ATTENTION  # noqa: E402
from benchmark_lora import cpu_flags  # noqa: E402
from sample_quality_digits import train_classifier  # noqa: E402

MODES = {
    "full fine-tuning": None,
    "LoRA, every kernel": {},
    "LoRA, attention only": {"target_names": ATTENTION},
}


def judge(model, classifier, digit, num):
    """(share of `digit`, share with p > 0.99) among `num` samples of `model`."""
    images = model.generate(num, sampler="dpm_solver", steps=20, seed=0, verbose=0)
    probabilities = classifier.predict(images, verbose=0)
    return (
        float(np.mean(probabilities.argmax(axis=1) == digit)),
        float(np.mean(probabilities.max(axis=1) > 0.99)),
    )


def fine_tune(path, lora_arguments, images, args):
    """The model in `path` fine-tuned on `images` for `args.steps` Adam steps; its time."""
    keras.utils.set_random_seed(0)
    model = keras_ddpm.load_model(path, compile=False)
    if lora_arguments is not None:
        model.enable_lora(args.rank, **lora_arguments)
    rate = args.learning_rate if lora_arguments is None else args.lora_learning_rate
    model.compile(optimizer=keras.optimizers.Adam(rate))
    steps_per_epoch = -(-len(images) // args.batch_size)
    start = time.perf_counter()
    model.fit(
        images, batch_size=args.batch_size, epochs=-(-args.steps // steps_per_epoch), verbose=0
    )
    return model, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a digits model trained on all ten digits (.keras)")
    parser.add_argument("--digit", type=int, default=7)
    parser.add_argument("--steps", type=int, default=300, help="Adam steps of fine-tuning")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="full fine-tuning's")
    parser.add_argument("--lora-learning-rate", type=float, default=3e-3)
    parser.add_argument("--num", type=int, default=500, help="samples judged per model")
    args = parser.parse_args()

    classifier, accuracy = train_classifier()
    all_images, labels = keras_ddpm.data.load_digits_arrays()
    images = all_images[labels == args.digit]
    source = keras_ddpm.load_model(args.model, compile=False)
    before, sure_before = judge(source, classifier, args.digit, args.num)
    print(f"CPU flags: {cpu_flags()}; backend {keras.backend.backend()}; classifier accuracy "
          f"{accuracy:.3f}; {len(images)} images of {args.digit}, {args.steps} steps of batch "
          f"{args.batch_size}, rank {args.rank}")
    print(f"before: {before:.1%} of the samples are {args.digit}s, {sure_before:.1%} sure")
    print("| training | trainable weights | learning rate | fine-tuning s | share of "
          f"{args.digit}s | sure (p > 0.99) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, lora_arguments in MODES.items():
        model, seconds = fine_tune(args.model, lora_arguments, images, args)
        share, sure = judge(model, classifier, args.digit, args.num)
        trainable = sum(int(np.prod(w.shape)) for w in model.network.trainable_weights)
        rate = args.learning_rate if lora_arguments is None else args.lora_learning_rate
        print(f"| {name} | {trainable:,} | {rate:g} | {seconds:.1f} | {share:.1%} | {sure:.1%} |")


if __name__ == "__main__":
    main()
