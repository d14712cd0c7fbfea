"""Pad with zeros around the maps: a ZeroPad2d."""
import numpy as np

from ... import layers as L
from ..arguments import integers, scalar
from .registry import converter


@converter("Pad", note="zeros around the maps")
def zero_pad(network, node, args):
    """Zeros around the maps (H and W): a ZeroPad2d, or nothing when every pad is 0. The pads and value
    are attributes up to opset 10, inputs from 11 (and the axes they apply to from 18)."""
    a = node.take({"mode": "constant", "pads": None, "value": 0.0})
    mode = a["mode"].decode() if isinstance(a["mode"], bytes) else a["mode"]
    given = [name for name in node.proto.input[1:]]
    if any(name and value is None for name, value in zip(given, args)):
        raise node.error("its pads, value and axes must be constants")
    pads = a["pads"] if a["pads"] is not None else args[0] if args else None
    value = scalar(node, args[1], "value") if len(args) > 1 and args[1] is not None else float(a["value"])
    pads = integers(node, pads, "pads") if pads is not None else []
    if len(args) > 2 and args[2] is not None:            # pads of the listed axes only
        given = integers(node, args[2], "axes")
        axes, full = [axis % 4 for axis in given], [0] * 8
        if len(pads) != 2 * len(axes):
            raise node.error(f"pads {pads} for axes {given}: expected two per axis")
        for i, axis in enumerate(axes):
            full[axis], full[axis + 4] = pads[i], pads[i + len(axes)]
        pads = full
    padded = {axis for axis in range(4) if len(pads) == 8 and (pads[axis] or pads[axis + 4])}
    axes = (2, 3) if padded <= {2, 3} else (1, 2) if padded <= {1, 2} else None
    if mode != "constant" or value != 0 or len(pads) != 8 or axes is None or min(pads) < 0:
        raise node.error(f"mode {mode!r}, value {value}, pads {pads}: only zeros added around the maps of "
                         f"(N, C, H, W) or (N, H, W, C) (mode 'constant', value 0, pads >= 0 on H and W) are "
                         f"supported")
    if padded:
        _check_padded_size(network, node, pads, axes)
        network.append(node, L.ZeroPad2d((pads[axes[0]], pads[axes[1]], pads[axes[0] + 4], pads[axes[1] + 4]), axes))


def _check_padded_size(network, node, pads, axes):
    """One example's padded maps must fit in load's budget (budget.py), their free sizes counted as 0:
    a few bytes of pads could otherwise ask for terabytes at the first forward."""
    shape = network.shape() or [None] * 4
    example = [(size if size is not None else 0 if axis in axes else 1) + pads[axis] + pads[axis + 4]
               for axis, size in enumerate(shape[:4]) if axis > 0]
    network.budget.check(node, "its output for one example", example, np.float32)
