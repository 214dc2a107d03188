"""What depends on TensorFlow's and Keras' insides: `internals`, each private name behind a check."""
