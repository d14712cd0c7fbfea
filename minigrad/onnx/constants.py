"""Nodes evaluated when loading: those that compute from constants (a weight in a Constant node, a
shape built by Concat, ...) and the Shape of the chain's tensor, whose batch size stays a symbol (BATCH),
so that a Reshape to (batch, -1) loads for any batch. One small evaluator per operator, registered by
@evaluator("Gather"), as the converters are."""
from types import SimpleNamespace

import numpy as np

from .arguments import squeeze_axes
from .dependency import onnx_package

EVALUATORS = {}                 # op -> evaluate(node, *inputs): the output's value, inputs as values


def evaluator(op):
    def register(function):
        EVALUATORS[op] = function
        return function
    return register


class _Batch:
    """The batch size, in a shape taken from the chain's tensor (Shape). It is unknown when loading, so
    it stays a symbol: Gather, Concat, Unsqueeze... carry it, a Reshape keeps it as the batch axis, and
    anything that would compute with it fails (int() of it raises TypeError), naming its node."""

    def __repr__(self):
        return "batch"


BATCH = _Batch()


def is_evaluated(node, chain):
    """Whether `node` is evaluated here: an EVALUATORS node whose inputs are constants, or the Shape of
    the chain's current tensor."""
    names = [name for name in node.proto.input if name]
    return node.op in EVALUATORS and (all(name in chain.constants for name in names)
                                      or node.op == "Shape" and names == [chain.current])


def evaluate(node, chain):
    """The value of `node`'s output (is_evaluated(node, chain) must hold)."""
    if node.op == "Shape" and node.proto.input[0] == chain.current:
        shape = chain.shape()
        if shape is None or None in shape[1:]:
            raise node.error(f"the shape of {chain.current!r} is not known (the layers give {shape})")
        inputs = [SimpleNamespace(shape=(BATCH, *shape[1:]))]       # what np.shape reads
    else:
        inputs = [chain.constants[name] if name else None for name in node.proto.input]
    try:
        value = EVALUATORS[node.op](node, *inputs)
    except (TypeError, ValueError, IndexError) as error:
        if str(error).startswith("ONNX node"):       # node.take's refusal, which names the node already
            raise
        uses_batch = any(isinstance(a, np.ndarray) and BATCH in list(a.flat) for a in inputs)
        raise node.error(f"cannot be evaluated when loading: {error}" + (
            " (it computes with the batch size, which minigrad leaves free)" if uses_batch else "")) from None
    value = np.asarray(value)
    if value.dtype == object and not any(v is BATCH for v in value.flat):
        value = value.astype(np.int64)          # a shape's sizes, the batch no longer among them
    return value


@evaluator("Constant")
def constant(node):
    a = node.take({"value": None, "value_float": None, "value_floats": None, "value_int": None,
                   "value_ints": None})
    given = [(name, v) for name, v in a.items() if v is not None]
    if len(given) != 1:
        raise node.error("only a Constant with one of value, value_float(s), value_int(s) is supported")
    name, value = given[0]
    if name == "value":
        return onnx_package().numpy_helper.to_array(value)
    return np.array(value, np.float32 if name.startswith("value_float") else np.int64)


@evaluator("ConstantOfShape")
def constant_of_shape(node, shape):
    value = node.take({"value": None})["value"]
    fill = onnx_package().numpy_helper.to_array(value) if value is not None else np.zeros(1, np.float32)
    return np.full(tuple(int(d) for d in shape), fill.reshape(-1)[0], dtype=fill.dtype)


@evaluator("Shape")
def shape_of(node, x):
    a = node.take({"start": 0, "end": None})           # start and end: opset 15
    return np.array(np.shape(x), dtype=object)[a["start"]:a["end"]]


@evaluator("Gather")
def gather(node, x, indices):
    return np.take(x, np.asarray(indices, np.int64), axis=node.take({"axis": 0})["axis"])


@evaluator("Unsqueeze")
def unsqueeze(node, x, axes=None):
    axes = squeeze_axes(node, axes)
    rank = np.ndim(x) + len(axes)
    for axis in sorted(int(a) % rank for a in axes):
        x = np.expand_dims(x, axis)
    return x


@evaluator("Squeeze")
def squeeze(node, x, axes=None):
    axes = squeeze_axes(node, axes)
    return np.squeeze(x) if axes is None else np.squeeze(x, tuple(int(a) % np.ndim(x) for a in axes))


@evaluator("Concat")
def concat(node, *xs):
    return np.concatenate(xs, axis=node.take({"axis": None})["axis"])


@evaluator("Slice")
def slice_of(node, x, starts=None, ends=None, axes=None, steps=None):
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
def cast(node, x):
    to = node.take({"to": None, "saturate": 1})["to"]
    return x if x.dtype == object else x.astype(onnx_package().helper.tensor_dtype_to_np_dtype(to))


@evaluator("Reshape")
def reshape(node, x, shape):
    allowzero = node.take({"allowzero": 0})["allowzero"]
    target = [int(d) for d in shape]
    return np.reshape(x, [x.shape[i] if d == 0 and not allowzero else d for i, d in enumerate(target)])


@evaluator("Transpose")
def transpose(node, x):
    return np.transpose(x, node.take({"perm": None})["perm"])


@evaluator("Identity")
def identity(node, x):
    return x
