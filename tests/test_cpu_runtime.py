"""minigrad's CPU runtime (ops/cpu_runtime.py) and the lazily zeroed gradient it serves."""
import json
import multiprocessing
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import minigrad as mg
from minigrad import ops
from minigrad.ops import cpu_runtime


@pytest.fixture(autouse=True)
def two_workers(monkeypatch):
    """Two workers whatever this machine's BLAS was given, so that the splitting paths always run: the
    calling thread and one helper."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="minigrad-test")
    monkeypatch.setattr(cpu_runtime, "WORKERS", 2)
    monkeypatch.setattr(cpu_runtime, "_pool", pool)
    monkeypatch.setattr(cpu_runtime, "_pool_pid", os.getpid())
    yield
    pool.shutdown()


@pytest.mark.parametrize("a_shape, b_shape", [
    ((32, 300), (300, 4096)),            # split into column shares among the workers
    ((2, 64, 75), (2, 75, 1500)),        # stacked, as a grouped convolution multiplies
    ((3, 5), (5, 7)),                    # too small to split
    ((40, 3000), (3000, 1)),             # fewer columns than workers
    ((3000,), (3000, 50)),               # a vector, as np.matmul takes one
])
@pytest.mark.parametrize("split", ["columns", "rows"])
def test_matmul_equals_numpys(a_shape, b_shape, split, rng):
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    np.testing.assert_allclose(cpu_runtime.matmul(a, b, split=split), np.matmul(a, b), rtol=1e-12, atol=1e-12)


def test_matmul_split_by_rows_writes_each_share_once_and_refuses_other_splits(rng):
    a, b = rng.standard_normal((4097, 300)), rng.standard_normal((32, 300)).T      # Linear's W x^T
    out = np.full((4097, 32), np.nan)
    assert cpu_runtime.matmul(a, b, out=out, split="rows") is out
    np.testing.assert_allclose(out, a @ b, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="split must be 'columns' or 'rows', got 'diagonal'"):
        cpu_runtime.matmul(a, b, split="diagonal")


def test_matmul_handles_transposed_views_and_writes_into_out(rng):
    a, b = rng.standard_normal((4096, 32)).T, rng.standard_normal((3000, 4096)).T    # (32, 4096) @ (4096, 3000)
    out = np.full((32, 3000), np.nan)
    assert cpu_runtime.matmul(a, b, out=out) is out
    np.testing.assert_allclose(out, a @ b, rtol=1e-12, atol=1e-12)


def test_matmul_into_an_operand_is_not_split_into_racing_shares(rng):
    a = rng.standard_normal((300, 300))
    expected = a @ a
    np.testing.assert_allclose(cpu_runtime.matmul(a, a, out=a), expected, rtol=1e-12, atol=1e-12)


def test_parallel_map_keeps_the_order_and_runs_nested_calls_inline():
    main = threading.get_ident()

    def inner(i):
        return cpu_runtime.parallel_map(lambda j: (i, j, threading.get_ident()), range(3))

    results = cpu_runtime.parallel_map(inner, range(6))
    assert [[(i, j) for i, j, _ in row] for row in results] == [[(i, j) for j in range(3)] for i in range(6)]
    for row in results:                  # a nested map stays on the thread of the item that made it
        assert len({ident for _, _, ident in row}) == 1
    assert all(row[0][2] != main for row in results)


@pytest.mark.skipif(cpu_runtime._OPENBLAS is None, reason="NumPy's BLAS here exports no thread controls")
def test_overlapping_single_threaded_sections_restore_blas_threads():
    set_threads, get_threads = cpu_runtime._OPENBLAS
    before = get_threads()
    set_threads(2)
    try:
        first_inside, second_inside = threading.Event(), threading.Event()
        seen = []

        def first():
            with cpu_runtime._single_threaded_blas():
                first_inside.set()
                second_inside.wait(10)
                seen.append(get_threads())
            # the second thread is still inside: BLAS must stay on one thread for it

        def second():
            first_inside.wait(10)
            with cpu_runtime._single_threaded_blas():
                second_inside.set()
                thread.join(10)
                seen.append(get_threads())

        thread = threading.Thread(target=first)
        other = threading.Thread(target=second)
        thread.start()
        other.start()
        other.join(20)
        assert seen == [1, 1] and get_threads() == 2
    finally:
        set_threads(before)


def test_a_parallel_kernel_on_a_worker_is_refused_not_fatal(rng):
    a = rng.standard_normal((2, 5, 3, 3)).astype(np.float32)
    with pytest.raises(RuntimeError, match="lrn_forward.*cannot run on one of minigrad's workers"):
        cpu_runtime.parallel_map(lambda _: ops.lrn_forward(a, 5, 1e-4, 0.75, 2.0), range(2))


def _doubled_in_parallel(n):
    return cpu_runtime.parallel_map(lambda i: 2 * i, range(n))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="this platform cannot fork")
def test_a_forked_child_gets_workers_of_its_own():
    cpu_runtime.parallel_map(abs, range(8))          # the parent's workers exist now
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply_async(_doubled_in_parallel, (4,)).get(timeout=60) == [0, 2, 4, 6]


def test_a_zeroed_gradient_reads_as_zero_and_is_overwritten_by_the_next_product(rng):
    p = mg.Parameter(np.zeros((3, 4)), "w")
    a, b = rng.standard_normal((3, 5)), rng.standard_normal((5, 4))
    p.grad[...] = 7.0
    p.zero_grad()
    np.testing.assert_array_equal(p.grad, 0.0)
    p.zero_grad()
    p.accumulate_grad_product(a, b)
    np.testing.assert_allclose(p.grad, a @ b, rtol=1e-14)
    p.accumulate_grad_product(a, b)       # without zero_grad in between, products add up
    np.testing.assert_allclose(p.grad, 2 * (a @ b), rtol=1e-14)


def test_two_linear_backwards_accumulate_and_zero_grad_clears(rng):
    layer = mg.Linear(6, 4).astype(np.float64)
    x, dy = rng.standard_normal((5, 6)), rng.standard_normal((5, 4))
    layer.zero_grad()
    layer.forward(x)
    layer.backward(dy)
    layer.backward(dy)
    np.testing.assert_allclose(layer.weight.grad, 2 * dy.T @ x, rtol=1e-13)
    layer.zero_grad()
    assert not layer.weight.grad.any() and not layer.bias.grad.any()


# --- importing minigrad changes nothing in the process; the application's calls do ----------------
def _run_fresh_python(code, **env):
    """stdout of `code` in a fresh interpreter that imports this checkout's minigrad, with Numba's
    default threading layer unless `env` names one."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(mg.__file__)))
    inherited = {name: value for name, value in os.environ.items() if name != "NUMBA_THREADING_LAYER"}
    env = dict(inherited, PYTHONPATH=root, **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout


# minigrad and every module in it, as a program that uses any part of minigrad imports them.
_IMPORT_EVERYTHING = """
import importlib, pkgutil
import minigrad as mg
import minigrad.ops.cpu_runtime
for module in pkgutil.walk_packages(mg.__path__, "minigrad."):
    importlib.import_module(module.name)
"""

_FREE_A_GIGABYTE = """
import os, sys
import numpy as np
""" + _IMPORT_EVERYTHING + """
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

if sys.argv[1:] == ["tuned"] and not mg.keep_freed_memory():
    print("not glibc")
    raise SystemExit
block = np.ones(2 ** 27)               # 1 GiB, every page written
held = rss()
del block
print(held - rss())                    # bytes the free gave back to the system
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads RSS from Linux's /proc/self/statm")
def test_importing_minigrad_leaves_malloc_returning_freed_memory_and_keep_freed_memory_keeps_it():
    returned = int(_run_fresh_python(_FREE_A_GIGABYTE))
    assert returned > 0.9 * 2 ** 30
    tuned = _run_fresh_python(_FREE_A_GIGABYTE.replace("sys.argv[1:]", '["tuned"]'))
    if tuned.strip() == "not glibc":
        pytest.skip("the C library is not glibc: keep_freed_memory() changes nothing there")
    assert int(tuned) < 0.1 * 2 ** 30


_STATE_AROUND_IMPORT = """
import json, os, threading
import numba
import numpy as np

def state():
    try:
        from threadpoolctl import threadpool_info      # every loaded BLAS's thread count, where installed
        blas = sorted((pool["filepath"], pool["num_threads"]) for pool in threadpool_info())
    except ImportError:
        blas = None
    try:
        layer = numba.threading_layer()
    except ValueError:                                 # no parallel Numba launch yet
        layer = None
    return {"threads": threading.active_count(), "environ": dict(os.environ), "blas": blas,
            "numba.config.THREADING_LAYER": numba.config.THREADING_LAYER, "numba layer": layer}

before = state()
""" + _IMPORT_EVERYTHING + """
print(json.dumps([before, state()]))
"""


def test_importing_minigrad_and_every_module_in_it_changes_nothing_in_the_process():
    """No thread started, no environment variable set, BLAS's thread count and Numba's threading
    layer and its config as they were (malloc: the test above)."""
    before, after = json.loads(_run_fresh_python(_STATE_AROUND_IMPORT, OPENBLAS_NUM_THREADS="2"))
    assert after == before
    assert before["numba layer"] is None


_THREADS_ON_FIRST_USE = """
import threading
import numpy as np
import minigrad as mg
from minigrad.ops import cpu_runtime
before = threading.active_count()
blas_threads = cpu_runtime._OPENBLAS[1]() if cpu_runtime._OPENBLAS else None
a = np.ones((512, 512))
mg.ops.matmul(a, a)                    # large enough to split among the workers
blas_after = cpu_runtime._OPENBLAS[1]() if cpu_runtime._OPENBLAS else None
print(before, threading.active_count(), cpu_runtime.WORKERS, blas_threads == blas_after)
"""


def test_the_workers_start_on_first_use_and_blas_threads_are_restored_after_it():
    before, after_use, workers, blas_restored = _run_fresh_python(
        _THREADS_ON_FIRST_USE, OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="2").split()
    if int(workers) > 1:               # the helper threads start as the first items arrive
        assert int(before) < int(after_use) <= int(before) + int(workers) - 1
    else:
        assert after_use == before
    assert blas_restored == "True"     # BLAS's thread count is minigrad's only inside its own calls


_THREADING_LAYER_AFTER_A_KERNEL = """
import sys
import numba
import numpy as np
import minigrad as mg
if sys.argv[1:] == ["host starts a layer"]:
    numba.get_num_threads()            # as the host's own first parallel Numba function would
try:
    started_before = numba.threading_layer()
except ValueError:
    started_before = None
mg.ops.lrn_forward(np.ones((1, 4, 2, 2), np.float32), 3, 1e-4, 0.75, 2.0)    # a parallel Numba kernel
print(started_before, numba.threading_layer(), numba.config.THREADING_LAYER)
"""


def test_minigrads_first_parallel_kernel_starts_numbas_workqueue_layer_and_leaves_its_config():
    assert _run_fresh_python(_THREADING_LAYER_AFTER_A_KERNEL).split() == ["None", "workqueue", "default"]


def test_a_threading_layer_the_host_started_is_kept():
    started_before, layer, config = _run_fresh_python(
        _THREADING_LAYER_AFTER_A_KERNEL.replace("sys.argv[1:]", '["host starts a layer"]')).split()
    assert layer == started_before and config == "default"


def test_a_threading_layer_the_host_chose_is_kept():
    try:
        out = _run_fresh_python(_THREADING_LAYER_AFTER_A_KERNEL, NUMBA_THREADING_LAYER="omp")
    except subprocess.CalledProcessError as error:
        if "No threading layer could be loaded" in error.stderr:
            pytest.skip("Numba's OpenMP layer cannot load here")
        raise
    assert out.split() == ["None", "omp", "omp"]


def test_import_minigrad_loads_no_optional_dependency_and_its_submodules_come_on_first_use():
    """`import minigrad` imports neither onnx nor mpi4py nor cupy (nor PyTorch); `mg.onnx.load` and the
    other submodules work without an import of their own, as numpy's and torch's do."""
    code = """
import sys
import minigrad as mg
optional = ("onnx", "onnxruntime", "mpi4py", "cupy", "torch", "matplotlib", "PIL")
print(sorted(name for name in optional if name in sys.modules))
print(callable(mg.onnx.load), callable(mg.onnx.export), callable(mg.distributed.world), callable(mg.models.alexnet))
print("onnx" in sys.modules, "mpi4py" in sys.modules)
"""
    lines = _run_fresh_python(code).splitlines()
    assert lines[0] == "[]"
    assert lines[1] == "True True True True"
    assert lines[2] == "False False"           # naming mg.onnx imports minigrad.onnx, not onnx itself
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        mg.nothing
