"""Where a graph forks and joins: Add and Sum (of computed tensors an Add layer; of a constant the bias
of the layer before it, or a Bias layer), Mul (Multiply; by a constant classic dropout's 1 - p, or a
Scale layer), Concat, and the parts of a tensor that Split and Slice take (Slice layers, one per
axis)."""
import math

from ... import layers as L
from ..arguments import float_weights, integers
from .linear import fold_bias
from .norm import classic_dropout
from .registry import converter


@converter("Add", note="of computed tensors, or of a constant")
def add(network, node, args):
    node.take({})
    if args[0] is None:                   # both computed: a join (ResNet's shortcut)
        _join(network, node, L.Add())
    elif not fold_bias(network, node, _float(node, args[0])):
        _by_constant(network, node, L.Bias, args[0])


@converter("Sum", note="of computed tensors")
def sum_of(network, node, args):
    node.take({})
    if any(arg is not None for arg in args):
        raise node.error("only a Sum of tensors the graph computes is supported, not of constants")
    if args:                               # (a Sum of one tensor is that tensor)
        _join(network, node, L.Add())


@converter("Mul", note="of computed tensors, or by a constant")
def mul(network, node, args):
    node.take({})
    if args[0] is None:
        _join(network, node, L.Multiply())
    elif not classic_dropout(network, node, args[0]):
        _by_constant(network, node, L.Scale, args[0])


@converter("Concat", note="of computed tensors")
def concat(network, node, args):
    axis = int(node.take({"axis": None})["axis"])
    if any(arg is not None for arg in args):
        raise node.error("only a Concat of tensors the graph computes is supported, not of constants with them")
    _join(network, node, L.Concat(_not_the_batch(network, node, axis, "Concat")))


@converter("Split", note="along an axis after the batch")
def split(network, node, args):
    """One Slice layer per part, each reading the tensor split: where the parts' gradients meet again,
    the graph adds them (each is zero outside its part). Sizes from the attribute `split` (up to opset
    12), the input (13 on), or equal parts (the last one smaller from opset 18, where num_outputs says
    how many)."""
    a = node.take({"axis": 0, "split": None, "num_outputs": None})
    axis = _not_the_batch(network, node, int(a["axis"]), "Split")
    size, outputs = network.shape()[axis], list(node.proto.output)
    if size is None:
        raise node.error(f"Split along axis {axis} of an input of shape {network.shape()}: only an axis of a "
                         f"known size is supported")
    if len(node.proto.input) > 1 and node.proto.input[1] and args[0] is None:
        raise node.error("its sizes must be a constant")
    given = args[0] if args and args[0] is not None else a["split"]
    if given is not None:
        sizes = integers(node, given, "split")
    elif network.opset >= 18:
        sizes = [math.ceil(size / len(outputs))] * (len(outputs) - 1)
        sizes.append(size - sum(sizes))
    else:
        sizes = [size // len(outputs)] * len(outputs)
    if len(sizes) != len(outputs) or sum(sizes) != size or min(sizes) < 1:
        raise node.error(f"sizes {sizes} for {len(outputs)} outputs along axis {axis} of size {size}: expected "
                         f"one size >= 1 per output, adding up to the axis")
    whole, start = network.value_of(network.current), 0
    for tensor, length in zip(outputs, sizes):
        if tensor:
            network.define(tensor, network.append(node, L.Slice(start, start + length, axis), reads=[whole]))
        start += length


@converter("Slice", note="of axes after the batch, step 1")
def slice_of(network, node, args):
    """Slice layers where the graph slices what it computes (a Slice of constants is evaluated): a part
    of each axis it names after the batch, step 1, one Slice layer per axis in turn (tf2onnx writes the
    crop of a map's height and width as one node); starts and ends as ONNX reads them (from the end
    where negative, clamped to the axis)."""
    a = node.take({"starts": None, "ends": None, "axes": None})   # attributes up to opset 9, then inputs
    if any(name and value is None for name, value in zip(node.proto.input[1:], args)):
        raise node.error("its starts, ends, axes and steps must be constants")
    starts, ends, axes, steps = [integers(node, value, what) if value is not None else None for value, what in zip(
        [*args, None, None, None, None][:4] if args else (a["starts"], a["ends"], a["axes"], None),
        ("starts", "ends", "axes", "steps"))]
    shape = network.shape()
    if starts is None or ends is None or shape is None:
        raise node.error(f"needs starts, ends and an input of known rank, got {starts}, {ends}, input shape {shape}")
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    if not len(starts) == len(ends) == len(axes) == len(steps) or not all(-len(shape) <= x < len(shape) for x in axes) \
            or len({x % len(shape) for x in axes}) < len(axes):
        raise node.error(f"starts {starts}, ends {ends}, axes {axes}, steps {steps} do not fit an input of shape {shape} "
                         f"(one start, end and step for each axis, each axis once)")
    parts = []
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = axis % len(shape)
        size = shape[axis]
        if size is None and (start, step) == (0, 1) and end >= 2**31 - 1:
            continue                        # the whole of a free size (the batch, as exporters slice it)
        if size is None or step != 1 or axis == 0:
            raise node.error(f"Slice of axis {axis} (size {size}) with step {step}: only axes after the batch, of a "
                             f"known size, with step 1, are supported")
        start, end = (min(max(v + size if v < 0 else v, 0), size) for v in (start, end))
        if (start, end) != (0, size):
            parts.append((start, end, axis))
    for part in parts:
        network.append(node, L.Slice(*part))


def _join(network, node, layer):
    """`layer` reading the values of all the node's inputs."""
    network.append(node, layer, reads=[network.value_of(tensor) for tensor in node.proto.input])


def _float(node, constant):
    float_weights(node, [constant], ["constant"])
    return constant


def _by_constant(network, node, kind, constant):
    """A Scale or a Bias (`kind`) holding the node's constant: one value for all, or one per channel (or
    per position) of an example, broadcast as ONNX broadcasts it, never along the batch."""
    shape = network.shape()
    if shape is not None and (constant.ndim > len(shape) or constant.ndim == len(shape) and constant.shape[0] != 1):
        raise node.error(f"its constant of shape {constant.shape} would change an input of shape {shape} along its "
                         f"batch: only a constant the same for every example is supported")
    layer = kind(constant.shape)
    layer.weight.data[...] = _float(node, constant)
    network.append(node, layer)


def _not_the_batch(network, node, axis, what):
    """`axis` counted from 0 (ONNX counts a negative one from the end), after refusing the batch axis."""
    shape = network.shape()
    rank = len(shape) if shape is not None else None
    if rank is None or not -rank <= axis < rank or axis % rank == 0:
        raise node.error(f"{what} along axis {axis} of an input of shape {shape}: only an axis after the batch of "
                         f"an input of known rank is supported")
    return axis % rank
