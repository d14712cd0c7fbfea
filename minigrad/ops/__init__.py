"""The hot primitives, dispatched on the array that comes in: ops.cpu for NumPy, ops.gpu for CuPy.

Convolution algorithms are one module each, with the same two functions, and Conv2d
(layers/conv.py) chooses which one runs:

    forward(x, weight, bias, stride, padding, groups) -> (y, saved)
    backward(dy, saved, needs_input_grad) -> (dx, dweight, dbias)

x (N, C, H, W); weight (OC, C/groups, kh, kw); bias (OC,) or None; stride and padding (h, w) pairs.
`saved` is whatever backward needs, opaque to the caller (x itself rather than column matrices, which
backward computes again chunk by chunk). backward returns this batch's gradients, which the layer adds
into its parameters: dx None unless needs_input_grad, dbias None without a bias.

- im2col_gemm.py: im2col and one GEMM per group; every stride and kernel, on the CPU and the GPU.
- winograd.py: Winograd's minimal filtering; stride-1 square kernels, on the CPU.
- space_to_depth.py: square kernels at a stride of 2 or more, cut into stride-1 ones over more channels
  and given to winograd.py, on the CPU.
"""
import importlib

from ..backend import is_gpu_array
from . import cpu, cpu_runtime
from .geometry import output_size, pool_geometry, pool_padding
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


def maxpool_values(x, kernel_size, stride, padding, ceil_mode=False):
    """maxpool_forward's y alone, where nobody may need argmax (on the CPU twice as fast)."""
    return _impl(x).maxpool_values(x, kernel_size, stride, padding, ceil_mode)


def maxpool_backward(dy, argmax, x_shape, kernel_size, stride, padding, ceil_mode=False):
    return _impl(dy).maxpool_backward(dy, argmax, x_shape, kernel_size, stride, padding, ceil_mode)


def relu_forward(x):
    """max(x, 0), and the mask x > 0: all that the backward pass needs."""
    return _impl(x).relu_forward(x)


def relu_backward(dy, mask):
    return _impl(dy).relu_backward(dy, mask)


def lrn_forward(a, size, alpha, beta, k, groups=1):
    return _impl(a).lrn_forward(a, size, alpha, beta, k, groups)


def lrn_backward(dy, a, b, scale, size, alpha, beta, groups=1):
    return _impl(dy).lrn_backward(dy, a, b, scale, size, alpha, beta, groups)


def matmul(a, b, out=None, split="columns"):
    """a @ b (stacked over leading axes): OpenBLAS through NumPy, cuBLAS through CuPy, or on the GPU the
    hand-written tiled SGEMM when ops.gpu.use_custom_sgemm(True) selects it. On the CPU the output is
    split among the workers by its columns, or by its rows (split="rows"); the GPU takes it whole."""
    impl = _impl(a)
    return impl.matmul(a, b, out, split) if impl is cpu else impl.matmul(a, b, out)


def map_batch(fn, x, columns_per_image):
    """[fn(chunk) for chunk in slices of x's batch]: on the CPU chunks of about
    cpu_runtime.COLUMNS_PER_CHUNK GEMM columns, spread over the workers; on a GPU the whole batch in
    one launch."""
    if is_gpu_array(x):
        return [fn(slice(0, len(x)))] if len(x) else []
    return cpu_runtime.map_batch(fn, len(x), columns_per_image)


def sgd_update(w, v, grad, lr, momentum, weight_decay):
    return _impl(w).sgd_update(w, v, grad, lr, momentum, weight_decay)


__all__ = ["matmul", "parallel_map", "sgd_update", "im2col", "col2im", "maxpool_forward", "maxpool_values", "maxpool_backward",
           "relu_forward", "relu_backward", "lrn_forward", "lrn_backward", "output_size", "pool_geometry", "pool_padding"]
