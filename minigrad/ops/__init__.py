"""The hot primitives, dispatched on the array that comes in: ops.cpu for NumPy, ops.gpu for CuPy."""
import importlib

from ..backend import is_gpu_array
from . import cpu
from .cpu import output_size, pool_geometry
from .cpu_runtime import parallel_map


def _impl(x):
    return importlib.import_module(".gpu", __name__) if is_gpu_array(x) else cpu


def im2col(x, kernel_size, stride, padding):
    return _impl(x).im2col(x, kernel_size, stride, padding)


def col2im(cols, x_shape, kernel_size, stride, padding):
    return _impl(cols).col2im(cols, x_shape, kernel_size, stride, padding)


def maxpool_forward(x, kernel_size, stride, padding, ceil_mode=False):
    """padding: (ph, pw) or (top, left, bottom, right); ceil_mode rounds the output size up."""
    return _impl(x).maxpool_forward(x, kernel_size, stride, padding, ceil_mode)


def maxpool_backward(dy, argmax, x_shape, kernel_size, stride, padding, ceil_mode=False):
    return _impl(dy).maxpool_backward(dy, argmax, x_shape, kernel_size, stride, padding, ceil_mode)


def lrn_forward(a, size, alpha, beta, k, groups=1):
    return _impl(a).lrn_forward(a, size, alpha, beta, k, groups)


def lrn_backward(dy, a, b, scale, size, alpha, beta, groups=1):
    return _impl(dy).lrn_backward(dy, a, b, scale, size, alpha, beta, groups)


def matmul(a, b, out=None):
    """a @ b (stacked over leading axes): OpenBLAS through NumPy, cuBLAS through CuPy, or on the GPU the
    hand-written tiled SGEMM when ops.gpu.use_custom_sgemm(True) selects it."""
    return _impl(a).matmul(a, b, out)


def sgd_update(w, v, grad, lr, momentum, weight_decay):
    return _impl(w).sgd_update(w, v, grad, lr, momentum, weight_decay)


__all__ = ["matmul", "parallel_map", "sgd_update", "im2col", "col2im", "maxpool_forward", "maxpool_backward",
           "lrn_forward", "lrn_backward", "output_size", "pool_geometry"]
