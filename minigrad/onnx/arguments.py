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


def pair(node, values, what, default):
    """(h, w) from an attribute of two values (kernel_shape, strides), or from `default`."""
    values = default if values is None else list(values)
    if values is None:
        raise node.error(f"needs the attribute {what}")
    if len(values) != 2:
        raise node.error(f"{what} {values} has {len(values)} values; only 2-D (N, C, H, W) is supported")
    return tuple(int(v) for v in values)


def check_no_dilation(node, attributes):
    dilations = attributes["dilations"]
    if dilations is not None and any(d != 1 for d in dilations):
        raise node.error(f"dilations {list(dilations)} not supported, only 1")


def padding(node, attributes, chain, kernel, strides):
    """(top, left, bottom, right) from pads, or from auto_pad: VALID none, SAME_UPPER and SAME_LOWER the
    padding that gives ceil(size / stride) outputs, its odd cell at the end (UPPER) or the start."""
    auto_pad = attributes["auto_pad"]
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad == "NOTSET":
        return [0, 0, 0, 0] if attributes["pads"] is None else [int(p) for p in attributes["pads"]]
    if auto_pad == "VALID":
        return [0, 0, 0, 0]
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise node.error(f"auto_pad {auto_pad!r} not supported: NOTSET (explicit pads), VALID, SAME_UPPER or "
                         f"SAME_LOWER")
    shape = chain.shape()
    if shape is None or len(shape) != 4 or None in shape[2:]:
        raise node.error(f"auto_pad {auto_pad} needs the input's height and width, which the graph does not "
                         f"fix (input shape {shape})")
    totals = [max(0, (-(-size // s) - 1) * s + k - size) for size, k, s in zip(shape[2:], kernel, strides)]
    ends = [t - t // 2 if auto_pad == "SAME_UPPER" else t // 2 for t in totals]
    return [t - e for t, e in zip(totals, ends)] + ends


def squeeze_axes(node, given):
    """Unsqueeze's and Squeeze's axes: an attribute up to opset 12, an input from 13."""
    attribute = node.take({"axes": None})["axes"]
    return attribute if given is None else [int(v) for v in np.asarray(given).reshape(-1)]
