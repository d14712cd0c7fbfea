"""The hot primitives on the GPU: the CUDA C kernels of kernels/*.cu, launched through CuPy.

Same functions, signatures and conventions as ops/cpu.py (read its docstring); ops/__init__.py sends
CuPy arrays here. Each source file is compiled once per process by `cupy.RawModule` (NVRTC) the first
time one of its kernels runs. The elementwise kernels are templates over the element type, so every
op works on float32 and float64; they index with 32-bit ints, which the launch functions check.

Every launch is described by a `Launch` (which kernel, grid, block, and the scalar arguments with
their exact C types), computed by a plain function of shapes and dtypes that needs no GPU. CuPy
passes a RawKernel's arguments as they come and does no conversion: a Python float handed to a
`float` parameter, or a float64 array to a `float*`, gives garbage (cupy #3186, #8485). So every
scalar is cast here, to numpy.int32, numpy.int64 or the array's own float type.

Outputs are allocated by `empty`, which the GPU tests replace by one that fills them with NaN: a
kernel that leaves an element unwritten then fails its comparison with the CPU.

GEMM: `matmul` is cupy.matmul (cuBLAS) unless `use_custom_sgemm(True)` (or MINIGRAD_CUSTOM_SGEMM=1)
selects the tiled teaching kernel of kernels/sgemm.cu for float32. Conv2d and Linear call xp.matmul
themselves, so today the flag reaches the benchmark and the tests, not the layers. `use_tf32(True)`
lets cuBLAS run float32 GEMMs, the layers' included, on tensor cores in TF32 (a 10-bit mantissa);
plain float32 is the default.
"""
import functools
import importlib
import os
import site
import sys
import sysconfig
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..backend import array_module
from .geometry import output_size, pool_geometry

BLOCK = 256                         # threads per block of the one-thread-per-element kernels
INT32_MAX = np.iinfo(np.int32).max
CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


def _templates(*names):
    return tuple(f"{name}<{ctype}>" for name in names for ctype in CTYPES.values())


# Every kernel ops/gpu.py launches, by source file: the names `RawModule.get_function` takes (C++
# name expressions for the templates). tests/test_kernels_compile.py compiles each file with nvcc
# and checks that each of these names is in the PTX.
KERNELS = {
    "im2col.cu": _templates("im2col", "col2im"),
    "pool.cu": _templates("maxpool_forward", "maxpool_backward"),
    "lrn.cu": _templates("lrn_forward", "lrn_backward"),
    "sgd.cu": _templates("sgd_update"),
    "sgemm.cu": ("sgemm",),         # extern "C", float32 only
}

KERNEL_DIR_VARIABLE = "MINIGRAD_KERNEL_DIR"


# --- finding and compiling the kernels ---------------------------------------------------------------
def kernel_dir_candidates():
    """Where kernels/*.cu may be, in the order they are tried:

    1. $MINIGRAD_KERNEL_DIR, when set;
    2. kernels/ at the root of a checkout, beside the minigrad/ package (also editable installs);
    3. share/minigrad/kernels, where setup.cfg's data_files puts them when a wheel is installed: beside
       the package (pip install --target DIR), under the environment's data prefix (sysconfig
       "data", sys.prefix: a virtualenv or the system) or the user's (site.USER_BASE: pip --user).
    """
    candidates = [Path(os.environ[KERNEL_DIR_VARIABLE])] if os.environ.get(KERNEL_DIR_VARIABLE) else []
    beside_package = Path(__file__).resolve().parents[2]
    candidates.append(beside_package / "kernels")
    for prefix in (beside_package, sysconfig.get_path("data"), sys.prefix, site.USER_BASE):
        if prefix:
            candidates.append(Path(prefix) / "share" / "minigrad" / "kernels")
    return list(dict.fromkeys(candidates))          # in order, without repeats


def find_kernel_dir(candidates=None):
    """The first candidate directory that holds every file of KERNELS; FileNotFoundError otherwise."""
    candidates = kernel_dir_candidates() if candidates is None else [Path(c) for c in candidates]
    for directory in candidates:
        if all((directory / name).is_file() for name in KERNELS):
            return directory
    raise FileNotFoundError(f"minigrad's CUDA kernels ({', '.join(KERNELS)}) are in none of: "
                            f"{', '.join(map(str, candidates))}; set {KERNEL_DIR_VARIABLE} to their directory")


def _cupy():
    return importlib.import_module("cupy")


@functools.lru_cache(maxsize=None)
def _module(filename):
    """The compiled module of one kernels/*.cu file; compiled once per process, on first use."""
    source = (find_kernel_dir() / filename).read_text()
    templates = [name for name in KERNELS[filename] if "<" in name]
    return _cupy().RawModule(code=source, name_expressions=templates or None)


# --- launch geometry and arguments, computed without a GPU ---------------------------------------------
class Launch(NamedTuple):
    """One kernel launch: kernels/<file>, kernel name, grid and block, then the scalar arguments
    (typed) that follow the array arguments in the kernel's signature."""
    file: str
    kernel: str
    grid: tuple
    block: tuple
    scalars: tuple


def _ctype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in CTYPES:
        raise TypeError(f"minigrad GPU kernels take float32 or float64 arrays, got {dtype}")
    return CTYPES[dtype]


def _int32(*values):
    """Cast to numpy.int32, refusing values the kernels' 32-bit indices cannot hold."""
    for value in values:
        if not 0 <= value <= INT32_MAX:
            raise ValueError(f"minigrad GPU kernels index with 32-bit ints: {value} is out of range "
                             f"(use a smaller batch)")
    return tuple(np.int32(v) for v in values)


def _one_thread_per_element(file, kernel, dtype, total, largest, *scalars):
    """A 1-D launch of `total` threads, BLOCK per block. `largest` is the size of the largest array
    the kernel indexes; it must fit in an int32 like `total`."""
    _int32(largest)
    grid = ((total + BLOCK - 1) // BLOCK,)
    return Launch(file, f"{kernel}<{_ctype(dtype)}>", grid, (BLOCK,), _int32(total) + scalars)


def _geometry(x_shape, kernel_size, stride, padding):
    N, C, H, W = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    OH, OW = output_size(H, kh, sh, ph), output_size(W, kw, sw, pw)
    return N, C, H, W, kh, kw, sh, sw, ph, pw, OH, OW


def im2col_launch(x_shape, dtype, kernel_size, stride, padding):
    """im2col(x, cols, total, N, C, H, W, kh, kw, sh, sw, ph, pw, OH, OW): a thread per (c, n, oh, ow)."""
    N, C, H, W, kh, kw, sh, sw, ph, pw, OH, OW = g = _geometry(x_shape, kernel_size, stride, padding)
    return _one_thread_per_element("im2col.cu", "im2col", dtype, C * N * OH * OW,
                                   max(C * kh * kw * N * OH * OW, N * C * H * W), *_int32(*g))


def col2im_launch(x_shape, dtype, kernel_size, stride, padding):
    """col2im(cols, dx, total, N, C, H, W, kh, kw, sh, sw, ph, pw, OH, OW): a thread per input pixel."""
    N, C, H, W, kh, kw, sh, sw, ph, pw, OH, OW = g = _geometry(x_shape, kernel_size, stride, padding)
    return _one_thread_per_element("im2col.cu", "col2im", dtype, N * C * H * W,
                                   max(C * kh * kw * N * OH * OW, N * C * H * W), *_int32(*g))


def _pool_geometry(x_shape, kernel_size, stride, padding, ceil_mode):
    """As _geometry, for padding (ph, pw) or (top, left, bottom, right) and ceil_mode: the kernels take
    the leading pads (ph, pw) = (top, left) and the output size, which carries the rest."""
    (kh, kw), (sh, sw) = kernel_size, stride
    (ph, pw), (OH, OW) = pool_geometry(x_shape, kernel_size, stride, padding, ceil_mode)
    return (*x_shape, kh, kw, sh, sw, ph, pw, OH, OW)


def maxpool_forward_launch(x_shape, dtype, kernel_size, stride, padding, ceil_mode=False):
    """maxpool_forward(x, y, argmax, total, C, H, W, kh, kw, sh, sw, ph, pw, OH, OW): a thread per output."""
    N, C, H, W, kh, kw, sh, sw, ph, pw, OH, OW = _pool_geometry(x_shape, kernel_size, stride, padding, ceil_mode)
    return _one_thread_per_element("pool.cu", "maxpool_forward", dtype, N * C * OH * OW,
                                   max(N * C * H * W, N * C * OH * OW),
                                   *_int32(C, H, W, kh, kw, sh, sw, ph, pw, OH, OW))


def maxpool_backward_launch(x_shape, dtype, kernel_size, stride, padding, ceil_mode=False):
    """maxpool_backward(dy, argmax, dx, total, C, H, W, kh, kw, sh, sw, ph, pw, OH, OW): a thread per input pixel."""
    N, C, H, W, kh, kw, sh, sw, ph, pw, OH, OW = _pool_geometry(x_shape, kernel_size, stride, padding, ceil_mode)
    return _one_thread_per_element("pool.cu", "maxpool_backward", dtype, N * C * H * W,
                                   max(N * C * H * W, N * C * OH * OW),
                                   *_int32(C, H, W, kh, kw, sh, sw, ph, pw, OH, OW))


def lrn_forward_launch(a_shape, dtype, size, alpha, beta, k, groups=1):
    """lrn_forward(a, b, scale, total, C, HW, size, group_channels, alpha, beta, k): a thread per pixel
    column (n, h, w)."""
    N, C, H, W = a_shape
    t = np.dtype(dtype).type
    return _one_thread_per_element("lrn.cu", "lrn_forward", dtype, N * H * W, N * C * H * W,
                                   *_int32(C, H * W, size, C // groups), t(alpha), t(beta), t(k))


def lrn_backward_launch(a_shape, dtype, size, alpha, beta, groups=1):
    """lrn_backward(dy, a, b, scale, da, total, C, HW, size, group_channels, alpha, beta): a thread per
    pixel column."""
    N, C, H, W = a_shape
    t = np.dtype(dtype).type
    return _one_thread_per_element("lrn.cu", "lrn_backward", dtype, N * H * W, N * C * H * W,
                                   *_int32(C, H * W, size, C // groups), t(alpha), t(beta))


def sgd_update_launch(size, dtype, lr, momentum, weight_decay):
    """sgd_update(w, v, grad, total, lr, momentum, weight_decay): a thread per element."""
    t = np.dtype(dtype).type
    return _one_thread_per_element("sgd.cu", "sgd_update", dtype, size, size,
                                   t(lr), t(momentum), t(weight_decay))


SGEMM_TILE = 64                     # TILE_M = TILE_N in kernels/sgemm.cu
SGEMM_THREADS = (16, 16, 1)         # THREADS_X, THREADS_Y
MAX_GRID_Z = 65535


def sgemm_launch(a_shape, b_shape):
    """sgemm(A, B, C, M, N, K, stride_a, stride_b, stride_c) for A (M, K) or (batch, M, K) times
    B (K, N) or (batch, K, N); a 2-D side (or a batch of 1) is broadcast with stride 0.
    Returns the launch and the shape of C."""
    if len(a_shape) not in (2, 3) or len(b_shape) not in (2, 3):
        raise ValueError(f"sgemm: expected 2-D or 3-D operands, got shapes {a_shape} and {b_shape}")
    (M, K), (K2, N) = a_shape[-2:], b_shape[-2:]
    batch_a = a_shape[0] if len(a_shape) == 3 else 1
    batch_b = b_shape[0] if len(b_shape) == 3 else 1
    if K != K2 or batch_a != batch_b and 1 not in (batch_a, batch_b):
        raise ValueError(f"sgemm: shapes {a_shape} and {b_shape} do not multiply")
    batch = max(batch_a, batch_b)
    if batch > MAX_GRID_Z:
        raise ValueError(f"sgemm: at most {MAX_GRID_Z} matrices in a batch, got {batch}")
    grid = (-(-N // SGEMM_TILE), -(-M // SGEMM_TILE), batch)
    strides = (M * K if batch_a > 1 else 0, K * N if batch_b > 1 else 0, M * N)
    out_shape = (batch, M, N) if max(len(a_shape), len(b_shape)) == 3 else (M, N)
    launch = Launch("sgemm.cu", "sgemm", grid, SGEMM_THREADS,
                    _int32(M, N, K) + tuple(np.int64(s) for s in strides))
    return launch, out_shape


# --- running them -----------------------------------------------------------------------------------------
def empty(shape, dtype):
    """Allocate an output that a kernel overwrites completely (tests make this fill with NaN)."""
    return _cupy().empty(shape, dtype=dtype)


def _run(launch, *arrays):
    if min(launch.grid) == 0:                       # nothing to compute: an empty array
        return
    kernel = _module(launch.file).get_function(launch.kernel)
    kernel(launch.grid, launch.block, arrays + launch.scalars)


def _contiguous(*arrays):
    """The kernels index C-contiguous memory: copy any other layout (a transpose, a slice) first."""
    cupy = _cupy()
    return [cupy.ascontiguousarray(a) for a in arrays]


def im2col(x, kernel_size, stride, padding):
    x, = _contiguous(x)
    launch = im2col_launch(x.shape, x.dtype, kernel_size, stride, padding)
    N, C, H, W, kh, kw, sh, sw, ph, pw, OH, OW = _geometry(x.shape, kernel_size, stride, padding)
    cols = empty((C * kh * kw, N * OH * OW), x.dtype)
    _run(launch, x, cols)
    return cols


def col2im(cols, x_shape, kernel_size, stride, padding):
    cols, = _contiguous(cols)
    dx = empty(tuple(x_shape), cols.dtype)
    _run(col2im_launch(x_shape, cols.dtype, kernel_size, stride, padding), cols, dx)
    return dx


def maxpool_forward(x, kernel_size, stride, padding, ceil_mode=False):
    x, = _contiguous(x)
    launch = maxpool_forward_launch(x.shape, x.dtype, kernel_size, stride, padding, ceil_mode)
    N, C, H, W, kh, kw, sh, sw, ph, pw, OH, OW = _pool_geometry(x.shape, kernel_size, stride, padding, ceil_mode)
    y, argmax = empty((N, C, OH, OW), x.dtype), empty((N, C, OH, OW), np.int32)
    _run(launch, x, y, argmax)
    return y, argmax


def maxpool_values(x, kernel_size, stride, padding, ceil_mode=False):
    """The GPU has one max-pool kernel, which finds the positions with the maxima."""
    return maxpool_forward(x, kernel_size, stride, padding, ceil_mode)[0]


def maxpool_backward(dy, argmax, x_shape, kernel_size, stride, padding, ceil_mode=False):
    dy, argmax = _contiguous(dy, argmax.astype(np.int32, copy=False))
    dx = empty(tuple(x_shape), dy.dtype)
    _run(maxpool_backward_launch(x_shape, dy.dtype, kernel_size, stride, padding, ceil_mode), dy, argmax, dx)
    return dx


def relu_forward(x):
    """CuPy's own elementwise kernels (memory-bound either way): y, and the mask x > 0."""
    return array_module(x).maximum(x, 0), x > 0


def relu_backward(dy, mask):
    return dy * mask


def lrn_forward(a, size, alpha, beta, k, groups=1):
    a, = _contiguous(a)
    b, scale = empty(a.shape, a.dtype), empty(a.shape, a.dtype)
    _run(lrn_forward_launch(a.shape, a.dtype, size, alpha, beta, k, groups), a, b, scale)
    return b, scale


def lrn_backward(dy, a, b, scale, size, alpha, beta, groups=1):
    dy, a, b, scale = _contiguous(dy, a, b, scale)
    da = empty(a.shape, a.dtype)
    _run(lrn_backward_launch(a.shape, a.dtype, size, alpha, beta, groups), dy, a, b, scale, da)
    return da


def sgd_update(w, v, grad, lr, momentum, weight_decay):
    """The paper's step in place, one fused kernel: v = momentum*v - weight_decay*lr*w - lr*grad; w += v.
    w and v are updated where they are, so they must already be C-contiguous (grad is copied if not)."""
    if not (w.flags.c_contiguous and v.flags.c_contiguous) or not w.dtype == v.dtype == grad.dtype \
            or not w.shape == v.shape == grad.shape:
        raise ValueError(f"sgd_update: expected C-contiguous weight and velocity and a gradient of one "
                         f"shape and dtype, got {w.shape} {w.dtype}, {v.shape} {v.dtype}, "
                         f"{grad.shape} {grad.dtype}")
    grad, = _contiguous(grad)
    _run(sgd_update_launch(w.size, w.dtype, lr, momentum, weight_decay), w, v, grad)


# --- GEMM -----------------------------------------------------------------------------------------------
_custom_sgemm = os.environ.get("MINIGRAD_CUSTOM_SGEMM", "0") == "1"


def use_custom_sgemm(enabled=True):
    """Send float32 GEMMs through `matmul` to the tiled kernel of kernels/sgemm.cu instead of cuBLAS."""
    global _custom_sgemm
    _custom_sgemm = bool(enabled)


def use_tf32(enabled=True):
    """Let cuBLAS run float32 GEMMs in TF32 on tensor cores (compute capability 8.0 and later).

    This sets what CuPy's CUPY_TF32=1 environment variable sets, but at any time rather than only
    before the first GEMM. The custom SGEMM is always plain float32.
    """
    linalg = importlib.import_module("cupy._core._routines_linalg")
    linalg.set_compute_type(np.float32, linalg.COMPUTE_TYPE_TF32 if enabled else linalg.COMPUTE_TYPE_DEFAULT)


def sgemm(a, b):
    """a @ b with the tiled kernel: float32, 2-D or 3-D (batched; a 2-D side is broadcast)."""
    if a.dtype != np.float32 or b.dtype != np.float32:
        raise TypeError(f"sgemm: expected float32 operands, got {a.dtype} and {b.dtype}")
    a, b = _contiguous(a, b)
    launch, out_shape = sgemm_launch(a.shape, b.shape)
    c = empty(out_shape, np.float32)
    _run(launch, a, b, c)
    return c


def matmul(a, b, out=None):
    """a @ b on the GPU: cuBLAS through cupy.matmul, or the tiled kernel when selected (float32, 2-D/3-D)."""
    if _custom_sgemm and a.dtype == b.dtype == np.float32 and a.ndim in (2, 3) and b.ndim in (2, 3):
        product = sgemm(a, b)
        if out is None:
            return product
        out[...] = product
        return out
    return _cupy().matmul(a, b, out=out)
