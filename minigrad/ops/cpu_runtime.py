"""How minigrad runs on the CPU: one pool of workers that own the cores, with NumPy's BLAS
single-threaded while they run, and, when the application asks for it, a malloc that keeps the memory
a step frees for the next step. Importing minigrad changes nothing in the process: the workers start
on the first parallel call, BLAS's thread count is changed only inside minigrad's own parallel
sections, Numba's threading layer is chosen at minigrad's first parallel Numba kernel (below), and
malloc is changed only by `keep_freed_memory()`.

Threads. Why minigrad splits its GEMMs itself instead of leaving that to OpenBLAS: after each
multi-threaded GEMM, OpenBLAS's worker threads spin (2^28 cycles) waiting for the next one, and on a
two-core machine they take a core from whatever runs next. In AlexNet what runs next is often a Numba
kernel (LRN, pooling, the SGD step), which then ran at half speed (benchmarks/results/cpu_alexnet_vm.md).
OPENBLAS_THREAD_TIMEOUT would shorten the spin, but OpenBLAS reads it once, when NumPy is imported,
which is usually before minigrad is. So every GEMM minigrad runs is a single-threaded BLAS call on one
worker's share of the output, and OpenBLAS's own threads never wake: `parallel_map` sets BLAS to one
thread from the first entry into a parallel section until the last exit, and then restores the count
it found, so the host's own NumPy calls outside minigrad see BLAS as they left it. The workers are
as many as the threads BLAS was given (OPENBLAS_NUM_THREADS / OMP_NUM_THREADS, else all the cores):
the thread that calls `parallel_map` and WORKERS - 1 helper threads.
The same workers run a convolution's batch chunks (`map_batch`), which also puts every core on
im2col and Winograd's tile passes (NumPy copies and serial kernels, single-threaded by themselves).

Where NumPy's BLAS is not an OpenBLAS that exports its thread controls (conda's MKL, Apple's
Accelerate), minigrad cannot set BLAS's thread count, leaves it alone and runs everything on the
calling thread. Workers must never launch a parallel Numba kernel: Numba's workqueue layer aborts the
process when entered from two threads at once, so the kernels they call (col2im, Winograd's tiles,
ReLU, max pooling's serial kernels) are serial ones, and ops.cpu refuses the parallel ones (LRN, max
pooling's backward, SGD) inside a worker with an error instead.

Numba's threading layer. Numba's OpenMP layer keeps its threads spinning after each parallel loop, and
they fight OpenBLAS's threads for the cores (conv1's alternating im2col and GEMM ran several times
slower: benchmarks/results/cpu_alexnet_vm.md); the workqueue layer sleeps between loops. Numba starts
one layer for the whole process, at its first parallel launch, and it cannot be changed after, so
this is the one choice minigrad cannot scope to its own calls: `use_numba_workqueue()`, called
before each of minigrad's parallel kernels, starts the workqueue layer the first time, unless a layer
is already running or the process chose one (NUMBA_THREADING_LAYER, or numba.config.THREADING_LAYER
set before). numba.config is left as it was found. A program that imports minigrad and never runs
its LRN, pooling or SGD on the CPU keeps Numba's default.

Memory. glibc's malloc serves every block over 32 MB (at batch 32, each of conv1's and norm1's
activations and gradients, fc6's weight gradient) with a fresh mmap and unmaps it on free, so every
training step asks the kernel for about half a gigabyte of new zeroed pages, which costs the step
system time (benchmarks/results/cpu_alexnet_vm.md). `keep_freed_memory()` tells malloc to
serve big blocks from its heap and to keep freed memory there, so that the next step reuses it: what
the big frameworks' caching allocators do. It is the application's decision, because it holds for the
whole process (a notebook that frees a large pandas frame keeps those pages too); train.py and the
benchmarks call it.
"""
import contextlib
import ctypes
import glob
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numba
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


def keep_freed_memory():
    """Make glibc's malloc keep the memory the process frees, for the next allocation to reuse: big
    blocks come from the heap instead of a fresh mmap each, and up to 2 GB freed at the top of the
    heap stays there instead of going back to the system. For the whole process, until it exits.

    Returns True where it took effect, False where the C library is not glibc (musl, macOS, Windows:
    nothing is changed there)."""
    if not sys.platform.startswith("linux"):
        return False
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4                  # glibc's <malloc.h>
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)  # absent from musl
    if mallopt is None:
        return False
    mallopt(M_MMAP_MAX, 0)                                 # big blocks from the heap, not mmap...
    mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1)                 # ...and kept there once freed
    return True


_numba_layer_started = False


def use_numba_workqueue():
    """Start Numba's workqueue threading layer unless a layer is running or was chosen (see above)."""
    global _numba_layer_started
    if _numba_layer_started:
        return
    try:
        numba.threading_layer()                     # raises ValueError until a layer has started
    except ValueError:
        if numba.config.THREADING_LAYER == "default":          # nobody chose one
            numba.config.THREADING_LAYER = "workqueue"
            try:
                numba.get_num_threads()             # starts the layer while the config names it...
            finally:
                numba.config.THREADING_LAYER = "default"       # ...which then reads as it was
    _numba_layer_started = True


_OPENBLAS = _numpy_openblas()         # only looked up: NumPy has loaded it, and nothing is set here
# The cores BLAS was given (OPENBLAS_NUM_THREADS / OMP_NUM_THREADS, else all of them) become the workers.
WORKERS = _OPENBLAS[1]() if _OPENBLAS else 1
_local = threading.local()
_pool, _pool_pid, _pool_lock = None, None, threading.Lock()


def _helpers():
    """The pool of the WORKERS - 1 helper threads (None with one worker), started on first use: the thread
    that calls parallel_map is the other worker. A forked child (multiprocessing's default on Linux)
    inherits the pool but not its threads, and would wait forever on it: it starts one of its own."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(WORKERS - 1, thread_name_prefix="minigrad") if WORKERS > 1 else None
            _pool_pid = os.getpid()
        return _pool


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


def _as_worker(work):
    """work(), with this thread marked as a worker until it returns."""
    before = in_worker()
    _local.in_worker = True
    try:
        return work()
    finally:
        _local.in_worker = before


def parallel_map(fn, items):
    """[fn(item) for item in items], spread over the workers (in order). fn must only write to memory
    no other item writes to, and must not call minigrad's parallel Numba kernels (LRN, pooling, SGD).
    Inside a worker, or with one worker or one item, it runs inline.

    The calling thread is one of the workers: it takes items from the same counter as the helper
    threads, rather than handing every item to a pool and waiting: one thread fewer to wake, and the
    caller's own share starts at once. A call of two empty items costs 58 us so, 64 us the other way,
    and a batch-1 forward pass makes about twenty calls (benchmarks/results/cpu_alexnet_vm.md,
    "Launch costs")."""
    items = list(items)
    if in_worker():
        return [fn(item) for item in items]
    helpers = _helpers() if len(items) > 1 else None
    with _single_threaded_blas():
        if helpers is None:
            return [fn(item) for item in items]
        results, claimed, claim_lock = [None] * len(items), iter(range(len(items))), threading.Lock()

        def work():
            while True:
                with claim_lock:
                    index = next(claimed, None)
                if index is None:
                    return
                results[index] = fn(items[index])

        started = [helpers.submit(_as_worker, work) for _ in range(min(WORKERS, len(items)) - 1)]
        try:
            _as_worker(work)
        finally:
            wait(started)
        for helper in started:
            helper.result()                  # a helper's exception, raised here
        return results


# About 2k GEMM columns per chunk: the GEMMs stay large enough for BLAS while a chunk's column matrix
# stays a few MB (cache-sized) rather than gigabytes at batch 128, and each worker gets several chunks.
# 1024 and 4096 columns, and one chunk per worker, measured slower at AlexNet's conv2
# (benchmarks/results/cpu_alexnet_vm.md).
COLUMNS_PER_CHUNK = 2048


def batch_chunks(batch_size, columns_per_image):
    """Slices of a batch to compute at once: about COLUMNS_PER_CHUNK GEMM columns each, in a multiple of
    the workers' count of equal slices so that every core gets the same work."""
    if batch_size == 0:
        return []
    count = -(-batch_size * columns_per_image // COLUMNS_PER_CHUNK)        # ceil
    count = min(batch_size, -(-count // WORKERS) * WORKERS)
    bounds = [batch_size * i // count for i in range(count + 1)]
    return [slice(start, stop) for start, stop in zip(bounds, bounds[1:])]


def map_batch(fn, batch_size, columns_per_image):
    """[fn(chunk) for chunk in batch_chunks(...)], spread over the workers; fn(chunk) computes the images
    batch[chunk] (a convolution's forward or backward on them)."""
    return parallel_map(fn, batch_chunks(batch_size, columns_per_image))


# Below this many multiply-adds a GEMM is not worth splitting (fc8 at batch 1 is 4M).
_SPLIT_MIN_MULTIPLY_ADDS = 1 << 22


def matmul(a, b, out=None, split="columns"):
    """a @ b (stacked over leading axes) with the output's columns split among the workers (each reads all
    of a and its share of b), or its rows (split="rows": a share of a and all of b)."""
    if split not in ("columns", "rows"):
        raise ValueError(f"matmul: split must be 'columns' or 'rows', got {split!r}")
    if a.ndim < 2 or b.ndim < 2:
        return np.matmul(a, b, out=out)
    if out is None:
        out = np.empty(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1]),
                       dtype=np.result_type(a, b))
    by_rows, parts = split == "rows", WORKERS
    length = a.shape[-2] if by_rows else b.shape[-1]
    overlapping = np.may_share_memory(out, a) or np.may_share_memory(out, b)   # np.matmul copies then
    if in_worker() or overlapping or out.size * a.shape[-1] < _SPLIT_MIN_MULTIPLY_ADDS or length < parts:
        parts = 1
    bounds = [length * i // parts for i in range(parts + 1)]
    shares = [slice(start, stop) for start, stop in zip(bounds, bounds[1:])]
    if by_rows:
        parallel_map(lambda share: np.matmul(a[..., share, :], b, out=out[..., share, :]), shares)
    else:
        parallel_map(lambda share: np.matmul(a, b[..., share], out=out[..., share]), shares)
    return out
