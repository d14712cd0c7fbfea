"""Max pooling, overlapping when the stride is smaller than the window (section 3.4)."""
import numpy as np

from .. import ops
from .base import Layer, pair


class MaxPool2d(Layer):
    """Max over kh x kw windows moved by `stride` (default: the window, i.e. no overlap).

    AlexNet pools 3x3 windows with stride 2, so neighbouring windows share a row or column. Backward
    sends each window's gradient to exactly one input, its first maximum in row-major order, so the
    gradient is conserved even when values tie (as they do after a ReLU).

    padding: an int, (ph, pw), or (top, left, bottom, right) as ONNX graphs give it; padded cells never
    win the max. Output sizes round down; ceil_mode=True rounds them up, as Caffe does (its bvlc_alexnet
    imitated in ONNX by the asymmetric pads (0, 0, 1, 1) on pool5), dropping a window that would start
    in the trailing padding.
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        self.kernel_size = pair(kernel_size, "kernel_size", "MaxPool2d")
        self.stride = self.kernel_size if stride is None else pair(stride, "stride", "MaxPool2d")
        self.padding = _padding(padding)
        self.ceil_mode = bool(ceil_mode)
        self.pads = self.padding * 2 if len(self.padding) == 2 else self.padding   # (top, left, bottom, right)
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.pads) < 0:
            raise ValueError(f"{self.describe()}: expected kernel_size >= 1, stride >= 1, padding >= 0")
        if any(p >= k for p, k in zip(self.pads, self.kernel_size * 2)):   # else a window could be all padding
            raise ValueError(f"{self.describe()}: padding must be smaller than the window, "
                             f"got padding {self.padding} for window {self.kernel_size}")
        self.argmax = self.x_shape = None

    def describe(self):
        ceil = ", ceil_mode=True" if self.ceil_mode else ""
        return (f"MaxPool2d(kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}{ceil})")

    def forward(self, x):
        self.check_input(x, 4, "(N, C, H, W)")
        top, left, bottom, right = self.pads
        padded = (x.shape[2] + top + bottom, x.shape[3] + left + right)
        if any(p < k for p, k in zip(padded, self.kernel_size)):
            raise ValueError(f"{self.describe()}: window {self.kernel_size} is larger than the padded "
                             f"input {padded} (input shape {tuple(x.shape)})")
        y, self.argmax = ops.maxpool_forward(x, self.kernel_size, self.stride, self.pads, self.ceil_mode)
        self.x_shape = x.shape
        return y

    def backward(self, dy):
        argmax, x_shape = self.saved(self.argmax, self.x_shape)
        self.check_grad(dy, argmax.shape)
        return ops.maxpool_backward(dy, argmax, x_shape, self.kernel_size, self.stride, self.pads, self.ceil_mode)


def _padding(value):
    """An int, (ph, pw) or (top, left, bottom, right) -> (ph, pw) when symmetric, else the four values."""
    if isinstance(value, (tuple, list)) and len(value) == 4 and all(
            isinstance(v, (int, np.integer)) for v in value):
        top, left, bottom, right = (int(v) for v in value)
        return (top, left) if (top, left) == (bottom, right) else (top, left, bottom, right)
    try:
        return pair(value, "padding", "MaxPool2d")
    except ValueError:
        raise ValueError(f"MaxPool2d: padding must be an int, (ph, pw) or (top, left, bottom, right), "
                         f"got {value!r}") from None
