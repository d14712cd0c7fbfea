"""How minigrad runs on the CPU: one pool of workers that own the cores, with NumPy's BLAS
single-threaded, and a malloc that keeps the memory a step frees for the next step.

Threads. Why minigrad splits its GEMMs itself instead of leaving that to OpenBLAS: after each
multi-threaded GEMM, OpenBLAS's worker threads spin for about 0.1 s (2^28 cycles) waiting for the
next one, and on a two-core machine they take a core from whatever runs next. In AlexNet what runs
next is often a Numba kernel (LRN, pooling, the SGD step), which then ran at half speed: a training
step took 1.58 s instead of 1.36 s (benchmarks/results/cpu_alexnet_vm.md). OPENBLAS_THREAD_TIMEOUT
would shorten the spin, but OpenBLAS reads it once, when NumPy is imported, which is usually before
minigrad is. So every GEMM minigrad runs is a single-threaded BLAS call on one worker's share of the
output, and OpenBLAS's own threads never wake. The same workers unfold a convolution's batch chunks
in parallel, which also puts both cores on im2col (a NumPy copy, single-threaded by itself).

Where NumPy's BLAS is not an OpenBLAS that exports its thread controls (conda's MKL, Apple's
Accelerate), minigrad cannot set BLAS's thread count, leaves it alone and runs everything on the
calling thread. Workers must never launch a parallel Numba kernel: Numba's workqueue layer aborts the
process when entered from two threads at once, so the kernels they call (col2im) are serial ones,
and ops.cpu refuses the parallel ones inside a worker with an error instead.

Memory. glibc's malloc serves every block over 32 MB (at batch 32, each of conv1's and norm1's
activations and gradients, fc6's weight gradient) with a fresh mmap and unmaps it on free, so every
step asked the kernel for about half a gigabyte of new zeroed pages: 0.16 s of system time a step,
0.12 s of the step's 1.26 s. `_keep_freed_memory` tells malloc to serve big blocks from its heap and
to keep freed memory there (up to 2 GB at the top of the heap), so that the next step reuses it. This
is what the big frameworks' caching allocators do; elsewhere than glibc nothing is changed, and
MINIGRAD_KEEP_FREED_MEMORY=0 in the environment turns it off.
"""
import contextlib
import ctypes
import glob
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def _numpy_openblas():
    """(set_num_threads, get_num_threads) of the OpenBLAS that NumPy's wheels bundle, or None."""
    libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in glob.glob(os.path.join(libs, "*openblas*")):
        lib = ctypes.CDLL(path)            # already loaded by NumPy: this returns the same library
        # scipy-openblas (NumPy 2), then the plain OpenBLAS of NumPy 1.x wheels; 64-bit ints or not.
        for prefix, suffix in [("scipy_openblas", "64_"), ("scipy_openblas", ""),
                               ("openblas", "64_"), ("openblas", "")]:
            setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
            getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
            if setter is not None and getter is not None:
                return setter, getter
    return None


def _keep_freed_memory():
    if not sys.platform.startswith("linux") or os.environ.get("MINIGRAD_KEEP_FREED_MEMORY") == "0":
        return
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4                  # glibc's <malloc.h>
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)  # absent from musl
    if mallopt is not None:
        mallopt(M_MMAP_MAX, 0)                             # big blocks from the heap, not mmap...
        mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1)             # ...and kept there once freed


_keep_freed_memory()
_OPENBLAS = _numpy_openblas()
# The cores BLAS was given (OPENBLAS_NUM_THREADS / OMP_NUM_THREADS, else all of them) become the workers.
WORKERS = _OPENBLAS[1]() if _OPENBLAS else 1
_local = threading.local()


def _start_pool():
    global _pool
    _pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="minigrad") if WORKERS > 1 else None


_start_pool()
# A forked child (multiprocessing's default on Linux) inherits the pool but not its threads, and
# would wait forever on its first parallel_map: it gets a pool of its own.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_start_pool)


_blas_lock = threading.Lock()
_blas_users, _blas_threads_before = 0, None


@contextlib.contextmanager
def _single_threaded_blas():
    """OpenBLAS on one thread from the first entry until the last exit, whichever threads enter."""
    global _blas_users, _blas_threads_before
    if _OPENBLAS is None:
        yield
        return
    set_threads, get_threads = _OPENBLAS
    with _blas_lock:
        if _blas_users == 0:
            _blas_threads_before = get_threads()
            set_threads(1)
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                set_threads(_blas_threads_before)


def in_worker():
    """True on one of minigrad's workers, where parallel Numba kernels must not be launched."""
    return getattr(_local, "in_worker", False)


def _as_worker(fn):
    def run(item):
        _local.in_worker = True
        return fn(item)
    return run


def parallel_map(fn, items):
    """[fn(item) for item in items], spread over the workers (in order). fn must only write to memory
    no other item writes to, and must not call minigrad's parallel Numba kernels (LRN, pooling, SGD).
    Inside a worker, or with one worker or one item, it runs inline."""
    items = list(items)
    if in_worker():
        return [fn(item) for item in items]
    with _single_threaded_blas():
        if _pool is None or len(items) < 2:
            return [fn(item) for item in items]
        return list(_pool.map(_as_worker(fn), items))


# Below this many multiply-adds a GEMM is not worth splitting (fc8 at batch 1 is 4M).
_SPLIT_MIN_MULTIPLY_ADDS = 1 << 22


def matmul(a, b, out=None):
    """a @ b (stacked over leading axes) with the output's columns split among the workers."""
    if a.ndim < 2 or b.ndim < 2:
        return np.matmul(a, b, out=out)
    if out is None:
        out = np.empty(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1]),
                       dtype=np.result_type(a, b))
    columns, parts = b.shape[-1], WORKERS
    overlapping = np.may_share_memory(out, a) or np.may_share_memory(out, b)   # np.matmul copies then
    if in_worker() or overlapping or out.size * a.shape[-1] < _SPLIT_MIN_MULTIPLY_ADDS or columns < parts:
        parts = 1
    bounds = [columns * i // parts for i in range(parts + 1)]
    shares = [slice(start, stop) for start, stop in zip(bounds, bounds[1:])]
    parallel_map(lambda share: np.matmul(a, b[..., share], out=out[..., share]), shares)
    return out
