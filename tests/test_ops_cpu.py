"""Each Numba kernel against its NumPy reference (ops/cpu.py), on drawn shapes and both dtypes."""
from unittest import mock

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import minigrad as mg
from minigrad.ops import cpu, cpu_runtime


@st.composite
def window_cases(draw, pool=False):
    kernel = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    max_pad = (kernel[0] // 2, kernel[1] // 2) if pool else (3, 3)
    case = dict(shape=(draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 11)), draw(st.integers(1, 11))),
                kernel=kernel, stride=(draw(st.integers(1, 4)), draw(st.integers(1, 4))),
                padding=(draw(st.integers(0, max_pad[0])), draw(st.integers(0, max_pad[1]))),
                dtype=draw(st.sampled_from([np.float32, np.float64])), seed=draw(st.integers(0, 2**16)),
                transposed=draw(st.booleans()))
    assume(case["shape"][2] + 2 * case["padding"][0] >= kernel[0])
    assume(case["shape"][3] + 2 * case["padding"][1] >= kernel[1])
    return case


def draw_input(case):
    """A random input, sometimes a non-contiguous view (the kernels must not assume a layout)."""
    rng = np.random.default_rng(case["seed"])
    N, C, H, W = case["shape"]
    if case["transposed"]:
        return rng.standard_normal((C, N, H, W)).astype(case["dtype"]).transpose(1, 0, 2, 3)
    return rng.standard_normal(case["shape"]).astype(case["dtype"])


@given(window_cases())
def test_col2im(case):
    x = draw_input(case)
    args = case["kernel"], case["stride"], case["padding"]
    cols = cpu.im2col(x, *args)          # itself checked through Conv2d against the loop reference
    np.testing.assert_allclose(cpu.col2im(cols, x.shape, *args), cpu.col2im_reference(cols, x.shape, *args),
                               rtol=1e-5, atol=1e-5)


def assert_max_pool_matches_the_reference(x, *args):
    """maxpool_forward and maxpool_values against the reference, on one core and on all of them (inputs
    this small would otherwise take the serial kernels only). Returns argmax."""
    y_ref, argmax_ref = cpu.maxpool_forward_reference(x, *args)
    for threshold in (cpu.POOL_PARALLEL_MIN, 0):
        with mock.patch.object(cpu, "POOL_PARALLEL_MIN", threshold):
            y, argmax = cpu.maxpool_forward(x, *args)
            values = cpu.maxpool_values(x, *args)
        np.testing.assert_array_equal(y, y_ref)                # (NaN equals NaN here)
        np.testing.assert_array_equal(argmax, argmax_ref)
        np.testing.assert_array_equal(values, y_ref)
    return argmax


@pytest.mark.parametrize("shape, kernel", [((1, 3, 23, 23), (11, 11)), ((2, 7, 9, 8), (3, 2))])
def test_im2col_in_shares_on_the_workers_equals_one_copy(shape, kernel, rng):
    """Split by the kernel's rows (3 channels, 11 rows) or by the channels (7 channels, 3 rows), in
    three uneven shares."""
    x = rng.standard_normal(shape).astype(np.float32)
    whole = cpu.im2col(x, kernel, (2, 2), (1, 1))
    with mock.patch.object(cpu, "IM2COL_PARALLEL_MIN", 0), mock.patch.object(cpu_runtime, "WORKERS", 3):
        np.testing.assert_array_equal(cpu.im2col(x, kernel, (2, 2), (1, 1)), whole)


@given(window_cases(pool=True))
def test_maxpool_forward_and_backward(case):
    x = draw_input(case)
    args = case["kernel"], case["stride"], case["padding"]
    argmax = assert_max_pool_matches_the_reference(x, *args)
    dy = np.random.default_rng(case["seed"] + 1).standard_normal(argmax.shape).astype(x.dtype)
    np.testing.assert_allclose(cpu.maxpool_backward(dy, argmax, x.shape, *args),
                               cpu.maxpool_backward_reference(dy, argmax, x.shape, *args), rtol=1e-6, atol=1e-6)


@given(window_cases(pool=True), st.floats(0.05, 0.6))
def test_maxpool_nan_windows_match_the_reference(case, share):
    """A window holding NaN gives NaN and points at its last NaN, in the kernel as in the reference."""
    x = draw_input(case)
    x[np.random.default_rng(case["seed"] + 2).random(x.shape) < share] = np.nan
    assert_max_pool_matches_the_reference(x, case["kernel"], case["stride"], case["padding"])


@given(window_cases(pool=True), st.floats(0.0, 0.3))
def test_maxpool_ties_and_infinities_match_the_reference(case, nan_share):
    """Three values and -inf: most windows hold their maximum more than once, in any rows and columns
    (the kernel finds it down the columns, then across), and some hold only -inf or NaN."""
    x = draw_input(case)
    rng = np.random.default_rng(case["seed"] + 3)
    x[...] = rng.choice(np.array([-np.inf, 0, 1, 2], x.dtype), size=x.shape)
    x[rng.random(x.shape) < nan_share] = np.nan
    assert_max_pool_matches_the_reference(x, case["kernel"], case["stride"], case["padding"])


@given(window_cases(), st.floats(0.0, 0.3))
def test_relu_kernels_match_the_reference(case, special_share):
    """One pass for y and the mask, and one for the gradient, against NumPy's passes: NaN stays NaN in y
    and is masked out, -0 and -inf give 0, +inf passes; any layout in (a transposed view too)."""
    x = draw_input(case)
    rng = np.random.default_rng(case["seed"] + 4)
    special = rng.random(x.shape) < special_share
    x[special] = rng.choice(np.array([np.nan, -0.0, 0.0, np.inf, -np.inf], x.dtype), size=int(special.sum()))
    y, mask = cpu.relu_forward(x)
    y_ref, mask_ref = cpu.relu_forward_reference(x)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(mask, mask_ref)
    assert y.dtype == x.dtype and mask.dtype == bool
    dy = rng.standard_normal(x.shape).astype(x.dtype).transpose(0, 1, 3, 2).copy().transpose(0, 1, 3, 2)
    np.testing.assert_array_equal(cpu.relu_backward(dy, mask), cpu.relu_backward_reference(dy, mask_ref))


@pytest.mark.parametrize("x", [np.array([-1.0, 0.5, np.nan], np.float16), np.array(-2.0, np.float32),
                               np.array(3.0, np.float64)])
def test_relu_takes_numpys_passes_where_its_kernels_cannot_run(x):
    """float16 (no arithmetic in Numba) and 0-d arrays keep their dtype and shape."""
    y, mask = cpu.relu_forward(x)
    y_ref, mask_ref = cpu.relu_forward_reference(x)
    assert y.shape == x.shape and y.dtype == x.dtype and mask.shape == x.shape
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(cpu.relu_backward(np.ones_like(x), mask), mask_ref.astype(x.dtype))


@pytest.mark.parametrize("kernel, padding", [((2, 2), (0, 0, 3, 3)), ((2, 2), (2, 0, 0, 0)), ((1, 1), (0, 0, 1, 1))])
def test_maxpool_refuses_a_window_wholly_in_the_padding(kernel, padding):
    """The kernel reads an input value in every window: a direct call whose pads leave one without any
    is refused (the layers refuse such padding when they are made). In ceil_mode the window that would
    start in the trailing padding is dropped, and the same pads are fine."""
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
    with pytest.raises(ValueError, match="leaves a .* window with no input value"):
        cpu.maxpool_forward(x, kernel, (1, 1), padding)
    if kernel == (1, 1):
        np.testing.assert_array_equal(cpu.maxpool_forward(x, kernel, (1, 1), padding, ceil_mode=True)[0], x)


def test_relu_and_max_pool_run_their_kernels_on_minigrads_workers_too(rng):
    """ReLU's kernels are serial, and max pooling has serial ones: a worker gets the same answers."""
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    inside = cpu_runtime.parallel_map(lambda _: (cpu.relu_forward(x), cpu.maxpool_forward(x, (3, 3), (2, 2), (0, 0)),
                                                 cpu.maxpool_values(x, (3, 3), (2, 2), (0, 0))), range(2))
    y_ref, argmax_ref = cpu.maxpool_forward_reference(x, (3, 3), (2, 2), (0, 0))
    for (relu, mask), (y, argmax), values in inside:
        np.testing.assert_array_equal(relu, np.maximum(x, 0))
        np.testing.assert_array_equal(mask, x > 0)
        for a, b in [(y, y_ref), (argmax, argmax_ref), (values, y_ref)]:
            np.testing.assert_array_equal(a, b)


def test_maxpool_ties_pick_the_first_maximum():
    x = np.zeros((1, 1, 4, 4), np.float32)
    _, argmax = cpu.maxpool_forward(x, (3, 3), (1, 1), (1, 1))
    # With padding 1 the first in-bounds element of the top-left window is its (1, 1) position.
    assert argmax[0, 0, 0, 0] == 1 * 3 + 1 and argmax[0, 0, 1, 1] == 0


# beta 0.75 takes the kernels' square-root path, any other beta their powf path.
@given(window_cases(), st.sampled_from([1, 3, 5, 7]), st.sampled_from([1e-4, 0.5, 1.0]), st.sampled_from([0.75, 0.6]),
       st.sampled_from([1, 2, 3]))
def test_lrn_forward_and_backward(case, size, alpha, beta, groups):
    case = dict(case, shape=(case["shape"][0], groups * case["shape"][1]) + case["shape"][2:])
    a = draw_input(case)
    b, scale = cpu.lrn_forward(a, size, alpha, beta, 2.0, groups)
    b_ref, scale_ref = cpu.lrn_forward_reference(a, size, alpha, beta, 2.0, groups)
    tol = 1e-6 if a.dtype == np.float32 else 1e-13
    np.testing.assert_allclose(b, b_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(scale, scale_ref, rtol=tol)
    dy = np.random.default_rng(case["seed"] + 1).standard_normal(a.shape).astype(a.dtype)
    np.testing.assert_allclose(cpu.lrn_backward(dy, a, b, scale, size, alpha, beta, groups),
                               cpu.lrn_backward_reference(dy, a, b, scale, size, alpha, beta, groups),
                               rtol=tol * 10, atol=tol * 10)


@pytest.mark.parametrize("columns_per_chunk", [1, 7, 10_000])
def test_conv_gives_the_same_answer_however_the_batch_is_chunked(monkeypatch, columns_per_chunk, rng):
    monkeypatch.setattr(cpu_runtime, "COLUMNS_PER_CHUNK", columns_per_chunk)
    conv = mg.Conv2d(4, 6, 3, stride=2, padding=1, groups=2).astype(np.float64)
    x = rng.standard_normal((5, 4, 7, 6))
    y = conv.forward(x)
    np.testing.assert_allclose(y, _unchunked_conv(conv, x), rtol=1e-12)
    assert (result := mg.gradcheck(conv, x)).passed, result


def _unchunked_conv(conv, x):
    cols = cpu.im2col(x, conv.kernel_size, conv.stride, conv.padding)
    N, OC, OH, OW = conv.output_shape(x.shape)
    y = np.matmul(conv.weight.data.reshape(conv.groups, OC // conv.groups, -1), cols.reshape(conv.groups, -1, N * OH * OW))
    return y.reshape(OC, N, OH, OW).transpose(1, 0, 2, 3) + conv.bias.data[:, None, None]


def test_first_layer_can_skip_the_input_gradient(rng):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    full, skipping = mg.Conv2d(3, 4, 3), mg.Conv2d(3, 4, 3)
    skipping.load_state_dict(full.state_dict())
    skipping.needs_input_grad = False
    dy = rng.standard_normal(full.forward(x).shape).astype(np.float32)
    skipping.forward(x)
    assert full.backward(dy) is not None and skipping.backward(dy) is None
    np.testing.assert_array_equal(skipping.weight.grad, full.weight.grad)
    np.testing.assert_array_equal(skipping.bias.grad, full.bias.grad)


@given(st.integers(1, 300), st.sampled_from([np.float32, np.float64]), st.integers(0, 2**16))
def test_fused_sgd_update_matches_the_reference(size, dtype, seed):
    rng = np.random.default_rng(seed)
    w, v, g = (rng.standard_normal(size).astype(dtype) for _ in range(3))
    w_ref, v_ref = w.copy(), v.copy()
    cpu.sgd_update(w, v, g, 0.01, 0.9, 0.0005)
    cpu.sgd_update_reference(w_ref, v_ref, g, 0.01, 0.9, 0.0005)
    tol = 1e-6 if dtype == np.float32 else 1e-15
    np.testing.assert_allclose(v, v_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(w, w_ref, rtol=tol, atol=tol)
