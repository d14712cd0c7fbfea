"""Graph: a network that forks and joins, the shape of every ImageNet winner after AlexNet.

A graph is a list of nodes, each a layer that reads named values and writes one value, named after
the node. forward runs the nodes in order, which is a topological order (every node comes after the
nodes it reads). backward runs them in reverse, and where a value was read by several nodes (a fork:
ResNet's shortcut, the four branches of an inception module) it ADDS the gradients that come back
from all of them before handing the sum to the node that wrote the value:

    dL/dx = sum over the nodes n that read x of  dL/dy_n * dy_n/dx      (the multivariate chain rule)

Reverse topological order guarantees that every reader of x has run its backward before x's writer
runs its own, so each reader's gradient is counted once, and the sum is complete when it is passed on.

Two ways to make one. Written like the paper's figure, on symbolic values (no names to wire):

    x = mg.Input()
    h = mg.ReLU()(mg.Conv2d(64, 64, 3, padding=1)(x))
    h = mg.Conv2d(64, 64, 3, padding=1)(h)
    block = mg.Graph(x, mg.ReLU()(mg.Add()(h, x)))        # a residual block (He et al. 2016, figure 2)

or from a list of nodes (name, layer, the names of the values it reads), as the ONNX loader builds it:

    mg.Graph.from_nodes([("conv", conv, ["input"]), ("add", mg.Add(), ["conv", "input"])], inputs=["input"])

A graph with one input and one output is a layer like any other: a Sequential can hold it as a block.
"""
import itertools

from .base import Layer
from .container import Container


class Value:
    """A symbolic value while a graph is being written: the input of the graph (mg.Input()), or the
    output of a layer called on values. `shape` is known when the input's shape was given."""

    _numbers = itertools.count()

    def __init__(self, node, shape=None):
        self.node, self.shape = node, None if shape is None else tuple(shape)
        self.number = next(Value._numbers)           # creation order: a topological order of the nodes

    def __repr__(self):
        shape = f", shape={self.shape}" if self.shape is not None else ""
        return f"Value({self.node.name!r}{shape})"


class _Node:
    def __init__(self, name, layer, inputs):
        self.name, self.layer, self.inputs = name, layer, list(inputs)


def Input(shape=None, name="input"):
    """A graph's input while it is written. shape: one example's shape with the batch first, e.g.
    (None, 3, 224, 224); given, every layer called on it checks the shape it gets, as it is written."""
    return Value(_Node(name, None, []), shape)


def call_symbolically(layer, values, name=None):
    """layer(value, ...) while a graph is written (Layer.__call__): the Value of its output."""
    if any(not isinstance(value, Value) for value in values) or not values:
        raise TypeError(f"{layer.describe()}: call a layer on the values of a graph being written (mg.Input() and "
                        f"what layers made of it); to compute, call its forward() on arrays")
    _check_arity(layer, len(values), name or type(layer).__name__)
    shapes = [value.shape for value in values]
    shape = None
    if all(s is not None for s in shapes):
        try:
            shape = layer.output_shape(*shapes)
        except ValueError as error:
            raise ValueError(f"graph node {name or type(layer).__name__!r}: input shape(s) "
                             f"{', '.join(map(str, shapes))}: {error}") from None
    return Value(_Node(name, layer, values), shape)


def _check_arity(layer, count, name):
    wanted = layer.arity
    if wanted is not None and count != wanted:
        raise ValueError(f"graph node {name!r}: {layer.describe()} reads {wanted} value(s), got {count}")


class Graph(Container):
    """A network of layers that fork and join (see the module docstring).

    Graph(inputs, outputs): from symbolic values, an mg.Input() (or a list of them) and the value(s)
    the layers made of it. Graph.from_nodes(nodes, inputs, outputs): from (name, layer, [value names])
    triples in a topological order.
    forward(*xs) takes one array per input and returns the output (a tuple when there are several);
    backward(*dys) takes the gradient of each output and returns that of each input (one, or a tuple;
    None for an input no gradient reaches). Parameters are named "<node>.<parameter>".
    """

    def __init__(self, inputs, outputs):
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        for value in inputs + outputs:
            if not isinstance(value, Value):
                raise ValueError(f"Graph: inputs and outputs must be symbolic values (mg.Input() and what layers "
                                 f"made of it), got {type(value).__name__}; Graph.from_nodes takes a node list")
        input_names = [value.node.name for value in inputs]
        names = {id(value): value.node.name for value in inputs}
        made = [value for value in _reachable(outputs) if id(value) not in names]
        for value in made:
            if value.node.layer is None:
                raise ValueError(f"Graph: the input {value.node.name!r} is read by the graph but is not among "
                                 f"its inputs {input_names}")
            base = value.node.name or type(value.node.layer).__name__.lower()
            taken = set(names.values())
            names[id(value)] = base if base not in taken else next(
                f"{base}_{i}" for i in itertools.count(1) if f"{base}_{i}" not in taken)
        nodes = [(names[id(value)], value.node.layer, [names[id(read)] for read in value.node.inputs])
                 for value in made]
        self._build(nodes, input_names, [names[id(value)] for value in outputs],
                    {value.node.name: value.shape for value in inputs})

    @classmethod
    def from_nodes(cls, nodes, inputs=("input",), outputs=None, input_shapes=None):
        """A graph of (name, layer, [names of the values it reads]) triples in a topological order;
        outputs: value names (default: the last node's); input_shapes: {input name: shape} to check
        every node's shapes now (else at the first forward)."""
        graph = cls.__new__(cls)
        nodes = [(name, layer, [reads] if isinstance(reads, str) else list(reads)) for name, layer, reads in nodes]
        if not nodes:
            raise ValueError("Graph: no nodes")
        graph._build(nodes, list(inputs), list(outputs) if outputs else [nodes[-1][0]], input_shapes or {})
        return graph

    def _build(self, nodes, inputs, outputs, input_shapes):
        """Check the node list (names, order, arity, every value read and used) and keep it."""
        self.inputs, self.outputs = inputs, outputs
        written = {name: None for name in inputs}          # value name -> index of the node that writes it
        position = {name: index for index, (name, _, _) in enumerate(nodes)}
        seen_layers = {}
        if len(set(inputs)) != len(inputs):
            raise ValueError(f"Graph: an input name is given twice: {inputs}")
        for index, (name, layer, reads) in enumerate(nodes):
            where = f"graph node {name!r}"
            if not isinstance(name, str) or not name or "." in name:
                raise ValueError(f"Graph: node {index} is named {name!r}; a name is a non-empty string without "
                                 f"'.' (parameters are named '<node>.<parameter>')")
            if name in written:
                raise ValueError(f"{where}: the value {name!r} is written twice (by {'an input' if written[name] is None else f'node {written[name]}'} "
                                 f"and by node {index})")
            if not isinstance(layer, Layer):
                raise ValueError(f"{where}: expected a minigrad Layer, got {type(layer).__name__}")
            if id(layer) in seen_layers:
                raise ValueError(f"{where}: its layer is also node {seen_layers[id(layer)]!r}'s; a layer keeps what "
                                 f"its forward saw for its backward, so it can be one node only")
            seen_layers[id(layer)] = name
            _check_arity(layer, len(reads), name)
            for read in reads:
                if read in written:
                    continue
                if read not in position:
                    raise ValueError(f"{where} reads {read!r}, which no node writes and which is not an input of "
                                     f"the graph {inputs}")
                cycle = _depends_on(nodes, position, read, name)
                raise ValueError(f"{where} reads {read!r}, "
                                 + ("which depends on this node's own output: a cycle" if cycle else
                                    f"which node {position[read]} writes later: nodes must come after the nodes "
                                    f"they read (a topological order)"))
            written[name] = index
        for output in outputs:
            if output not in written:
                raise ValueError(f"Graph: the output {output!r} is written by no node and is not an input")
        read = {r for _, _, reads in nodes for r in reads} | set(outputs)
        for name in inputs:
            if name not in read:
                raise ValueError(f"Graph: the input {name!r} is read by no node")
        for name, layer, _ in nodes:
            if name not in read:
                raise ValueError(f"graph node {name!r}: its output is read by no node and is not an output of "
                                 f"the graph")
        self.nodes = [_Node(name, layer, reads) for name, layer, reads in nodes]
        self._by_name = {node.name: node for node in self.nodes}
        # the last node that reads each value: forward lets go of a value once it is read for the last time
        self._last_read = {r: node.name for node in self.nodes for r in node.inputs}
        if input_shapes and set(input_shapes) >= set(inputs) and all(input_shapes[n] is not None for n in inputs):
            self.output_shape(*(input_shapes[name] for name in inputs))

    # --- Container -------------------------------------------------------------------------------------
    @property
    def arity(self):
        return len(self.inputs)

    def named_layers(self):
        return [(node.name, node.layer) for node in self.nodes]

    def __getitem__(self, name):
        if name not in self._by_name:
            raise KeyError(f"Graph: no node {name!r}")
        return self._by_name[name].layer

    def __len__(self):
        return len(self.nodes)

    def replace(self, name, layer):
        if name not in self._by_name or not isinstance(layer, Layer) or layer.arity != self[name].arity \
                or any(node.layer is layer for node in self.nodes):
            raise ValueError(f"Graph.replace: expected one of its nodes and a minigrad Layer of the same arity that "
                             f"is in no node yet, got {name!r} and {layer.describe() if isinstance(layer, Layer) else layer!r}")
        self._by_name[name].layer = layer

    @property
    def layers(self):
        return [node.layer for node in self.nodes]

    def describe(self):
        lines = [f"  ({node.name}): {node.layer.describe()} <- {', '.join(node.inputs)}" for node in self.nodes]
        return (f"Graph(inputs {self.inputs} -> outputs {self.outputs}\n" + "\n".join(lines) + "\n)")

    # --- shapes, forward, backward ------------------------------------------------------------------------
    def layer_shapes(self, *input_shapes):
        return self._shapes(input_shapes)[1]

    def output_shape(self, *input_shapes):
        shapes = self._shapes(input_shapes)[0]
        return _one_or_tuple([shapes[name] for name in self.outputs])

    def _shapes(self, input_shapes):
        """({value name: shape}, [(node, layer, shapes read, shape written), ...]) for these inputs."""
        if len(input_shapes) != len(self.inputs):
            raise ValueError(f"Graph: expected {len(self.inputs)} input shape(s), got {len(input_shapes)}")
        shapes, walk = dict(zip(self.inputs, (tuple(s) for s in input_shapes))), []
        for node in self.nodes:
            reads = tuple(shapes[name] for name in node.inputs)
            try:
                shapes[node.name] = tuple(node.layer.output_shape(*reads))
            except ValueError as error:
                raise ValueError(f"graph node {node.name!r}: input shape(s) {', '.join(map(str, reads))}: "
                                 f"{error}") from None
            walk.append((node.name, node.layer, reads, shapes[node.name]))
        return shapes, walk

    def up_to(self, name):
        outer, _, inner = name.partition(".")
        if outer not in self._by_name or (inner and not isinstance(self[outer], Container)):
            raise ValueError(f"Graph: no node {name!r}; its nodes are {[node.name for node in self.nodes]}")
        triples = [(node.name, node.layer, node.inputs) for node in self.nodes]
        needed = _ancestors(triples, {node.name: i for i, node in enumerate(self.nodes)}, outer)
        nodes = [(node.name, node.layer.up_to(inner) if node.name == outer and inner else node.layer, node.inputs)
                 for node in self.nodes if node.name in needed]
        return Graph.from_nodes(nodes, [name for name in self.inputs if name in needed], [outer])

    def _wired_layers(self, reads, prefix):
        values, leaves = dict(zip(self.inputs, reads)), []
        for node in self.nodes:
            inner, given = node.layer.wired_leaves([values[name] for name in node.inputs],
                                                   f"{prefix}.{node.name}" if prefix else node.name)
            leaves += inner
            (values[node.name],) = given             # (a node makes one value)
        return leaves, [values[name] for name in self.outputs]

    def forward(self, *xs):
        if len(xs) != len(self.inputs):
            raise ValueError(f"Graph: expected {len(self.inputs)} input array(s) ({', '.join(self.inputs)}), "
                             f"got {len(xs)}")
        values = dict(zip(self.inputs, xs))
        kept = set(self.outputs)
        for node in self.nodes:
            y = node.layer.forward(*(values[name] for name in node.inputs))
            values[node.name] = y
            self._report("forward", node.name, node.layer, y)
            for name in set(node.inputs):          # (its last reader has run: not needed any more)
                if self._last_read[name] == node.name and name not in kept:
                    del values[name]
        return _one_or_tuple([values[name] for name in self.outputs])

    def backward(self, *dys):
        if len(dys) != len(self.outputs):
            raise ValueError(f"Graph.backward: expected the gradient of each of its {len(self.outputs)} "
                             f"output(s) {self.outputs}, got {len(dys)}")
        gradients = {}

        def arrive(name, gradient):                # the sum over the readers of a value
            if gradient is not None:
                gradients[name] = gradient if name not in gradients else gradients[name] + gradient

        for name, dy in zip(self.outputs, dys):
            arrive(name, dy)
        for node in reversed(self.nodes):
            dy = gradients.pop(node.name, None)
            self._report("backward", node.name, node.layer, dy)
            if dy is not None:                     # (None: no gradient reaches this node, an input no one needs)
                dxs = node.layer.backward(dy)
                for name, dx in zip(node.inputs, dxs if len(node.inputs) > 1 else (dxs,)):
                    arrive(name, dx)
            node.layer.release()
        return _one_or_tuple([gradients.get(name) for name in self.inputs])


Graph._plain = (Graph.forward, Graph.backward)


def _one_or_tuple(items):
    return items[0] if len(items) == 1 else tuple(items)


def _reachable(outputs):
    """The values the outputs are computed from, in the order they were made (a topological order)."""
    found, stack = {}, list(outputs)
    while stack:
        value = stack.pop()
        if id(value) not in found:
            found[id(value)] = value
            stack.extend(value.node.inputs)
    return sorted(found.values(), key=lambda value: value.number)


def _depends_on(nodes, position, start, target):
    """Whether the value `start` is computed from node `target`'s output."""
    return target in _ancestors(nodes, position, start)


def _ancestors(nodes, position, start):
    """The value `start` and every value it is computed from (nodes: (name, layer, reads) triples;
    position: name -> index; the graph's inputs are among the names returned, not in `position`)."""
    stack, seen = [start], set()
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in position:
            stack.extend(nodes[position[name]][2])
    return seen
