"""What load holds while it reads a graph: the node being converted (Node: its attributes, and errors
that name it) and the network built so far (Network: its layers, what each tensor of the graph is in
it, and the shapes of those values)."""
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


INPUT = ".input"        # the value of the graph's input (no layer's name has a '.')


class Network:
    """The network read so far: its layers, each a node (name, layer, the values it reads) in the order
    of the graph, and the value that each tensor the graph has computed so far holds.

    A tensor is a name in the ONNX graph ("r14"); a value is the output of one layer, named as the layer
    ("res2_0_branch2c_bn"), or the network's input (INPUT). A node that computes nothing (Identity, a
    Dropout at inference, a Softmax dropped) makes a tensor that holds the value of another, and a node
    read as several layers (a Conv after a ZeroPad2d) makes one that holds the last one's.

    Converting a node: start(tensor) points `current` at the tensor it reads first and the head
    at that tensor's value; each layer appended reads the head (or the values given) and becomes the
    head; finish(node) makes the node's output hold the head. Each value's shape is carried from the
    graph's input by the layers' output_shape() (a list, batch first, None for a size the graph leaves
    free; None for the whole where the input's rank is not given), so that a layer that does not fit
    what it reads is refused at its node. constants: the tensors known when loading
    (constants.Constants), and the budget of what load may compute (budget.py)."""

    def __init__(self, model, input_name, input_shape, opset, constants, keep_softmax):
        self.model, self.nodes, self.opset = model, model.graph.node, opset
        self.constants, self.budget, self.keep_softmax = constants, constants.budget, keep_softmax
        self.layers = []                            # (name, layer, [values read]), in the graph's order
        self.taken = set()                          # the indices of the nodes read (by a pattern too)
        self.current, self._head = input_name, INPUT
        self._value, self._shape, self._holders = {input_name: INPUT}, {INPUT: input_shape}, {INPUT: 1}
        self._names, self._next_suffix, self._position = set(), {}, {}
        self._made = {input_name} | {t.name for t in model.graph.initializer}
        self._made_by, self._readers = {}, {}       # tensor -> the node that makes it, the nodes that read it
        for index, node in enumerate(self.nodes):
            for read in reads(node):
                self._readers.setdefault(read, []).append(index)
            for output in node.output:
                self._made_by.setdefault(output, index)
        for output in model.graph.output:           # (the graph's outputs count as read after every node)
            self._readers.setdefault(output.name, []).append(len(self.nodes))

    # --- the tensors -----------------------------------------------------------------------------------
    def is_computed(self, tensor):
        """Whether `tensor` holds a value of the network (the input, or what a layer computes)."""
        return tensor in self._value

    def value_of(self, tensor):
        return self._value[tensor]

    def shape_of(self, tensor):
        return self._shape[self._value[tensor]]

    def define(self, tensor, value):
        """`tensor` holds `value` (a node's second output, a Split's parts)."""
        self._value[tensor] = value
        self._holders[value] = self._holders.get(value, 0) + 1

    def unknown(self, node, tensor):
        """Why `node` cannot read `tensor`, which is neither computed nor a constant: the error."""
        maker = self.maker(tensor)
        if maker is None:
            return node.error(f"reads {tensor!r}, which no node makes and which is not an input of the graph")
        if maker >= node.index:
            return node.error(f"reads {tensor!r}, which node {maker} makes later: the nodes are not in the "
                              f"topological order ONNX requires, or they form a cycle")
        return node.error(f"reads {tensor!r}, an output of node {maker} ({self.nodes[maker].op_type}) that "
                          f"minigrad does not compute (it computes what inference needs)")

    def maker(self, tensor):
        """The index of the node that makes `tensor`, None if none does."""
        return self._made_by.get(tensor)

    def readers(self, tensor):
        """The indices of the nodes that read `tensor` (len(nodes) for the graph's output), in order."""
        return self._readers.get(tensor, [])

    def last_reader(self, tensor):
        """The index of the last node that reads `tensor` (in its subgraphs too), -1 if none; the
        graph's outputs count as read after every node."""
        return self.readers(tensor)[-1] if self.readers(tensor) else -1

    def is_trailing(self, node):
        """Whether `node`'s output is the graph's output, renamed by Identity nodes at most and read by
        nothing else (a trailing Softmax, which load drops)."""
        tensor, outputs = node.proto.output[0], {o.name for o in self.model.graph.output}
        while tensor not in outputs:
            readers = self.readers(tensor)
            if len(readers) != 1 or readers[0] == len(self.nodes) or self.nodes[readers[0]].op_type != "Identity":
                return False
            tensor = self.nodes[readers[0]].output[0]
        return len(self.readers(tensor)) == 1

    def claim(self, node):
        """Refuses `node` where it makes a tensor that an earlier node or the graph's inputs made: each
        tensor has one value, which is what lets load evaluate constants when they are first read."""
        for output in node.proto.output:
            if output in self._made:
                raise node.error(f"its output {output!r} is made by an earlier node or is an input of the graph")
            self._made.add(output or None)             # (an output left out is "", as often as it likes)
        self.taken.add(node.index)

    # --- the node being converted ------------------------------------------------------------------------
    def start(self, tensor):
        """Convert a node that reads the computed `tensor` first."""
        self.current, self._head = tensor, self._value[tensor]

    def shape(self):
        """The shape of the head: what the node reads, or what the layers appended for it so far make."""
        return self._shape[self._head]

    def append(self, node, layer, parameter_names=(), reads=None):
        """Add `layer`, reading the head (or the values `reads`), as the new head; named after the stem
        its parameters share, or its node (a name taken already gets the first free suffix _2, _3, ...).
        Returns its name."""
        reads = [self._head] if reads is None else list(reads)
        shapes = [self._shape[value] for value in reads]
        shape = None if None in shapes else list(layer.output_shape(*shapes))
        base = _common_stem(parameter_names) or node.proto.name or f"{node.op.lower()}{len(self.layers)}"
        base = name = base.replace(".", "_")    # layer names are joined with "." into parameter names
        while name in self._names:
            self._next_suffix[base] = self._next_suffix.get(base, 1) + 1
            name = f"{base}_{self._next_suffix[base]}"
        self._names.add(name)
        self.layers.append((name, layer, reads))
        self._position[name] = len(self.layers) - 1
        self._shape[name], self._head = shape, name
        return name

    def finish(self, node):
        """The node's output holds the head (unless its converter said what it holds)."""
        if node.proto.output[0] not in self._value:
            self.define(node.proto.output[0], self._head)

    def layer_before(self):
        """The layer that computes what the node being converted reads, where nothing else reads it: the
        layer that a bias or a scale the node adds can be folded into, changing nothing else; else None."""
        value = self._value[self.current]
        if value == INPUT or self._holders[value] != 1 or len(self.readers(self.current)) != 1:
            return None
        return self.layers[self._position[value]][1]

    def replace_layer_before(self, layer):
        """The layer before (layer_before), completed by the node being converted (a bias added after
        it) into `layer`."""
        name, _, reads = self.layers[self._position[self._head]]
        self.layers[self._position[self._head]] = (name, layer, reads)

    # --- the result ----------------------------------------------------------------------------------------
    def container(self, outputs):
        """The layers that compute the tensors `outputs`: a Sequential where each reads the one before
        it and the last makes the one output (a chain), an mg.Graph otherwise."""
        from .. import layers as L

        wanted = [self._value[tensor] for tensor in outputs]
        needed, kept = set(wanted), []
        for name, layer, values in reversed(self.layers):          # (the layers no output needs are left out)
            if name in needed:
                kept.append((name, layer, values))
                needed.update(values)
        kept.reverse()
        before = [INPUT] + [name for name, _, _ in kept]
        if len(wanted) == 1 and wanted[0] == before[-1] and all(values == [previous] for (_, _, values), previous
                                                               in zip(kept, before)):
            return L.Sequential(*((name, layer) for name, layer, _ in kept))
        input_name = next(name for name in ("input", *(f"input_{k}" for k in range(2, len(kept) + 3)))
                          if name not in self._names)
        rename = {INPUT: input_name}
        return L.Graph.from_nodes([(name, layer, [rename.get(v, v) for v in values]) for name, layer, values in kept],
                                  [input_name], [rename.get(v, v) for v in wanted])


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
