"""Where each tensor of a diffusers `UNet2DModel` lives in a `UNet`, and how it is laid out.

PyTorch and Keras store the same numbers in different layouts:

- a convolution kernel is `[out, in, kh, kw]` in PyTorch and `[kh, kw, in, out]` in Keras;
- a linear layer's weight is `[out, in]` in PyTorch and a `Dense` kernel is `[in, out]`;
- the residual blocks' 1×1 `conv_shortcut` (`[out, in, 1, 1]`) is `UNet`'s per-pixel
  `Dense` `nin_shortcut` (`[in, out]`);
- group-norm `weight`/`bias` are `gamma`/`beta`.

The decoder is numbered the other way round: diffusers' `up_blocks.0` is the lowest
resolution, `UNet`'s `up_{L-1}_*` layers.

Checkpoints written before diffusers 0.14 name the attention projections `query`, `key`,
`value` and `proj_attn` (today `to_q`, `to_k`, `to_v`, `to_out.0`); both are read, the current
names are written.
"""

import numpy as np

CONV, DENSE, NIN, VECTOR = "conv", "dense", "nin", "vector"

# Attention projection names before diffusers 0.14 → today's.
_DEPRECATED_ATTENTION = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def _conv(prefix, layer):
    return [(f"{prefix}.weight", layer.kernel, CONV), (f"{prefix}.bias", layer.bias, VECTOR)]


def _dense(prefix, layer, layout=DENSE):
    return [(f"{prefix}.weight", layer.kernel, layout), (f"{prefix}.bias", layer.bias, VECTOR)]


def _norm(prefix, layer):
    return [(f"{prefix}.weight", layer.gamma, VECTOR), (f"{prefix}.bias", layer.beta, VECTOR)]


def _resnet(prefix, block):
    entries = _norm(f"{prefix}.norm1", block.norm1) + _conv(f"{prefix}.conv1", block.conv1)
    entries += _dense(f"{prefix}.time_emb_proj", block.temb_proj)
    entries += _norm(f"{prefix}.norm2", block.norm2) + _conv(f"{prefix}.conv2", block.conv2)
    if block.nin_shortcut is not None:
        entries += _dense(f"{prefix}.conv_shortcut", block.nin_shortcut, NIN)
    return entries


def _attention(prefix, block):
    entries = _norm(f"{prefix}.group_norm", block.norm)
    for theirs, ours in (("to_q", block.q), ("to_k", block.k), ("to_v", block.v)):
        entries += _dense(f"{prefix}.{theirs}", ours)
    return entries + _dense(f"{prefix}.to_out.0", block.proj_out)


def weight_map(unet):
    """`[(diffusers name, Keras variable, layout)]` for every weight of a built `UNet`.

    The list covers every variable of the network exactly once (checked by
    `check_complete`).
    """
    layer = unet.get_layer
    levels = len(unet.channel_multipliers)
    blocks = unet.num_res_blocks
    attention = set(unet.attention_resolutions)
    height = unet.image_shape[0]

    entries = _conv("conv_in", layer("conv_in"))
    entries += _dense("time_embedding.linear_1", layer("temb_dense0"))
    entries += _dense("time_embedding.linear_2", layer("temb_dense1"))
    for level in range(levels):
        has_attention = height // 2**level in attention
        for block in range(blocks):
            entries += _resnet(f"down_blocks.{level}.resnets.{block}", layer(f"down_{level}_block_{block}"))
            if has_attention:
                entries += _attention(
                    f"down_blocks.{level}.attentions.{block}", layer(f"down_{level}_attn_{block}")
                )
        if level != levels - 1:
            entries += _conv(
                f"down_blocks.{level}.downsamplers.0.conv", layer(f"down_{level}_downsample").conv
            )
    entries += _resnet("mid_block.resnets.0", layer("mid_block_1"))
    entries += _attention("mid_block.attentions.0", layer("mid_attn_1"))
    entries += _resnet("mid_block.resnets.1", layer("mid_block_2"))
    for level in reversed(range(levels)):
        index = levels - 1 - level
        has_attention = height // 2**level in attention
        for block in range(blocks + 1):
            entries += _resnet(f"up_blocks.{index}.resnets.{block}", layer(f"up_{level}_block_{block}"))
            if has_attention:
                entries += _attention(
                    f"up_blocks.{index}.attentions.{block}", layer(f"up_{level}_attn_{block}")
                )
        if level != 0:
            entries += _conv(f"up_blocks.{index}.upsamplers.0.conv", layer(f"up_{level}_upsample").conv)
    entries += _norm("conv_norm_out", layer("norm_out"))
    entries += _conv("conv_out", layer("conv_out"))
    check_complete(unet, entries)
    return entries


def check_complete(unet, entries):
    """Asserts that `entries` name every variable of `unet` exactly once."""
    mapped = [id(variable) for _, variable, _ in entries]
    variables = {id(v) for v in unet.weights}
    if len(mapped) != len(set(mapped)) or set(mapped) != variables:
        raise RuntimeError(
            f"keras_ddpm bug: the diffusers weight map covers {len(set(mapped))} of "
            f"{len(variables)} variables of {unet.name!r}."
        )


def to_keras(array, layout):
    """A PyTorch-layout array in the Keras layout."""
    if layout == CONV:
        return np.transpose(array, (2, 3, 1, 0))
    if layout == DENSE:
        return np.transpose(array)
    if layout == NIN:
        return np.transpose(array[:, :, 0, 0])
    return array


def to_torch(array, layout):
    """A Keras-layout array in the PyTorch layout (contiguous, for safetensors)."""
    if layout == CONV:
        array = np.transpose(array, (3, 2, 0, 1))
    elif layout == DENSE:
        array = np.transpose(array)
    elif layout == NIN:
        array = np.transpose(array)[:, :, None, None]
    return np.ascontiguousarray(array)


def current_names(tensors):
    """`tensors` with pre-0.14 attention names (`query`, …, `proj_attn`) renamed to today's."""
    renamed = {}
    for name, array in tensors.items():
        parts = name.split(".")
        if len(parts) >= 3 and parts[-2] in _DEPRECATED_ATTENTION and ".attentions." in name:
            name = ".".join(parts[:-2] + [_DEPRECATED_ATTENTION[parts[-2]], parts[-1]])
        renamed[name] = array
    return renamed


def assign(unet, tensors, source):
    """Copies a diffusers state dict (NumPy arrays, PyTorch layout) into `unet`.

    Raises:
        ValueError: naming the missing, unexpected or mis-shaped tensors.
    """
    tensors = current_names(tensors)
    entries = weight_map(unet)
    expected = {name for name, _, _ in entries}
    missing = sorted(expected - set(tensors))
    unexpected = sorted(set(tensors) - expected)
    wrong = []
    values = []
    for name, variable, layout in entries:
        if name not in tensors:
            continue
        value = to_keras(np.asarray(tensors[name]), layout)
        if tuple(value.shape) != tuple(variable.shape):
            wrong.append(f"{name} {tuple(np.shape(tensors[name]))}")
        values.append((variable, value))
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (first: {missing[:3]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (first: {unexpected[:3]})")
    if wrong:
        problems.append(f"{len(wrong)} with the wrong shape (first: {wrong[:3]})")
    if problems:
        raise ValueError(
            f"The weights in {source} do not fit the network its config describes: "
            + "; ".join(problems) + "."
        )
    for variable, value in values:
        variable.assign(value.astype(variable.dtype))


def state_dict(unet):
    """`{diffusers name: float32 array in PyTorch layout}` of a `UNet`'s weights."""
    return {
        name: to_torch(np.asarray(variable.numpy(), np.float32), layout)
        for name, variable, layout in weight_map(unet)
    }
