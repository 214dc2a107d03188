"""Low-rank adaptation (LoRA) of a network's kernels, recorded so that it survives a file.

Keras' `Dense`, `Conv2D` and `Embedding` layers learn a low-rank update W + (α/r)·A·B of their
frozen kernel once `layer.enable_lora(r)` is called (Hu et al., 2021). Which layers carry one,
with which rank and α, is not part of a network's constructor arguments; this module lists it
by layer path (`recorded`), so that `UNet.get_config` can write it and `UNet.from_config`
enable the same layers again (`restore`). An adapted network trains its updates and nothing
else: `enable` and `restore` freeze every other layer. `DDPM` keeps its EMA copy of the
network in step with it (`mirror`).

Keras writes an adapted layer's kernel as W + (α/r)·A·B and zeroes A and B when it loads one:
enough to sample, but a run resumed from its backup would train on from other weights. The
U-Net's layers (`Dense`, `Conv2D`, `Embedding` here) also keep W, A and B (`KeepsFactors`);
`merged` writes the update into a LoRA-free copy (for diffusers' format).

References:
    - [Hu et al., 2021. LoRA: Low-Rank Adaptation of Large Language
      Models](https://arxiv.org/abs/2106.09685).
"""

import keras
from keras import ops

from keras_ddpm import checks
from keras_ddpm.backend import internals


# The keys under which `KeepsFactors` writes an adapted layer's W, A and B.
_BASE, _A, _B = "lora_base", "lora_a", "lora_b"


def _base(layer):
    """The frozen kernel variable W of an adapted layer (its `kernel` property reads W + ΔW)."""
    return next(w for w in layer.weights if w.name in ("kernel", "embeddings"))


def _factors(layer):
    """The variables (A, B) of an adapted layer: `lora_kernel_a/b` (`lora_embeddings_a/b`)."""
    by_name = {w.name: w for w in layer.weights}
    name = _base(layer).name
    return by_name[f"lora_{name}_a"], by_name[f"lora_{name}_b"]


class KeepsFactors:
    """Saves an adapted layer's W, A and B beside the adapted kernel Keras writes, and loads
    them back, so that a file or backup trains on from where it was saved.

    A mixin, put before the Keras layer class among the bases. Files without these keys (every
    file of an unadapted network, and any file written before) load as Keras loads them.
    """

    def save_own_variables(self, store):
        super().save_own_variables(store)
        if getattr(self, "lora_enabled", False):
            store[_BASE] = _base(self)
            store[_A], store[_B] = _factors(self)

    def load_own_variables(self, store):
        keys = list(store.keys())
        kept = [key for key in keys if key in (_BASE, _A, _B)]
        if not kept:
            return super().load_own_variables(store)
        super().load_own_variables({key: store[key] for key in keys if key not in kept})
        if getattr(self, "lora_enabled", False) and len(kept) == 3:
            _base(self).assign(store[_BASE])
            for factor, key in zip(_factors(self), (_A, _B)):
                factor.assign(store[key])


class Dense(KeepsFactors, keras.layers.Dense):
    """`keras.layers.Dense` whose files keep its LoRA factors (`KeepsFactors`)."""


class Conv2D(KeepsFactors, keras.layers.Conv2D):
    """`keras.layers.Conv2D` whose files keep its LoRA factors (`KeepsFactors`)."""


class Embedding(KeepsFactors, keras.layers.Embedding):
    """`keras.layers.Embedding` whose files keep its LoRA factors (`KeepsFactors`)."""


def adaptable_layers(network):
    """`{path: layer}` of every layer inside `network` that can take a LoRA update."""
    return {
        layer.path: layer
        for layer in internals.flatten_layers(network)
        if layer is not network and callable(getattr(layer, "enable_lora", None))
    }


def recorded(network):
    """`{path: [rank, alpha]}` of `network`'s layers with LoRA enabled, sorted by path."""
    return {
        path: [int(layer.lora_rank), float(layer.lora_alpha)]
        for path, layer in sorted(adaptable_layers(network).items())
        if getattr(layer, "lora_enabled", False)
    }


def enable(network, rank, lora_alpha=None, target_names=None):
    """Enables LoRA of rank `rank` on `network`'s layers named in `target_names` (all if `None`).

    As in keras-hub's backbones, every other layer is frozen: only the updates A and B and
    the adapted layers' biases train.

    Args:
        network: a built Keras model.
        rank: a positive int, the rank r of the update.
        lora_alpha: a positive number α; the update is scaled by α/r.
            Defaults to `None` (α = r).
        target_names: layer names (`"q"`) or paths (`"mid_attn_1/q"`) to
            adapt. Defaults to `None`: every `Dense`, `Conv2D` and
            `Embedding` layer.

    Returns:
        The sorted paths of the layers enabled.

    Raises:
        ValueError: a bad rank or α, a name that matches no layer, or a
            layer that already has LoRA enabled.
    """
    rank = checks.positive_int("rank", rank)
    if lora_alpha is not None:
        lora_alpha = checks.number_in("lora_alpha", lora_alpha, 0.0, float("inf"))
        if lora_alpha == 0:
            raise ValueError(f"`lora_alpha` must be positive. Received: lora_alpha={lora_alpha}.")
    layers = adaptable_layers(network)
    if target_names is not None:
        if isinstance(target_names, str) or not all(isinstance(n, str) for n in target_names):
            raise TypeError(
                "`target_names` must be a list of layer names or paths. "
                f"Received: target_names={target_names!r}."
            )
        names = set(target_names)
        unknown = sorted(names - set(layers) - {layer.name for layer in layers.values()})
        if unknown:
            raise ValueError(
                f"`target_names` {unknown} match no layer of {network.name} that can take LoRA; "
                f"its names are {sorted({layer.name for layer in layers.values()})}."
            )
        layers = {p: layer for p, layer in layers.items() if p in names or layer.name in names}
    enabled = sorted(p for p, layer in layers.items() if getattr(layer, "lora_enabled", False))
    if enabled:
        raise ValueError(
            f"LoRA is already enabled on {enabled[:3]}{' …' if len(enabled) > 3 else ''} of "
            f"{network.name}; it can be enabled once per layer."
        )
    _adapt(network, [(layers[path], rank, lora_alpha) for path in sorted(layers)])
    return sorted(layers)


def _adapt(network, settings):
    """Enables `(layer, rank, alpha)` in `settings`; every layer of `network` not adapted freezes.

    Adapted layers, earlier ones included, keep training their A, B and bias.
    """
    for layer in internals.flatten_layers(network):
        if layer is not network and not getattr(layer, "lora_enabled", False):
            layer.trainable = False
    for layer, rank, alpha in settings:
        layer.trainable = True
        layer.enable_lora(rank, lora_alpha=alpha)


def restore(network, layers):
    """Enables LoRA on `network` as `recorded` listed it (`{path: [rank, alpha]}`)."""
    adaptable = adaptable_layers(network)
    missing = sorted(set(layers) - set(adaptable))
    if missing:
        raise ValueError(
            f"The config enables LoRA on layers {missing}, which {network.name} does not have."
        )
    _adapt(network, [(adaptable[p], int(r), alpha) for p, (r, alpha) in sorted(layers.items())])


def mirror(network, copy):
    """Enables on `copy` (the EMA network) the LoRA updates `network` has and it lacks.

    Their factors start as the network's.
    """
    source, target = adaptable_layers(network), adaptable_layers(copy)
    for path, (rank, alpha) in recorded(network).items():
        layer = target.get(path)
        if layer is None or getattr(layer, "lora_enabled", False):
            continue
        layer.enable_lora(rank, lora_alpha=alpha)
        # Copies: JAX's trainer donates each variable's buffer, once (`ema.copy_weights`).
        for factor, value in zip(_factors(layer), _factors(source[path])):
            factor.assign(ops.copy(value.value))


def merged(network):
    """`network` itself without LoRA; else a copy without it whose kernels are W + (α/r)·A·B.

    What a format without LoRA (a diffusers checkpoint) is written from: the copy computes what
    the adapted network computes, to float rounding.
    """
    layers = recorded(network)
    if not layers:
        return network
    config = dict(network.get_config())
    config.pop("lora_layers", None)
    copy = type(network).from_config(config)
    values = {weight.path: weight.value for weight in network.weights}
    adapted = adaptable_layers(network)
    for path in layers:
        layer = adapted[path]
        name = _base(layer).name
        values[f"{path}/{name}"] = getattr(layer, name)  # Keras' property: the adapted kernel
    for weight in copy.weights:
        weight.assign(ops.copy(values[weight.path]))
    return copy
