"""load(): an ONNX graph read as a network of minigrad layers, one node at a time: evaluated when loading
(constants.py), read with the nodes it goes with as one layer (patterns.py), or converted (converters/);
a Sequential where the layers make a chain, an mg.Graph where they fork and join. A file is input
from elsewhere: whatever in it minigrad cannot load is one ValueError that names the file and the node."""
import os

from .. import layers as L
from .budget import MAX_BYTES, Budget
from .network import GraphError, Network, Node
from .constants import EVALUATORS, Constants, is_evaluated, take_constant
from .converters import CONVERTERS, converter_for, supported_ops
from .dependency import onnx_package
from .patterns import PATTERNS, pattern_for

OLDEST_OPSET = 7
SUPPORTED_OPS = supported_ops() + tuple(what for _, what, _, _ in PATTERNS)
ALGORITHMS = ("im2col", "auto")
_READ_OPS = set(EVALUATORS) | set(CONVERTERS) | {op for op, _, _, _ in PATTERNS}
_COMMUTATIVE = ("Add", "Mul")


def load(path, keep_softmax=False, algorithm="im2col", max_bytes=MAX_BYTES):
    """Read an ONNX graph (a path or a ModelProto) as a network of minigrad layers in eval mode, float32:
    a Sequential where each layer reads the one before it (a chain, as AlexNet's), an mg.Graph where
    they fork and join (GoogLeNet, ResNet, DenseNet, ...).

    algorithm: the loaded Conv2d layers' algorithm. "im2col" (the default) computes each output as
    ONNX Runtime does, one dot product per output, to about 4e-7 of the output scale in float32;
    "auto" lets Conv2d take Winograd's transforms on the CPU (faster, and off by up to about 1.5e-5 of a
    layer's output scale in float32: benchmarks/results/cpu_alexnet_vm.md), which a model imported to
    reproduce another framework's outputs should not.

    The graph has one float input; weights come from initializers (or graph inputs that have them).
    Nodes that compute from constants and from the shapes of what the graph computes (Constant, Shape,
    Gather, Concat, Cast, Add, Div, ...) are evaluated here, when a layer reads them: the batch size
    stays symbolic, so a Reshape to (batch, -1) loads for any batch. Every other node becomes the
    layers that compute it, reading the values of its inputs: a join (Add, Sum, Mul, Concat) reads
    several, a Split's parts are Slices of one; an Add or Mul by a constant is a Bias or a Scale (or
    the bias of the layer before, the 1 - p of a classic dropout: minigrad.onnx's docstring). Layers no
    output needs are left out. A trailing Softmax is dropped, so the model gives the logits that
    SoftmaxCrossEntropy trains on, unless keep_softmax=True. Layers with weights are named after them
    ("conv1_w_0", "conv1_b_0" -> "conv1"), the others after their node ('.' made '_', names unique).

    A file is input from elsewhere: what load computes from the graph (the constants it evaluates, the
    probe that checks an LRN written out) takes at most max_bytes in all (1 GiB unless given), and so
    may one example's zero-padded maps; a Conv's pads must be smaller than its kernel, and every layer
    must fit the shapes of what it reads, from the input shape the graph declares. A value read before
    it is made (a cycle), by no node, or twice, and shapes that do not join are refused. Anything
    else is a ValueError naming the file (or the graph) and the node."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"onnx.load: algorithm must be 'im2col' or 'auto', got {algorithm!r}")
    budget = Budget(max_bytes)
    onnx = onnx_package()
    proto = path if isinstance(path, onnx.ModelProto) else _read_model(onnx, path)
    model = f"ONNX model {path}" if proto is not path else f"ONNX model (graph {proto.graph.name!r})"  # not its text
    try:
        net = _convert(onnx, proto, model, keep_softmax, budget)
    except GraphError as error:
        raise ValueError(f"{model}: {error}") from None
    for _, layer in net.named_layers():
        if isinstance(layer, L.Conv2d):
            layer.algorithm = algorithm
    return net


def _convert(onnx, proto, model, keep_softmax, budget):
    """The Sequential or Graph of a parsed model (`model` names it in the errors)."""
    graph = proto.graph
    opset = _opset(onnx, proto, model)
    if not graph.node:
        raise ValueError(f"{model}: the graph has no nodes")
    constants = Constants(graph.initializer, budget)
    inputs = [i for i in graph.input if i.name not in constants]
    if len(inputs) != 1 or inputs[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise ValueError(f"{model}: expected one float32 input (besides the initializers), got "
                         f"{[(i.name, i.type.tensor_type.elem_type) for i in inputs]}")
    network = Network(proto, inputs[0].name, _declared_shape(inputs[0], model), opset, constants, keep_softmax)
    for index, node in enumerate(graph.node):
        if index not in network.taken:          # (a pattern may have read it with an earlier node)
            _read(network, Node(index, node))
    outputs = [o.name for o in graph.output]
    uncomputed = [name for name in outputs if not network.is_computed(name)]
    if not outputs or uncomputed:
        raise ValueError(f"{model}: expected the graph's outputs to be computed from its input, got "
                         f"{outputs or 'none'}" + (f" ({uncomputed} are not)" if uncomputed and outputs else ""))
    try:
        return network.container(outputs).eval()
    except ValueError as error:             # (what mg.Graph refuses: named as the load's other refusals)
        raise ValueError(f"{model}: {error}") from None


def _read(network, node):
    """Read `node` (and, for a pattern, the nodes it goes with) into the network."""
    if node.proto.domain not in ("", "ai.onnx"):
        raise node.error(f"operator domain {node.proto.domain!r} not supported; only the ONNX operators "
                         f"(the default domain): {', '.join(SUPPORTED_OPS)}")
    if node.op in _READ_OPS:
        node.check_schema(network.opset)
    network.claim(node)
    names = list(node.proto.input)
    if is_evaluated(node, network):
        take_constant(node, network)
        return
    constants = network.constants
    if all(name in constants for name in names if name):
        raise node.error(f"computes from constants only, with an operator minigrad does not evaluate when "
                         f"loading; it evaluates {', '.join(EVALUATORS)}")
    for name in names:
        if name and name not in constants and not network.is_computed(name):
            raise network.unknown(node, name)
    if node.op in _COMMUTATIVE and names[0] in constants:
        names.reverse()                     # a bias or scale written first: the same, commuted
    if not names or names[0] in constants:
        raise node.error(f"takes {names}: minigrad reads nodes whose first input the graph computes from its "
                         f"input (the others may be constants)")
    network.start(names[0])
    read_pattern, convert = pattern_for(node, network), converter_for(node.op, network.opset)
    if read_pattern is None and convert is None:
        raise node.error(f"operator not supported; supported: {', '.join(SUPPORTED_OPS)}")
    try:
        if read_pattern is not None:
            node = read_pattern(network, node)
        else:
            convert(network, node, [constants.get(name) if name else None for name in names[1:]])
    except GraphError:
        raise
    except ValueError as error:             # a layer's refusal of what the node asks (it names the layer)
        raise node.error(str(error)) from None
    network.finish(node)


def _opset(onnx, proto, model):
    """The version of the ONNX operators the graph uses, which the onnx package must know."""
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or opset < OLDEST_OPSET:
        raise ValueError(f"{model}: opset {opset} is not supported, only {OLDEST_OPSET} and later")
    newest = onnx.defs.onnx_opset_version()
    if opset > newest:
        raise ValueError(f"{model}: opset {opset} is newer than the onnx package ({onnx.__version__}) knows, "
                         f"{newest}; a newer onnx may read it")
    return opset


def _declared_shape(graph_input, model):
    """The input's shape as the graph declares it, None for a size it leaves free, None for the whole
    where it gives no shape."""
    tensor_type = graph_input.type.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    shape = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
    if not shape or any(size is not None and size < 0 for size in shape):
        raise ValueError(f"{model}: its input {graph_input.name!r} has the shape {shape}; expected a batch axis "
                         f"and sizes >= 0")
    return shape


def _read_model(onnx, path):
    """The ModelProto in the file, with what went wrong said as such: no file, an empty one, a Git LFS
    pointer or a truncated download, external data that cannot be read (onnx refuses data outside the
    model's folder and symbolic links, which could make any file the model's weights)."""
    if not os.path.isfile(path):
        raise ValueError(f"ONNX model {path}: no such file")
    size = os.path.getsize(path)
    if size == 0:
        raise ValueError(f"ONNX model {path}: the file is empty (0 bytes); is the download complete?")
    with open(path, "rb") as file:
        start = file.read(64)
    if start.startswith(b"version https://git-lfs"):
        raise ValueError(f"ONNX model {path}: this is a Git LFS pointer ({size} bytes), not the model; download "
                         f"the file itself (the repository's 'raw' link, or git lfs pull)")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as error:                    # protobuf's DecodeError, a truncated file
        raise ValueError(f"ONNX model {path}: not a readable ONNX file ({size} bytes: "
                         f"{type(error).__name__}: {error}); is the download complete?") from None
    if not proto.HasField("graph"):
        raise ValueError(f"ONNX model {path}: no graph in its {size} bytes; not an ONNX model")
    try:
        onnx.external_data_helper.load_external_data_for_model(proto, os.path.dirname(os.path.abspath(path)))
    except Exception as error:                    # onnx's refusal (ValidationError), a missing or short file
        raise ValueError(f"ONNX model {path}: its external data cannot be read ({type(error).__name__}: "
                         f"{error})") from None
    return proto
