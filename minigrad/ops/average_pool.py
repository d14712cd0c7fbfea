"""Average pooling: the mean of each kh x kw window, on NumPy and CuPy arrays alike.

AlexNet pools by the maximum (section 3.4); average pooling comes in with models read from ONNX (a
global average before the classifier, torchvision's adaptive pooling exported as AveragePool). It is
not on AlexNet's hot path, so it is written once for both array modules, as a strided view of the
windows summed (forward) and kh * kw strided slices added up (backward), not as kernels.

Padding (top, left, bottom, right) and ceil_mode follow max pooling (ops/geometry.py). What a
window is divided by, PyTorch's and ONNX Runtime's rule:
- count_include_pad: the cells it covers in the input and its declared padding; cells beyond the
  padding, which only the last window of ceil_mode reaches, are not counted;
- otherwise: the cells it covers in the input alone.
"""
import numpy as np

from ..backend import array_module
from .cpu import _padded, _windows
from .geometry import pool_padding


def _window_sizes(length, kernel, stride, out, pad_begin, pad_end, count_include_pad):
    """Along one axis: how many counted cells each of the `out` windows covers."""
    counted = np.zeros(pad_begin + length + max(pad_end, (out - 1) * stride + kernel - length - pad_begin))
    counted[:pad_begin + length + pad_end] = 1 if count_include_pad else 0
    counted[pad_begin:pad_begin + length] = 1
    return np.array([counted[o * stride:o * stride + kernel].sum() for o in range(out)])


def _divisors(x_shape, kernel_size, stride, padding, ceil_mode, count_include_pad, dtype):
    """(OH, OW) array of what each window's sum is divided by, and the pooling's geometry."""
    (top, left), (OH, OW), fitting = pool_padding(x_shape, kernel_size, stride, padding, ceil_mode)
    _, _, bottom, right = padding if len(padding) == 4 else padding * 2
    rows = _window_sizes(x_shape[2], kernel_size[0], stride[0], OH, top, bottom, count_include_pad)
    columns = _window_sizes(x_shape[3], kernel_size[1], stride[1], OW, left, right, count_include_pad)
    return np.outer(rows, columns).astype(dtype), (OH, OW), fitting


def forward(x, kernel_size, stride, padding, ceil_mode=False, count_include_pad=True):
    """(N, C, OH, OW) means of the windows of x (N, C, H, W)."""
    divisors, out_hw, fitting = _divisors(x.shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                          x.dtype)
    windows = _windows(_padded(x, fitting), kernel_size, stride, out_hw, (0, 1, 2, 3, 4, 5))
    return windows.sum(axis=(4, 5)) / array_module(x).asarray(divisors)


def backward(dy, x_shape, kernel_size, stride, padding, ceil_mode=False, count_include_pad=True):
    """d loss / d x: each window hands every cell it covers an equal share of its gradient."""
    N, C, H, W = x_shape
    (kh, kw), (sh, sw) = kernel_size, stride
    divisors, (OH, OW), ((top, bottom), (left, right)) = _divisors(
        x_shape, kernel_size, stride, padding, ceil_mode, count_include_pad, dy.dtype)
    xp = array_module(dy)
    share = dy / xp.asarray(divisors)
    dx_padded = xp.zeros((N, C, H + top + bottom, W + left + right), dtype=dy.dtype)
    for i in range(kh):
        for j in range(kw):
            dx_padded[:, :, i:i + sh * OH:sh, j:j + sw * OW:sw] += share
    return dx_padded[:, :, top:top + H, left:left + W]
