"""Conv: a Conv2d, after a ZeroPad2d where the pads are asymmetric."""
from ... import layers as L
from ..arguments import check_no_dilation, float_weights, pair, padding
from .registry import converter


@converter("Conv")
def conv(network, node, args):
    a = node.take({"kernel_shape": None, "strides": None, "pads": None, "dilations": None, "group": 1,
                   "auto_pad": "NOTSET"})
    check_no_dilation(node, a)
    if not args:
        raise node.error("needs a weight input")
    float_weights(node, args, ["weight", "bias"][:len(args)])
    weight, bias = args[0], (args[1] if len(args) > 1 else None)
    if weight.ndim != 4:
        raise node.error(f"weight of shape {weight.shape}; only 2-D convolutions are supported")
    kernel = pair(node, a["kernel_shape"], "kernel_shape", weight.shape[2:])
    if kernel != weight.shape[2:]:
        raise node.error(f"kernel_shape {kernel} does not match the weight's {weight.shape[2:]}")
    strides = pair(node, a["strides"], "strides", [1, 1])
    top, left, bottom, right = pads = padding(node, a, network, kernel, strides)
    if any(p >= k for p, k in zip(pads, kernel * 2)):
        raise node.error(f"pads {pads} for a kernel of {kernel}: only pads smaller than the kernel are supported "
                         f"(a window that reaches no further than the padding sees none of the input)")
    symmetric = (min(top, bottom), min(left, right))
    if (top, left) != (bottom, right):   # (TensorFlow's SAME at stride 2): the odd cells as a ZeroPad2d first
        network.append(node, L.ZeroPad2d((top - symmetric[0], left - symmetric[1], bottom - symmetric[0],
                                        right - symmetric[1])))
    group = int(a["group"])
    layer = L.Conv2d(weight.shape[1] * group, weight.shape[0], kernel, strides, symmetric, groups=group,
                     bias=bias is not None)
    layer.weight.data[...] = weight
    if bias is not None:
        layer.bias.data[...] = bias
    network.append(node, layer, node.proto.input[1:])
