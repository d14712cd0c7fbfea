"""How minigrad runs on the CPU: one pool of workers that own the cores, with NumPy's BLAS
single-threaded, and a malloc that keeps the memory a step frees for the next step.

Threads. Why minigrad splits its GEMMs itself instead of leaving it to OpenBLAS: after each multi-threaded GEMM,
OpenBLAS's worker threads spin for about 0.1 s (2^28 cycles) waiting for the next one, and on a
two-core machine they take a core from whatever runs next. In AlexNet what runs next is often a
Numba kernel (LRN, pooling, the SGD step), which then ran at half speed: a training step took 1.58 s
instead of 1.36 s (benchmarks/results/cpu_alexnet_vm.md). OPENBLAS_THREAD_TIMEOUT would shorten the
spin, but OpenBLAS reads it once, when NumPy is imported, which is usually before minigrad is.
So every GEMM minigrad runs is a single-threaded BLAS call on one worker's share of the output, and
OpenBLAS's own threads never wake. The same workers unfold a convolution's batch chunks in parallel,
which also puts both cores on im2col (a NumPy copy, single-threaded by itself).

Where NumPy's BLAS is not the OpenBLAS its wheels bundle (conda's MKL, Apple's Accelerate), minigrad
cannot set BLAS's thread count, leaves it alone and runs everything on the calling thread.
Workers never launch a parallel Numba kernel: Numba's workqueue layer must not be entered from two
threads at once, so the kernels they call (col2im) are serial ones.

Memory. glibc's malloc serves every block over 32 MB (at batch 32, each of conv1's and norm1's
activations and gradients, fc6's weight gradient) with a fresh mmap and unmaps it on free, so every
step asked the kernel for about half a gigabyte of new zeroed pages: 0.16 s of system time a step,
0.12 s of the step's 1.26 s. `_keep_freed_memory` tells malloc to serve big blocks from its heap and
to keep freed memory there (up to 2 GB at the top of the heap), so that the next step reuses it. This
is what the big frameworks' caching allocators do; elsewhere than glibc nothing is changed.
"""
import contextlib
import ctypes
import glob
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def _numpy_openblas():
    """(set_num_threads, get_num_threads) of the OpenBLAS that NumPy's wheels bundle, or None."""
    libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in glob.glob(os.path.join(libs, "*openblas*")):
        lib = ctypes.CDLL(path)            # already loaded by NumPy: this returns the same library
        for suffix in ("64_", ""):          # scipy-openblas64 (NumPy 2) or scipy-openblas32
            setter = getattr(lib, f"scipy_openblas_set_num_threads{suffix}", None)
            getter = getattr(lib, f"scipy_openblas_get_num_threads{suffix}", None)
            if setter is not None and getter is not None:
                return setter, getter
    return None


def _keep_freed_memory():
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4                  # glibc's <malloc.h>
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
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
os.register_at_fork(after_in_child=_start_pool)
# Below this many multiply-adds a GEMM is not worth splitting (fc8 at batch 1 is 4M).
_SPLIT_MIN_MULTIPLY_ADDS = 1 << 22


@contextlib.contextmanager
def _single_threaded_blas():
    if _OPENBLAS is None:
        yield
        return
    set_threads, get_threads = _OPENBLAS
    previous = get_threads()
    set_threads(1)
    try:
        yield
    finally:
        set_threads(previous)


def _in_worker():
    return getattr(_local, "in_worker", False)


def _as_worker(fn):
    def run(item):
        _local.in_worker = True
        return fn(item)
    return run


def parallel_map(fn, items):
    """[fn(item) for item in items], spread over the workers (in order). fn must only write to memory
    no other item writes to. Inside a worker, or with one worker or one item, it runs inline."""
    items = list(items)
    if _in_worker():
        return [fn(item) for item in items]
    with _single_threaded_blas():
        if _pool is None or len(items) < 2:
            return [fn(item) for item in items]
        return list(_pool.map(_as_worker(fn), items))


def matmul(a, b, out=None):
    """a @ b (stacked over leading axes) with the output's columns split among the workers."""
    if out is None:
        out = np.empty(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1]),
                       dtype=np.result_type(a, b))
    columns, parts = b.shape[-1], WORKERS
    if _in_worker() or out.size * a.shape[-1] < _SPLIT_MIN_MULTIPLY_ADDS or columns < parts:
        parts = 1
    bounds = [columns * i // parts for i in range(parts + 1)]
    shares = [slice(start, stop) for start, stop in zip(bounds, bounds[1:])]
    parallel_map(lambda share: np.matmul(a, b[..., share], out=out[..., share]), shares)
    return out
