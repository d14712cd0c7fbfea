"""What converters and constant evaluation read from a node besides its attributes' values: weights
that must be float32 constants, pairs of sizes, the padding auto_pad stands for, Squeeze's axes."""
import numpy as np


def float_weights(node, arrays, what):
    """Each array (a node's constant inputs, named by `what`) a float32 constant."""
    for array, name in zip(arrays, what):
        if array is None:
            raise node.error(f"its {name} must be an initializer or a constant, not computed by the graph")
        if array.dtype != np.float32:
            raise node.error(f"its {name} is {array.dtype}; only float32 models are supported")


LARGEST_SIZE = 2**31 - 1       # a window or a stride of more cells than that fits in no memory (nor int32)


def pair(node, values, what, default):
    """(h, w) from an attribute of two sizes (kernel_shape, strides), or from `default`."""
    values = default if values is None else list(values)
    if values is None:
        raise node.error(f"needs the attribute {what}")
    if len(values) != 2:
        raise node.error(f"{what} {values} has {len(values)} values; only 2-D (N, C, H, W) is supported")
    if not all(1 <= v <= LARGEST_SIZE for v in values):
        raise node.error(f"{what} {list(values)}: expected values from 1 to 2**31 - 1")
    return tuple(int(v) for v in values)


def check_no_dilation(node, attributes):
    dilations = attributes["dilations"]
    if dilations is not None and any(d != 1 for d in dilations):
        raise node.error(f"dilations {list(dilations)} not supported, only 1")


def padding(node, attributes, network, kernel, strides):
    """(top, left, bottom, right) from pads, or from auto_pad: VALID none, SAME_UPPER and SAME_LOWER the
    padding that gives ceil(size / stride) outputs, its odd cell at the end (UPPER) or the start."""
    auto_pad = attributes["auto_pad"]
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad == "NOTSET":
        pads = [0, 0, 0, 0] if attributes["pads"] is None else [int(p) for p in attributes["pads"]]
        if len(pads) != 4 or min(pads) < 0:
            raise node.error(f"pads {pads}: expected 4 values >= 0 (top, left, bottom, right) for 2-D maps")
        return pads
    if auto_pad == "VALID":
        return [0, 0, 0, 0]
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise node.error(f"auto_pad {auto_pad!r} not supported: NOTSET (explicit pads), VALID, SAME_UPPER or "
                         f"SAME_LOWER")
    shape = network.shape()
    if shape is None or len(shape) != 4 or None in shape[2:]:
        raise node.error(f"auto_pad {auto_pad} needs the input's height and width, which the graph does not "
                         f"fix (input shape {shape})")
    totals = [max(0, (-(-size // s) - 1) * s + k - size) for size, k, s in zip(shape[2:], kernel, strides)]
    ends = [t - t // 2 if auto_pad == "SAME_UPPER" else t // 2 for t in totals]
    return [t - e for t, e in zip(totals, ends)] + ends


def squeeze_axes(node, given):
    """Unsqueeze's and Squeeze's axes: an attribute up to opset 12, an input from 13."""
    attribute = node.take({"axes": None})["axes"]
    return attribute if given is None else integers(node, given, "axes")


def integers(node, value, what):
    """A constant of integers (axes, pads, sizes) as a list of ints."""
    array = np.asarray(value)
    if array.dtype.kind not in "iu":
        raise node.error(f"its {what} must be integers, got {array.dtype} values {array.reshape(-1)[:8]}")
    return [int(v) for v in array.reshape(-1)]


def scalar(node, value, what):
    """A constant that must be one number (Pad's value, Dropout's ratio) as a float."""
    array = np.asarray(value)
    if array.size != 1 or array.dtype.kind not in "biuf":
        raise node.error(f"its {what} must be one number, got {array.dtype} values of shape {array.shape}")
    return float(array.reshape(-1)[0])
