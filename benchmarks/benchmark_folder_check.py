"""The cost of checking an image folder before training (issue 36), and of reading it
without TensorFlow (issue 37).

`load_image_folder` decodes every file once with Pillow (in threads) so that a damaged
pixel stream is named before training. This times, on folders the script writes, the
header-and-checksum check alone (`Image.verify`, what the package did before) against the
full check (`data.image_files._unreadable`: verify, then decode), and TensorFlow reading and
decoding every file once through the package's own pipeline (one epoch of
`load_image_folder`, resized to half the side), the cost the check is measured against; and
one epoch of the backend-neutral `load_image_folder_batches` (Pillow decodes and resizes;
read here in one thread) against that `tf.data` epoch. Medians of `--rounds`.

    python benchmarks/benchmark_folder_check.py [--rounds 3]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from keras_ddpm import data  # noqa: E402
from keras_ddpm.data import image_files  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from benchmark_few_steps import cpu_flags  # noqa: E402

# (name, count, side, format): CIFAR-sized PNGs and photo-sized JPEGs.
FOLDERS = (("png32", 2000, 32, "PNG"), ("jpeg256", 500, 256, "JPEG"))


def write_folder(root, count, side, fmt):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
    for i in range(count):
        noisy = np.clip(base.astype(int) + rng.integers(-20, 20, base.shape), 0, 255)
        Image.fromarray(noisy.astype(np.uint8)).save(
            os.path.join(root, f"{i}.{fmt.lower()}"), fmt
        )
    return sorted(os.path.join(root, name) for name in os.listdir(root))


def headers_only(files):
    for file in files:
        with Image.open(file) as image:
            image.verify()


def timed(function, rounds):
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"CPU: {os.cpu_count()} cores, flags: {cpu_flags()}")
    for name, count, side, fmt in FOLDERS:
        with tempfile.TemporaryDirectory() as root:
            files = write_folder(root, count, side, fmt)
            assert not image_files._unreadable(files)
            header = timed(lambda: headers_only(files), args.rounds)
            full = timed(lambda: image_files._unreadable(files), args.rounds)
            dataset = data.load_image_folder(root, side // 2, batch_size=128, shuffle=False)
            epoch = timed(lambda: [None for _ in dataset], args.rounds)
            batches = data.load_image_folder_batches(root, side // 2, batch_size=128, shuffle=False)
            py_epoch = timed(lambda: [batches[i] for i in range(len(batches))], args.rounds)
            print(
                f"{name}: {count} files of {side}x{side} {fmt}: headers only {header:.2f} s, "
                f"decoded (the check now) {full:.2f} s ({full / count * 1e3:.2f} ms a file), "
                f"one tf.data epoch {epoch:.2f} s, one PyDataset epoch {py_epoch:.2f} s "
                "(one thread)"
            )


if __name__ == "__main__":
    main()
