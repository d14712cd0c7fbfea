"""Pooling: max over windows, overlapping when the stride is smaller than the window (section 3.4),
and the average over windows or over the whole map, which models read from ONNX use."""
import numpy as np

from .. import ops
from ..ops import average_pool
from .base import Layer, pair


class _Pool2d(Layer):
    """What max and average pooling share: the window, the stride, the padding and its checks."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        name = type(self).__name__
        self.kernel_size = pair(kernel_size, "kernel_size", name)
        self.stride = self.kernel_size if stride is None else pair(stride, "stride", name)
        self.padding = _padding(padding, name)
        self.ceil_mode = bool(ceil_mode)
        self.pads = self.padding * 2 if len(self.padding) == 2 else self.padding   # (top, left, bottom, right)
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.pads) < 0:
            raise ValueError(f"{self.describe()}: expected kernel_size >= 1, stride >= 1, padding >= 0")
        if any(p >= k for p, k in zip(self.pads, self.kernel_size * 2)):   # else a window could be all padding
            raise ValueError(f"{self.describe()}: padding must be smaller than the window, "
                             f"got padding {self.padding} for window {self.kernel_size}")
        self.x_shape = None

    def describe(self):
        ceil = ", ceil_mode=True" if self.ceil_mode else ""
        return (f"{type(self).__name__}(kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}{ceil}{self._more()})")

    def _more(self):
        return ""

    def output_shape(self, input_shape):
        N, C, H, W = self.check_shape(input_shape, 4, "(N, C, H, W)")
        top, left, bottom, right = self.pads
        padded = (None if H is None else H + top + bottom, None if W is None else W + left + right)
        if any(p is not None and p < k for p, k in zip(padded, self.kernel_size)):
            raise ValueError(f"{self.describe()}: window {self.kernel_size} is larger than the padded "
                             f"input {padded} (input shape {tuple(input_shape)})")
        _, out_hw = ops.pool_geometry(input_shape, self.kernel_size, self.stride, self.pads, self.ceil_mode)
        return (N, C, *out_hw)

    def check_fits(self, x):
        self.check_input(x, 4, "(N, C, H, W)")
        self.output_shape(x.shape)


class MaxPool2d(_Pool2d):
    """Max over kh x kw windows moved by `stride` (default: the window, i.e. no overlap).

    AlexNet pools 3x3 windows with stride 2, so neighbouring windows share a row or column. Backward
    sends each window's gradient to exactly one input, its first maximum in row-major order, so the
    gradient is conserved even when values tie (as they do after a ReLU). A window holding NaN gives
    NaN, as PyTorch's and NumPy's max do (a diverging run must not hide it), and its gradient goes to
    the window's last NaN, where PyTorch sends it.

    padding: an int, (ph, pw), or (top, left, bottom, right) as ONNX graphs give it; padded cells never
    win the max. Output sizes round down; ceil_mode=True rounds them up, as Caffe does (its bvlc_alexnet
    imitated in ONNX by the asymmetric pads (0, 0, 1, 1) on pool5), dropping a window that would start
    in the trailing padding.

    A forward in eval mode finds the maxima alone, which takes half the time, and keeps its input; the
    positions (`argmax`) are found from it when first asked for, by a backward (saliency maps, the
    deconvnet) or by the reader.
    """
    SAVED = ("_argmax", "_x")

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self._argmax = self._x = None        # argmax, or the input to find it from (eval mode)

    @property
    def argmax(self):
        """(N, C, OH, OW) int32: the window-local index i*kw + j of each window's maximum (its first in
        row-major order; its last NaN where it holds NaN), None before a forward."""
        if self._argmax is None and self._x is not None:
            _, self._argmax = ops.maxpool_forward(self._x, self.kernel_size, self.stride, self.pads, self.ceil_mode)
            self._x = None
        return self._argmax

    def forward(self, x):
        self.check_fits(x)
        if self.training:
            y, self._argmax = ops.maxpool_forward(x, self.kernel_size, self.stride, self.pads, self.ceil_mode)
            self._x = None
        else:
            y, self._argmax, self._x = ops.maxpool_values(x, self.kernel_size, self.stride, self.pads, self.ceil_mode), None, x
        self.x_shape = x.shape
        return y

    def backward(self, dy):
        argmax, x_shape = self.saved(self.argmax, self.x_shape)
        self.check_grad(dy, argmax.shape)
        return ops.maxpool_backward(dy, argmax, x_shape, self.kernel_size, self.stride, self.pads, self.ceil_mode)


class AvgPool2d(_Pool2d):
    """Mean over kh x kw windows moved by `stride` (default: the window), PyTorch's nn.AvgPool2d and
    ONNX's AveragePool. padding and ceil_mode as MaxPool2d's. count_include_pad=True (PyTorch's
    default; ONNX's is 0) divides by the window's cells in the input and its padding, False by those in
    the input alone (ops/average_pool.py). Backward spreads each window's gradient evenly over them."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        self.count_include_pad = bool(count_include_pad)          # (first: describe() names it)
        super().__init__(kernel_size, stride, padding, ceil_mode)

    def _more(self):
        return "" if self.count_include_pad else ", count_include_pad=False"

    def forward(self, x):
        self.check_fits(x)
        self.x_shape = x.shape
        return average_pool.forward(x, self.kernel_size, self.stride, self.pads, self.ceil_mode,
                                    self.count_include_pad)

    def backward(self, dy):
        x_shape = self.saved(self.x_shape)
        self.check_grad(dy, self.output_shape(x_shape))
        return average_pool.backward(dy, x_shape, self.kernel_size, self.stride, self.pads, self.ceil_mode,
                                     self.count_include_pad)


class GlobalAvgPool2d(Layer):
    """(N, C, H, W) -> (N, C, 1, 1), the mean of each map whatever its size: ONNX's GlobalAveragePool,
    PyTorch's AdaptiveAvgPool2d(1), the last pooling of most networks after AlexNet."""

    def __init__(self):
        self.x_shape = None

    def output_shape(self, input_shape):
        N, C, _, _ = self.check_shape(input_shape, 4, "(N, C, H, W)")
        return (N, C, 1, 1)

    def forward(self, x):
        self.check_input(x, 4, "(N, C, H, W)")
        self.x_shape = x.shape
        return x.mean(axis=(2, 3), keepdims=True)

    def backward(self, dy):
        x_shape = self.saved(self.x_shape)
        self.check_grad(dy, (*x_shape[:2], 1, 1))
        return dy.repeat(x_shape[2], axis=2).repeat(x_shape[3], axis=3) / (x_shape[2] * x_shape[3])


def _padding(value, layer):
    """An int, (ph, pw) or (top, left, bottom, right) -> (ph, pw) when symmetric, else the four values."""
    if isinstance(value, (tuple, list)) and len(value) == 4 and all(
            isinstance(v, (int, np.integer)) for v in value):
        top, left, bottom, right = (int(v) for v in value)
        return (top, left) if (top, left) == (bottom, right) else (top, left, bottom, right)
    try:
        return pair(value, "padding", layer)
    except ValueError:
        raise ValueError(f"{layer}: padding must be an int, (ph, pw) or (top, left, bottom, right), "
                         f"got {value!r}") from None
