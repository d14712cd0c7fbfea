"""export(): a Sequential or an mg.Graph written as an ONNX graph, layer by layer in the order the data
meets them, by the writer WRITERS gives each layer's type."""
import numpy as np

from .. import backend, ops
from .. import layers as L
from .dependency import onnx_package

OPSET = 17          # the opset export writes: Dropout's ratio as an input (12)
IR_VERSION = 8      # the IR version of opset 17; ONNX Runtime 1.10 and later read it
_INPUT = ".input"   # the model's input among the values the layers read (no layer's name starts with '.')


def export(model, path, input_shape):
    """Write `model` (a Sequential or an mg.Graph of minigrad layers; the containers in it opened up) to
    `path` as an ONNX graph of its inference (eval-mode) computation. input_shape is one example's
    shape, e.g. (3, 224, 224); the batch axis is symbolic ("N"). The nodes come in the order the data
    meets the layers (a topological order), each join as its ONNX operator (Add or Sum, Mul, Concat, a
    Slice per part of a split); weights become initializers named "<layer>.<parameter>", nodes are
    named after the layers. Returns the ModelProto, checked by onnx.checker (full_check) and shape
    inference."""
    onnx = onnx_package()
    helper = onnx.helper
    input_shape = tuple(input_shape)
    if input_shape and input_shape[0] is None:
        input_shape = input_shape[1:]
    if not input_shape or not all(isinstance(d, (int, np.integer)) and d > 0 for d in input_shape):
        raise ValueError(f"export: input_shape must be one example's shape as positive ints, e.g. "
                         f"(3, 224, 224), got {input_shape!r}")
    if getattr(model, "arity", 1) != 1:
        raise ValueError(f"export: the model reads {model.arity} inputs; an export has one")
    leaves, outputs = model.wired_leaves([_INPUT])
    if not leaves:
        raise ValueError("export: the model has no layers (an ONNX graph needs at least one node)")
    writers = [_writer_for(layer) for _, layer, _ in leaves]
    for index, ((name, layer, _), write) in enumerate(zip(leaves, writers)):
        if write is None:
            raise ValueError(f"export: layer {index} {name!r} is a {layer.describe()}, which has no ONNX "
                             f"form here; supported: {', '.join(kind.__name__ for kind in WRITERS)}")
    shapes = _shapes(leaves, input_shape)
    graph = _Graph(leaves, outputs)
    for index, ((name, layer, reads), write) in enumerate(zip(leaves, writers)):
        graph.start(reads)
        try:
            write(graph, name, layer, shapes[reads[0]])
        except ValueError as error:              # what this layer cannot be written as, exactly
            raise ValueError(f"export: layer {index} {name!r} is a {layer.describe()} {error}") from None
        graph.finish(name)
    inputs = [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["N", *input_shape])]
    outputs = [helper.make_tensor_value_info(graph.tensor[value], onnx.TensorProto.FLOAT, None) for value in outputs]
    proto = helper.make_model(helper.make_graph(graph.nodes, "minigrad", inputs, outputs, graph.initializers),
                              producer_name="minigrad", opset_imports=[helper.make_opsetid("", OPSET)],
                              ir_version=IR_VERSION)
    proto = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))
    return proto


class _Graph:
    """The graph being written: its nodes and initializers, the ONNX tensor that holds each layer's
    output (tensor), and what the layer being written reads (reads, the first of them current).

    Classic dropout's 1 - p (minigrad.onnx's docstring) is folded into the weights of the Conv or Gemm
    that alone reads the Dropout's output (dropout_scales: that layer -> 1 - p), or written as a Mul
    after the Dropout where no such layer reads it."""

    def __init__(self, leaves, outputs):
        self.nodes, self.initializers, self.tensor = [], [], {_INPUT: "input"}
        self.current, self.reads, self.dropout_scales = "input", ["input"], {}
        self.readers = {}                            # value -> the layers that read it ("output" for the model's)
        for name, layer, reads in leaves:
            for read in reads:
                self.readers.setdefault(read, []).append(layer)
        for output in outputs:
            self.readers.setdefault(output, []).append("output")

    def start(self, reads):
        self.reads = [self.tensor[value] for value in reads]
        self.current = self.reads[0]

    def finish(self, name):
        self.tensor[name] = self.current

    def constant(self, name, array):
        numpy_helper = onnx_package().numpy_helper
        self.initializers.append(numpy_helper.from_array(np.array(backend.to_numpy(array), order="C"), name))
        return name

    def add(self, op, name, inputs=(), **attributes):
        """A node named `name` that takes the current tensor (and `inputs`), and becomes the current one."""
        self.node(op, [self.current, *inputs], [name if name != "input" else "input_"], name, **attributes)
        self.current = self.nodes[-1].output[0]

    def join(self, op, name, **attributes):
        """A node named `name` that takes every tensor the layer reads, and becomes the current one."""
        self.current = self.reads[0]
        self.add(op, name, self.reads[1:], **attributes)

    def node(self, op, inputs, outputs, name, **attributes):
        self.nodes.append(onnx_package().helper.make_node(op, inputs, outputs, name=name, **attributes))

    def scaled_weight(self, name, layer, parameter):
        """A Conv's or Gemm's weight as float32, times the 1 - p of a classic dropout before it."""
        scale = self.dropout_scales.pop(id(layer), 1)
        return self.constant(name, parameter.data.astype(np.float32) * np.float32(scale))


def _shapes(leaves, input_shape):
    """value -> its shape (batch first, the batch None), by the layers' output_shape()."""
    shapes = {_INPUT: (None, *input_shape)}
    for index, (name, layer, reads) in enumerate(leaves):
        try:
            shapes[name] = tuple(layer.output_shape(*(shapes[value] for value in reads)))
        except ValueError as error:
            raise ValueError(f"export: input_shape {input_shape} does not fit layer {index} {name!r}: "
                             f"{error}") from None
    return shapes


def _writer_for(layer):
    """The writer of `layer`'s type, or of a type it derives from; ReLU, Sigmoid, Tanh and Flatten by
    their exact type (a subclass may compute something else than the ONNX operator)."""
    if type(layer) in WRITERS:
        return WRITERS[type(layer)]
    return next((write for kind, write in WRITERS.items() if kind not in _EXACT_TYPES and isinstance(layer, kind)),
                None)


# --- the writers: write(graph, name, layer, input_shape) -----------------------------------------------
def _conv(graph, name, layer, _):
    (ph, pw), bias = layer.padding, layer.bias
    inputs = [graph.scaled_weight(f"{name}.weight", layer, layer.weight)]
    if bias is not None:
        inputs.append(graph.constant(f"{name}.bias", bias.data.astype(np.float32)))
    graph.add("Conv", name, inputs, kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
              pads=[ph, pw, ph, pw], group=layer.groups)


def _linear(graph, name, layer, _):
    inputs = [graph.scaled_weight(f"{name}.weight", layer, layer.weight)]
    if layer.bias is not None:
        inputs.append(graph.constant(f"{name}.bias", layer.bias.data.astype(np.float32)))
    graph.add("Gemm", name, inputs, transB=1)


def _max_pool(graph, name, layer, shape):
    graph.add("MaxPool", name, kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
              pads=_floor_mode_pads(layer, shape[2:]))


def _average_pool(graph, name, layer, shape):
    pads, ceil_mode = list(layer.pads), layer.ceil_mode
    counts_pads = layer.count_include_pad and any(layer.pads)
    if not counts_pads:                       # no padding counted: ceil_mode as MaxPool writes it
        pads, ceil_mode = _floor_mode_pads(layer, shape[2:]), False
    elif ceil_mode:                            # counted: only ceil_mode itself says where it stops
        _check_ceil_mode_output(layer, shape[2:])
    graph.add("AveragePool", name, kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
              pads=pads, ceil_mode=int(ceil_mode), count_include_pad=int(counts_pads))


def _floor_mode_pads(pool, spatial):
    """ONNX pads that give `pool`'s windows over an (H, W) input in floor mode.

    With ceil_mode the trailing pad grows until floor mode reaches the last window; that pad stays below
    the window (the window starts inside the input or the leading padding), and padded cells never win."""
    top, left, bottom, right = pool.pads
    _, _, ((_, reach_bottom), (_, reach_right)) = ops.pool_padding(
        (1, 1, *spatial), pool.kernel_size, pool.stride, pool.pads, pool.ceil_mode)
    return [top, left, max(bottom, reach_bottom), max(right, reach_right)]


def _check_ceil_mode_output(pool, spatial):
    """Refuses a pool whose output in ceil_mode onnx's shape inference would size otherwise: it keeps a
    last window that starts in the trailing padding, which ONNX Runtime and minigrad drop."""
    _, out = ops.pool_geometry((1, 1, *spatial), pool.kernel_size, pool.stride, pool.pads, True)
    top, left, bottom, right = pool.pads
    kept = tuple(-(-(size + begin + end - k) // s) + 1 for size, begin, end, k, s in zip(
        spatial, (top, left), (bottom, right), pool.kernel_size, pool.stride))
    if kept != out:
        raise ValueError(f"whose last window over a {tuple(spatial)} input starts past the input and its leading "
                         f"padding: minigrad and ONNX Runtime drop it, onnx's shape inference does not ({out} "
                         f"against {kept}); with count_include_pad=False it exports exactly")


def _zero_pad(graph, name, layer, _):
    widths = layer._widths()
    pads = [before for before, _ in widths] + [after for _, after in widths]
    graph.add("Pad", name, [graph.constant(f"{name}.pads", np.array(pads, np.int64))])


def _lrn(graph, name, layer, _):
    lrn = dict(size=layer.size, alpha=_lrn_alpha_attribute(layer.alpha, layer.size), beta=layer.beta, bias=layer.k)
    if layer.groups == 1:
        graph.add("LRN", name, **lrn)
        return
    # ONNX's LRN has no groups: Split, one LRN per group, Concat (read back as one layer: patterns.py)
    parts = [f"{name}.group{g}" for g in range(layer.groups)]
    graph.node("Split", [graph.current], parts, f"{name}.split", axis=1)
    for part in parts:
        graph.node("LRN", [part], [f"{part}.lrn"], f"{part}.lrn", **lrn)
    graph.current = f"{parts[0]}.lrn"
    graph.add("Concat", name, [f"{part}.lrn" for part in parts[1:]], axis=1)


def _lrn_alpha_attribute(alpha, size):
    """ONNX's alpha = minigrad's alpha * size, as the float32 whose float32 quotient by size (what ONNX
    Runtime and load compute) is minigrad's alpha again, where one within a few ulps exists."""
    target, candidate = np.float32(alpha), np.float32(alpha * size)
    for step in (0, 1, -1, 2, -2, 3, -3):
        nearby = candidate
        for _ in range(abs(step)):
            nearby = np.nextafter(nearby, np.float32(np.inf if step > 0 else -np.inf))
        if nearby / np.float32(size) == target:
            return float(nearby)
    return float(candidate)


def _dropout(graph, name, layer, _):
    graph.add("Dropout", name, [graph.constant(f"{name}.ratio", np.float32(layer.p))])
    if layer.mode != "classic":
        return
    readers = graph.readers[name]
    if len(readers) == 1 and isinstance(readers[0], (L.Conv2d, L.Linear)):
        graph.dropout_scales[id(readers[0])] = 1 - layer.p
    else:
        graph.add("Mul", f"{name}.dropout_scale", [graph.constant(f"{name}.dropout_factor", np.float32(1 - layer.p))])


def _batch_norm(graph, name, layer, _):
    inputs = [graph.constant(f"{name}.{what}", backend.to_numpy(value).astype(np.float32)) for what, value in [
        ("weight", layer.weight.data), ("bias", layer.bias.data),
        ("running_mean", layer.running_mean), ("running_var", layer.running_var)]]
    graph.add("BatchNormalization", name, inputs, epsilon=float(layer.eps), momentum=1 - float(layer.momentum))


def _leaky_relu(graph, name, layer, _):
    graph.add("LeakyRelu", name, alpha=float(layer.negative_slope))


def _softmax(graph, name, layer, _):
    graph.add("Softmax", name, axis=layer.axis)


def _transpose(graph, name, layer, _):
    graph.add("Transpose", name, perm=list(layer.axes))


def _add(graph, name, layer, _):
    graph.join("Add" if len(graph.reads) == 2 else "Sum", name)


def _multiply(graph, name, layer, _):
    """Mul takes two tensors: a product of more is a chain of them."""
    products = graph.reads[1:]
    for k, other in enumerate(products, 1):
        graph.add("Mul", name if k == len(products) else f"{name}.product{k}", [other])


def _concat(graph, name, layer, _):
    graph.join("Concat", name, axis=layer.axis)


def _slice(graph, name, layer, _):
    bounds = [graph.constant(f"{name}.{what}", np.array([value], np.int64))
              for what, value in (("starts", layer.start), ("ends", layer.stop), ("axes", layer.axis))]
    graph.add("Slice", name, bounds)


def _channel_shuffle(graph, name, layer, shape):
    """ShuffleNet's channel shuffle as its authors write it (load reads it back as one layer):
    Reshape to (N, g, C/g, H, W), Transpose of the two channel axes, Reshape back (0: the batch)."""
    _, channels, height, width = shape
    grouped = np.array([0, layer.groups, channels // layer.groups, height, width], np.int64)
    graph.add("Reshape", f"{name}.grouped", [graph.constant(f"{name}.grouped_shape", grouped)])
    graph.add("Transpose", f"{name}.swapped", perm=[0, 2, 1, 3, 4])
    graph.add("Reshape", name, [graph.constant(f"{name}.shape", np.array([0, channels, height, width], np.int64))])


def _broadcast(op):
    """The writer of a Scale (Mul) or a Bias (Add): the operator by the layer's weight."""
    def write(graph, name, layer, _):
        graph.add(op, name, [graph.constant(f"{name}.weight", layer.weight.data.astype(np.float32))])
    return write


def _clip(graph, name, layer, _):
    bounds = ["" if bound is None else graph.constant(f"{name}.{what}", np.float32(bound))
              for what, bound in (("min", layer.low), ("max", layer.high))]
    while bounds and not bounds[-1]:
        bounds.pop()
    graph.add("Clip", name, bounds)


def _operator(op):
    """The writer of a layer that is exactly the ONNX operator `op`, without attributes."""
    def write(graph, name, layer, _):
        graph.add(op, name)
    return write


WRITERS = {
    L.Conv2d: _conv, L.Linear: _linear, L.MaxPool2d: _max_pool, L.AvgPool2d: _average_pool,
    L.GlobalAvgPool2d: _operator("GlobalAveragePool"), L.ZeroPad2d: _zero_pad, L.LocalResponseNorm: _lrn,
    L.Dropout: _dropout, L.BatchNorm1d: _batch_norm, L.BatchNorm2d: _batch_norm, L.ReLU: _operator("Relu"),
    L.LeakyReLU: _leaky_relu, L.Sigmoid: _operator("Sigmoid"), L.Tanh: _operator("Tanh"), L.Softmax: _softmax,
    L.Flatten: _operator("Flatten"), L.Transpose: _transpose, L.Add: _add, L.Multiply: _multiply,
    L.Concat: _concat, L.Slice: _slice, L.Identity: _operator("Identity"), L.ChannelShuffle: _channel_shuffle,
    L.Scale: _broadcast("Mul"), L.Bias: _broadcast("Add"), L.Clip: _clip,
}
_EXACT_TYPES = (L.ReLU, L.Sigmoid, L.Tanh, L.Flatten, L.Identity)
