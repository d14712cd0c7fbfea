"""minigrad.onnx.load on hostile files. Inputs are real models (the onnx wheel's nine light_* graphs,
chains and graphs that fork and join, the tf2onnx graphs of tests/data, PyTorch's exports where torch
is installed, minigrad's own exports of chains and graphs, and the regression corpus
fuzz/corpus/onnx_load) mutated at the protobuf level (attributes, tensors, nodes, the graph's inputs
and outputs, opsets), by inserting hostile pieces of graph (a ConstantOfShape of 2**31 values, Concat
doubling, chains of 20,000 nodes, pads of a million, the LRN and channel-shuffle patterns, forks that
join again: shortcuts, concatenations, splits) and at the byte level.

The contract checked on every input: load(path) returns a Sequential or an mg.Graph, or raises ValueError
whose message names the file ("ONNX model <path>: ..."); a loaded model, given an input of the shape its
graph declares (free sizes 8, the batch 2) where its layers' output_shape() says that every activation
fits in 64 MiB and all of them together in 1 GiB (the layers keep for backward what they read, a ReLU
its mask: a chain of 20,000 ReLUs keeps 20,000 masks), returns arrays of the shapes output_shape() gives
or raises ValueError. Nothing else: no other exception, no crash, no more memory or time than the engine
allows an input.
"""
import math
from pathlib import Path

import numpy as np

import minigrad as mg

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "fuzz" / "corpus" / "onnx_load"
MAX_BYTES = 64 << 20        # load's budget here (its default is 1 GiB): every input stays small and quick
MAX_ACTIVATION = 64 << 20   # the largest activation a forward pass may make here
MAX_ACTIVATIONS = 1 << 30   # all of its activations together (within the engine's 2 GiB by default)

INTS = [0, 1, -1, 2, 3, 5, 7, 255, 2**31 - 1, -2**31, 2**62, 10**6, 10**9]
FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-45, 1e38, math.inf, -math.inf, math.nan]
OPSETS = [0, 1, 6, 7, 9, 10, 11, 12, 13, 17, 18, 21, 22, 23, 28, 29, 1000, 2**62]
OPS = ["Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "ReduceMean", "Relu", "LeakyRelu", "Sigmoid",
       "Tanh", "Softmax", "LRN", "BatchNormalization", "Dropout", "Gemm", "MatMul", "Add", "Mul", "Flatten",
       "Reshape", "Identity", "Transpose", "Squeeze", "Pad", "Split", "Concat", "Constant", "ConstantOfShape",
       "Shape", "Gather", "Unsqueeze", "Slice", "Cast", "Div", "Pow", "Softplus", "If", "Loop", "NoSuchOp"]
ATTRIBUTES = ["kernel_shape", "strides", "pads", "dilations", "group", "auto_pad", "ceil_mode", "count_include_pad",
              "axis", "axes", "perm", "alpha", "beta", "bias", "size", "transA", "transB", "allowzero", "keepdims",
              "value", "value_int", "value_ints", "value_float", "value_floats", "to", "split", "epsilon",
              "momentum", "training_mode", "spatial", "mode", "storage_order", "start", "end", "ratio", "starts",
              "ends", "num_outputs", "noop_with_empty_axes", "saturate"]


# --- the code under test --------------------------------------------------------------------------------
def run(data, workdir):
    """load, and a forward pass where it is small enough; returns what happened."""
    from minigrad import onnx as mg_onnx

    path = workdir / "input.onnx"
    path.write_bytes(data)
    try:
        net = mg_onnx.load(path, max_bytes=MAX_BYTES)
    except ValueError as error:
        if not str(error).startswith(f"ONNX model {path}: ") or len(str(error)) <= len(f"ONNX model {path}: "):
            raise AssertionError(f"a refusal that does not name the file: {error}") from None
        return "refused"
    return _forward(net, _declared_shape(path))


def _declared_shape(path):
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    constants = {t.name for t in graph.initializer}
    given = next(i for i in graph.input if i.name not in constants).type.tensor_type
    if not given.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in given.shape.dim]


def _forward(net, shape):
    """The model on one input of its declared shape, where its layers say that it fits: the outputs must
    have the shapes output_shape() gave, or forward refuse the input with a ValueError."""
    if shape is None:
        return "loaded"
    shape = [(2 if axis == 0 else 8) if size is None else size for axis, size in enumerate(shape)]
    try:
        sizes = [shape] + [list(made) for _, _, _, made in net.layer_shapes(shape)]
        expected = net.output_shape(shape)
    except ValueError:                                       # this input does not fit: forward refuses it
        return "loaded"
    if any(None in s or math.prod(s) * 4 > MAX_ACTIVATION for s in sizes) or \
            sum(math.prod(s) for s in sizes) * 4 > MAX_ACTIVATIONS:
        return "loaded, too large to run"
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    try:
        with np.errstate(all="ignore"):
            y = net.forward(x)
    except ValueError:
        return "loaded, forward refused"
    several = isinstance(net, mg.Graph) and len(net.outputs) > 1
    outputs, expected = (y, expected) if several else ((y,), (expected,))
    if [list(output.shape) for output in outputs] != [list(e) for e in expected]:
        raise AssertionError(f"forward gave {[o.shape for o in outputs]}, output_shape said {expected}")
    return "loaded, ran"


# --- the inputs -------------------------------------------------------------------------------------------
def seeds(workdir):
    import onnx

    light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
    files = [light / f"light_{name}.onnx" for name in ("bvlc_alexnet", "zfnet512", "vgg19", "squeezenet", "inception_v1",
                                                        "inception_v2", "resnet50", "densenet121", "shufflenet")]
    files += sorted((ROOT / "tests" / "data" / "tf2onnx").glob("*.onnx")) + sorted(CORPUS.glob("*.onnx"))
    return _exports(workdir) + [f.read_bytes() for f in files]     # (the first, which loads, warms up)


def _exports(workdir):
    """Small networks, chains and graphs, written by minigrad's export and, where torch is installed, by
    PyTorch's exporter (its LRN written out, its flatten computed from Shape, a residual block, a channel
    split and shuffle), cached in the work folder."""
    folder = workdir / "seeds"
    if not folder.is_dir():
        folder.mkdir()
        _export_minigrad(folder)
        try:
            _export_torch(folder)
        except ImportError:
            pass
    return [f.read_bytes() for f in sorted(folder.glob("*.onnx"))]


def _export_minigrad(folder):
    import minigrad as mg

    mg.manual_seed(0)
    alexnet_like = mg.Sequential(
        ("conv1", mg.Conv2d(3, 8, 5, stride=2, padding=2)), ("relu1", mg.ReLU()),
        ("norm1", mg.LocalResponseNorm(5, groups=2)), ("pool1", mg.MaxPool2d(3, 2, ceil_mode=True)),
        ("conv2", mg.Conv2d(8, 8, 3, padding=1, groups=2)), ("relu2", mg.ReLU()), ("pool2", mg.MaxPool2d(2)),
        ("flatten", mg.Flatten()), ("fc6", mg.Linear(32, 16)), ("drop6", mg.Dropout(0.5, "classic")),
        ("relu6", mg.ReLU()), ("fc7", mg.Linear(16, 4)))
    pooled = mg.Sequential(
        ("nhwc", mg.Transpose((0, 3, 1, 2))), ("pad", mg.ZeroPad2d((1, 0, 1, 0))), ("conv", mg.Conv2d(3, 6, 3)),
        ("bn", mg.BatchNorm2d(6)), ("leaky", mg.LeakyReLU(0.1)), ("avg", mg.AvgPool2d(3, 2, 1, ceil_mode=True)),
        ("gap", mg.GlobalAvgPool2d()), ("flat", mg.Flatten()), ("fc", mg.Linear(6, 5)), ("bn1", mg.BatchNorm1d(5)),
        ("tanh", mg.Tanh()), ("sigmoid", mg.Sigmoid()), ("softmax", mg.Softmax(axis=1)))
    mg.onnx.export(alexnet_like.eval(), folder / "minigrad_alexnet_like.onnx", (3, 15, 15))
    mg.onnx.export(pooled.eval(), folder / "minigrad_pooled.onnx", (9, 9, 3))
    x = mg.Input()
    h = mg.ReLU6()(mg.Bias((6, 1, 1))(mg.Conv2d(6, 6, 3, padding=1, bias=False)(x)))
    right = mg.Scale((4, 1, 1))(mg.Conv2d(4, 4, 3, padding=1, groups=4)(mg.Slice(2, 6)(h)))
    h = mg.Add()(mg.ChannelShuffle(3)(mg.Concat()(mg.Slice(0, 2)(h), right)), x)
    h = mg.Multiply()(h, mg.Sigmoid()(h))
    forks = mg.Graph(x, [mg.Linear(6, 4)(mg.Flatten()(mg.GlobalAvgPool2d()(h))), mg.Clip(-1.0, 1.0)(h)])
    mg.onnx.export(forks.eval(), folder / "minigrad_forks.onnx", (6, 7, 7))


def _export_torch(folder):
    import warnings

    import torch

    nn = torch.nn

    class View(nn.Module):
        def forward(self, x):
            return x.view(x.size(0), -1)

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.LocalResponseNorm(3), nn.MaxPool2d(2),
                        View(), nn.Dropout(), nn.Linear(16, 3)).eval()
    class Forks(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn, self.depthwise = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Conv2d(2, 2, 3, padding=1, groups=2)

        def forward(self, x):
            x = torch.relu(self.bn(self.conv(x))) + x
            kept, changed = x.chunk(2, dim=1)
            x = torch.cat([kept, nn.functional.relu6(self.depthwise(changed))], 1)
            n, c, h, w = x.shape
            return x.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, -1, h, w).mean((2, 3))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for opset, dynamic in ((9, None), (13, {"x": {0: "N"}})):
            torch.onnx.export(net, (torch.zeros(2, 3, 11, 11),), str(folder / f"torch_{opset}.onnx"), dynamo=False,
                              opset_version=opset, input_names=["x"], dynamic_axes=dynamic)
        for opset in (11, 17):
            torch.onnx.export(Forks().eval(), (torch.zeros(2, 4, 6, 5),), str(folder / f"torch_forks_{opset}.onnx"),
                              dynamo=False, opset_version=opset, input_names=["x"], dynamic_axes={"x": {0: "N"}},
                              training=torch.onnx.TrainingMode.PRESERVE)


def mutate(data, seeds, rng):
    """1 to 4 protobuf-level mutations of `data` (a model), then now and then a few at the byte level."""
    import onnx

    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception:
        return _mutate_bytes(data, seeds, rng)
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3, 4])):
        rng.choice(_PROTO_MUTATIONS)(model, rng)
    data = model.SerializeToString()
    return _mutate_bytes(data, seeds, rng) if rng.random() < 0.15 else data


def _mutate_bytes(data, seeds, rng):
    data = bytearray(data)
    kind = rng.choice(["flip", "truncate", "insert", "splice"])
    if kind == "flip" and data:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == "truncate":
        del data[rng.randrange(len(data) + 1):]
    elif kind == "insert":
        at = rng.randrange(len(data) + 1)
        data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    else:
        other = rng.choice(seeds)
        data = data[:rng.randrange(len(data) + 1)] + other[rng.randrange(len(other) + 1):]
    return bytes(data)


def _pick(rng, items):
    items = list(items)
    return rng.choice(items) if items else None


def _attribute(model, rng):
    from onnx import AttributeProto, helper

    node = _pick(rng, [n for n in model.graph.node])
    if node is None:
        return
    attribute = _pick(rng, node.attribute)
    action = rng.choice(["int", "ints", "float", "resize", "delete", "add", "retype"])
    if attribute is None or action == "add":
        value = rng.choice([rng.choice(INTS), [rng.choice(INTS) for _ in range(rng.randint(1, 9))],
                            rng.choice(FLOATS), b"SAME_UPPER", b"reflect"])
        node.attribute.append(helper.make_attribute(rng.choice(ATTRIBUTES), value))
    elif action == "int":
        attribute.i = rng.choice(INTS)
    elif action == "ints" and attribute.ints:
        attribute.ints[rng.randrange(len(attribute.ints))] = rng.choice(INTS)
    elif action == "float":
        attribute.f = rng.choice(FLOATS)
    elif action == "resize":
        if attribute.ints and rng.random() < 0.5:
            del attribute.ints[rng.randrange(len(attribute.ints))]
        else:
            attribute.ints.append(rng.choice(INTS))
    elif action == "delete":
        node.attribute.remove(attribute)
    else:
        attribute.type = rng.choice(list(AttributeProto.AttributeType.values()))


def _node(model, rng):
    nodes = model.graph.node
    if not nodes:
        return
    i = rng.randrange(len(nodes))
    node = nodes[i]
    names = [t for n in nodes for t in list(n.input) + list(n.output)] + [t.name for t in model.graph.input]
    action = rng.choice(["op", "domain", "delete", "duplicate", "swap", "input", "add_input", "drop_input",
                         "output"])
    if action == "op":
        node.op_type = rng.choice(OPS)
    elif action == "domain":
        node.domain = rng.choice(["ai.onnx", "com.example", "ai.onnx.ml"])
    elif action == "delete":
        del nodes[i]
    elif action == "duplicate":
        copy = type(node)()
        copy.CopyFrom(node)
        nodes.insert(i + 1, copy)
    elif action == "swap":
        j = rng.randrange(len(nodes))
        first, second = type(node)(), type(node)()
        first.CopyFrom(nodes[i])
        second.CopyFrom(nodes[j])
        nodes[i].CopyFrom(second)
        nodes[j].CopyFrom(first)
    elif action == "input" and node.input:
        node.input[rng.randrange(len(node.input))] = rng.choice(names + ["", "missing"])
    elif action == "add_input":
        node.input.append(rng.choice(names + [""]))
    elif action == "drop_input" and node.input:
        del node.input[-1]
    elif action == "output" and node.output:
        node.output[rng.randrange(len(node.output))] = rng.choice(names + [""])


def _tensors(model):
    """The initializers and the Constant nodes' values."""
    return list(model.graph.initializer) + [a.t for n in model.graph.node if n.op_type == "Constant"
                                            for a in n.attribute if a.name == "value"]


def _tensor(model, rng):
    from onnx import TensorProto

    tensor = _pick(rng, _tensors(model))
    if tensor is None:
        return
    action = rng.choice(["dims", "add_dim", "type", "truncate", "values", "external"])
    if action == "dims" and tensor.dims:
        tensor.dims[rng.randrange(len(tensor.dims))] = rng.choice(INTS)
    elif action == "add_dim":
        tensor.dims.append(rng.choice(INTS))
    elif action == "type":
        tensor.data_type = rng.choice(list(TensorProto.DataType.values()))
    elif action == "truncate" and tensor.raw_data:
        tensor.raw_data = tensor.raw_data[:rng.randrange(len(tensor.raw_data))]
    elif action == "values" and tensor.data_type == TensorProto.FLOAT and len(tensor.raw_data) % 4 == 0 < len(
            tensor.raw_data):
        values = np.frombuffer(tensor.raw_data, np.float32).copy()
        values[rng.randrange(len(values))] = rng.choice(FLOATS)
        tensor.raw_data = values.tobytes()
    elif action == "external":
        tensor.data_location = TensorProto.EXTERNAL
        del tensor.external_data[:]
        for key, value in (("location", rng.choice(["weights.bin", "../input.onnx", "/etc/hostname", "input.onnx",
                                                    ".", ""])), ("offset", str(rng.choice(INTS))),
                           ("length", str(rng.choice(INTS)))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value


def _graph_io(model, rng):
    from onnx import TensorProto

    graph = model.graph
    action = rng.choice(["dim", "symbolic", "drop_dim", "no_shape", "type", "add_input", "drop_input", "output"])
    given = _pick(rng, graph.input)
    if given is None or action == "add_input":
        added = graph.input.add()
        added.name = rng.choice(["x", "extra", graph.node[0].input[0] if graph.node and graph.node[0].input else ""])
        added.type.tensor_type.elem_type = TensorProto.FLOAT
    elif action == "dim" and given.type.tensor_type.shape.dim:
        dims = given.type.tensor_type.shape.dim
        dims[rng.randrange(len(dims))].dim_value = rng.choice(INTS)
    elif action == "symbolic" and given.type.tensor_type.shape.dim:
        dims = given.type.tensor_type.shape.dim
        dims[rng.randrange(len(dims))].dim_param = "free"
    elif action == "drop_dim" and given.type.tensor_type.shape.dim:
        del given.type.tensor_type.shape.dim[rng.randrange(len(given.type.tensor_type.shape.dim))]
    elif action == "no_shape":
        given.type.tensor_type.ClearField("shape")
    elif action == "type":
        given.type.tensor_type.elem_type = rng.choice(list(TensorProto.DataType.values()))
    elif action == "drop_input":
        graph.input.remove(given)
    elif action == "output" and graph.output:
        graph.output[0].name = rng.choice([n.output[0] for n in graph.node if n.output] + ["", "x"])


def _opset(model, rng):
    action = rng.choice(["opset", "opset", "ir", "drop", "duplicate"])
    if action == "opset" and model.opset_import:
        model.opset_import[0].version = rng.choice(OPSETS)
    elif action == "ir":
        model.ir_version = rng.choice(OPSETS)
    elif action == "drop":
        del model.opset_import[:]
    else:
        entry = model.opset_import.add()
        entry.domain, entry.version = rng.choice(["", "ai.onnx", "com.example"]), rng.choice(OPSETS)


# --- pieces of graph inserted into the chain: each reads x, returns (nodes, initializers, its output) ---
def _insert_piece(model, rng):
    """A hostile or pattern-shaped piece of graph, inserted at a random point of the chain."""
    graph = model.graph
    if not graph.input:
        return
    at = rng.randrange(len(graph.node) + 1)
    x = graph.input[0].name if at == 0 or not graph.node[at - 1].output else graph.node[at - 1].output[0]
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    prefix = f"fz{rng.randrange(10**6)}_"
    nodes, initializers, y = rng.choice(_PIECES)(x, prefix, opset, rng)
    for node in graph.node[at:]:
        for k, name in enumerate(node.input):
            if name == x:
                node.input[k] = y
    for output in graph.output:
        if output.name == x:
            output.name = y
    for k, node in enumerate(nodes):
        graph.node.insert(at + k, node)
    graph.initializer.extend(initializers)


def _constant(name, value, dtype=np.int64):
    from onnx import helper, numpy_helper

    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.array(value, dtype)))


def _axes(node_type, x, y, axes, prefix, opset, **attributes):
    """Unsqueeze or Squeeze of `axes`: an attribute up to opset 12, an input from 13."""
    from onnx import helper

    if opset < 13:
        return [helper.make_node(node_type, [x], [y], axes=axes, **attributes)]
    return [_constant(f"{prefix}{node_type}_axes", axes), helper.make_node(node_type, [x, f"{prefix}{node_type}_axes"],
                                                                          [y])]


def _big_constant_of_shape(x, prefix, opset, rng):
    from onnx import helper

    shape = rng.choice([[2**31], [2**16, 2**16], [10**6] * 3, [2**62], [-1], [1, 2, 3, 4]])
    nodes = [_constant(f"{prefix}shape", shape), helper.make_node("ConstantOfShape", [f"{prefix}shape"],
                                                                  [f"{prefix}big"])]
    if rng.random() < 0.5:                                  # unused: load must not even evaluate it
        return nodes, [], x
    return nodes + [helper.make_node("Add", [x, f"{prefix}big"], [f"{prefix}y"])], [], f"{prefix}y"


def _concat_doubling(x, prefix, opset, rng):
    from onnx import helper

    nodes, name = [_constant(f"{prefix}c0", [1.0] * rng.choice([1, 1000]), np.float32)], f"{prefix}c0"
    for k in range(rng.choice([10, 40])):
        nodes.append(helper.make_node("Concat", [name, name], [f"{prefix}c{k + 1}"], axis=0))
        name = f"{prefix}c{k + 1}"
    if rng.random() < 0.5:
        return nodes, [], x
    return nodes + [helper.make_node("Add", [x, name], [f"{prefix}y"])], [], f"{prefix}y"


def _gather_blowup(x, prefix, opset, rng):
    from onnx import helper

    nodes, name = [_constant(f"{prefix}g0", [1.0], np.float32)], f"{prefix}g0"
    nodes.append(_constant(f"{prefix}indices", np.zeros(rng.choice([10, 10**4]), np.int64)))
    for k in range(rng.choice([2, 5])):
        nodes.append(helper.make_node("Gather", [name, f"{prefix}indices"], [f"{prefix}g{k + 1}"], axis=0))
        name = f"{prefix}g{k + 1}"
    return nodes + [helper.make_node("Add", [x, name], [f"{prefix}y"])], [], f"{prefix}y"


def _long_chain(x, prefix, opset, rng):
    from onnx import helper

    length, op = rng.choice([100, 1000, 20000]), rng.choice(["Identity", "Relu"])
    names = [x] + [f"{prefix}{k}" for k in range(length)]
    return [helper.make_node(op, [a], [b]) for a, b in zip(names, names[1:])], [], names[-1]


def _deep_constant(x, prefix, opset, rng):
    """A constant behind 20,000 Identity nodes, added to the chain: evaluated without recursion."""
    from onnx import helper

    names = [f"{prefix}{k}" for k in range(20001)]
    nodes = [_constant(names[0], [0.5], np.float32)]
    nodes += [helper.make_node("Identity", [a], [b]) for a, b in zip(names, names[1:])]
    return nodes + [helper.make_node("Add", [x, names[-1]], [f"{prefix}y"])], [], f"{prefix}y"


def _big_pad(x, prefix, opset, rng):
    from onnx import helper

    size = rng.choice([1, 10**3, 10**6, 2**31])
    pads = [0, 0, size, size, 0, 0, size, size]
    if opset < 11:
        return [helper.make_node("Pad", [x], [f"{prefix}y"], pads=pads)], [], f"{prefix}y"
    return [_constant(f"{prefix}pads", pads), helper.make_node("Pad", [x, f"{prefix}pads"], [f"{prefix}y"])], [], \
        f"{prefix}y"


def _computed_flatten(x, prefix, opset, rng):
    """x.view(x.size(0), -1) as PyTorch writes it: Shape, Gather, Unsqueeze, Concat, Reshape."""
    from onnx import helper

    p = prefix
    nodes = [helper.make_node("Shape", [x], [f"{p}shape"]), _constant(f"{p}zero", 0),
             helper.make_node("Gather", [f"{p}shape", f"{p}zero"], [f"{p}batch"], axis=0)]
    nodes += _axes("Unsqueeze", f"{p}batch", f"{p}batch1", [0], p, opset)
    nodes += [_constant(f"{p}rest", [-1]),
              helper.make_node("Concat", [f"{p}batch1", f"{p}rest"], [f"{p}target"], axis=0),
              helper.make_node("Reshape", [x, f"{p}target"], [f"{p}y"])]
    return nodes, [], f"{p}y"


def _written_out_lrn(x, prefix, opset, rng):
    """PyTorch's F.local_response_norm: x / (k + alpha * AveragePool(pad(x^2)))^beta over channels."""
    from onnx import helper

    p, size = prefix, rng.choice([3, 5, 4, 10**6])
    nodes = [helper.make_node("Mul", [x, x], [f"{p}square"])]
    nodes += _axes("Unsqueeze", f"{p}square", f"{p}square5", [1], p, opset)
    nodes += [_constant(f"{p}pads", [0, 0, size // 2, 0, 0, 0, 0, (size - 1) // 2, 0, 0]),
              helper.make_node("Pad", [f"{p}square5", f"{p}pads"], [f"{p}padded"]),
              helper.make_node("AveragePool", [f"{p}padded"], [f"{p}mean"], kernel_shape=[size, 1, 1],
                               strides=[1, 1, 1])]
    nodes += _axes("Squeeze", f"{p}mean", f"{p}mean4", [1], p, opset)
    for op, name, value in (("Mul", "alpha", 1e-4), ("Add", "k", 2.0), ("Pow", "beta", 0.75)):
        nodes += [_constant(f"{p}{name}", value, np.float32), helper.make_node(
            op, [nodes[-1].output[0], f"{p}{name}"], [f"{p}{name}_out"])]
    return nodes + [helper.make_node("Div", [x, nodes[-1].output[0]], [f"{p}y"])], [], f"{p}y"


def _grouped_lrn(x, prefix, opset, rng):
    from onnx import helper

    groups = rng.choice([2, 3, 10**4])
    parts = [f"{prefix}part{g}" for g in range(groups)]
    nodes = [helper.make_node("Split", [x], parts, axis=1)]
    nodes += [helper.make_node("LRN", [part], [f"{part}_lrn"], size=rng.choice([3, 5])) for part in parts]
    return nodes + [helper.make_node("Concat", [f"{part}_lrn" for part in parts], [f"{prefix}y"], axis=1)], [], \
        f"{prefix}y"


def _shortcut(x, prefix, opset, rng):
    """x + f(x), or x * f(x), or the sum of three (ResNet's shortcut, a gate, ShuffleNet's Sum)."""
    from onnx import helper

    p = prefix
    nodes = [helper.make_node(rng.choice(["Relu", "Sigmoid", "Identity"]), [x], [f"{p}f"])]
    join = rng.choice([("Add", [x, f"{p}f"]), ("Mul", [f"{p}f", x]), ("Sum", [x, f"{p}f", x]), ("Add", [x, x])])
    return nodes + [helper.make_node(join[0], join[1], [f"{p}y"])], [], f"{p}y"


def _concat_fork(x, prefix, opset, rng):
    """Concat of x and what a branch makes of it, along an axis (the channels, or another)."""
    from onnx import helper

    p = prefix
    return [helper.make_node("Relu", [x], [f"{p}branch"]),
            helper.make_node("Concat", [x, f"{p}branch"], [f"{p}y"], axis=rng.choice([1, 1, -1, 0, 2, 7]))], [], \
        f"{p}y"


def _split_and_join(x, prefix, opset, rng):
    """Split of x into parts (as an attribute or an input), joined again in another order."""
    from onnx import helper

    p, parts = prefix, rng.choice([2, 3, 10**4])
    outputs = [f"{p}part{k}" for k in range(parts)]
    if opset >= 18:
        split = [helper.make_node("Split", [x], outputs, axis=1, num_outputs=parts)]
    elif opset >= 13 and rng.random() < 0.5:
        split = [_constant(f"{p}sizes", [rng.choice([1, 2, -1, 0])] * parts),
                 helper.make_node("Split", [x, f"{p}sizes"], outputs, axis=1)]
    else:
        split = [helper.make_node("Split", [x], outputs, axis=rng.choice([1, 0, -1]))]
    return split + [helper.make_node("Concat", outputs[::-1], [f"{p}y"], axis=1)], [], f"{p}y"


def _channel_shuffle(x, prefix, opset, rng):
    """ShuffleNet's channel shuffle as PyTorch writes it with a free batch: Reshape to a shape built from
    x's (0 copies the batch), Transpose, Reshape back to one built after the Transpose."""
    from onnx import helper

    p, groups = prefix, rng.choice([2, 3, 0, -1])
    nodes = [helper.make_node("Shape", [x], [f"{p}shape"]), _constant(f"{p}starts", [2]), _constant(f"{p}ends", [4]),
             helper.make_node("Slice", [f"{p}shape", f"{p}starts", f"{p}ends"], [f"{p}hw"]),
             _constant(f"{p}grouping", [0, groups, -1]),
             helper.make_node("Concat", [f"{p}grouping", f"{p}hw"], [f"{p}grouped_shape"], axis=0),
             helper.make_node("Reshape", [x, f"{p}grouped_shape"], [f"{p}grouped"]),
             helper.make_node("Transpose", [f"{p}grouped"], [f"{p}swapped"], perm=rng.choice([[0, 2, 1, 3, 4],
                                                                                            [0, 1, 2, 4, 3]])),
             _constant(f"{p}back", [0, -1]),
             helper.make_node("Concat", [f"{p}back", f"{p}hw"], [f"{p}back_shape"], axis=0),
             helper.make_node("Reshape", [f"{p}swapped", f"{p}back_shape"], [f"{p}y"])]
    return nodes, [], f"{p}y"


_PIECES = [_big_constant_of_shape, _concat_doubling, _gather_blowup, _long_chain, _deep_constant, _big_pad,
           _computed_flatten, _written_out_lrn, _grouped_lrn, _shortcut, _concat_fork, _split_and_join,
           _channel_shuffle]
_PROTO_MUTATIONS = [_attribute, _attribute, _node, _node, _tensor, _graph_io, _opset, _insert_piece, _insert_piece]
