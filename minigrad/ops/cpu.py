"""The hot primitives on the CPU: im2col/col2im, max pooling, local response normalisation.

Each primitive but im2col comes twice: `*_reference`, whole-array NumPy with loops only over the few
offsets of a kernel window (the obvious version, which the tests trust), and the version the layers
call, a Numba kernel (ops/cpu_kernels.py) that the tests compare with its reference.
im2col is one strided copy, which measured faster than its Numba kernel, so it exists once. Shapes and
conventions (shared with ops/gpu.py, whose CUDA kernels the GPU tests compare with these):

- im2col(x (N, C, H, W)) -> cols (C*kh*kw, N*OH*OW): row (c, i, j) holds input channel c shifted by
  kernel offset (i, j); column (n, oh, ow) is one output position. Rows are channel-major, so the rows
  of group g are one contiguous block, which makes a grouped convolution a batched GEMM.
- max pooling keeps `argmax` (N, C, OH, OW), int32: the window-local index i*kw + j of the first
  maximum in row-major order, as Caffe and PyTorch choose among ties. A window holding NaN gives NaN,
  and its argmax is its last NaN in row-major order: PyTorch's rule (`val > max || isnan(val)`, on the
  CPU and in CUDA), so that a diverging run's NaN is never pooled away and its gradient goes where
  PyTorch sends it.
- Output sizes and pooling windows: ops/geometry.py.
"""
import numpy as np

from ..backend import array_module
from . import cpu_kernels as kernels
from . import cpu_runtime
from .cpu_runtime import in_worker, parallel_map, use_numba_workqueue
from .cpu_runtime import matmul  # noqa: F401  (the CPU's GEMM, split among the workers)
from .geometry import check_every_window_holds_input, output_size, pool_geometry, pool_padding


def _padded(x, padding, value=0.0):
    """Pad H and W by padding (ph, pw), or by ((top, bottom), (left, right))."""
    (top, bottom), (left, right) = ((p, p) if isinstance(p, int) else p for p in padding)
    if top == bottom == left == right == 0:
        return x
    xp = array_module(x)
    return xp.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


def _windows(x_padded, kernel_size, stride, out_hw, order):
    """A strided view of every kernel window, without copying. `order` permutes (N, C, OH, OW, kh, kw)."""
    xp = array_module(x_padded)
    sn, sc, sh, sw = x_padded.strides
    shape = x_padded.shape[:2] + tuple(out_hw) + tuple(kernel_size)
    strides = (sn, sc, sh * stride[0], sw * stride[1], sh, sw)
    view = xp.lib.stride_tricks.as_strided(x_padded, shape, strides)
    return view.transpose(order)


# Outside the workers (a batch-1 convolution's one chunk), im2col copies this many values or more in
# shares on the workers: conv1's 0.52 -> 0.39 ms, conv4's 0.33 -> 0.27 ms at batch 1 (benchmarks/results/
# cpu_alexnet_vm.md, "Launch costs"); below it the launch costs more than it saves.
IM2COL_PARALLEL_MIN = 1 << 18


def im2col(x, kernel_size, stride, padding):
    """One strided view of every window, copied once: measured faster than a Numba kernel at every
    AlexNet layer (benchmarks/results/cpu_alexnet_vm.md), so the layers use it."""
    N, C, H, W = x.shape
    (kh, kw), (sh, sw) = kernel_size, stride
    OH, OW = output_size(H, kh, sh, padding[0]), output_size(W, kw, sw, padding[1])
    # (C, kh, kw, N, OH, OW): one copy of the windows makes the column matrix.
    windows = _windows(_padded(x, padding), kernel_size, stride, (OH, OW), (1, 4, 5, 0, 2, 3))
    if windows.size < IM2COL_PARALLEL_MIN or in_worker():
        return windows.reshape(C * kh * kw, N * OH * OW)
    cols = np.empty(windows.shape, x.dtype)
    axis = 0 if C >= kh else 1                       # shares of the channels, or of the kernel's rows
    bounds = np.linspace(0, windows.shape[axis], cpu_runtime.WORKERS + 1).astype(int)
    shares = [(slice(None),) * axis + (slice(start, stop),) for start, stop in zip(bounds, bounds[1:])]
    parallel_map(lambda share: np.copyto(cols[share], windows[share]), shares)
    return cols.reshape(C * kh * kw, N * OH * OW)


def col2im_reference(cols, x_shape, kernel_size, stride, padding):
    """The adjoint of im2col: each input pixel sums every column entry that was copied from it."""
    N, C, H, W = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    OH, OW = output_size(H, kh, sh, ph), output_size(W, kw, sw, pw)
    xp = array_module(cols)
    cols = cols.reshape(C, kh, kw, N, OH, OW)
    dx_padded = xp.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            dx_padded[:, :, i:i + sh * OH:sh, j:j + sw * OW:sw] += cols[:, i, j].transpose(1, 0, 2, 3)
    return dx_padded[:, :, ph:ph + H, pw:pw + W]


def maxpool_forward_reference(x, kernel_size, stride, padding, ceil_mode=False):
    N, C, H, W = x.shape
    kh, kw = kernel_size
    _, (OH, OW), fitting = pool_padding(x.shape, kernel_size, stride, padding, ceil_mode)
    xp = array_module(x)
    windows = _windows(_padded(x, fitting, -np.inf), kernel_size, stride, (OH, OW), (0, 1, 2, 3, 4, 5))
    windows = windows.reshape(N, C, OH, OW, kh * kw)
    argmax = windows.argmax(axis=-1)                       # first maximum in row-major order
    # A window of -inf alone ties with its padding: its first position inside the input, as PyTorch.
    inside = _windows(_padded(xp.ones((1, 1, H, W), bool), fitting, False), kernel_size, stride, (OH, OW),
                      (0, 1, 2, 3, 4, 5)).reshape(1, 1, OH, OW, kh * kw)
    argmax = xp.where(windows.max(axis=-1) == -np.inf, inside.argmax(axis=-1), argmax)
    nan = xp.isnan(windows)
    last_nan = kh * kw - 1 - nan[..., ::-1].argmax(axis=-1)
    argmax = xp.where(nan.any(axis=-1), last_nan, argmax).astype(np.int32)
    y = xp.take_along_axis(windows, argmax[..., None].astype(np.intp), axis=-1)[..., 0]
    return y, argmax


def maxpool_backward_reference(dy, argmax, x_shape, kernel_size, stride, padding, ceil_mode=False):
    """Route each window's gradient to its one maximum; overlapping windows add up."""
    N, C, H, W = x_shape
    (kh, kw), (sh, sw) = kernel_size, stride
    _, (OH, OW), ((top, bottom), (left, right)) = pool_padding(x_shape, kernel_size, stride, padding, ceil_mode)
    xp = array_module(dy)
    dx_padded = xp.zeros((N, C, H + top + bottom, W + left + right), dtype=dy.dtype)
    for i in range(kh):
        for j in range(kw):
            routed = xp.where(argmax == i * kw + j, dy, 0)
            dx_padded[:, :, i:i + sh * OH:sh, j:j + sw * OW:sw] += routed
    return dx_padded[:, :, top:top + H, left:left + W]


def channel_window_sum(t, size, groups=1):
    """s[:, c] = sum of t[:, j] for |j - c| <= size // 2, clipped at the first and last channel of c's
    group (the channels split into `groups` equal contiguous groups: the paper's towers, section 3.2)."""
    N, C = t.shape[:2]
    half, group_channels = size // 2, C // groups
    t = t.reshape(N, groups, group_channels, *t.shape[2:])
    s = t.copy()
    for offset in range(1, min(half, group_channels - 1) + 1):      # a window wider than a group is clipped
        s[:, :, offset:] += t[:, :, :group_channels - offset]
        s[:, :, :group_channels - offset] += t[:, :, offset:]
    return s.reshape(N, C, *s.shape[3:])


def lrn_forward_reference(a, size, alpha, beta, k, groups=1):
    """b = a / (k + alpha * sum_j a_j^2)^beta over `size` neighbouring channels of a group (section 3.3)."""
    scale = k + alpha * channel_window_sum(a * a, size, groups)
    return a * scale ** -beta, scale


def lrn_backward_reference(dy, a, b, scale, size, alpha, beta, groups=1):
    """da_j = dy_j scale_j^-beta - 2 alpha beta a_j sum_{i near j} dy_i b_i / scale_i.

    The window is symmetric and clipped at the same group boundaries, so "the i whose window holds j"
    is again the window around j.
    """
    return dy * scale ** -beta - (2 * alpha * beta) * a * channel_window_sum(dy * b / scale, size, groups)


def relu_forward_reference(x):
    return np.maximum(x, 0), x > 0


def relu_backward_reference(dy, mask):
    return dy * mask


def sgd_update_reference(w, v, grad, lr, momentum, weight_decay):
    """The paper's rule (section 5), in place: v <- momentum v - weight_decay lr w - lr grad; w <- w + v."""
    v *= momentum
    v -= (weight_decay * lr) * w
    v -= lr * grad
    w += v


# --- The versions the layers call: Numba kernels (ops/cpu_kernels.py) on contiguous arrays ---------------


def _contiguous(x):
    return np.ascontiguousarray(x)


def _before_parallel_kernel(name):
    """Numba's workqueue layer aborts the whole process when two threads enter a parallel kernel, so
    a worker is refused; the first call starts that layer (ops/cpu_runtime.py)."""
    if in_worker():
        raise RuntimeError(f"ops.{name} runs a parallel Numba kernel and cannot run on one of minigrad's "
                           f"workers (inside ops.parallel_map); call it from the training loop's thread")
    use_numba_workqueue()


def col2im(cols, x_shape, kernel_size, stride, padding):
    N, C, H, W = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    dx = np.empty(x_shape, dtype=cols.dtype)
    kernels.col2im(_contiguous(cols), kh, kw, sh, sw, ph, pw, output_size(H, kh, sh, ph), output_size(W, kw, sw, pw), dx)
    return dx


# Below this many input values max pooling runs on one core: a parallel launch costs 70-100 us, more than
# it saves on a batch-1 AlexNet's pools (benchmarks/results/cpu_alexnet_vm.md, "Launch costs").
POOL_PARALLEL_MIN = 1 << 20


def _max_pool(parallel_kernel, serial_kernel, x, kernel_size, stride, leading_pads, *outputs):
    """Run a max-pool kernel into `outputs`: on one core for a small input, or on one of the workers."""
    if x.size < POOL_PARALLEL_MIN or in_worker():
        serial_kernel(_contiguous(x), *kernel_size, *stride, *leading_pads, *outputs)
    else:
        use_numba_workqueue()
        parallel_kernel(_contiguous(x), *kernel_size, *stride, *leading_pads, *outputs)


def maxpool_forward(x, kernel_size, stride, padding, ceil_mode=False):
    leading_pads, out_hw = check_every_window_holds_input(x.shape, kernel_size, stride, padding, ceil_mode)
    y, argmax = np.empty(x.shape[:2] + out_hw, x.dtype), np.empty(x.shape[:2] + out_hw, np.int32)
    _max_pool(kernels.maxpool_forward, kernels.maxpool_forward_serial, x, kernel_size, stride, leading_pads, y, argmax)
    return y, argmax


def maxpool_values(x, kernel_size, stride, padding, ceil_mode=False):
    """maxpool_forward's y alone, twice as fast (MaxPool2d's eval forward)."""
    leading_pads, out_hw = check_every_window_holds_input(x.shape, kernel_size, stride, padding, ceil_mode)
    y = np.empty(x.shape[:2] + out_hw, x.dtype)
    _max_pool(kernels.maxpool_values, kernels.maxpool_values_serial, x, kernel_size, stride, leading_pads, y)
    return y


def maxpool_backward(dy, argmax, x_shape, kernel_size, stride, padding, ceil_mode=False):
    _before_parallel_kernel("maxpool_backward")
    (kh, kw), (sh, sw) = kernel_size, stride
    (ph, pw), _ = pool_geometry(x_shape, kernel_size, stride, padding, ceil_mode)
    dx = np.empty(x_shape, dtype=dy.dtype)
    kernels.maxpool_backward(_contiguous(dy), _contiguous(argmax), kh, kw, sh, sw, ph, pw, dx)
    return dx


def _numpy_passes_for_relu(x):
    """Where the kernels cannot run: dtypes Numba has no arithmetic for (float16), or a 0-d array."""
    return x.dtype not in (np.float32, np.float64) or x.ndim == 0


def relu_forward(x):
    if _numpy_passes_for_relu(x):
        return relu_forward_reference(x)
    x = _contiguous(x)
    y, mask = np.empty_like(x), np.empty(x.shape, bool)
    kernels.relu_forward(x.reshape(-1), y.reshape(-1), mask.reshape(-1))
    return y, mask


def relu_backward(dy, mask):
    if _numpy_passes_for_relu(dy):
        return relu_backward_reference(dy, mask)
    dy = _contiguous(dy)
    dx = np.empty_like(dy)
    kernels.relu_backward(dy.reshape(-1), _contiguous(mask).reshape(-1), dx.reshape(-1))
    return dx


def lrn_forward(a, size, alpha, beta, k, groups=1):
    _before_parallel_kernel("lrn_forward")
    a = _contiguous(a)
    b, scale = np.empty_like(a), np.empty_like(a)
    kernels.lrn_forward(a, size, a.shape[1] // groups, a.dtype.type(alpha), a.dtype.type(beta), a.dtype.type(k),
                        b, scale)
    return b, scale


def lrn_backward(dy, a, b, scale, size, alpha, beta, groups=1):
    _before_parallel_kernel("lrn_backward")
    dy = _contiguous(dy)
    da, ratio = np.empty_like(dy), np.empty_like(dy)
    kernels.lrn_backward(dy, _contiguous(a), _contiguous(b), _contiguous(scale), size, dy.shape[1] // groups,
                         dy.dtype.type(alpha), dy.dtype.type(beta), ratio, da)
    return da


def sgd_update(w, v, grad, lr, momentum, weight_decay):
    """sgd_update_reference in one fused pass: 5 array streams instead of 10 and no temporaries."""
    _before_parallel_kernel("sgd_update")
    if not (w.flags.c_contiguous and v.flags.c_contiguous) or not w.shape == v.shape == grad.shape:
        raise ValueError(f"sgd_update: expected C-contiguous weight and velocity and a gradient of one shape, "
                         f"got {w.shape}, {v.shape}, {grad.shape}")
    t = w.dtype.type
    kernels.sgd_update(w.reshape(-1), v.reshape(-1), _contiguous(grad).reshape(-1), t(lr), t(momentum), t(weight_decay))
