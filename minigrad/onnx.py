"""Models in and out of minigrad as ONNX graphs: export(model, path, input_shape) and load(path).

Conventions converted (SPEC.md, "Exchanging models"):
- LRN: ONNX divides alpha by the window, the paper (and minigrad) does not: export alpha * size, load
  alpha / size. Caffe's bvlc_alexnet (alpha 1e-4, size 5, bias 1) loads as alpha=2e-5, k=1. PyTorch
  writes nn.LocalResponseNorm out as operators, alpha times an average over the window: the same alpha.
- Dropout: ONNX inference Dropout is the identity (the inverted form). The paper's classic dropout
  scales by 1 - p at test time, so export folds 1 - p into the next Conv/Gemm weights (classic dropout
  on W is inverted dropout on (1 - p) W, in training as in eval), or writes Dropout + Mul(1 - p) when
  no linear layer follows; load reads that pair back as a classic Dropout.
- MaxPool: minigrad's padding (top, left, bottom, right) is ONNX's pads. ceil_mode is written as the
  trailing pads that give its windows at the graph's input size, in floor mode, as graphs older than
  opset 10 imitate Caffe's round-up (onnx's shape inference keeps a last window that starts in the
  trailing padding, which ONNX Runtime and minigrad drop). load reads pads and ceil_mode as they are.
- AveragePool: count_include_pad is AvgPool2d's (ONNX's default 0, PyTorch's 1). Where no padding is
  counted, ceil_mode is written as MaxPool's is; where it is, as ceil_mode, and a pool whose last window
  would start past the input is refused (shape inference would keep it). load reads both as they are,
  and cuts trailing pads as large as the window (PyTorch's imitation of ceil_mode before opset 10) to
  what the last window reaches. Pad with zeros around the maps is ZeroPad2d, and so is the part of a
  Conv's asymmetric pads (TensorFlow's SAME at stride 2) that Conv2d's symmetric padding cannot hold.
- Transpose (TensorFlow's NHWC input, and its NHWC flatten before a Dense layer) is a Transpose layer,
  so that a graph converted by tf2onnx takes the NHWC input it was exported with.
- Gemm with transB=1 takes Linear's (out, in) weight; Conv with group takes Conv2d's.
The onnx package (the `onnx` extra) is imported only here, when one of these functions runs.
"""
import copy
import os
from types import SimpleNamespace

import numpy as np

from . import backend, ops
from . import layers as L

OPSET = 17          # the opset export writes: Dropout's ratio as an input (12)
IR_VERSION = 8      # the IR version of opset 17; ONNX Runtime 1.10 and later read it
OLDEST_OPSET = 7
FLOAT = 1           # onnx.TensorProto.FLOAT


def _onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise RuntimeError("minigrad.onnx needs the onnx package: pip install 'minigrad[onnx]' "
                           "(or pip install onnx)") from None
    return onnx, numpy_helper


# --- export ------------------------------------------------------------------------------------------
def _flat_layers(model, prefix=""):
    """(name, layer) pairs of a Sequential, nested Sequentials flattened with dotted names."""
    if not isinstance(model, L.Sequential):
        return [(prefix or type(model).__name__.lower(), model)]
    pairs = []
    for name, layer in model.named_layers():
        pairs += _flat_layers(layer, f"{prefix}.{name}" if prefix else name) if isinstance(
            layer, L.Sequential) else [(f"{prefix}.{name}" if prefix else name, layer)]
    return pairs


def export(model, path, input_shape):
    """Write `model` (a Sequential of minigrad layers) to `path` as an ONNX graph of its inference
    (eval-mode) computation. input_shape is one example's shape, e.g. (3, 224, 224); the batch axis is
    symbolic ("N"). Weights become initializers named "<layer>.<parameter>", nodes are named after
    the layers. Returns the ModelProto, checked by onnx.checker (full_check) and shape inference."""
    onnx, numpy_helper = _onnx()
    helper = onnx.helper
    input_shape = tuple(input_shape)
    if input_shape and input_shape[0] is None:
        input_shape = input_shape[1:]
    if not input_shape or not all(isinstance(d, (int, np.integer)) and d > 0 for d in input_shape):
        raise ValueError(f"export: input_shape must be one example's shape as positive ints, e.g. "
                         f"(3, 224, 224), got {input_shape!r}")
    nodes, initializers = [], []
    current = "input"
    pending_scale = None                  # classic dropout's 1 - p, waiting for the next Conv/Gemm

    def constant(name, array):
        initializers.append(numpy_helper.from_array(np.array(backend.to_numpy(array), order="C"), name))
        return name

    def add(op, name, inputs, **attributes):
        nonlocal current
        output = name if name != "input" else "input_"
        nodes.append(helper.make_node(op, [current] + list(inputs), [output], name=name, **attributes))
        current = output

    def weight(parameter):
        """Its values as float32, times classic dropout's pending 1 - p (see the module docstring)."""
        return parameter.data.astype(np.float32) * np.float32(1 if pending_scale is None else pending_scale)

    pairs = _flat_layers(model)
    if not pairs:
        raise ValueError("export: the model has no layers (an ONNX graph needs at least one node)")
    written = tuple(getattr(L, kind) for kind in SUPPORTED_LAYERS if getattr(L, kind) not in _SIMPLE_EXPORTS)
    for index, (name, layer) in enumerate(pairs):
        # (ReLU, Sigmoid, Tanh, Flatten by their exact type: a subclass may compute something else)
        if not (isinstance(layer, written) or type(layer) in _SIMPLE_EXPORTS):
            raise ValueError(f"export: layer {index} {name!r} is a {layer.describe()}, which has no ONNX "
                             f"form here; supported: {', '.join(SUPPORTED_LAYERS)}")
    layer_input_shapes = _layer_input_shapes(pairs, input_shape)
    for index, (name, layer) in enumerate(pairs):
        shape = layer_input_shapes[index]                     # one example's, (C, H, W) for the pools
        if pending_scale is not None and not isinstance(layer, (L.Conv2d, L.Linear)):
            add("Mul", f"{name}.dropout_scale", [constant(f"{name}.dropout_factor", np.float32(pending_scale))])
            pending_scale = None
        if isinstance(layer, L.Conv2d):
            (ph, pw), bias = layer.padding, layer.bias
            inputs = [constant(f"{name}.weight", weight(layer.weight))]
            if bias is not None:
                inputs.append(constant(f"{name}.bias", bias.data.astype(np.float32)))
            add("Conv", name, inputs, kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                pads=[ph, pw, ph, pw], group=layer.groups)
        elif isinstance(layer, L.Linear):
            inputs = [constant(f"{name}.weight", weight(layer.weight))]
            if layer.bias is not None:
                inputs.append(constant(f"{name}.bias", layer.bias.data.astype(np.float32)))
            add("Gemm", name, inputs, transB=1)
        elif isinstance(layer, L.MaxPool2d):
            pads, _ = _floor_mode_pads(layer, shape[1:])
            add("MaxPool", name, [], kernel_shape=list(layer.kernel_size), strides=list(layer.stride), pads=pads)
        elif isinstance(layer, L.AvgPool2d):
            pads, ceil_mode = list(layer.pads), layer.ceil_mode
            counts_pads = layer.count_include_pad and any(layer.pads)
            if not counts_pads:                       # no padding counted: ceil_mode as MaxPool writes it
                (pads, _), ceil_mode = _floor_mode_pads(layer, shape[1:]), False
            elif ceil_mode:                            # counted: only ceil_mode itself says where it stops
                _ceil_mode_output(layer, shape[1:], f"export: layer {index} {name!r}")
            add("AveragePool", name, [], kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                pads=pads, ceil_mode=int(ceil_mode), count_include_pad=int(counts_pads))
        elif isinstance(layer, L.ZeroPad2d):
            widths = layer._widths()
            pads = [before for before, _ in widths] + [after for _, after in widths]
            add("Pad", name, [constant(f"{name}.pads", np.array(pads, np.int64))])
        elif isinstance(layer, L.GlobalAvgPool2d):
            add("GlobalAveragePool", name, [])
        elif isinstance(layer, L.Transpose):
            add("Transpose", name, [], perm=list(layer.axes))
        elif isinstance(layer, L.LocalResponseNorm):
            lrn = dict(size=layer.size, alpha=_lrn_alpha_attribute(layer.alpha, layer.size), beta=layer.beta,
                       bias=layer.k)
            if layer.groups == 1:
                add("LRN", name, [], **lrn)
            else:                         # ONNX's LRN has no groups: Split, one LRN per group, Concat
                parts = [f"{name}.group{g}" for g in range(layer.groups)]
                nodes.append(helper.make_node("Split", [current], parts, name=f"{name}.split", axis=1))
                nodes += [helper.make_node("LRN", [part], [f"{part}.lrn"], name=f"{part}.lrn", **lrn)
                          for part in parts]
                add("Concat", name, [f"{part}.lrn" for part in parts][1:], axis=1)
                nodes[-1].input[0] = f"{parts[0]}.lrn"
        elif isinstance(layer, L.Dropout):
            add("Dropout", name, [constant(f"{name}.ratio", np.float32(layer.p))])
        elif isinstance(layer, (L.BatchNorm1d, L.BatchNorm2d)):
            inputs = [constant(f"{name}.{what}", backend.to_numpy(value).astype(np.float32)) for what, value in [
                ("weight", layer.weight.data), ("bias", layer.bias.data),
                ("running_mean", layer.running_mean), ("running_var", layer.running_var)]]
            add("BatchNormalization", name, inputs, epsilon=float(layer.eps), momentum=1 - float(layer.momentum))
        elif isinstance(layer, L.LeakyReLU):
            add("LeakyRelu", name, [], alpha=float(layer.negative_slope))
        elif isinstance(layer, L.Softmax):
            add("Softmax", name, [], axis=layer.axis)
        else:
            add(_SIMPLE_EXPORTS[type(layer)], name, [])
        if isinstance(layer, (L.Conv2d, L.Linear)):
            pending_scale = None
        if isinstance(layer, L.Dropout) and layer.mode == "classic":
            pending_scale = 1 - layer.p
    if pending_scale is not None:
        add("Mul", "output.dropout_scale", [constant("output.dropout_factor", np.float32(pending_scale))])
    graph = helper.make_graph(
        nodes, "minigrad", [helper.make_tensor_value_info("input", FLOAT, ["N", *input_shape])],
        [helper.make_tensor_value_info(current, FLOAT, None)], initializers)
    proto = helper.make_model(graph, producer_name="minigrad", opset_imports=[helper.make_opsetid("", OPSET)],
                              ir_version=IR_VERSION)
    proto = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))
    return proto


def _layer_input_shapes(pairs, input_shape):
    """The shape of one example as each layer receives it, from a forward pass of one zero example
    through a copy of the layers in eval mode (the model's own layers keep what their last forward
    saved for backward, their dropout streams and their statistics)."""
    pairs = copy.deepcopy(pairs)
    parameters = [p.data for _, layer in pairs for p in layer.parameters()]
    like = parameters[0] if parameters else np.zeros(0, np.float32)
    x = backend.to_device(np.zeros((1, *input_shape), like.dtype), backend.device_of(like))
    shapes = []
    for index, (name, layer) in enumerate(pairs):
        shapes.append(tuple(x.shape[1:]))
        try:
            x = layer.eval().forward(x)
        except ValueError as error:
            raise ValueError(f"export: input_shape {input_shape} does not fit layer {index} {name!r}: "
                             f"{error}") from None
    return shapes


def _floor_mode_pads(pool, spatial):
    """ONNX pads that give `pool`'s windows over an (H, W) input in floor mode, and its output (H, W).

    With ceil_mode the trailing pad grows until floor mode reaches the last window; that pad stays below
    the window (the window starts inside the input or the leading padding), and padded cells never win."""
    top, left, bottom, right = pool.pads
    _, out, ((_, reach_bottom), (_, reach_right)) = ops.pool_padding(
        (1, 1, *spatial), pool.kernel_size, pool.stride, pool.pads, pool.ceil_mode)
    return [top, left, max(bottom, reach_bottom), max(right, reach_right)], out


def _ceil_mode_output(pool, spatial, where):
    """`pool`'s output (H, W) in ceil_mode, where onnx's shape inference gives the same: it keeps a last
    window that starts in the trailing padding, which ONNX Runtime and minigrad drop."""
    _, out = ops.pool_geometry((1, 1, *spatial), pool.kernel_size, pool.stride, pool.pads, True)
    top, left, bottom, right = pool.pads
    kept = tuple(-(-(size + begin + end - k) // s) + 1 for size, begin, end, k, s in zip(
        spatial, (top, left), (bottom, right), pool.kernel_size, pool.stride))
    if kept != out:
        raise ValueError(f"{where} is a {pool.describe()} whose last window over a {spatial} input starts "
                         f"past the input and its leading padding: minigrad and ONNX Runtime drop it, onnx's "
                         f"shape inference does not ({out} against {kept}); with count_include_pad=False it "
                         f"exports exactly")
    return out


def _lrn_alpha_attribute(alpha, size):
    """ONNX's alpha = minigrad's alpha * size, as the float32 whose float32 quotient by size (what ONNX
    Runtime and load compute) is minigrad's alpha again, where one within a few ulps exists."""
    target, candidate = np.float32(alpha), np.float32(alpha * size)
    for step in (0, 1, -1, 2, -2, 3, -3):
        nearby = candidate
        for _ in range(abs(step)):
            nearby = np.nextafter(nearby, np.float32(np.inf if step > 0 else -np.inf))
        if nearby / np.float32(size) == target:
            return float(nearby)
    return float(candidate)


_SIMPLE_EXPORTS = {L.ReLU: "Relu", L.Sigmoid: "Sigmoid", L.Tanh: "Tanh", L.Flatten: "Flatten"}
SUPPORTED_LAYERS = ("Conv2d", "Linear", "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d", "ZeroPad2d", "LocalResponseNorm",
                    "Dropout", "BatchNorm1d", "BatchNorm2d", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax",
                    "Flatten", "Transpose")


# --- load --------------------------------------------------------------------------------------------
SUPPORTED_OPS = ("Conv", "MaxPool", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "LRN",
                 "Split + LRN + Concat (a grouped LRN)", "Mul(x, x) ... Div (an LRN written out, as PyTorch "
                 "exports it)", "BatchNormalization", "Dropout", "Gemm", "MatMul", "Add (a bias after MatMul or Conv)",
                 "Mul (classic dropout's scale)", "Flatten", "Reshape (to flatten)", "Identity", "Softmax",
                 "AveragePool", "GlobalAveragePool", "ReduceMean (over H and W)", "Pad (zeros around the maps)",
                 "Transpose (the batch axis first)", "Squeeze (to (batch, features))")
FOLDED_OPS = ("Constant", "ConstantOfShape", "Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast",
              "Reshape", "Transpose", "Identity")


class _Node:
    """One node being converted: its attributes, and errors that name it."""

    def __init__(self, index, proto, onnx):
        self.index, self.proto, self.op = index, proto, proto.op_type
        named = f" {proto.name!r}" if proto.name else ""
        self.label = f"node {index}{named} ({proto.op_type})"
        self.attributes = {a.name: onnx.helper.get_attribute_value(a) for a in proto.attribute}

    def error(self, what):
        return ValueError(f"ONNX {self.label}: {what}")

    def take(self, known):
        """The attributes, after refusing any this converter does not know."""
        unknown = sorted(set(self.attributes) - set(known))
        if unknown:
            raise self.error(f"attribute(s) {unknown} not supported; supported: {sorted(known)}")
        return {name: self.attributes.get(name, default) for name, default in known.items()}


def load(path, keep_softmax=False, convolution="im2col"):
    """Read an ONNX graph (a path or a ModelProto) as a Sequential in eval mode, float32.

    convolution: the loaded Conv2d layers' algorithm. "im2col" (the default) computes each output as
    ONNX Runtime does, one dot product per output, to about 4e-7 of the output scale in float32;
    "auto" lets Conv2d take Winograd's transforms on the CPU (faster, and off by up to about 1.5e-5 of a
    layer's output scale in float32: benchmarks/results/cpu_alexnet_vm.md), which a model imported to
    reproduce another framework's outputs should not.

    The graph must be a chain: one float input, each node taking the previous one's output (weights
    from initializers, or graph inputs that have initializers), apart from nodes that compute from
    constants and from the chain's shape (Constant, Shape, Gather, Concat, Cast, Transpose, ...), which
    are evaluated here: the batch size stays symbolic, so a Reshape to (batch, -1) loads for any batch.
    A trailing Softmax is dropped, so the model gives the logits that SoftmaxCrossEntropy trains on,
    unless keep_softmax=True. Layers with weights are named after them ("conv1_w_0", "conv1_b_0" ->
    "conv1"), the others after their node. Anything else is a ValueError naming the node."""
    if convolution not in ("im2col", "auto"):
        raise ValueError(f"onnx.load: convolution must be 'im2col' or 'auto', got {convolution!r}")
    onnx, numpy_helper = _onnx()
    proto = path if isinstance(path, onnx.ModelProto) else _read_model(onnx, path)
    graph = proto.graph
    model = f"ONNX model {path}" if proto is not path else f"ONNX model (graph {graph.name!r})"   # not its text
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or opset < OLDEST_OPSET:
        raise ValueError(f"{model}: opset {opset} is not supported, only {OLDEST_OPSET} and later")
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in values]
    if len(inputs) != 1 or inputs[0].type.tensor_type.elem_type != FLOAT:
        raise ValueError(f"{model}: expected one float32 input (besides the initializers), got "
                         f"{[(i.name, i.type.tensor_type.elem_type) for i in inputs]}")
    try:
        shapes = _inferred_shapes(onnx, proto)
    except Exception:                           # a graph shape inference rejects: shapes stay unknown
        shapes = {}
    input_dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    chain = _Chain(inputs[0].name, shapes, opset, input_dims)
    index = 0
    while index < len(graph.node):
        node_proto = graph.node[index]
        node = _Node(index, node_proto, onnx)
        index += 1
        if node_proto.domain not in ("", "ai.onnx"):
            raise node.error(f"operator domain {node_proto.domain!r} not supported; only the ONNX operators "
                             f"(the default domain): {', '.join(SUPPORTED_OPS)}")
        names = list(node_proto.input)
        if _folds(node, values, chain):
            values[node_proto.output[0]] = _fold(node, values, chain, onnx, numpy_helper)
            continue
        if node.op in ("Add", "Mul") and names[1:] == [chain.current] and names[0] in values:
            names.reverse()                     # a bias or scale written first: the same, commuted
        if all(name in values for name in names if name):
            raise node.error(f"computes from constants only, with an operator minigrad does not evaluate when "
                             f"loading; it evaluates {', '.join(FOLDED_OPS)}")
        if not names or names[0] != chain.current:
            raise node.error(f"takes {names}, but minigrad loads chains: every node must take the previous "
                             f"node's output {chain.current!r} first (or only constants and shapes)")
        if node.op == "Split":
            node = _grouped_lrn(chain, node, graph.node, index, onnx, values)
            index = node.index + 1
        elif node.op == "Mul" and names == [chain.current] * 2:
            node = _written_out_lrn(chain, node, proto, values, onnx, numpy_helper)
            index = node.index + 1
        else:
            converter = _CONVERTERS.get(node.op)
            if converter is None:
                raise node.error(f"operator not supported; supported: {', '.join(SUPPORTED_OPS)}")
            is_last = all(n.op_type == "Identity" for n in graph.node[index:])   # renaming the output
            converter(chain, node, [values.get(name) if name else None for name in names[1:]],
                      keep_softmax or not is_last)
        chain.advance(node)
    if [o.name for o in graph.output] != [chain.current]:
        raise ValueError(f"{model}: expected the graph's one output to be the last node's "
                         f"{chain.current!r}, got {[o.name for o in graph.output]}")
    net = L.Sequential(*chain.layers).eval()
    for layer in net:
        if isinstance(layer, L.Conv2d):
            layer.algorithm = convolution
    return net


def _read_model(onnx, path):
    """onnx.load, with the errors a download gone wrong gives said as such."""
    if not os.path.isfile(path):
        raise ValueError(f"ONNX model {path}: no such file")
    with open(path, "rb") as file:
        start = file.read(64)
    if start.startswith(b"version https://git-lfs"):
        raise ValueError(f"ONNX model {path}: this is a Git LFS pointer ({os.path.getsize(path)} bytes), not the "
                         f"model; download the file itself (the repository's 'raw' link, or git lfs pull)")
    try:
        return onnx.load(str(path))
    except Exception as error:                    # protobuf's DecodeError, a truncated file
        raise ValueError(f"ONNX model {path}: not a readable ONNX file ({os.path.getsize(path)} bytes: "
                         f"{type(error).__name__}: {error}); is the download complete?") from None


def _inferred_shapes(onnx, proto):
    inferred = onnx.shape_inference.infer_shapes(proto)
    shapes = {}
    for info in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        t = info.type.tensor_type
        if t.HasField("shape"):
            shapes[info.name] = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    return shapes


# --- nodes evaluated at load: constants, and shapes whose batch size is symbolic -----------------------
class _Batch:
    """The batch size, in a shape taken from the chain's tensor (Shape). It is unknown when loading, so
    it stays a symbol: Gather, Concat, Unsqueeze... carry it, a Reshape keeps it as the batch axis, and
    anything that would compute with it fails (int() of it raises TypeError), naming its node."""

    def __repr__(self):
        return "batch"


BATCH = _Batch()


def _folds(node, values, chain):
    """Whether `node` is evaluated here: a FOLDED_OPS node whose inputs are constants, or the Shape of
    the chain's current tensor."""
    names = [name for name in node.proto.input if name]
    return node.op in FOLDED_OPS and (all(name in values for name in names)
                                      or node.op == "Shape" and names == [chain.current])


def _fold(node, values, chain, onnx, numpy_helper):
    if node.op == "Shape" and node.proto.input[0] == chain.current:
        shape = chain.shape()
        if shape is None or None in shape[1:]:
            raise node.error(f"the shape of {chain.current!r} is not known (shape inference gave {shape})")
        arguments = [SimpleNamespace(shape=(BATCH, *shape[1:]))]       # what np.shape reads
    else:
        arguments = [values[name] if name else None for name in node.proto.input]
    try:
        value = _FOLDERS[node.op](node, *arguments, onnx=onnx, numpy_helper=numpy_helper)
    except (TypeError, ValueError, IndexError) as error:
        if str(error).startswith("ONNX node"):       # node.take's refusal, which names the node already
            raise
        uses_batch = any(isinstance(a, np.ndarray) and BATCH in list(a.flat) for a in arguments)
        raise node.error(f"cannot be evaluated when loading: {error}" + (
            " (it computes with the batch size, which minigrad leaves free)" if uses_batch else "")) from None
    value = np.asarray(value)
    if value.dtype == object and not any(v is BATCH for v in value.flat):
        value = value.astype(np.int64)          # a shape's sizes, the batch no longer among them
    return value


def _constant(node, *_, onnx, numpy_helper):
    a = node.take({"value": None, "value_float": None, "value_floats": None, "value_int": None,
                   "value_ints": None})
    given = [(name, v) for name, v in a.items() if v is not None]
    if len(given) != 1:
        raise node.error("only a Constant with one of value, value_float(s), value_int(s) is supported")
    name, value = given[0]
    if name == "value":
        return numpy_helper.to_array(value)
    return np.array(value, np.float32 if name.startswith("value_float") else np.int64)


def _constant_of_shape(node, shape, *, onnx, numpy_helper):
    value = node.take({"value": None})["value"]
    fill = numpy_helper.to_array(value) if value is not None else np.zeros(1, np.float32)
    return np.full(tuple(int(d) for d in shape), fill.reshape(-1)[0], dtype=fill.dtype)


def _fold_shape(node, x, **_):
    a = node.take({"start": 0, "end": None})           # start and end: opset 15
    return np.array(np.shape(x), dtype=object)[a["start"]:a["end"]]


def _axes(node, given):
    """Unsqueeze's and Squeeze's axes: an attribute up to opset 12, an input from 13."""
    attribute = node.take({"axes": None})["axes"]
    return attribute if given is None else [int(v) for v in np.asarray(given).reshape(-1)]


def _unsqueeze(node, x, axes=None, **_):
    axes = _axes(node, axes)
    rank = np.ndim(x) + len(axes)
    for axis in sorted(int(a) % rank for a in axes):
        x = np.expand_dims(x, axis)
    return x


def _squeeze(node, x, axes=None, **_):
    axes = _axes(node, axes)
    return np.squeeze(x) if axes is None else np.squeeze(x, tuple(int(a) % np.ndim(x) for a in axes))


def _slice(node, x, starts=None, ends=None, axes=None, steps=None, **_):
    a = node.take({"starts": None, "ends": None, "axes": None})     # attributes up to opset 9, then inputs
    starts = a["starts"] if starts is None else starts
    ends = a["ends"] if ends is None else ends
    axes = a["axes"] if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    index = [slice(None)] * np.ndim(x)
    for start, end, axis, step in zip(starts, ends, range(len(starts)) if axes is None else axes, steps):
        index[int(axis)] = slice(int(start), int(end), int(step))
    return x[tuple(index)]


def _fold_reshape(node, x, shape, **_):
    allowzero = node.take({"allowzero": 0})["allowzero"]
    target = [int(d) for d in shape]
    return np.reshape(x, [x.shape[i] if d == 0 and not allowzero else d for i, d in enumerate(target)])


def _cast(node, x, *, onnx, **_):
    to = node.take({"to": None, "saturate": 1})["to"]
    return x if x.dtype == object else x.astype(onnx.helper.tensor_dtype_to_np_dtype(to))


_FOLDERS = {
    "Constant": _constant, "ConstantOfShape": _constant_of_shape, "Shape": _fold_shape,
    "Gather": lambda node, x, indices, **_: np.take(x, np.asarray(indices, np.int64),
                                                    axis=node.take({"axis": 0})["axis"]),
    "Unsqueeze": _unsqueeze, "Squeeze": _squeeze, "Slice": _slice, "Reshape": _fold_reshape, "Cast": _cast,
    "Concat": lambda node, *xs, **_: np.concatenate(xs, axis=node.take({"axis": None})["axis"]),
    "Transpose": lambda node, x, **_: np.transpose(x, node.take({"perm": None})["perm"]),
    "Identity": lambda node, x, **_: x,
}


class _Chain:
    """The layers converted so far and the name of the tensor the chain holds."""

    def __init__(self, current, shapes, opset, input_dims):
        self.current, self.shapes, self.opset, self.input_dims = current, shapes, opset, input_dims
        self.layers, self.names = [], set()

    def shape(self):
        """The current tensor's shape (None for unknown dims): from shape inference, or where that
        failed, from running the layers so far on one zero example of the input's static shape."""
        if self.current not in self.shapes and self.input_dims and None not in self.input_dims[1:]:
            x = np.zeros([1] + self.input_dims[1:], np.float32)
            y = L.Sequential(*self.layers).eval().forward(x)
            self.shapes[self.current] = self.input_dims[:1] + list(y.shape[1:])
        return self.shapes.get(self.current)

    def advance(self, node):
        self.current = node.proto.output[0]

    def append(self, node, layer, parameter_names=()):
        name = _common_stem(parameter_names) or node.proto.name or f"{node.op.lower()}{len(self.layers)}"
        name = name.replace(".", "_")           # Sequential names are joined with "." into parameter names
        while name in self.names:
            name += "_"
        self.names.add(name)
        self.layers.append((name, layer))


def _common_stem(names):
    """"conv1_w_0", "conv1_b_0" -> "conv1"; "features.0.weight", "features.0.bias" -> "features.0"."""
    if len(names) < 2:
        return ""
    stem = names[0]
    for name in names[1:]:
        while not name.startswith(stem):
            stem = stem[:-1]
    return stem.rstrip("._-/:")


def _float_weights(node, arrays, what):
    for array, name in zip(arrays, what):
        if array is None:
            raise node.error(f"its {name} must be an initializer or a constant, not computed by the graph")
        if array.dtype != np.float32:
            raise node.error(f"its {name} is {array.dtype}; only float32 models are supported")


def _pair(node, values, what, default):
    values = default if values is None else list(values)
    if values is None:
        raise node.error(f"needs the attribute {what}")
    if len(values) != 2:
        raise node.error(f"{what} {values} has {len(values)} values; only 2-D (N, C, H, W) is supported")
    return tuple(int(v) for v in values)


def _check_no_dilation(node, attributes):
    dilations = attributes["dilations"]
    if dilations is not None and any(d != 1 for d in dilations):
        raise node.error(f"dilations {list(dilations)} not supported, only 1")


def _pads(node, attributes, chain, kernel, strides):
    """(top, left, bottom, right) from pads, or from auto_pad: VALID none, SAME_UPPER and SAME_LOWER the
    padding that gives ceil(size / stride) outputs, its odd cell at the end (UPPER) or the start."""
    auto_pad = attributes["auto_pad"]
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad == "NOTSET":
        return [0, 0, 0, 0] if attributes["pads"] is None else [int(p) for p in attributes["pads"]]
    if auto_pad == "VALID":
        return [0, 0, 0, 0]
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise node.error(f"auto_pad {auto_pad!r} not supported: NOTSET (explicit pads), VALID, SAME_UPPER or "
                         f"SAME_LOWER")
    shape = chain.shape()
    if shape is None or len(shape) != 4 or None in shape[2:]:
        raise node.error(f"auto_pad {auto_pad} needs the input's height and width, which the graph does not "
                         f"fix (input shape {shape})")
    totals = [max(0, (-(-size // s) - 1) * s + k - size) for size, k, s in zip(shape[2:], kernel, strides)]
    ends = [t - t // 2 if auto_pad == "SAME_UPPER" else t // 2 for t in totals]
    return [t - e for t, e in zip(totals, ends)] + ends


def _conv(chain, node, args, _):
    a = node.take({"kernel_shape": None, "strides": None, "pads": None, "dilations": None, "group": 1,
                   "auto_pad": "NOTSET"})
    _check_no_dilation(node, a)
    if not args:
        raise node.error("needs a weight input")
    _float_weights(node, args, ["weight", "bias"][:len(args)])
    weight, bias = args[0], (args[1] if len(args) > 1 else None)
    if weight.ndim != 4:
        raise node.error(f"weight of shape {weight.shape}; only 2-D convolutions are supported")
    kernel = _pair(node, a["kernel_shape"], "kernel_shape", weight.shape[2:])
    if kernel != weight.shape[2:]:
        raise node.error(f"kernel_shape {kernel} does not match the weight's {weight.shape[2:]}")
    strides = _pair(node, a["strides"], "strides", [1, 1])
    top, left, bottom, right = _pads(node, a, chain, kernel, strides)
    symmetric = (min(top, bottom), min(left, right))
    if (top, left) != (bottom, right):   # (TensorFlow's SAME at stride 2): the odd cells as a ZeroPad2d first
        chain.append(node, L.ZeroPad2d((top - symmetric[0], left - symmetric[1], bottom - symmetric[0],
                                        right - symmetric[1])))
    group = int(a["group"])
    layer = L.Conv2d(weight.shape[1] * group, weight.shape[0], kernel, strides, symmetric, groups=group,
                     bias=bias is not None)
    layer.weight.data[...] = weight
    if bias is not None:
        layer.bias.data[...] = bias
    chain.append(node, layer, node.proto.input[1:])


def _pool(chain, node, make_layer, **more):
    """make_layer(kernel, strides, pads, ceil_mode, attributes): a MaxPool2d or AvgPool2d with the
    node's window, strides, pads and ceil_mode; `more` are the attributes (and their defaults) it may
    also read."""
    a = node.take({"kernel_shape": None, "strides": None, "pads": None, "dilations": None, "ceil_mode": 0,
                   "auto_pad": "NOTSET", **more})
    _check_no_dilation(node, a)
    kernel = _pair(node, a["kernel_shape"], "kernel_shape", None)
    strides = _pair(node, a["strides"], "strides", [1, 1])
    pads = _unreached_pads_cut(_pads(node, a, chain, kernel, strides), chain.shape(), kernel, strides,
                               bool(a["ceil_mode"]))
    try:
        layer = make_layer(kernel, strides, tuple(pads), bool(a["ceil_mode"]), a)
    except ValueError as error:
        raise node.error(str(error)) from None
    chain.append(node, layer)


def _unreached_pads_cut(pads, shape, kernel, strides, ceil_mode):
    """Trailing pads as large as the window cut to what the last window reaches, where the input's size
    is known (the output stays the same): exporters imitating ceil_mode before opset 10 write trailing
    pads as large as the window, which no window reaches in full, but which the layers refuse (a window
    of padding alone could have no value)."""
    if shape is None or len(shape) != 4 or None in shape[2:]:
        return pads
    top, left, bottom, right = pads
    _, _, ((_, reach_bottom), (_, reach_right)) = ops.pool_padding(shape, kernel, strides, pads, ceil_mode)
    return [top, left, *(min(end, reach) if end >= k else end
                         for end, reach, k in zip((bottom, right), (reach_bottom, reach_right), kernel))]


def _maxpool(chain, node, _args, __):
    if len(node.proto.output) > 1 and node.proto.output[1]:
        raise node.error("its Indices output is not supported")
    # (storage_order is the layout of the Indices, which are not supported)
    _pool(chain, node, lambda *geometry_and_attributes: L.MaxPool2d(*geometry_and_attributes[:4]), storage_order=0)


def _average_pool(chain, node, _args, __):
    _pool(chain, node, lambda kernel, strides, pads, ceil_mode, a: L.AvgPool2d(
        kernel, strides, pads, ceil_mode, count_include_pad=bool(a["count_include_pad"])), count_include_pad=0)


def _pad(chain, node, args, _):
    """Zeros around the maps (H and W): a ZeroPad2d, or nothing when every pad is 0. The pads and value
    are attributes up to opset 10, inputs from 11 (and the axes they apply to from 18)."""
    a = node.take({"mode": "constant", "pads": None, "value": 0.0})
    mode = a["mode"].decode() if isinstance(a["mode"], bytes) else a["mode"]
    given = [name for name in node.proto.input[1:]]
    if any(name and value is None for name, value in zip(given, args)):
        raise node.error("its pads, value and axes must be constants")
    pads = a["pads"] if a["pads"] is not None else args[0] if args else None
    value = float(np.asarray(args[1])) if len(args) > 1 and args[1] is not None else float(a["value"])
    pads = [int(p) for p in np.asarray(pads).reshape(-1)] if pads is not None else []
    if len(args) > 2 and args[2] is not None:            # pads of the listed axes only
        axes, full = [int(axis) % 4 for axis in np.asarray(args[2]).reshape(-1)], [0] * 8
        if len(pads) != 2 * len(axes):
            raise node.error(f"pads {pads} for axes {list(np.asarray(args[2]).reshape(-1))}: expected two per axis")
        for i, axis in enumerate(axes):
            full[axis], full[axis + 4] = pads[i], pads[i + len(axes)]
        pads = full
    padded = {axis for axis in range(4) if len(pads) == 8 and (pads[axis] or pads[axis + 4])}
    axes = (2, 3) if padded <= {2, 3} else (1, 2) if padded <= {1, 2} else None
    if mode != "constant" or value != 0 or len(pads) != 8 or axes is None or min(pads) < 0:
        raise node.error(f"mode {mode!r}, value {value}, pads {pads}: only zeros added around the maps of "
                         f"(N, C, H, W) or (N, H, W, C) (mode 'constant', value 0, pads >= 0 on H and W) are "
                         f"supported")
    if padded:
        chain.append(node, L.ZeroPad2d((pads[axes[0]], pads[axes[1]], pads[axes[0] + 4], pads[axes[1] + 4]), axes))


def _transpose(chain, node, _args, __):
    """A permutation of the axes that keeps the batch first (TensorFlow's NHWC <-> NCHW)."""
    perm = node.take({"perm": None})["perm"]
    shape = chain.shape()
    if perm is None:                                      # ONNX's default: the axes reversed
        if shape is None:
            raise node.error("no perm, and the input's rank is unknown: only an explicit perm is supported")
        perm = list(range(len(shape)))[::-1]
    try:
        chain.append(node, L.Transpose(perm))
    except (ValueError, TypeError):
        raise node.error(f"perm {list(perm)}: only permutations that keep the batch axis first are supported") \
            from None


def _squeeze_to_features(chain, node, args, _):
    """The 1-sized axes after the batch removed, leaving (N, features): a Flatten (TensorFlow's global
    average pool is GlobalAveragePool then Squeeze of H and W)."""
    axes = _axes(node, args[0] if args else None)
    shape = chain.shape()
    if shape is not None and axes is not None:
        removed = {int(axis) % len(shape) for axis in np.asarray(axes).reshape(-1)}
        kept = [size for axis, size in enumerate(shape) if axis not in removed]
        if 0 not in removed and len(kept) == 2 and all(shape[axis] == 1 for axis in removed):
            chain.append(node, L.Flatten())
            return
    raise node.error(f"Squeeze of axes {None if axes is None else [int(a) for a in np.asarray(axes).reshape(-1)]} "
                     f"of a {shape} input: only removing 1-sized axes to leave (batch, features) is supported")


def _global_average_pool(chain, node, _args, __):
    node.take({})
    chain.append(node, L.GlobalAvgPool2d())


def _reduce_mean(chain, node, args, _):
    """The mean over H and W (a global average pool, as x.mean((2, 3)) exports), with keepdims=0 the
    (N, C) it leaves; the axes an attribute up to opset 17, an input from 18."""
    a = node.take({"axes": None, "keepdims": 1, "noop_with_empty_axes": 0})
    axes = a["axes"] if a["axes"] is not None else args[0] if args else None
    shape = chain.shape()
    rank = len(shape) if shape is not None else 4
    if axes is None or sorted(int(axis) % rank for axis in np.asarray(axes).reshape(-1)) != [2, 3] or rank != 4:
        given = None if axes is None else [int(axis) for axis in np.asarray(axes).reshape(-1)]
        raise node.error(f"ReduceMean over axes {given} of a rank-{rank} input: only the mean over H and W of "
                         f"(N, C, H, W) (a global average pool) is supported")
    chain.append(node, L.GlobalAvgPool2d())
    if not a["keepdims"]:
        chain.append(node, L.Flatten())


_LRN_ATTRIBUTES = {"size": None, "alpha": 1e-4, "beta": 0.75, "bias": 1.0}


def _lrn(chain, node, _args, __, attributes=None, groups=1):
    """attributes: already taken from the LRN node (a grouped LRN's, named by its Concat)."""
    a = attributes or node.take(_LRN_ATTRIBUTES)
    size = int(a["size"])
    if size % 2 == 0:
        raise node.error(f"size {size}: an even window is not centred; minigrad's LRN needs an odd size")
    # ONNX divides alpha by the window; the paper's formula (minigrad's) does not. Divided in float32,
    # the precision of the attribute, so that an exported alpha comes back as the float32 it was.
    alpha = float(np.float32(a["alpha"]) / np.float32(size))
    chain.append(node, L.LocalResponseNorm(size, alpha=alpha, beta=float(a["beta"]),
                                           k=float(a["bias"]), groups=groups))


def _grouped_lrn(chain, split, nodes, index, onnx, constants):
    """Split along the channels into G equal parts, one LRN on each (the same attributes), Concat in
    order: minigrad's LocalResponseNorm(groups=G), which is how export writes it (ONNX's LRN has no
    groups). Returns the Concat node, whose output the chain then holds."""
    parts = list(split.proto.output)
    attributes = split.take({"axis": 0, "split": None, "num_outputs": None})
    group = [_Node(index + g, nodes[index + g], onnx) for g in range(len(parts)) if index + g < len(nodes)]
    concat = _Node(index + len(parts), nodes[index + len(parts)], onnx) if index + len(parts) < len(nodes) else None
    sizes = attributes["split"] if len(split.proto.input) < 2 or not split.proto.input[1] else \
        constants.get(split.proto.input[1], [0, -1])           # opset 13 on: the sizes as an input
    equal = sizes is None or len(set(int(n) for n in sizes)) == 1
    lrn_attributes = [dict(n.attributes) for n in group]
    if (attributes["axis"] != 1 or not equal or len(group) != len(parts)
            or any(n.op != "LRN" or list(n.proto.input) != [part] for n, part in zip(group, parts))
            or any(a != lrn_attributes[0] for a in lrn_attributes)
            or concat is None or concat.op != "Concat" or concat.attributes.get("axis") != 1
            or list(concat.proto.input) != [n.proto.output[0] for n in group]):
        raise split.error("Split is supported only as a grouped LRN: a Split of the channels (axis 1) into "
                          "equal parts, the same LRN on each part, and a Concat of them along axis 1 in order")
    _lrn(chain, concat, None, None, attributes=group[0].take(_LRN_ATTRIBUTES), groups=len(parts))
    return concat


def _written_out_lrn(chain, square, proto, values, onnx, numpy_helper):
    """x / (k + alpha * AveragePool(x^2 over `size` channels))^beta: nn.LocalResponseNorm as PyTorch
    exports it (F.local_response_norm is written with these operators; the reshapes around the pool
    vary with the opset and the dynamic axes). The nodes from the square to the Div that takes x again
    are read as one LocalResponseNorm (size from the pool's window, alpha, k and beta from the constants
    of Mul, Add and Pow), which is then checked: those nodes, run by onnx.reference on a probe of x's
    shape, must give the layer's output, or the load fails here. Returns the Div node."""
    nodes, x = proto.graph.node, chain.current
    end = next((j for j in range(square.index + 1, len(nodes))
                if nodes[j].op_type == "Div" and nodes[j].input[0] == x), None)
    written_out = square.error(f"a Mul of {x!r} by itself is supported only as the start of an LRN written "
                               f"out, x / (k + alpha * AveragePool(x^2))^beta (PyTorch's export)")
    if end is None:
        raise written_out
    region = [_Node(j, nodes[j], onnx) for j in range(square.index, end + 1)]
    for n in region:                      # its constants (alpha, k, beta), which later nodes may share too
        if _folds(n, values, chain):
            values[n.proto.output[0]] = _fold(n, values, chain, onnx, numpy_helper)
    computed = {o for n in region for o in n.proto.output if o not in values}
    read_later = {i for n in nodes[end + 1:] for i in _reads(n)} | {o.name for o in proto.graph.output}
    if any(n.proto.domain not in ("", "ai.onnx") for n in region) or computed & read_later - {nodes[end].output[0]}:
        raise written_out
    scalars = {op: [np.asarray(values[i]).item() for n in region if n.op == op for i in n.proto.input
                    if i in values and np.size(values[i]) == 1] for op in ("Mul", "Add", "Pow")}
    pools = [n.attributes.get("kernel_shape", []) for n in region if n.op == "AveragePool"]
    if any(len(v) != 1 for v in scalars.values()) or len(pools) != 1 or any(k != 1 for k in pools[0][1:]):
        raise written_out
    _lrn(chain, region[-1], None, None, attributes=dict(size=pools[0][0], alpha=scalars["Mul"][0],
                                                        beta=scalars["Pow"][0], bias=scalars["Add"][0]))
    shape = chain.shape()
    if shape is None or None in shape[1:]:
        raise square.error(f"the shape of {x!r} is needed to check the LRN written out, and is not known")
    # Values of 10: the sum of squares reaches 1e3 or more, so alpha and beta matter in the comparison.
    probe = 10 * np.random.default_rng(0).standard_normal([shape[0] or 1, *shape[1:]]).astype(np.float32)
    try:
        expected = chain.layers[-1][1].forward(probe)
        got = _run_nodes(onnx, numpy_helper, proto, [n.proto for n in region], x, probe, values)
    except Exception as error:                  # the layer's refusal, or whatever onnx.reference raises
        raise square.error(f"the LRN written out could not be checked: {error}") from None
    if got.shape != expected.shape or np.abs(got - expected).max() > 1e-5 * np.abs(expected).max():
        raise square.error(f"nodes {square.index}..{end} look like an LRN written out but do not compute "
                           f"{chain.layers[-1][1].describe()} (max difference {np.abs(got - expected).max():.3g})")
    return region[-1]


def _reads(node):
    """The tensors a node reads, with those its subgraphs (If's branches) read from outside them."""
    names = set(node.input)
    for attribute in node.attribute:
        for graph in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
            made = {o for n in graph.node for o in n.output} | {t.name for t in graph.initializer}
            names |= {name for n in graph.node for name in _reads(n)} - made
    return names - {""}


def _run_nodes(onnx, numpy_helper, proto, nodes, x, probe, values):
    """The last node's output for x = probe, by onnx.reference (the constants they read from values)."""
    from onnx.reference import ReferenceEvaluator
    from onnx.reference.op_run import OpRun

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

    helper = onnx.helper
    made = {o for n in nodes for o in n.output}
    read = sorted({name for n in nodes for name in _reads(n)} - made - {x})
    graph = helper.make_graph(nodes, "part", [helper.make_tensor_value_info(x, FLOAT, probe.shape)],
                              [helper.make_tensor_value_info(nodes[-1].output[0], FLOAT, None)],
                              [numpy_helper.from_array(np.asarray(values[name]), name) for name in read])
    part = helper.make_model(graph, opset_imports=proto.opset_import, ir_version=proto.ir_version)
    return ReferenceEvaluator(part, new_ops=[AveragePool]).run(None, {x: probe})[0]


def _batchnorm(chain, node, args, _):
    a = node.take({"epsilon": 1e-5, "momentum": 0.9, "spatial": 1, "training_mode": 0})
    if a["training_mode"] or not a["spatial"]:
        raise node.error("only inference (training_mode=0) with per-channel statistics (spatial=1) is supported")
    if any(name for name in node.proto.output[1:]):
        raise node.error("its running-statistics outputs are not supported (training mode)")
    _float_weights(node, args, ["scale", "bias", "mean", "var"])
    shape = chain.shape()
    rank = len(shape) if shape is not None else None
    if rank not in (2, 4):
        raise node.error(f"input rank {rank} (shape {shape}): only (N, C) and (N, C, H, W) inputs are supported")
    layer = (L.BatchNorm2d if rank == 4 else L.BatchNorm1d)(len(args[0]), eps=float(a["epsilon"]),
                                                            momentum=1 - float(a["momentum"]))
    layer.weight.data[...], layer.bias.data[...] = args[0], args[1]
    layer.running_mean[...], layer.running_var[...] = args[2], args[3]
    chain.append(node, layer, node.proto.input[1:])


def _dropout(chain, node, args, _):
    a = node.take({"ratio": 0.5, "seed": None, "is_test": 0})
    if len(node.proto.input) > 1 and node.proto.input[1] and args[0] is None:
        raise node.error("its ratio must be a constant")
    if len(args) > 1 and node.proto.input[2] and (args[1] is None or bool(np.asarray(args[1]))):
        raise node.error("training_mode must be a constant false: only inference graphs are supported")
    ratio = float(np.asarray(args[0])) if args and args[0] is not None else float(a["ratio"])
    chain.append(node, L.Dropout(ratio))         # inverted: the identity at inference, as ONNX's


def _gemm(chain, node, args, _):
    a = node.take({"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 0, "broadcast": 1})
    if a["transA"]:
        raise node.error("transA=1 (a transposed batch) is not supported")
    _float_weights(node, args, ["B", "C"][:len(args)])
    weight = args[0] if a["transB"] else args[0].T            # Linear's (out, in)
    bias = args[1] if len(args) > 1 and node.proto.input[2] else None
    _linear(chain, node, float(a["alpha"]) * weight, None if bias is None else float(a["beta"]) * bias)


def _linear(chain, node, weight, bias):
    shape = chain.shape()
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
    chain.append(node, layer, [n for n in node.proto.input[1:] if n])


def _matmul(chain, node, args, _):
    node.take({})
    _float_weights(node, args, ["B"])
    _linear(chain, node, args[0].T, None)


def _add(chain, node, args, _):
    """Add of a constant right after a MatMul (the bias of the Linear layer it made), or after a Conv
    without a bias of one value per channel (as CNTK wrote a convolution's bias, e.g. the ONNX Model
    Zoo's mnist-8): the layer's bias."""
    node.take({})
    name, layer = chain.layers[-1] if chain.layers else (None, None)
    if not isinstance(layer, (L.Linear, L.Conv2d)) or layer.bias is not None or args[0] is None:
        raise node.error("only a constant bias added right after a MatMul, or after a Conv without a bias, "
                         "is supported")
    _float_weights(node, args, ["bias"])
    bias = args[0]
    if isinstance(layer, L.Linear):
        outputs, fits = layer.out_features, bias.ndim <= 2 and (bias.ndim < 2 or bias.shape[0] == 1)
        with_bias = L.Linear(layer.in_features, outputs)
    else:                                 # it must broadcast to (1, C, 1, 1): one value per channel
        outputs, fits = layer.out_channels, bias.ndim <= 4 and (1,) * (4 - bias.ndim) + bias.shape in (
            (1, layer.out_channels, 1, 1), (1, 1, 1, 1))
        with_bias = L.Conv2d(layer.in_channels, outputs, layer.kernel_size, layer.stride, layer.padding,
                             groups=layer.groups)
    if not fits or bias.size not in (1, outputs):
        raise node.error(f"bias of shape {bias.shape} is not one value per output of the {layer.describe()} "
                         f"before it (or one for all), the same for every example and position")
    with_bias.weight.data[...] = layer.weight.data
    with_bias.bias.data[...] = np.broadcast_to(bias.reshape(-1), (outputs,))
    chain.layers[-1] = (name, with_bias)


def _mul(chain, node, args, _):
    """Mul by 1 - p right after a Dropout of ratio p: the paper's classic dropout (see export)."""
    node.take({})
    _, layer = chain.layers[-1] if chain.layers else (None, None)
    if not (isinstance(layer, L.Dropout) and layer.mode == "inverted" and args[0] is not None
            and args[0].size == 1 and abs(float(args[0].reshape(-1)[0]) - (1 - layer.p)) < 1e-6):
        raise node.error("only a Mul by 1 - p right after a Dropout of ratio p (classic dropout) is supported")
    layer.mode = "classic"


def _flatten(chain, node, _args, __):
    axis = int(node.take({"axis": 1})["axis"])
    shape = chain.shape()
    if axis != 1 and not (shape is not None and axis == 1 - len(shape)):
        raise node.error(f"axis {axis}: only flattening everything after the batch axis (axis=1) is supported")
    chain.append(node, L.Flatten())


def _reshape(chain, node, args, _):
    """Reshape to (batch, features), as exporters write Flatten: to a constant ([1, 9216] in bvlc_alexnet,
    the batch it was exported with), to (-1, features), or to (batch, -1) computed from the input's Shape."""
    allowzero = node.take({"allowzero": 0})["allowzero"]
    target, shape = args[0] if args else None, chain.shape()
    if target is None:
        raise node.error("its shape must be a constant or computed from the input's shape")
    target = [v if v is BATCH else int(v) for v in np.asarray(target).reshape(-1)]
    features = int(np.prod(shape[1:])) if shape is not None and None not in shape[1:] else None
    batch = shape[0] if shape is not None else None
    keeps_batch = len(target) == 2 and (target[0] is BATCH or target[0] in (-1, batch)
                                        or target[0] == 0 and not allowzero)    # 0 copies the dim, unless allowzero
    if keeps_batch and target[1] is not BATCH and (target[1] == -1 and target[0] != -1 or
                                                   features is not None and target[1] == features):
        chain.append(node, L.Flatten())
        return
    raise node.error(f"Reshape from {shape} to {target}{' (allowzero=1)' if allowzero else ''}: only a flatten "
                     f"to (batch, features) is supported")


def _identity(chain, node, _args, __):
    node.take({})


def _activation(layer_type, **defaults):
    def convert(chain, node, _args, __):
        a = node.take(defaults)
        chain.append(node, layer_type(*(float(v) for v in a.values())))
    return convert


def _softmax(chain, node, _args, keep):
    axis = int(node.take({"axis": 1 if chain.opset < 13 else -1})["axis"])
    shape = chain.shape()
    rank = len(shape) if shape is not None else None
    if chain.opset < 13 and not (rank is not None and axis % rank == rank - 1):
        raise node.error(f"opset {chain.opset} Softmax over axes {axis}.. of an input of rank {rank}: only "
                         f"the last axis is supported")
    if keep:
        chain.append(node, L.Softmax(axis))


_CONVERTERS = {
    "Conv": _conv, "MaxPool": _maxpool, "LRN": _lrn, "BatchNormalization": _batchnorm, "Dropout": _dropout,
    "Gemm": _gemm, "MatMul": _matmul, "Add": _add, "Mul": _mul, "Flatten": _flatten, "Reshape": _reshape,
    "Identity": _identity, "Softmax": _softmax, "AveragePool": _average_pool,
    "GlobalAveragePool": _global_average_pool, "ReduceMean": _reduce_mean, "Pad": _pad, "Transpose": _transpose,
    "Squeeze": _squeeze_to_features,
    "Relu": _activation(L.ReLU), "Sigmoid": _activation(L.Sigmoid), "Tanh": _activation(L.Tanh),
    "LeakyRelu": _activation(L.LeakyReLU, alpha=0.01),
}
