"""Relu, LeakyRelu, Sigmoid, Tanh, Clip, and Softmax (a trailing one dropped unless load keeps it)."""
import math

from ... import layers as L
from ..arguments import scalar
from .registry import converter


def _elementwise(layer_type, **defaults):
    """A converter to `layer_type`, built from the node's attributes (`defaults` where absent), in order."""
    def convert(network, node, args):
        a = node.take(defaults)
        network.append(node, layer_type(*(float(v) for v in a.values())))
    return convert


converter("Relu")(_elementwise(L.ReLU))
converter("LeakyRelu")(_elementwise(L.LeakyReLU, alpha=0.01))
converter("Sigmoid")(_elementwise(L.Sigmoid))
converter("Tanh")(_elementwise(L.Tanh))


@converter("Softmax", until=12)
def softmax_of_rows(network, node, args):
    """Up to opset 12, Softmax views its input as a matrix, the axes from `axis` on as one row: the
    softmax over one axis where the others of the row have size 1 (a classifier's (N, classes, 1, 1))."""
    axis = int(node.take({"axis": 1})["axis"])
    shape = network.shape()
    rank = len(shape) if shape is not None else None
    row = [] if rank is None or not -rank <= axis < rank else list(range(axis % rank, rank))
    longer = [a for a in row if shape[a] != 1]
    if not row or len(longer) > 1:
        raise node.error(f"opset {network.opset} Softmax over axes {axis}.. of an input of shape {shape}: only "
                         f"the softmax over one axis (the others of the row of size 1) is supported")
    _append_softmax(network, node, (longer or row)[-1])


@converter("Softmax", since=13)
def softmax(network, node, args):
    _append_softmax(network, node, int(node.take({"axis": -1})["axis"]))


def _append_softmax(network, node, axis):
    """The graph's trailing Softmax is dropped unless load(keep_softmax=True): the model gives logits."""
    if network.keep_softmax or not network.is_trailing(node):
        network.append(node, L.Softmax(axis))


@converter("Clip", until=10)
def clip_by_attributes(network, node, args):
    a = node.take({"min": None, "max": None})
    _append_clip(network, node, a["min"], a["max"])


@converter("Clip", since=11)
def clip(network, node, args):
    """min and max as inputs from opset 11 (either left out): Clip(0, 6) is MobileNet's ReLU6."""
    node.take({})
    if any(name and value is None for name, value in zip(node.proto.input[1:], args)):
        raise node.error("its min and max must be constants")
    low, high = [scalar(node, value, what) if value is not None else None
                 for value, what in zip([*args, None, None][:2], ("min", "max"))]
    _append_clip(network, node, low, high)


def _append_clip(network, node, low, high):
    """A Clip, an infinite bound (ONNX's default) as none."""
    network.append(node, L.Clip(*(None if bound is None or math.isinf(bound) else float(bound)
                                  for bound in (low, high))))
