"""MaxPool2d: overlapping windows, first-maximum routing, gradient conservation under ties, and the
ONNX/Caffe forms: asymmetric padding (top, left, bottom, right) and ceil_mode. AvgPool2d on the same
windows, with either divisor, GlobalAvgPool2d, and ZeroPad2d (the padding ONNX graphs write apart)."""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import minigrad as mg
import reference


@st.composite
def pool_cases(draw, pytorch_padding=False):
    """pytorch_padding: the symmetric (ph, pw) of at most half the window that PyTorch's pools take."""
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    case = dict(N=draw(st.integers(1, 2)), C=draw(st.integers(1, 3)),
                H=draw(st.integers(1, 9)), W=draw(st.integers(1, 9)), kernel=kernel,
                stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                padding=tuple(draw(st.integers(0, k - 1)) for k in kernel * 2),   # top, left, bottom, right
                ceil_mode=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))
    if pytorch_padding:
        case["padding"] = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    elif draw(st.booleans()):
        case["padding"] = case["padding"][:2]                      # the symmetric (ph, pw) form
    top, left, bottom, right = case["padding"] * (2 if len(case["padding"]) == 2 else 1)
    assume(case["H"] + top + bottom >= kernel[0] and case["W"] + left + right >= kernel[1])
    return case


def make_pool(case):
    return mg.MaxPool2d(case["kernel"], case["stride"], case["padding"], ceil_mode=case["ceil_mode"])


def distinct_values(shape, seed):
    """Values at least 0.1 apart, so that no perturbation of gradcheck changes which one is the max."""
    size = int(np.prod(shape))
    return np.random.default_rng(seed).permutation(size).reshape(shape) * 0.1 - size * 0.05


@given(pool_cases())
def test_forward_matches_loop_reference(case):
    x = np.random.default_rng(case["seed"]).standard_normal((case["N"], case["C"], case["H"], case["W"]))
    np.testing.assert_array_equal(make_pool(case).forward(x), reference.maxpool2d(
        x, case["kernel"], case["stride"], case["padding"], case["ceil_mode"]))


@given(pool_cases())
def test_backward_matches_gradcheck(case):
    x = distinct_values((case["N"], case["C"], case["H"], case["W"]), case["seed"])
    assert (result := mg.gradcheck(make_pool(case), x)).passed, result


@given(pool_cases(pytorch_padding=True))
def test_matches_pytorch_with_ceil_mode(case):
    """PyTorch has ceil_mode, with symmetric padding only; the asymmetric pads are checked against the
    loop reference above and against ONNX Runtime (tests/test_onnx.py)."""
    torch = pytest.importorskip("torch")
    x = distinct_values((case["N"], case["C"], case["H"], case["W"]), case["seed"])
    pool = make_pool(case)
    expected = torch.nn.functional.max_pool2d(torch.from_numpy(x), case["kernel"], case["stride"],
                                              case["padding"], ceil_mode=case["ceil_mode"])
    np.testing.assert_array_equal(pool.forward(x), expected.numpy())


@given(pool_cases(pytorch_padding=True), st.floats(0.05, 0.6))
def test_nan_propagates_forward_and_backward_as_in_pytorch(case, share):
    """A window holding NaN gives NaN (a diverging run must not hide it) and its gradient goes where
    PyTorch sends it: to the window's last NaN. Windows with several NaNs are drawn too."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal((case["N"], case["C"], case["H"], case["W"]))
    x[rng.random(x.shape) < share] = np.nan
    pool = make_pool(case)
    x_torch = torch.from_numpy(x).requires_grad_()
    expected = torch.nn.functional.max_pool2d(x_torch, case["kernel"], case["stride"], case["padding"],
                                              ceil_mode=case["ceil_mode"])
    np.testing.assert_array_equal(pool.forward(x), expected.detach().numpy())
    dy = rng.standard_normal(expected.shape)
    expected.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(pool.backward(dy), x_torch.grad.numpy(), rtol=1e-13, atol=0)


def test_a_nan_is_not_pooled_away():
    pool = mg.MaxPool2d(2)
    x = np.array([[[[np.nan, 0.0], [0.0, 0.0]]]], np.float32)
    assert np.isnan(pool.forward(x)).all()
    np.testing.assert_array_equal(pool.backward(np.ones((1, 1, 1, 1), np.float32)), [[[[1, 0], [0, 0]]]])


def test_caffe_pool5_by_asymmetric_pads_or_ceil_mode():
    """bvlc_alexnet's pool5 rounds up (Caffe); ONNX writes it as pads (0, 0, 1, 1) instead."""
    x = np.random.default_rng(0).standard_normal((2, 3, 14, 14)).astype(np.float32)
    y_pads = mg.MaxPool2d(3, 2, (0, 0, 1, 1)).forward(x)
    y_ceil = mg.MaxPool2d(3, 2, ceil_mode=True).forward(x)
    assert y_pads.shape == y_ceil.shape == (2, 3, 7, 7)      # rounding down would give 6
    np.testing.assert_array_equal(y_pads, y_ceil)


def test_padded_cells_never_win():
    x = -np.ones((1, 1, 3, 3))
    pool = mg.MaxPool2d(2, 2, (1, 1, 0, 0), ceil_mode=True)
    y = pool.forward(x)
    np.testing.assert_array_equal(y, -np.ones((1, 1, 2, 2)))
    assert pool.backward(np.ones_like(y)).sum() == y.size


def test_alexnet_overlapping_pool_sizes():
    pool = mg.MaxPool2d(3, 2)          # z = 3, s = 2 (section 3.4)
    for size, expected in [(55, 27), (27, 13), (13, 6)]:
        assert pool.forward(np.zeros((1, 1, size, size), np.float32)).shape[-1] == expected


def test_ties_send_the_gradient_to_the_first_maximum_only():
    """After a ReLU many values are equal (zero); the gradient must not be duplicated among them."""
    x = np.zeros((1, 1, 5, 5))
    pool = mg.MaxPool2d(3, 2)
    y = pool.forward(x)
    dx = pool.backward(np.ones_like(y))
    assert dx.sum() == y.size                       # one unit of gradient per window, conserved
    expected = np.zeros((5, 5))
    for i, j in [(0, 0), (0, 2), (2, 0), (2, 2)]:   # each window's top-left element is its first max
        expected[i, j] += 1
    np.testing.assert_array_equal(dx[0, 0], expected)


def test_overlapping_windows_add_their_gradients():
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 1.0                             # the centre belongs to all four 3/2 windows
    pool = mg.MaxPool2d(3, 2)
    dy = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    pool.forward(x)
    assert pool.backward(dy)[0, 0, 2, 2] == 10.0


def test_stride_defaults_to_the_window():
    assert mg.MaxPool2d(2).stride == (2, 2)


@pytest.mark.parametrize("make, shape, message", [
    (lambda: mg.MaxPool2d(3, 2), (1, 1, 2, 8), r"window \(3, 3\) is larger than the padded input"),
    (lambda: mg.MaxPool2d(3, 2), (1, 8, 8), "expected a 4-D input"),
])
def test_bad_input(make, shape, message):
    with pytest.raises(ValueError, match=message):
        make().forward(np.zeros(shape, np.float32))


def test_bad_construction():
    with pytest.raises(ValueError, match="padding must be smaller than the window"):
        mg.MaxPool2d(3, 2, padding=3)
    with pytest.raises(ValueError, match="stride >= 1"):
        mg.MaxPool2d(3, 0)
    with pytest.raises(ValueError, match="padding must be smaller than the window"):
        mg.MaxPool2d(3, 2, padding=(0, 0, 3, 1))
    with pytest.raises(ValueError, match=r"\(top, left, bottom, right\)"):
        mg.MaxPool2d(3, 2, padding=(0, 0, 1))


# --- average pooling ----------------------------------------------------------------------------------
def make_avgpool(case, count_include_pad):
    return mg.AvgPool2d(case["kernel"], case["stride"], case["padding"], case["ceil_mode"], count_include_pad)


@given(pool_cases(), st.booleans())
def test_average_pool_forward_matches_loop_reference(case, count_include_pad):
    x = np.random.default_rng(case["seed"]).standard_normal((case["N"], case["C"], case["H"], case["W"]))
    np.testing.assert_allclose(make_avgpool(case, count_include_pad).forward(x), reference.avgpool2d(
        x, case["kernel"], case["stride"], case["padding"], case["ceil_mode"], count_include_pad), rtol=1e-13,
        atol=1e-14)                 # (a mean near 0 of values near 1 keeps only an absolute precision)


@given(pool_cases(), st.booleans())
def test_average_pool_backward_matches_gradcheck(case, count_include_pad):
    x = np.random.default_rng(case["seed"]).standard_normal((case["N"], case["C"], case["H"], case["W"]))
    assert (result := mg.gradcheck(make_avgpool(case, count_include_pad), x)).passed, result


@given(pool_cases(pytorch_padding=True), st.booleans())
def test_average_pool_matches_pytorch(case, count_include_pad):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(case["seed"]).standard_normal((case["N"], case["C"], case["H"], case["W"]))
    pool = make_avgpool(case, count_include_pad)
    x_torch = torch.from_numpy(x).requires_grad_()
    expected = torch.nn.functional.avg_pool2d(x_torch, case["kernel"], case["stride"], case["padding"],
                                              ceil_mode=case["ceil_mode"], count_include_pad=count_include_pad)
    np.testing.assert_allclose(pool.forward(x), expected.detach().numpy(), rtol=1e-13, atol=1e-14)
    dy = np.random.default_rng(case["seed"] + 1).standard_normal(expected.shape)
    expected.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(pool.backward(dy), x_torch.grad.numpy(), rtol=1e-13, atol=1e-15)


def test_the_divisor_counts_padding_but_never_what_lies_past_it():
    x = np.ones((1, 1, 3, 3))
    # 2x2 windows, stride 2, padding 1, ceil_mode: windows start at -1, 1 and 3 (the last overhangs).
    counted = mg.AvgPool2d(2, 2, 1, ceil_mode=True).forward(x)
    assert counted.shape == (1, 1, 2, 2) and np.all(counted == 0.25 * np.array([[1, 2], [2, 4]]))
    assert np.all(mg.AvgPool2d(2, 2, 1, ceil_mode=True, count_include_pad=False).forward(x) == 1)
    ceil = mg.AvgPool2d(2, 2, ceil_mode=True).forward(x)           # the last window covers one row of two
    assert ceil.shape == (1, 1, 2, 2) and np.all(ceil == 1)


def test_global_average_pool_takes_any_size_and_spreads_the_gradient_evenly(rng):
    pool = mg.GlobalAvgPool2d()
    for shape in ((2, 3, 5, 7), (1, 4, 1, 1)):
        x = rng.standard_normal(shape)
        np.testing.assert_allclose(pool.forward(x), x.mean(axis=(2, 3), keepdims=True))
        assert (result := mg.gradcheck(pool, x)).passed, result
    with pytest.raises(ValueError, match=r"GlobalAvgPool2d.backward: expected a gradient of shape \(1, 4, 1, 1\)"):
        pool.backward(np.ones((1, 4)))
    with pytest.raises(ValueError, match="GlobalAvgPool2d: expected a 4-D input"):
        pool.forward(np.ones((2, 3)))


def test_average_pool_bad_construction_names_the_layer():
    with pytest.raises(ValueError, match=r"AvgPool2d\(kernel_size=\(3, 3\).*padding must be smaller"):
        mg.AvgPool2d(3, 2, padding=3)
    with pytest.raises(ValueError, match=r"AvgPool2d: padding must be an int"):
        mg.AvgPool2d(3, 2, padding=(0, 0, 1))


def test_zero_padding_adds_zeros_and_passes_back_the_gradient_of_x(rng):
    pad = mg.ZeroPad2d((1, 0, 2, 3))
    x = rng.standard_normal((2, 3, 4, 5))
    y = pad.forward(x)
    assert y.shape == (2, 3, 7, 8) and np.array_equal(y[:, :, 1:5, 0:5], x) and np.abs(y).sum() == np.abs(x).sum()
    assert (result := mg.gradcheck(pad, x)).passed, result
    nhwc = mg.ZeroPad2d((1, 0, 2, 3), axes=(1, 2))             # the same padding of TensorFlow's layout
    np.testing.assert_array_equal(nhwc.forward(x.transpose(0, 2, 3, 1)), y.transpose(0, 2, 3, 1))
    assert (result := mg.gradcheck(nhwc, x.transpose(0, 2, 3, 1))).passed, result
    assert mg.ZeroPad2d((np.int64(1), 2)).pads == (1, 2, 1, 2) and mg.ZeroPad2d(np.int64(3)).pads == (3,) * 4
    with pytest.raises(ValueError, match=r"ZeroPad2d: padding must be an int, \(ph, pw\) or \(top, left, bottom, right\)"):
        mg.ZeroPad2d((1, -1, 0, 0))
    with pytest.raises(ValueError, match=r"ZeroPad2d: axes must be \(2, 3\) \(NCHW\) or \(1, 2\)"):
        mg.ZeroPad2d(1, axes=(1, 3))


def test_transpose_permutes_and_its_backward_permutes_back(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    to_nhwc = mg.Transpose((0, 2, 3, 1))
    np.testing.assert_array_equal(to_nhwc.forward(x), x.transpose(0, 2, 3, 1))
    assert (result := mg.gradcheck(to_nhwc, x)).passed, result
    with pytest.raises(ValueError, match=r"Transpose: axes must be a permutation .* keeps the batch axis 0 first"):
        mg.Transpose((1, 0, 2, 3))
    with pytest.raises(ValueError, match=r"Transpose\(\(0, 2, 3, 1\)\): expected a 4-D input"):
        to_nhwc.forward(np.zeros((2, 3)))


def test_an_eval_forward_finds_the_maxima_alone_and_the_positions_when_asked(rng):
    """Eval mode keeps the input instead of argmax; argmax and backward then agree with training mode's."""
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    dy = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    trained, evaluated = mg.MaxPool2d(3, 2), mg.MaxPool2d(3, 2).eval()
    assert evaluated.argmax is None
    y_train, y_eval = trained.forward(x), evaluated.forward(x)
    np.testing.assert_array_equal(y_train, y_eval)
    assert evaluated._argmax is None and evaluated._x is x           # nothing found yet
    np.testing.assert_array_equal(evaluated.argmax, trained.argmax)
    assert evaluated._x is None                                       # the input is let go once it is used
    np.testing.assert_array_equal(evaluated.backward(dy), trained.backward(dy))
    evaluated.forward(x)
    evaluated.release()
    with pytest.raises(RuntimeError, match="backward called before forward"):
        evaluated.backward(dy)
