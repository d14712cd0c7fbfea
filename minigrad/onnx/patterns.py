"""Several nodes read as one layer, where ONNX has no operator for what the layer computes: a grouped
LRN (Split, one LRN per part, Concat: how export writes LocalResponseNorm(groups=G)), a channel shuffle
(Reshape, Transpose, Reshape: how ShuffleNet's is written) and an LRN written out as operators (how
PyTorch exports nn.LocalResponseNorm). Each pattern is registered with the node that starts it, and a
test of whether it does; it reads the nodes that go with it (each the one reader of the one before, or
the nodes that follow) and returns the last one, whose output then holds the layer's."""
import math

import numpy as np

from .. import layers as L
from .arguments import integers
from .network import Node, reads
from .constants import BATCH, constant_ahead, is_evaluated, take_constant
from .converters.norm import LRN_ATTRIBUTES, append_lrn
from .dependency import onnx_package

PATTERNS = []           # (op, what, starts(node, network), read(network, node) -> the last node read)


def pattern(op, what, starts=lambda node, network: True):
    """Registers read(network, node) for the nodes of type `op` for which starts(node, network) holds."""
    def register(read):
        PATTERNS.append((op, what, starts, read))
        return read
    return register


def pattern_for(node, network):
    """The pattern that `node` starts, or None."""
    return next((read for op, _, starts, read in PATTERNS if op == node.op and starts(node, network)), None)


def _grouped_lrn(split, network):
    """(the LRN nodes, the Concat node) where `split` starts a grouped LRN, else None: a Split of the
    channels (axis 1) into equal parts, each read by one LRN alone (all with the same attributes), whose
    outputs one Concat alone reads, along axis 1, in order."""
    attributes = split.take({"axis": 0, "split": None, "num_outputs": None})
    sizes = attributes["split"] if len(split.proto.input) < 2 or not split.proto.input[1] else \
        network.constants.get(split.proto.input[1], [0, -1])           # opset 13 on: the sizes as an input
    lrns = [_sole_reader(network, part, "LRN") for part in split.proto.output]
    if attributes["axis"] != 1 or (sizes is not None and len(set(integers(split, sizes, "split"))) != 1) or None in lrns:
        return None
    concats = [_sole_reader(network, lrn.proto.output[0], "Concat") for lrn in lrns]
    concat = concats[0] if None not in concats and len({c.index for c in concats}) == 1 else None
    if (concat is None or any(list(lrn.proto.input) != [part] or len(lrn.proto.output) != 1 or lrn.attributes !=
                              lrns[0].attributes for lrn, part in zip(lrns, split.proto.output))
            or concat.attributes.get("axis") != 1 or list(concat.proto.input) != [n.proto.output[0] for n in lrns]):
        return None
    return lrns, concat


def _sole_reader(network, tensor, op):
    """The node that alone reads `tensor`, if it is an `op` node (its definition checked), else None."""
    readers = network.readers(tensor)
    if len(readers) != 1 or readers[0] == len(network.nodes) or network.nodes[readers[0]].op_type != op:
        return None
    node = Node(readers[0], network.nodes[readers[0]])
    node.check_schema(network.opset)
    return node


@pattern("Split", "Split + LRN + Concat (a grouped LRN)", lambda node, network: _grouped_lrn(node, network) is not None)
def grouped_lrn(network, split):
    """Split along the channels into G equal parts, one LRN on each (the same attributes), Concat in
    order: minigrad's LocalResponseNorm(groups=G), which is how export writes it (ONNX's LRN has no
    groups). Returns the Concat node, whose output then holds the layer's."""
    lrns, concat = _grouped_lrn(split, network)
    for node in lrns + [concat]:
        network.claim(node)
    append_lrn(network, concat, lrns[0].take(LRN_ATTRIBUTES), groups=len(lrns))
    return concat


def _channel_shuffle(reshape, network):
    """(the Transpose node, the last Reshape node, the groups) where `reshape` starts a channel shuffle,
    else None: a Reshape of (N, C, H, W) maps to (N, g, C/g, H, W), a Transpose of the two channel axes
    that alone reads it, and a Reshape back to (N, C, H, W) that alone reads that (each Reshape to a
    constant, or to a shape computed from the input's, as PyTorch writes x.view(n, g, c // g, h, w))."""
    shape, target = network.shape(), reshape.proto.input[1:2]
    if shape is None or len(shape) != 4 or None in shape[1:] or not target or target[0] not in network.constants:
        return None
    grouped = _reshaped(shape, network.constants[target[0]], reshape.attributes.get("allowzero", 0))
    if grouped is None or len(grouped) != 5 or grouped[3:] != shape[2:]:
        return None
    transpose = _sole_reader(network, reshape.proto.output[0], "Transpose")
    back = transpose and _sole_reader(network, transpose.proto.output[0], "Reshape")
    if back is None or list(transpose.attributes.get("perm", [])) != [0, 2, 1, 3, 4] or len(back.proto.input) != 2:
        return None
    back_target = constant_ahead(network, back.proto.input[1], back.index)
    if back_target is None or _reshaped([shape[0], grouped[2], grouped[1], *shape[2:]], back_target,
                                        back.attributes.get("allowzero", 0)) != [None, *shape[1:]]:
        return None
    return transpose, back, grouped[1]


def _reshaped(shape, target, allowzero):
    """The shape that a Reshape of an input of `shape` (batch first, its size free: None) to `target`
    gives, the batch first (None), or None where the batch does not stay first: a target that starts
    with the batch (BATCH, 0 copying it, -1, or the size the input declares), then sizes, one of them
    perhaps -1."""
    target = np.asarray(target).reshape(-1)
    if target.dtype.kind not in "iuO" or not target.size or not all(d is BATCH or isinstance(d, (int, np.integer))
                                                                   for d in target):
        return None
    sizes = [d if d is BATCH else shape[i] if d == 0 and not allowzero and i < len(shape) else int(d)
             for i, d in enumerate(target)]
    if not (sizes[0] is BATCH or sizes[0] is None or sizes[0] == -1 or shape[0] is not None and sizes[0] == shape[0]) \
            or not all(isinstance(d, int) and (d >= 1 or d == -1) for d in sizes[1:]) or sizes[1:].count(-1) > 1:
        return None
    features, known = math.prod(shape[1:]), math.prod(d for d in sizes[1:] if d != -1)
    if -1 in sizes[1:]:
        sizes[sizes.index(-1, 1)] = features // known if known and features % known == 0 else 0
    if sizes[0] == -1 and -1 in sizes[1:] or math.prod(sizes[1:]) != features:
        return None
    return [None, *sizes[1:]]


@pattern("Reshape", "Reshape + Transpose + Reshape (a channel shuffle)",
         lambda node, network: _channel_shuffle(node, network) is not None)
def channel_shuffle(network, reshape):
    """ShuffleNet's channel shuffle as exporters write x.view(N, g, C/g, H, W).transpose(1, 2).view(N, C,
    H, W): one ChannelShuffle(g), named after the last Reshape. Returns that Reshape."""
    transpose, back, groups = _channel_shuffle(reshape, network)
    for node in (transpose, back):
        network.claim(node)
    network.append(back, L.ChannelShuffle(groups))
    return back


@pattern("Mul", "Mul(x, x) ... Div (an LRN written out, as PyTorch exports it)",
         lambda node, network: list(node.proto.input) == [network.current] * 2)
def written_out_lrn(network, square):
    """x / (k + alpha * AveragePool(x^2 over `size` channels))^beta: nn.LocalResponseNorm as PyTorch
    exports it (F.local_response_norm is written with these operators; the reshapes around the pool
    vary with the opset and the dynamic axes). The nodes from the square to the Div that takes x again
    are read as one LocalResponseNorm (size from the pool's window, alpha, k and beta from the constants
    of Mul, Add and Pow), which is then checked: those nodes, run by onnx.reference on a probe of x's
    shape, must give the layer's output, or the load fails here. Returns the Div node."""
    nodes, x, values = network.nodes, network.current, network.constants
    end = next((j for j in range(square.index + 1, len(nodes))
                if nodes[j].op_type == "Div" and nodes[j].input[:1] == [x]), None)
    written_out = square.error(f"a Mul of {x!r} by itself is supported only as the start of an LRN written "
                               f"out, x / (k + alpha * AveragePool(x^2))^beta (PyTorch's export)")
    if end is None:
        raise written_out
    region = [Node(j, nodes[j]) for j in range(square.index, end + 1)]
    for n in region[1:]:
        n.check_schema(network.opset)
        network.claim(n)
    for n in region:                      # its constants (alpha, k, beta), which later nodes may share too
        if is_evaluated(n, network):
            take_constant(n, network)
    computed = {o for n in region for o in n.proto.output if o not in values} - {nodes[end].output[0]}
    if any(n.domain not in ("", "ai.onnx") or n.op_type not in _CHECKED_OPS for n in _with_subgraphs(
            n.proto for n in region)) or any(network.last_reader(name) > end for name in computed):
        raise written_out
    scalars = {op: [values[i].item() for n in region if n.op == op for i in n.proto.input
                    if i in values and values[i].size == 1 and values[i].dtype.kind in "fiu"]
               for op in ("Mul", "Add", "Pow")}
    pools = [n.attributes.get("kernel_shape", []) for n in region if n.op == "AveragePool"]
    if any(len(v) != 1 for v in scalars.values()) or len(pools) != 1 or any(k != 1 for k in pools[0][1:]):
        raise written_out
    shape = network.shape()
    append_lrn(network, region[-1], dict(size=pools[0][0], alpha=scalars["Mul"][0], beta=scalars["Pow"][0],
                                       bias=scalars["Add"][0]))
    if shape is None or None in shape[1:]:
        raise square.error(f"the shape of {x!r} is needed to check the LRN written out, and is not known")
    # Values of 10: the sum of squares reaches 1e3 or more, so alpha and beta matter in the comparison.
    probe_shape = [shape[0] or 1, *shape[1:]]
    network.budget.check(square, "the probe that checks the LRN written out", probe_shape, np.float32)
    probe = 10 * np.random.default_rng(0).standard_normal(probe_shape).astype(np.float32)
    layer = network.layers[-1][1]
    try:
        expected = layer.forward(probe)
        got = _run_nodes(network, square, [n.proto for n in region], x, probe)
    except Exception as error:                  # the layer's refusal, or whatever onnx.reference raises
        while error.__cause__ is not None:      # (onnx.reference wraps what its operators raise)
            error = error.__cause__
        raise square.error(f"the LRN written out could not be checked: {error}") from None
    if got.shape != expected.shape or np.abs(got - expected).max() > 1e-5 * np.abs(expected).max():
        raise square.error(f"nodes {square.index}..{end} look like an LRN written out but do not compute "
                           f"{layer.describe()} (max difference {np.abs(got - expected).max():.3g})")
    return region[-1]


# The operators of an LRN written out, as PyTorch's exporter writes it at opsets 7 to 20, with and
# without a free batch size: the only ones run to check one.
_CHECKED_OPS = {"Mul", "Add", "Pow", "Div", "Equal", "Pad", "AveragePool", "Reshape", "Unsqueeze", "Squeeze", "If",
                "Identity", "Shape", "Gather", "Constant", "Cast", "Concat", "ConstantOfShape", "Slice", "Transpose"}


def _with_subgraphs(nodes):
    """The nodes, and the nodes of their subgraphs (If's branches), at every depth."""
    for node in nodes:
        yield node
        for attribute in node.attribute:
            for graph in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                yield from _with_subgraphs(graph.node)


def _run_nodes(network, square, nodes, x, probe):
    """The last node's output for x = probe, by onnx.reference (the constants they read from the network's)."""
    onnx = onnx_package()
    from onnx.reference import ReferenceEvaluator

    helper, float32 = onnx.helper, onnx.TensorProto.FLOAT
    made = {o for n in nodes for o in n.output}
    read = sorted({name for n in nodes for name in reads(n)} - made - {x})
    graph = helper.make_graph(nodes, "part", [helper.make_tensor_value_info(x, float32, probe.shape)],
                              [helper.make_tensor_value_info(nodes[-1].output[0], float32, None)],
                              [onnx.numpy_helper.from_array(np.asarray(network.constants[name]), name) for name in read])
    part = helper.make_model(graph, opset_imports=network.model.opset_import, ir_version=network.model.ir_version)
    return ReferenceEvaluator(part, new_ops=_checking_ops(network, square)).run(None, {x: probe})[0]


def _checking_ops(network, square):
    """onnx.reference's implementations of the operators that can make an output larger than their
    inputs, each checking the size of that output against load's budget before making it; and a faster
    AveragePool."""
    from onnx.reference.op_run import OpRun
    from onnx.reference.ops import load_op

    def checked(op, output_shape):
        base = load_op("", op, network.opset)

        def _run(self, *inputs, **attributes):
            refusal = network.budget.refusal(f"the output of its {op}", output_shape(*inputs, **attributes),
                                           np.float32)
            if refusal:
                raise ValueError(refusal)
            return base._run(self, *inputs, **attributes)
        return type(op, (base,), {"_run": _run})

    def broadcast(*inputs, **_):
        return np.broadcast_shapes(*(np.shape(i) for i in inputs))

    def padded(data, pads=None, *_, **attributes):
        pads, shape = [int(p) for p in np.reshape(attributes.get("pads") if pads is None else pads, -1)], np.shape(data)
        return [size + pads[axis] + pads[axis + len(shape)] for axis, size in enumerate(shape)]

    def gathered(data, indices, axis=None):
        shape, axis = list(np.shape(data)), int(axis or 0)
        return shape[:axis % len(shape)] + list(np.shape(indices)) + shape[axis % len(shape) + 1:]

    class AveragePool(OpRun):
        """The reference AveragePool loops over the output in Python (seconds on AlexNet's conv1 maps);
        with stride 1 and no pads, all that an LRN written out uses, it is a mean over sliding windows."""

        def _run(self, x, auto_pad=None, ceil_mode=None, count_include_pad=None, dilations=None,
                 kernel_shape=None, pads=None, strides=None):
            if any(s != 1 for s in strides or []) or any(pads or []) or any(d != 1 for d in dilations or []):
                raise ValueError("only stride 1, no pads, no dilation")
            axes = tuple(range(2, x.ndim))
            windows = np.lib.stride_tricks.sliding_window_view(x, kernel_shape, axis=axes)
            return (windows.mean(axis=tuple(-1 - a for a in range(len(axes)))).astype(x.dtype),)

    return [AveragePool, *(checked(op, broadcast) for op in ("Mul", "Add", "Pow", "Div", "Equal")),
            checked("Pad", padded), checked("Gather", gathered),
            checked("Concat", lambda *inputs, **_: [sum(np.size(i) for i in inputs)]),
            checked("ConstantOfShape", lambda shape, **_: [int(d) for d in np.reshape(shape, -1)])]
