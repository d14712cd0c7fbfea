"""Gemm and MatMul (Linear), the bias that an Add gives the Linear or Conv2d before it (fold_bias), and the
nodes that only rearrange: Flatten, Reshape and Squeeze to (batch, features), Transpose, Identity."""
import numpy as np

from ... import layers as L
from ..arguments import float_weights, squeeze_axes
from ..constants import BATCH
from .registry import converter


@converter("Gemm")
def gemm(network, node, args):
    a = node.take({"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 0, "broadcast": 1})
    if a["transA"]:
        raise node.error("transA=1 (a transposed batch) is not supported")
    float_weights(node, args, ["B", "C"][:len(args)])
    weight = args[0] if a["transB"] else args[0].T            # Linear's (out, in)
    bias = args[1] if len(args) > 1 and node.proto.input[2] else None
    _linear(network, node, float(a["alpha"]) * weight, None if bias is None else float(a["beta"]) * bias)


@converter("MatMul")
def matmul(network, node, args):
    node.take({})
    float_weights(node, args, ["B"])
    _linear(network, node, args[0].T, None)


def _linear(network, node, weight, bias):
    shape = network.shape()
    if shape is not None and len(shape) != 2:
        raise node.error(f"input of shape {shape}: only (N, features) inputs are supported")
    if weight.ndim != 2:
        raise node.error(f"weight of shape {weight.shape}: only a matrix is supported")
    out = weight.shape[0]
    if bias is not None:
        if bias.size not in (1, out) or (bias.ndim == 2 and bias.shape[0] != 1) or bias.ndim > 2:
            raise node.error(f"bias of shape {bias.shape}: only a scalar or one value per output ({out}) "
                             f"is supported, not one that depends on the batch")
        bias = np.broadcast_to(bias.reshape(-1), (out,))
    layer = L.Linear(weight.shape[1], out, bias=bias is not None)
    layer.weight.data[...] = weight
    if bias is not None:
        layer.bias.data[...] = bias
    network.append(node, layer, [n for n in node.proto.input[1:] if n])


def fold_bias(network, node, bias):
    """Whether the Add of the constant `bias` is the bias of the layer before it, which then takes it: a
    MatMul's (a Linear without a bias), or a Conv's without a bias (as CNTK wrote a convolution's bias,
    e.g. the ONNX Model Zoo's mnist-8), one value per output or one for all, where nothing else reads
    that layer's output."""
    layer = network.layer_before()
    if not isinstance(layer, (L.Linear, L.Conv2d)) or layer.bias is not None:
        return False
    if isinstance(layer, L.Linear):
        outputs, fits = layer.out_features, bias.ndim <= 2 and (bias.ndim < 2 or bias.shape[0] == 1)
        with_bias = L.Linear(layer.in_features, outputs)
    else:                                 # it must broadcast to (1, C, 1, 1): one value per channel
        outputs, fits = layer.out_channels, bias.ndim <= 4 and (1,) * (4 - bias.ndim) + bias.shape in (
            (1, layer.out_channels, 1, 1), (1, 1, 1, 1))
        with_bias = L.Conv2d(layer.in_channels, outputs, layer.kernel_size, layer.stride, layer.padding,
                             groups=layer.groups)
    if not fits or bias.size not in (1, outputs):
        return False
    with_bias.weight.data[...] = layer.weight.data
    with_bias.bias.data[...] = np.broadcast_to(bias.reshape(-1), (outputs,))
    network.replace_layer_before(with_bias)
    return True


@converter("Flatten")
def flatten(network, node, args):
    axis = int(node.take({"axis": 1})["axis"])
    shape = network.shape()
    if axis != 1 and not (shape is not None and axis == 1 - len(shape)):
        raise node.error(f"axis {axis}: only flattening everything after the batch axis (axis=1) is supported")
    network.append(node, L.Flatten())


@converter("Reshape", note="to flatten")
def reshape(network, node, args):
    """Reshape to (batch, features), as exporters write Flatten: to a constant ([1, 9216] in bvlc_alexnet,
    the batch it was exported with), to (-1, features), or to (batch, -1) computed from the input's Shape."""
    allowzero = node.take({"allowzero": 0})["allowzero"]
    target, shape = args[0] if args else None, network.shape()
    if target is None:
        raise node.error("its shape must be a constant or computed from the input's shape")
    if np.asarray(target).dtype.kind not in "iuO":              # (O: a shape that holds the batch, BATCH)
        raise node.error(f"its shape must be integers, got {np.asarray(target).dtype}")
    target = [v if v is BATCH else int(v) for v in np.asarray(target).reshape(-1)]
    features = int(np.prod(shape[1:])) if shape is not None and None not in shape[1:] else None
    batch = shape[0] if shape is not None else None
    keeps_batch = len(target) == 2 and (target[0] is BATCH or target[0] in (-1, batch)
                                        or target[0] == 0 and not allowzero)    # 0 copies the dim, unless allowzero
    if keeps_batch and target[1] is not BATCH and (target[1] == -1 and target[0] != -1 or
                                                   features is not None and target[1] == features):
        network.append(node, L.Flatten())
        return
    raise node.error(f"Reshape from {shape} to {target}{' (allowzero=1)' if allowzero else ''}: only a flatten "
                     f"to (batch, features) is supported")


@converter("Identity")
def identity(network, node, args):
    node.take({})


@converter("Transpose", note="the batch axis first")
def transpose(network, node, args):
    """A permutation of the axes that keeps the batch first (TensorFlow's NHWC <-> NCHW)."""
    perm = node.take({"perm": None})["perm"]
    shape = network.shape()
    if perm is None:                                      # ONNX's default: the axes reversed
        if shape is None:
            raise node.error("no perm, and the input's rank is unknown: only an explicit perm is supported")
        perm = list(range(len(shape)))[::-1]
    try:
        layer = L.Transpose(perm)
    except ValueError:
        raise node.error(f"perm {list(perm)}: only permutations that keep the batch axis first are supported") \
            from None
    network.append(node, layer)


@converter("Squeeze", note="to (batch, features)")
def squeeze_to_features(network, node, args):
    """The 1-sized axes after the batch removed, leaving (N, features): a Flatten (TensorFlow's global
    average pool is GlobalAveragePool then Squeeze of H and W)."""
    axes = squeeze_axes(node, args[0] if args else None)
    shape = network.shape()
    if shape is not None and axes is not None:
        removed = {axis % len(shape) for axis in axes}
        kept = [size for axis, size in enumerate(shape) if axis not in removed]
        if 0 not in removed and len(kept) == 2 and all(shape[axis] == 1 for axis in removed):
            network.append(node, L.Flatten())
            return
    raise node.error(f"Squeeze of axes {axes} of a {shape} input: only removing 1-sized axes to leave (batch, "
                     f"features) is supported")
