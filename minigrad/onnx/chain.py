"""What load holds while it reads a graph: the node being converted (Node: its attributes, and errors
that name it) and the chain of layers converted so far (Chain: the tensor they compute, its shape, the
constants evaluated so far)."""
from .dependency import onnx_package


class Node:
    """One node being converted: its attributes, and errors that name it."""

    def __init__(self, index, proto):
        self.index, self.proto, self.op = index, proto, proto.op_type
        named = f" {proto.name!r}" if proto.name else ""
        self.label = f"node {index}{named} ({proto.op_type})"
        get_value = onnx_package().helper.get_attribute_value
        self.attributes = {a.name: get_value(a) for a in proto.attribute}

    def error(self, what):
        return ValueError(f"ONNX {self.label}: {what}")

    def take(self, known):
        """The attributes, after refusing any this converter does not know."""
        unknown = sorted(set(self.attributes) - set(known))
        if unknown:
            raise self.error(f"attribute(s) {unknown} not supported; supported: {sorted(known)}")
        return {name: self.attributes.get(name, default) for name, default in known.items()}


class Chain:
    """The layers converted so far and the name of the tensor they compute (the chain's current tensor).

    Its shape is carried from the graph's input by each layer's output_shape() (a list, batch first, None
    for a size the graph leaves free; None for the whole where the input's rank is not given), so that a
    layer that does not fit its input is refused at its node. constants: name -> value of the tensors
    known when loading (initializers, and the nodes load evaluates: constants.py)."""

    def __init__(self, model, input_name, input_shape, opset, constants, keep_softmax):
        self.model, self.nodes, self.opset = model, model.graph.node, opset
        self.constants, self.keep_softmax = constants, keep_softmax
        self.current, self._shape = input_name, input_shape
        self.layers, self._names = [], set()
        # A Softmax after which only Identity nodes (renaming the output) follow is the trailing one.
        self._last_computing = max((i for i, n in enumerate(self.nodes) if n.op_type != "Identity"), default=-1)

    def shape(self):
        return self._shape

    def is_trailing(self, node):
        return node.index >= self._last_computing

    def advance(self, node):
        self.current = node.proto.output[0]

    def append(self, node, layer, parameter_names=()):
        """Add `layer`, named after the stem its parameters share, or its node."""
        if self._shape is not None:
            try:
                self._shape = list(layer.output_shape(self._shape))
            except ValueError as error:                     # the layer's own words: what it expected, what came
                raise node.error(str(error)) from None
        name = _common_stem(parameter_names) or node.proto.name or f"{node.op.lower()}{len(self.layers)}"
        name = name.replace(".", "_")           # Sequential names are joined with "." into parameter names
        while name in self._names:
            name += "_"
        self._names.add(name)
        self.layers.append((name, layer))

    def replace_last(self, layer):
        """The last layer, completed by a later node (a bias added after it) into `layer`."""
        self.layers[-1] = (self.layers[-1][0], layer)


def _common_stem(names):
    """"conv1_w_0", "conv1_b_0" -> "conv1"; "features.0.weight", "features.0.bias" -> "features.0"."""
    if len(names) < 2:
        return ""
    stem = names[0]
    for name in names[1:]:
        while not name.startswith(stem):
            stem = stem[:-1]
    return stem.rstrip("._-/:")
