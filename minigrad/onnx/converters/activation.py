"""Relu, LeakyRelu, Sigmoid, Tanh, and Softmax (a trailing one dropped unless load keeps it)."""
from ... import layers as L
from .registry import converter


def _elementwise(layer_type, **defaults):
    """A converter to `layer_type`, built from the node's attributes (`defaults` where absent), in order."""
    def convert(chain, node, args):
        a = node.take(defaults)
        chain.append(node, layer_type(*(float(v) for v in a.values())))
    return convert


converter("Relu")(_elementwise(L.ReLU))
converter("LeakyRelu")(_elementwise(L.LeakyReLU, alpha=0.01))
converter("Sigmoid")(_elementwise(L.Sigmoid))
converter("Tanh")(_elementwise(L.Tanh))


@converter("Softmax", until=12)
def softmax_of_rows(chain, node, args):
    """Up to opset 12, Softmax views its input as a matrix, the axes from `axis` on as one row: the
    softmax over the last axis alone only where `axis` is the last."""
    axis = int(node.take({"axis": 1})["axis"])
    shape = chain.shape()
    rank = len(shape) if shape is not None else None
    if not (rank is not None and axis % rank == rank - 1):
        raise node.error(f"opset {chain.opset} Softmax over axes {axis}.. of an input of rank {rank}: only "
                         f"the last axis is supported")
    _append_softmax(chain, node, axis)


@converter("Softmax", since=13)
def softmax(chain, node, args):
    _append_softmax(chain, node, int(node.take({"axis": -1})["axis"]))


def _append_softmax(chain, node, axis):
    """The graph's trailing Softmax is dropped unless load(keep_softmax=True): the model gives logits."""
    if chain.keep_softmax or not chain.is_trailing(node):
        chain.append(node, L.Softmax(axis))
