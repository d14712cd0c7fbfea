"""What a graph may make load compute. A few bytes of ONNX can ask for gigabytes (a ConstantOfShape of
2**31 values is 103 bytes; pads of a million around each map ask for terabytes at the first forward), so
load counts the arrays it makes from the graph and refuses, naming the node and the size, any that would
take it past max_bytes (load's argument; MAX_BYTES unless given)."""
import math

import numpy as np

MAX_BYTES = 2**30       # 1 GiB: bvlc_alexnet's weights, which light_bvlc_alexnet computes, are 244 MB


class Budget:
    """The bytes load may still make: max_bytes, less what it has made (spent)."""

    def __init__(self, max_bytes):
        if not isinstance(max_bytes, (int, np.integer)) or max_bytes < 0:
            raise ValueError(f"onnx.load: max_bytes must be an int >= 0, got {max_bytes!r}")
        self.max_bytes, self.spent = int(max_bytes), 0

    def check(self, node, what, shape, dtype):
        """Before `node` makes an array of `shape` and `dtype` (`what`, for the message): refuse it where
        it does not fit in what is left."""
        refusal = self.refusal(what, shape, dtype)
        if refusal:
            raise node.error(refusal)

    def refusal(self, what, shape, dtype):
        """Why an array of `shape` and `dtype` does not fit in what is left, or None where it does."""
        size = math.prod(int(d) for d in shape) * np.dtype(dtype).itemsize
        if size > self.max_bytes - self.spent:
            return (f"{what} of shape {tuple(int(d) for d in shape)} and type {np.dtype(dtype)} takes "
                    f"{_readable(size)}, more than load makes from a graph (max_bytes={self.max_bytes}, "
                    f"{_readable(self.max_bytes)}, of which {_readable(self.spent)} made already)")
        return None

    def spend(self, array):
        self.spent += array.nbytes


def _readable(size):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.3g} {unit}" if unit != "B" else f"{size} B"
        size /= 1024
