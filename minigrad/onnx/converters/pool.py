"""MaxPool, AveragePool, GlobalAveragePool, and ReduceMean over H and W (a global average pool)."""
from ... import layers as L
from ... import ops
from ..arguments import check_no_dilation, integers, pair, padding
from .registry import converter


@converter("MaxPool")
def max_pool(network, node, args):
    if len(node.proto.output) > 1 and node.proto.output[1]:
        raise node.error("its Indices output is not supported")
    # (storage_order is the layout of the Indices, which are not supported)
    _pool(network, node, lambda *geometry_and_attributes: L.MaxPool2d(*geometry_and_attributes[:4]), storage_order=0)


@converter("AveragePool")
def average_pool(network, node, args):
    _pool(network, node, lambda kernel, strides, pads, ceil_mode, a: L.AvgPool2d(
        kernel, strides, pads, ceil_mode, count_include_pad=bool(a["count_include_pad"])), count_include_pad=0)


def _pool(network, node, make_layer, **more):
    """make_layer(kernel, strides, pads, ceil_mode, attributes): a MaxPool2d or AvgPool2d with the
    node's window, strides, pads and ceil_mode; `more` are the attributes (and their defaults) it may
    also read."""
    a = node.take({"kernel_shape": None, "strides": None, "pads": None, "dilations": None, "ceil_mode": 0,
                   "auto_pad": "NOTSET", **more})
    check_no_dilation(node, a)
    kernel = pair(node, a["kernel_shape"], "kernel_shape", None)
    strides = pair(node, a["strides"], "strides", [1, 1])
    pads = _unreached_pads_cut(padding(node, a, network, kernel, strides), network.shape(), kernel, strides,
                               bool(a["ceil_mode"]))
    network.append(node, make_layer(kernel, strides, tuple(pads), bool(a["ceil_mode"]), a))


def _unreached_pads_cut(pads, shape, kernel, strides, ceil_mode):
    """Trailing pads as large as the window cut to what the last window reaches, where the input's size
    is known (the output stays the same): exporters imitating ceil_mode before opset 10 write trailing
    pads as large as the window, which no window reaches in full, but which the layers refuse (a window
    of padding alone could have no value)."""
    if shape is None or len(shape) != 4 or None in shape[2:]:
        return pads
    top, left, bottom, right = pads
    _, _, ((_, reach_bottom), (_, reach_right)) = ops.pool_padding(shape, kernel, strides, pads, ceil_mode)
    return [top, left, *(min(end, reach) if end >= k else end
                         for end, reach, k in zip((bottom, right), (reach_bottom, reach_right), kernel))]


@converter("GlobalAveragePool")
def global_average_pool(network, node, args):
    node.take({})
    network.append(node, L.GlobalAvgPool2d())


@converter("ReduceMean", note="over H and W")
def reduce_mean(network, node, args):
    """The mean over H and W (a global average pool, as x.mean((2, 3)) exports), with keepdims=0 the
    (N, C) it leaves; the axes an attribute up to opset 17, an input from 18."""
    a = node.take({"axes": None, "keepdims": 1, "noop_with_empty_axes": 0})
    axes = a["axes"] if a["axes"] is not None else args[0] if args else None
    axes = None if axes is None else integers(node, axes, "axes")
    shape = network.shape()
    rank = len(shape) if shape is not None else 4
    if axes is None or sorted(axis % rank for axis in axes) != [2, 3] or rank != 4:
        raise node.error(f"ReduceMean over axes {axes} of a rank-{rank} input: only the mean over H and W of "
                         f"(N, C, H, W) (a global average pool) is supported")
    network.append(node, L.GlobalAvgPool2d())
    if not a["keepdims"]:
        network.append(node, L.Flatten())
