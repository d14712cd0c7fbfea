"""load(): an ONNX graph read as a Sequential, one node at a time: evaluated when loading (constants.py),
read with the nodes after it as one layer (patterns.py), or converted (converters/)."""
import os

from .. import layers as L
from .chain import Chain, Node
from .constants import EVALUATORS, evaluate, is_evaluated
from .converters import converter_for, supported_ops
from .dependency import onnx_package
from .patterns import PATTERNS, pattern_for

OLDEST_OPSET = 7
SUPPORTED_OPS = supported_ops() + tuple(what for what, _, _ in PATTERNS)
ALGORITHMS = ("im2col", "auto")


def load(path, keep_softmax=False, algorithm="im2col"):
    """Read an ONNX graph (a path or a ModelProto) as a Sequential in eval mode, float32.

    algorithm: the loaded Conv2d layers' algorithm. "im2col" (the default) computes each output as
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
    if algorithm not in ALGORITHMS:
        raise ValueError(f"onnx.load: algorithm must be 'im2col' or 'auto', got {algorithm!r}")
    onnx = onnx_package()
    proto = path if isinstance(path, onnx.ModelProto) else _read_model(onnx, path)
    graph = proto.graph
    model = f"ONNX model {path}" if proto is not path else f"ONNX model (graph {graph.name!r})"   # not its text
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or opset < OLDEST_OPSET:
        raise ValueError(f"{model}: opset {opset} is not supported, only {OLDEST_OPSET} and later")
    constants = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in constants]
    if len(inputs) != 1 or inputs[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise ValueError(f"{model}: expected one float32 input (besides the initializers), got "
                         f"{[(i.name, i.type.tensor_type.elem_type) for i in inputs]}")
    chain = Chain(proto, inputs[0].name, _declared_shape(inputs[0]), opset, constants, keep_softmax)
    index = 0
    while index < len(graph.node):
        index = _read(chain, Node(index, graph.node[index])) + 1
    if [o.name for o in graph.output] != [chain.current]:
        raise ValueError(f"{model}: expected the graph's one output to be the last node's "
                         f"{chain.current!r}, got {[o.name for o in graph.output]}")
    net = L.Sequential(*chain.layers).eval()
    for layer in net:
        if isinstance(layer, L.Conv2d):
            layer.algorithm = algorithm
    return net


def _read(chain, node):
    """Read `node` (and, for a pattern, the nodes after it) into the chain; returns the index of the
    last node read."""
    if node.proto.domain not in ("", "ai.onnx"):
        raise node.error(f"operator domain {node.proto.domain!r} not supported; only the ONNX operators "
                         f"(the default domain): {', '.join(SUPPORTED_OPS)}")
    if is_evaluated(node, chain):
        chain.constants[node.proto.output[0]] = evaluate(node, chain)
        return node.index
    names = list(node.proto.input)
    if node.op in ("Add", "Mul") and names[1:] == [chain.current] and names[0] in chain.constants:
        names.reverse()                     # a bias or scale written first: the same, commuted
    if all(name in chain.constants for name in names if name):
        raise node.error(f"computes from constants only, with an operator minigrad does not evaluate when "
                         f"loading; it evaluates {', '.join(EVALUATORS)}")
    if not names or names[0] != chain.current:
        raise node.error(f"takes {names}, but minigrad loads chains: every node must take the previous "
                         f"node's output {chain.current!r} first (or only constants and shapes)")
    read_pattern = pattern_for(node, chain)
    if read_pattern is not None:
        node = read_pattern(chain, node)
    else:
        convert = converter_for(node.op, chain.opset)
        if convert is None:
            raise node.error(f"operator not supported; supported: {', '.join(SUPPORTED_OPS)}")
        convert(chain, node, [chain.constants.get(name) if name else None for name in names[1:]])
    chain.advance(node)
    return node.index


def _declared_shape(graph_input):
    """The input's shape as the graph declares it, None for a size it leaves free, None for the whole
    where it gives no shape."""
    tensor_type = graph_input.type.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]


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
