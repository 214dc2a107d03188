"""What depends on one backend or machine: `internals` (each private TensorFlow/Keras name behind a
check), `hardware` (the CPU's flags, whether XLA pays) and `adam_step` (TensorFlow's fused Adam)."""
