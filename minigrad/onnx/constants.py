"""Nodes evaluated when loading: those that compute from constants (a weight in a Constant node, a
shape built by Concat, ...) and the Shape of a tensor the network computes, whose batch size stays a symbol (BATCH),
so that a Reshape to (batch, -1) loads for any batch. One small evaluator per operator, registered by
@evaluator("Gather"), as the converters are. A node is evaluated only when a layer (or another evaluated
node) reads its output, and what it makes counts against load's budget (budget.py)."""
from types import SimpleNamespace

import numpy as np

from .arguments import squeeze_axes
from .network import GraphError
from .dependency import onnx_package

EVALUATORS = {}         # op -> evaluate(node, budget, *inputs): the output's value, from the inputs' values


def evaluator(op):
    def register(function):
        EVALUATORS[op] = function
        return function
    return register


class _Batch:
    """The batch size, in a shape taken from a computed tensor (Shape). It is unknown when loading, so
    it stays a symbol: Gather, Concat, Unsqueeze... carry it, a Reshape keeps it as the batch axis, and
    anything that would compute with it fails (int() of it raises TypeError), naming its node."""

    def __repr__(self):
        return "batch"


BATCH = _Batch()


class Constants:
    """name -> value of the tensors known when loading: the initializers, converted from the file when
    first read, and the outputs of the nodes load evaluates, evaluated when first read (so a constant no
    layer reads costs nothing), then kept."""

    def __init__(self, initializers, budget):
        self._tensors = {t.name: t for t in initializers}      # TensorProtos not converted yet
        self._nodes = {}                                       # output -> the node that computes it
        self._values, self.budget = {}, budget

    def __contains__(self, name):
        return name in self._values or name in self._nodes or name in self._tensors

    def get(self, name, default=None):
        return self[name] if name in self else default

    def set(self, name, value):
        self._values[name] = value

    def defer(self, node):
        """`node`'s output, to be evaluated when first read (all its inputs are constants)."""
        if node.proto.output[0] in self:
            raise node.error(f"its output {node.proto.output[0]!r} is already a constant of the graph")
        self._nodes[node.proto.output[0]] = node

    def __getitem__(self, name):
        # The nodes a value needs are evaluated from a stack, not by recursion: a chain of 20,000
        # Identity nodes is as deep as it is long. Every input was known before its node (load checks
        # that each name is made once), so the stack always ends.
        wanted = [name]
        while wanted:
            name = wanted[-1]
            if name in self._values:
                wanted.pop()
            elif name in self._tensors:
                self._values[name] = tensor_value(self._tensors.pop(name), f"initializer {name!r}")
            else:
                node = self._nodes[name]
                missing = [i for i in node.proto.input if i and i not in self._values]
                if missing:
                    wanted += missing
                else:
                    self._values[name] = evaluate(node, [self._values[i] if i else None for i in node.proto.input],
                                                  self.budget)
                    del self._nodes[name]
        return self._values[name]


def tensor_value(tensor, what):
    """A TensorProto's values (an initializer, a Constant's value) as an array; one that does not hold
    what its dims and type say is refused, naming it."""
    try:
        return onnx_package().numpy_helper.to_array(tensor)
    except Exception as error:              # whatever onnx's conversion raises on a malformed tensor
        raise GraphError(f"{what}: not a readable tensor ({type(error).__name__}: {error})") from None


def is_evaluated(node, network):
    """Whether `node` is evaluated here: an EVALUATORS node whose inputs are constants, or the Shape of a
    tensor the network computes."""
    names = [name for name in node.proto.input if name]
    return node.op in EVALUATORS and (all(name in network.constants for name in names)
                                      or node.op == "Shape" and len(names) == 1 and network.is_computed(names[0]))


def take_constant(node, network):
    """Record the value of `node` (is_evaluated(node, network) holds): the Shape of a computed tensor now,
    from the shape the layers give it (its sizes, the batch the symbol BATCH); any other when it is
    first read."""
    tensor = node.proto.input[0] if node.proto.input else ""
    if node.op != "Shape" or not network.is_computed(tensor):
        network.constants.defer(node)
        return
    shape = network.shape_of(tensor)
    if shape is None or None in shape[1:]:
        raise node.error(f"the shape of {tensor!r} is not known (the layers give {shape})")
    inputs = [SimpleNamespace(shape=(BATCH, *shape[1:]))]                    # what np.shape reads
    network.constants.set(node.proto.output[0], evaluate(node, inputs, network.budget))


def constant_ahead(network, tensor, before):
    """The value of `tensor` where it is a constant, or where nodes not read yet, before node `before`,
    compute it from constants and shapes (a pattern that reads ahead: the shape a channel shuffle
    reshapes back to, built by the nodes after its first Reshape); those nodes are then read here.
    None where neither."""
    from .network import Node

    wanted, found = [tensor], []
    while wanted:
        name = wanted.pop()
        if not name or name in network.constants or any(n.proto.output[0] == name for n in found):
            continue
        index = network.maker(name)
        if index is None or index in network.taken or index >= before or len(found) > 64:
            return None
        node = Node(index, network.nodes[index])
        if node.op not in EVALUATORS or node.proto.domain not in ("", "ai.onnx") or len(node.proto.output) != 1 \
                or node.op == "Shape" and not network.is_computed(node.proto.input[0]):
            return None
        found.append(node)
        if node.op != "Shape":
            wanted.extend(node.proto.input)
    for node in sorted(found, key=lambda n: n.index):
        node.check_schema(network.opset)
        network.claim(node)
        take_constant(node, network)
    return network.constants[tensor]


def evaluate(node, inputs, budget):
    """The value of `node`'s output from its inputs' values."""
    try:
        value = EVALUATORS[node.op](node, budget, *inputs)
    except (TypeError, ValueError, IndexError) as error:
        if isinstance(error, GraphError):          # node.take's refusal, which names the node already
            raise
        uses_batch = any(isinstance(a, np.ndarray) and a.dtype == object and any(v is BATCH for v in a.flat)
                         for a in inputs)
        raise node.error(f"cannot be evaluated when loading: {error}" + (
            " (it computes with the batch size, which minigrad leaves free)" if uses_batch else "")) from None
    value = np.asarray(value)
    if value.dtype == object and not any(v is BATCH for v in value.flat):
        value = value.astype(np.int64)          # a shape's sizes, the batch no longer among them
    if value.flags.owndata and not any(value is x for x in inputs):     # (views and inputs cost nothing)
        budget.spend(value)
    return value


@evaluator("Constant")
def constant(node, budget):
    a = node.take({"value": None, "value_float": None, "value_floats": None, "value_int": None,
                   "value_ints": None})
    given = [(name, v) for name, v in a.items() if v is not None]
    if len(given) != 1:
        raise node.error("only a Constant with one of value, value_float(s), value_int(s) is supported")
    name, value = given[0]
    if name == "value":
        return tensor_value(value, f"{node.label}: its value")
    return np.array(value, np.float32 if name.startswith("value_float") else np.int64)


@evaluator("ConstantOfShape")
def constant_of_shape(node, budget, shape):
    value = node.take({"value": None})["value"]
    fill = tensor_value(value, f"{node.label}: its value") if value is not None else np.zeros(1, np.float32)
    shape = tuple(int(d) for d in np.asarray(shape).reshape(-1))
    budget.check(node, "its output", shape, fill.dtype)
    return np.full(shape, fill.reshape(-1)[0], dtype=fill.dtype)


@evaluator("Shape")
def shape_of(node, budget, x):
    a = node.take({"start": 0, "end": None})           # start and end: opset 15
    return np.array(np.shape(x), dtype=object)[a["start"]:a["end"]]


@evaluator("Gather")
def gather(node, budget, x, indices):
    axis, indices, shape = int(node.take({"axis": 0})["axis"]), np.asarray(indices, np.int64), np.shape(x)
    if not -len(shape) <= axis < len(shape):
        raise node.error(f"axis {axis} is out of range for an input of shape {shape}")
    axis %= len(shape)
    budget.check(node, "its output", (*shape[:axis], *indices.shape, *shape[axis + 1:]), np.asarray(x).dtype)
    return np.take(x, indices, axis=axis)


@evaluator("Unsqueeze")
def unsqueeze(node, budget, x, axes=None):
    axes = squeeze_axes(node, axes)
    rank = np.ndim(x) + len(axes)
    for axis in sorted(int(a) % rank for a in axes):
        x = np.expand_dims(x, axis)
    return x


@evaluator("Squeeze")
def squeeze(node, budget, x, axes=None):
    axes = squeeze_axes(node, axes)
    return np.squeeze(x) if axes is None else np.squeeze(x, tuple(int(a) % np.ndim(x) for a in axes))


@evaluator("Concat")
def concat(node, budget, *xs):
    budget.check(node, "its output", (sum(np.size(x) for x in xs),), np.result_type(*xs))
    return np.concatenate(xs, axis=node.take({"axis": None})["axis"])


@evaluator("Slice")
def slice_of(node, budget, x, starts=None, ends=None, axes=None, steps=None):
    a = node.take({"starts": None, "ends": None, "axes": None})     # attributes up to opset 9, then inputs
    starts = a["starts"] if starts is None else starts
    ends = a["ends"] if ends is None else ends
    axes = a["axes"] if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    index = [slice(None)] * np.ndim(x)
    for start, end, axis, step in zip(starts, ends, range(len(starts)) if axes is None else axes, steps):
        index[int(axis)] = slice(int(start), int(end), int(step))
    return x[tuple(index)]


@evaluator("Cast")
def cast(node, budget, x):
    to = node.take({"to": None, "saturate": 1})["to"]
    if x.dtype == object:                       # a shape with the batch: its sizes are ints already
        return x
    try:
        dtype = onnx_package().helper.tensor_dtype_to_np_dtype(to)
    except (KeyError, TypeError):
        raise node.error(f"Cast to {to!r}: not an ONNX tensor type") from None
    budget.check(node, "its output", x.shape, dtype)
    return x.astype(dtype)


@evaluator("Reshape")
def reshape(node, budget, x, shape):
    allowzero = node.take({"allowzero": 0})["allowzero"]
    target = [int(d) for d in shape]
    return np.reshape(x, [x.shape[i] if d == 0 and not allowzero else d for i, d in enumerate(target)])


@evaluator("Transpose")
def transpose(node, budget, x):
    return np.transpose(x, node.take({"perm": None})["perm"])


@evaluator("Identity")
def identity(node, budget, x):
    return x


def _arithmetic(op, compute):
    """An evaluator of an elementwise operator on constants (a size computed from a shape: PyTorch
    writes x.chunk(2, 1) as Slices whose bounds are the channels, from Shape, divided by 2)."""
    @evaluator(op)
    def evaluate_op(node, budget, a, b):
        node.take({})
        shapes = [np.shape(a), np.shape(b)]
        try:
            shape = np.broadcast_shapes(*shapes)
        except ValueError:
            raise node.error(f"the shapes {shapes[0]} and {shapes[1]} do not broadcast") from None
        budget.check(node, "its output", shape, np.result_type(np.asarray(a), np.asarray(b)))
        return compute(np.asarray(a), np.asarray(b))
    return evaluate_op


def _divide(a, b):
    """ONNX's Div: integers rounded towards zero (C's, not NumPy's floor division)."""
    if a.dtype.kind in "iuO" and b.dtype.kind in "iuO":
        quotient = abs(a) // abs(b)
        return np.where((a < 0) != (b < 0), -quotient, quotient)
    return a / b


_arithmetic("Add", np.add)
_arithmetic("Sub", np.subtract)
_arithmetic("Mul", np.multiply)
_arithmetic("Div", _divide)
