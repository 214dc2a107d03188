"""Weight quantization (`keras.Model.quantize`): what keras_ddpm's models answer.

Keras 3.15 quantizes only layers of the exact classes `Dense`, `EinsumDense` and `Embedding`
and has no quantized convolution. In a diffusion U-Net the convolutions hold most weights
(29.95M of the 35.75M of the CIFAR-10 U-Net, 84%), and keras_ddpm's dense layers are LoRA-ready
subclasses that Keras' type check passes over: `quantize` would warn once per layer and change
nothing. `DDPM.quantize` and `UNet.quantize` say so in one error instead.
"""

# The weights of the "ddpm_cifar10" U-Net in convolution kernels and biases, of all its weights
# (tests/test_unet.py counts them).
CONVOLUTION_SHARE = "29.95M of its 35.75M weights"


def refuse(model, mode=None, config=None, filters=None, **kwargs):
    """`quantize` of a model that cannot be quantized; raises `ValueError` naming `mode`.

    Args:
        model: the `DDPM` or `UNet` asked to quantize itself.
        mode, config, filters, **kwargs: `keras.Model.quantize`'s arguments (Keras resolves
            `mode` from a `config` before the call).

    Raises:
        ValueError: always, naming the mode received and what to use instead.
    """
    raise ValueError(
        f"{type(model).__name__} cannot be quantized: Keras quantizes only Dense, EinsumDense "
        f"and Embedding layers, and a diffusion U-Net keeps most weights in convolutions "
        f"(the CIFAR-10 U-Net: {CONVOLUTION_SHARE}). For less memory and faster steps compute "
        f"in mixed_bfloat16 or mixed_float16 (keras.mixed_precision). Received: mode={mode!r}."
    )
