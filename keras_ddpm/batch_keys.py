"""The keys of dict batches, which `fit`, `evaluate` and the data loaders share.

The images and labels keep TensorFlow Datasets' feature names, so a TFDS split of
`{"image", "label"}` examples trains as it comes; the per-example loss weights sit beside
them under Keras' argument name (an unconditional model's weights travel this way, as Keras
drops `(images, None, weights)`).
"""

IMAGE = "image"
LABEL = "label"
SAMPLE_WEIGHT = "sample_weight"
