"""LRN (ONNX's alpha is divided by the window), BatchNormalization in inference, Dropout, and the Mul
by 1 - p after it that makes it the paper's classic dropout (classic_dropout)."""
import numpy as np

from ... import layers as L
from ..arguments import LARGEST_SIZE, float_weights, scalar
from .registry import converter

LRN_ATTRIBUTES = {"size": None, "alpha": 1e-4, "beta": 0.75, "bias": 1.0}


@converter("LRN")
def lrn(network, node, args):
    append_lrn(network, node, node.take(LRN_ATTRIBUTES))


def append_lrn(network, node, attributes, groups=1):
    """A LocalResponseNorm from an LRN's attributes (patterns.py: a grouped LRN's, named by its Concat)."""
    size = int(attributes["size"])
    if not 1 <= size <= LARGEST_SIZE:
        raise node.error(f"size {size}: expected a window from 1 to 2**31 - 1 channels")
    if size % 2 == 0:
        raise node.error(f"size {size}: an even window is not centred; minigrad's LRN needs an odd size")
    # ONNX divides alpha by the window; the paper's formula (minigrad's) does not. Divided in float32,
    # the precision of the attribute, so that an exported alpha comes back as the float32 it was.
    alpha = float(np.float32(attributes["alpha"]) / np.float32(size))
    network.append(node, L.LocalResponseNorm(size, alpha=alpha, beta=float(attributes["beta"]),
                                           k=float(attributes["bias"]), groups=groups))


@converter("BatchNormalization")
def batch_normalization(network, node, args):
    a = node.take({"epsilon": 1e-5, "momentum": 0.9, "spatial": 1, "training_mode": 0})
    if a["training_mode"] or not a["spatial"]:
        raise node.error("only inference (training_mode=0) with per-channel statistics (spatial=1) is supported")
    if any(name for name in node.proto.output[1:]):
        raise node.error("its running-statistics outputs are not supported (training mode)")
    float_weights(node, args, ["scale", "bias", "mean", "var"])
    if any(arg.ndim != 1 or arg.shape != args[0].shape for arg in args):
        raise node.error(f"its scale, bias, mean and var must be vectors of one length, got shapes "
                         f"{[arg.shape for arg in args]}")
    shape = network.shape()
    rank = len(shape) if shape is not None else None
    if rank not in (2, 4):
        raise node.error(f"input rank {rank} (shape {shape}): only (N, C) and (N, C, H, W) inputs are supported")
    layer = (L.BatchNorm2d if rank == 4 else L.BatchNorm1d)(len(args[0]), eps=float(a["epsilon"]),
                                                            momentum=1 - float(a["momentum"]))
    layer.weight.data[...], layer.bias.data[...] = args[0], args[1]
    layer.running_mean[...], layer.running_var[...] = args[2], args[3]
    network.append(node, layer, node.proto.input[1:])


@converter("Dropout")
def dropout(network, node, args):
    a = node.take({"ratio": 0.5, "seed": None, "is_test": 0})
    if len(node.proto.input) > 1 and node.proto.input[1] and args[0] is None:
        raise node.error("its ratio must be a constant")
    if len(args) > 1 and node.proto.input[2] and (args[1] is None or scalar(node, args[1], "training_mode")):
        raise node.error("training_mode must be a constant false: only inference graphs are supported")
    ratio = scalar(node, args[0], "ratio") if args and args[0] is not None else float(a["ratio"])
    network.append(node, L.Dropout(ratio))         # inverted: the identity at inference, as ONNX's


def classic_dropout(network, node, scale):
    """Whether the Mul by the constant `scale` is 1 - p right after a Dropout of ratio p whose output
    nothing else reads (export's classic dropout, see minigrad.onnx): that Dropout is then classic."""
    layer = network.layer_before()
    if not (isinstance(layer, L.Dropout) and layer.mode == "inverted" and scale.size == 1
            and scale.dtype.kind == "f" and abs(float(scale.reshape(-1)[0]) - (1 - layer.p)) < 1e-6):
        return False
    layer.mode = "classic"
    return True
