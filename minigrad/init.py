"""Weight initialisers: the paper's Gaussian, He and Glorot, with fans computed for conv weights.

Each takes a layer with `weight` (and optionally `bias`) and fills it in place, returning the layer.
Draws come from `rng` (a numpy Generator or an int seed), or from minigrad's global generator, which
`mg.manual_seed(seed)` resets. Values are drawn in float64 on the CPU and cast to the weight's dtype
and device, so the same seed gives the same network on either device.
"""
import math

import numpy as np

from . import backend

_global_rng = np.random.default_rng(0)


def manual_seed(seed):
    """Reset the generator that layers use for their default initialisation."""
    global _global_rng
    _global_rng = np.random.default_rng(seed)


def _rng(rng):
    if rng is None:
        return _global_rng
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def fans(shape):
    """(fan_in, fan_out) of a weight: Linear (out, in); conv (out, in/groups, kh, kw).

    A conv unit sees in/groups * kh * kw inputs and feeds out * kh * kw outputs (PyTorch's rule).
    The last axes are the receptive field, not the inputs: taking fan-in from shape[:-1] (as one of the
    background articles does) is wrong for this layout.
    """
    if len(shape) < 2:
        raise ValueError(f"init.fans: expected a weight with at least 2 dimensions, got shape {shape}")
    receptive_field = math.prod(shape[2:])
    return shape[1] * receptive_field, shape[0] * receptive_field


def _fill(layer, weight_values, bias):
    w = layer.weight.data
    layer.weight.data = backend.to_device(weight_values.astype(w.dtype), backend.device_of(w))
    if getattr(layer, "bias", None) is not None:
        layer.bias.data[...] = bias
    return layer


def gaussian(layer, std=0.01, bias=0.0, rng=None):
    """The paper's initialisation (section 5): weights N(0, std^2), biases a constant (0 or 1)."""
    return _fill(layer, _rng(rng).normal(0.0, std, layer.weight.shape), bias)


def he_normal(layer, bias=0.0, rng=None):
    """N(0, 2 / fan_in): keeps the variance of ReLU activations constant with depth (He et al. 2015)."""
    fan_in, _ = fans(layer.weight.shape)
    return _fill(layer, _rng(rng).normal(0.0, math.sqrt(2.0 / fan_in), layer.weight.shape), bias)


def he_uniform(layer, bias=0.0, rng=None):
    fan_in, _ = fans(layer.weight.shape)
    bound = math.sqrt(6.0 / fan_in)
    return _fill(layer, _rng(rng).uniform(-bound, bound, layer.weight.shape), bias)


def glorot_normal(layer, bias=0.0, rng=None):
    """N(0, 2 / (fan_in + fan_out)): for tanh and sigmoid units (Glorot and Bengio 2010)."""
    fan_in, fan_out = fans(layer.weight.shape)
    return _fill(layer, _rng(rng).normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), layer.weight.shape), bias)


def glorot_uniform(layer, bias=0.0, rng=None):
    fan_in, fan_out = fans(layer.weight.shape)
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return _fill(layer, _rng(rng).uniform(-bound, bound, layer.weight.shape), bias)
