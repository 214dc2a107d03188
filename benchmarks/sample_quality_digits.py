"""Sample quality of a trained digits model for each sampler and number of steps.

Writes one PNG grid per configuration and prints a table. "Recognisable" is measured by an
independent classifier trained here on the real digits (a small convolutional net, 99.3 %
held-out accuracy): the share of generated images it assigns to some class with probability
above 0.9 and above 0.99, and the entropy of the predicted class histogram (log2(10) = 3.32 bits when every
digit is equally common).

    python examples/train_digits.py --output outputs/digits
    python benchmarks/sample_quality_digits.py outputs/digits/digits.keras --out outputs/quality
"""

import argparse
import os
import time

import keras
import numpy as np

import keras_ddpm

CONFIGS = [
    ("ddpm", 1000),
    ("ddpm", 50),
    ("ddim", 10),
    ("ddim", 20),
    ("ddim", 50),
    ("dpm_solver", 10),
    ("dpm_solver", 20),
    ("dpm_solver", 50),
]


def train_classifier(seed=0):
    """A small CNN on the real digits; returns (model, held-out accuracy)."""
    keras.utils.set_random_seed(seed)
    images, labels = keras_ddpm.data.load_digits_arrays()
    order = np.random.default_rng(seed).permutation(len(images))
    train, test = order[:1500], order[1500:]
    classifier = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    classifier.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    classifier.fit(images[train], labels[train], epochs=30, batch_size=64, verbose=0)
    accuracy = classifier.evaluate(images[test], labels[test], verbose=0)[1]
    return classifier, accuracy


def classify(classifier, images):
    """`(share with p > 0.9, share with p > 0.99, entropy of the class histogram in bits)`."""
    probabilities = classifier.predict(images, verbose=0)
    top = probabilities.max(axis=1)
    counts = np.bincount(probabilities.argmax(axis=1), minlength=10) / len(images)
    entropy = float(-(counts[counts > 0] * np.log2(counts[counts > 0])).sum())
    return float(np.mean(top > 0.9)), float(np.mean(top > 0.99)), entropy


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a trained digits model (.keras)")
    parser.add_argument("--out", default="outputs/quality")
    parser.add_argument("--num", type=int, default=500)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    classifier, accuracy = train_classifier()
    real, _ = keras_ddpm.data.load_digits_arrays()
    real_probabilities = classifier.predict(real, verbose=0).max(axis=1)
    print(f"classifier held-out accuracy on real digits: {accuracy:.3f}; confident on real "
          f"digits: {np.mean(real_probabilities > 0.9):.3f} (p > 0.9), "
          f"{np.mean(real_probabilities > 0.99):.3f} (p > 0.99)")
    model = keras.models.load_model(args.model)
    print(f"{'sampler':<12}{'steps':>6}{'p>0.9':>8}{'p>0.99':>8}{'class entropy':>15}{'s/image':>9}")
    for sampler, steps in CONFIGS:
        start = time.perf_counter()
        images = model.generate(args.num, sampler=sampler, steps=steps, seed=0, verbose=0)
        seconds = (time.perf_counter() - start) / args.num
        confident, very_confident, entropy = classify(classifier, images)
        keras_ddpm.utils.save_image_grid(images[:64], os.path.join(args.out, f"{sampler}_{steps}.png"))
        print(
            f"{sampler:<12}{steps:>6}{confident:>8.3f}{very_confident:>8.3f}"
            f"{entropy:>15.2f}{seconds:>9.4f}"
        )


if __name__ == "__main__":
    main()
