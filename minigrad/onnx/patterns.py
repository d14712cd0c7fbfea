"""Several nodes read as one layer, where ONNX has no operator for what the layer computes: a grouped
LRN (Split, one LRN per part, Concat: how export writes LocalResponseNorm(groups=G)) and an LRN written
out as operators (how PyTorch exports nn.LocalResponseNorm). Each pattern is registered with the node
that starts it; it reads the nodes that follow and returns the last one it took."""
import numpy as np

from .arguments import integers
from .chain import Node, reads
from .constants import is_evaluated, take_constant
from .converters.norm import LRN_ATTRIBUTES, append_lrn
from .dependency import onnx_package

PATTERNS = []           # (op, what, starts(node, chain), read(chain, node) -> the last node read)


def pattern(op, what, starts=lambda node, chain: True):
    """Registers read(chain, node) for the nodes of type `op` for which starts(node, chain) holds."""
    def register(read):
        PATTERNS.append((op, what, starts, read))
        return read
    return register


def pattern_for(node, chain):
    """The pattern that `node` starts, or None."""
    return next((read for op, _, starts, read in PATTERNS if op == node.op and starts(node, chain)), None)


@pattern("Split", "Split + LRN + Concat (a grouped LRN)")
def grouped_lrn(chain, split):
    """Split along the channels into G equal parts, one LRN on each (the same attributes), Concat in
    order: minigrad's LocalResponseNorm(groups=G), which is how export writes it (ONNX's LRN has no
    groups). Returns the Concat node, whose output the chain then holds."""
    nodes, index = chain.nodes, split.index + 1
    parts = list(split.proto.output)
    attributes = split.take({"axis": 0, "split": None, "num_outputs": None})
    group = [Node(index + g, nodes[index + g]) for g in range(len(parts)) if index + g < len(nodes)]
    concat = Node(index + len(parts), nodes[index + len(parts)]) if index + len(parts) < len(nodes) else None
    for n in group + [concat] * (concat is not None):
        n.check_schema(chain.opset)
        chain.claim(n)
    sizes = attributes["split"] if len(split.proto.input) < 2 or not split.proto.input[1] else \
        chain.constants.get(split.proto.input[1], [0, -1])           # opset 13 on: the sizes as an input
    equal = sizes is None or len(set(integers(split, sizes, "split"))) == 1
    lrn_attributes = [dict(n.attributes) for n in group]
    if (attributes["axis"] != 1 or not equal or len(group) != len(parts)
            or any(n.op != "LRN" or list(n.proto.input) != [part] for n, part in zip(group, parts))
            or any(a != lrn_attributes[0] for a in lrn_attributes)
            or concat is None or concat.op != "Concat" or concat.attributes.get("axis") != 1
            or list(concat.proto.input) != [n.proto.output[0] for n in group]):
        raise split.error("Split is supported only as a grouped LRN: a Split of the channels (axis 1) into "
                          "equal parts, the same LRN on each part, and a Concat of them along axis 1 in order")
    append_lrn(chain, concat, group[0].take(LRN_ATTRIBUTES), groups=len(parts))
    return concat


@pattern("Mul", "Mul(x, x) ... Div (an LRN written out, as PyTorch exports it)",
         lambda node, chain: list(node.proto.input) == [chain.current] * 2)
def written_out_lrn(chain, square):
    """x / (k + alpha * AveragePool(x^2 over `size` channels))^beta: nn.LocalResponseNorm as PyTorch
    exports it (F.local_response_norm is written with these operators; the reshapes around the pool
    vary with the opset and the dynamic axes). The nodes from the square to the Div that takes x again
    are read as one LocalResponseNorm (size from the pool's window, alpha, k and beta from the constants
    of Mul, Add and Pow), which is then checked: those nodes, run by onnx.reference on a probe of x's
    shape, must give the layer's output, or the load fails here. Returns the Div node."""
    nodes, x, values = chain.nodes, chain.current, chain.constants
    end = next((j for j in range(square.index + 1, len(nodes))
                if nodes[j].op_type == "Div" and nodes[j].input[:1] == [x]), None)
    written_out = square.error(f"a Mul of {x!r} by itself is supported only as the start of an LRN written "
                               f"out, x / (k + alpha * AveragePool(x^2))^beta (PyTorch's export)")
    if end is None:
        raise written_out
    region = [Node(j, nodes[j]) for j in range(square.index, end + 1)]
    for n in region[1:]:
        n.check_schema(chain.opset)
        chain.claim(n)
    for n in region:                      # its constants (alpha, k, beta), which later nodes may share too
        if is_evaluated(n, chain):
            take_constant(n, chain)
    computed = {o for n in region for o in n.proto.output if o not in values} - {nodes[end].output[0]}
    if any(n.domain not in ("", "ai.onnx") or n.op_type not in _CHECKED_OPS for n in _with_subgraphs(
            n.proto for n in region)) or any(chain.last_reader(name) > end for name in computed):
        raise written_out
    scalars = {op: [values[i].item() for n in region if n.op == op for i in n.proto.input
                    if i in values and values[i].size == 1 and values[i].dtype.kind in "fiu"]
               for op in ("Mul", "Add", "Pow")}
    pools = [n.attributes.get("kernel_shape", []) for n in region if n.op == "AveragePool"]
    if any(len(v) != 1 for v in scalars.values()) or len(pools) != 1 or any(k != 1 for k in pools[0][1:]):
        raise written_out
    shape = chain.shape()
    append_lrn(chain, region[-1], dict(size=pools[0][0], alpha=scalars["Mul"][0], beta=scalars["Pow"][0],
                                       bias=scalars["Add"][0]))
    if shape is None or None in shape[1:]:
        raise square.error(f"the shape of {x!r} is needed to check the LRN written out, and is not known")
    # Values of 10: the sum of squares reaches 1e3 or more, so alpha and beta matter in the comparison.
    probe_shape = [shape[0] or 1, *shape[1:]]
    chain.budget.check(square, "the probe that checks the LRN written out", probe_shape, np.float32)
    probe = 10 * np.random.default_rng(0).standard_normal(probe_shape).astype(np.float32)
    layer = chain.layers[-1][1]
    try:
        expected = layer.forward(probe)
        got = _run_nodes(chain, square, [n.proto for n in region], x, probe)
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


def _run_nodes(chain, square, nodes, x, probe):
    """The last node's output for x = probe, by onnx.reference (the constants they read from the chain's)."""
    onnx = onnx_package()
    from onnx.reference import ReferenceEvaluator

    helper, float32 = onnx.helper, onnx.TensorProto.FLOAT
    made = {o for n in nodes for o in n.output}
    read = sorted({name for n in nodes for name in reads(n)} - made - {x})
    graph = helper.make_graph(nodes, "part", [helper.make_tensor_value_info(x, float32, probe.shape)],
                              [helper.make_tensor_value_info(nodes[-1].output[0], float32, None)],
                              [onnx.numpy_helper.from_array(np.asarray(chain.constants[name]), name) for name in read])
    part = helper.make_model(graph, opset_imports=chain.model.opset_import, ir_version=chain.model.ir_version)
    return ReferenceEvaluator(part, new_ops=_checking_ops(chain, square)).run(None, {x: probe})[0]


def _checking_ops(chain, square):
    """onnx.reference's implementations of the operators that can make an output larger than their
    inputs, each checking the size of that output against load's budget before making it; and a faster
    AveragePool."""
    from onnx.reference.op_run import OpRun
    from onnx.reference.ops import load_op

    def checked(op, output_shape):
        base = load_op("", op, chain.opset)

        def _run(self, *inputs, **attributes):
            refusal = chain.budget.refusal(f"the output of its {op}", output_shape(*inputs, **attributes),
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
