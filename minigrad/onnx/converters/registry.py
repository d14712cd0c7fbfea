"""The converters' registry: @converter("Conv") registers one function for an ONNX operator, over the
opsets where it reads that operator as written (since, until: where the operator changed its meaning,
a second function takes the later opsets), as onnx2torch's node_converters do.

A converter is called as convert(network, node, args): `node` is the network.Node, `args` the values of
its inputs after the first (the tensor the graph computes that it reads, network.current) where they are
constants, None where the graph computes them or they are absent. It appends the layers that compute the
node (network.append: a layer that reads the current tensor, or, for a join, the values it names) or
refuses it with node.error(...)."""

CONVERTERS = {}             # op -> [(since, until, convert)], in the order registered
NOTES = {}                  # op -> what of it is supported, where that is not all of it


def converter(op, since=None, until=None, note=None):
    def register(convert):
        CONVERTERS.setdefault(op, []).append((since, until, convert))
        if note:
            NOTES[op] = note
        return convert
    return register


def converter_for(op, opset):
    """The function that converts `op` at `opset`, or None."""
    return next((convert for since, until, convert in CONVERTERS.get(op, ())
                 if (since is None or since <= opset) and (until is None or opset <= until)), None)


def supported_ops():
    """The operators converted, as the error messages and the documentation list them."""
    return tuple(f"{op} ({NOTES[op]})" if op in NOTES else op for op in CONVERTERS)
