"""minigrad's CPU runtime (ops/cpu_runtime.py) and the lazily zeroed gradient it serves."""
import multiprocessing
import os
import threading

import numpy as np
import pytest

import minigrad as mg
from minigrad.ops import cpu_runtime


@pytest.mark.parametrize("a_shape, b_shape", [
    ((32, 300), (300, 4096)),            # split into column shares among the workers
    ((2, 64, 75), (2, 75, 1500)),        # stacked, as a grouped convolution multiplies
    ((3, 5), (5, 7)),                    # too small to split
    ((40, 3000), (3000, 1)),             # fewer columns than workers
])
def test_matmul_equals_numpys(a_shape, b_shape, rng):
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    np.testing.assert_allclose(cpu_runtime.matmul(a, b), np.matmul(a, b), rtol=1e-12, atol=1e-12)


def test_matmul_handles_transposed_views_and_writes_into_out(rng):
    a, b = rng.standard_normal((4096, 32)).T, rng.standard_normal((3000, 4096)).T    # (32, 4096) @ (4096, 3000)
    out = np.full((32, 3000), np.nan)
    assert cpu_runtime.matmul(a, b, out=out) is out
    np.testing.assert_allclose(out, a @ b, rtol=1e-12, atol=1e-12)


def test_parallel_map_keeps_the_order_and_runs_nested_calls_inline():
    main = threading.get_ident()

    def inner(i):
        return cpu_runtime.parallel_map(lambda j: (i, j, threading.get_ident()), range(3))

    results = cpu_runtime.parallel_map(inner, range(6))
    assert [[(i, j) for i, j, _ in row] for row in results] == [[(i, j) for j in range(3)] for i in range(6)]
    for row in results:                  # a nested map stays on the thread of the item that made it
        assert len({ident for _, _, ident in row}) == 1
    if cpu_runtime.WORKERS > 1:
        assert all(row[0][2] != main for row in results)


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
