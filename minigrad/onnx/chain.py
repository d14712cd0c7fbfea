"""What load holds while it reads a graph: the node being converted (Node: its attributes, and errors
that name it) and the chain of layers converted so far (Chain: the tensor they compute, its shape, the
constants known so far)."""
import functools
import os

from .dependency import onnx_package


class GraphError(ValueError):
    """A part of the graph (a node, an initializer) that minigrad cannot load; load adds the model's
    name to the message."""


class Node:
    """One node being converted: its attributes, and errors that name it."""

    def __init__(self, index, proto):
        names = [proto.op_type, proto.domain, proto.name, *proto.input, *proto.output,
                 *(attribute.name for attribute in proto.attribute)]
        if not all(isinstance(name, str) for name in names):       # (protobuf gives bytes that are not UTF-8)
            raise GraphError(f"node {index}: its names are not all UTF-8 text: {names}")
        self.index, self.proto, self.op = index, proto, proto.op_type
        named = f" {proto.name!r}" if proto.name else ""
        self.label = f"node {index}{named} ({proto.op_type})"
        get_value = onnx_package().helper.get_attribute_value
        self.attributes = {}
        for attribute in proto.attribute:
            try:
                self.attributes[attribute.name] = get_value(attribute)
            except ValueError:                  # a type onnx does not know
                raise self.error(f"attribute {attribute.name!r} has no value of a known type") from None

    def error(self, what):
        return GraphError(f"{self.label}: {what}")

    def take(self, known):
        """The attributes, after refusing any this converter does not know."""
        unknown = sorted(set(self.attributes) - set(known))
        if unknown:
            raise self.error(f"attribute(s) {unknown} not supported; supported: {sorted(known)}")
        return {name: self.attributes.get(name, default) for name, default in known.items()}

    def check_schema(self, opset):
        """The counts of inputs and outputs, and the types of the attributes, that ONNX's definition of
        the operator at `opset` allows: what the converters and evaluators then take for granted."""
        from onnx import defs

        try:
            schema = defs.get_schema(self.op, opset, "")
        except defs.SchemaError:
            raise self.error(f"ONNX defines no {self.op} operator at opset {opset}") from None
        for what, count, least, most in (("inputs", len(self.proto.input), schema.min_input, schema.max_input),
                                         ("outputs", len(self.proto.output), schema.min_output, schema.max_output)):
            if not least <= count <= most:
                raise self.error(f"{count} {what}; {self.op} at opset {opset} has {least} to {most}")
        missing = sorted(name for name, declared in schema.attributes.items()
                         if declared.required and name not in self.attributes)
        if missing:
            raise self.error(f"needs the attribute(s) {missing}")
        for attribute in self.proto.attribute:
            declared = schema.attributes.get(attribute.name)
            # (one the operator had at another opset, which converters read too, of a type it had there)
            types = {declared.type} if declared is not None else _attribute_types().get((self.op, attribute.name), ())
            if types and attribute.type not in types:
                given = onnx_package().AttributeProto.AttributeType.Name(attribute.type)
                raise self.error(f"attribute {attribute.name!r} is {given}; {self.op} takes "
                                 f"{' or '.join(sorted(t.name for t in types))}")


@functools.lru_cache(maxsize=None)
def _attribute_types():
    """(op, attribute) -> the types ONNX's definitions of the operator give the attribute, at any opset."""
    from onnx import defs

    types = {}
    for schema in defs.get_all_schemas_with_history():
        if schema.domain == "":
            for name, attribute in schema.attributes.items():
                types.setdefault((schema.name, name), set()).add(attribute.type)
    return types


class Chain:
    """The layers converted so far and the name of the tensor they compute (the chain's current tensor).

    Its shape is carried from the graph's input by each layer's output_shape() (a list, batch first, None
    for a size the graph leaves free; None for the whole where the input's rank is not given), so that a
    layer that does not fit its input is refused at its node. constants: the tensors known when loading
    (constants.Constants), and the budget of what load may compute (budget.py)."""

    def __init__(self, model, input_name, input_shape, opset, constants, keep_softmax):
        self.model, self.nodes, self.opset = model, model.graph.node, opset
        self.constants, self.budget, self.keep_softmax = constants, constants.budget, keep_softmax
        self.current, self._shape = input_name, input_shape
        self.layers, self._names, self._next_suffix = [], set(), {}
        self._made = {input_name} | {t.name for t in model.graph.initializer}
        self._last_readers = None
        # A Softmax after which only Identity nodes (renaming the output) follow is the trailing one.
        self._last_computing = max((i for i, n in enumerate(self.nodes) if n.op_type != "Identity"), default=-1)

    def shape(self):
        return self._shape

    def is_trailing(self, node):
        return node.index >= self._last_computing

    def claim(self, node):
        """Refuses `node` where it makes a tensor that an earlier node or the graph's inputs made: each
        tensor has one value, which is what lets load evaluate constants when they are first read."""
        for output in node.proto.output:
            if output in self._made:
                raise node.error(f"its output {output!r} is made by an earlier node or is an input of the graph")
            self._made.add(output or None)             # (an output left out is "", as often as it likes)

    def advance(self, node):
        self.current = node.proto.output[0]

    def append(self, node, layer, parameter_names=()):
        """Add `layer`, named after the stem its parameters share, or its node (a name taken already gets
        the first free suffix _2, _3, ...)."""
        if self._shape is not None:
            self._shape = list(layer.output_shape(self._shape))
        base = _common_stem(parameter_names) or node.proto.name or f"{node.op.lower()}{len(self.layers)}"
        base = name = base.replace(".", "_")    # Sequential names are joined with "." into parameter names
        while name in self._names:
            self._next_suffix[base] = self._next_suffix.get(base, 1) + 1
            name = f"{base}_{self._next_suffix[base]}"
        self._names.add(name)
        self.layers.append((name, layer))

    def replace_last(self, layer):
        """The last layer, completed by a later node (a bias added after it) into `layer`."""
        self.layers[-1] = (self.layers[-1][0], layer)

    def last_reader(self, name):
        """The index of the last node that reads tensor `name` (in its subgraphs too), -1 if none; the
        graph's outputs count as read after every node."""
        if self._last_readers is None:
            self._last_readers = {}
            for index, node in enumerate(self.nodes):
                for read in reads(node):
                    self._last_readers[read] = index
            self._last_readers.update((o.name, len(self.nodes)) for o in self.model.graph.output)
        return self._last_readers.get(name, -1)


def reads(node):
    """The tensors a node reads, with those its subgraphs (If's branches) read from outside them."""
    names = set(node.input)
    for attribute in node.attribute:
        for graph in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
            made = {o for n in graph.node for o in n.output} | {t.name for t in graph.initializer}
            names |= {name for n in graph.node for name in reads(n)} - made
    return names - {""}


def _common_stem(names):
    """"conv1_w_0", "conv1_b_0" -> "conv1"; "features.0.weight", "features.0.bias" -> "features.0"."""
    if len(names) < 2:
        return ""
    return os.path.commonprefix(list(names)).rstrip("._-/:")
