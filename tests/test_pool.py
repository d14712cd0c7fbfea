"""MaxPool2d: overlapping windows, first-maximum routing, gradient conservation under ties, and the
ONNX/Caffe forms: asymmetric padding (top, left, bottom, right) and ceil_mode."""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import minigrad as mg
import reference


@st.composite
def pool_cases(draw):
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    case = dict(N=draw(st.integers(1, 2)), C=draw(st.integers(1, 3)),
                H=draw(st.integers(1, 9)), W=draw(st.integers(1, 9)), kernel=kernel,
                stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                padding=tuple(draw(st.integers(0, k - 1)) for k in kernel * 2),   # top, left, bottom, right
                ceil_mode=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))
    if draw(st.booleans()):
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


@given(pool_cases())
def test_matches_pytorch_with_ceil_mode(case):
    """PyTorch has ceil_mode, with symmetric padding only; the asymmetric pads are checked against the
    loop reference above and against ONNX Runtime (tests/test_onnx.py)."""
    torch = pytest.importorskip("torch")
    assume(len(case["padding"]) == 2 and all(2 * p <= k for p, k in zip(case["padding"], case["kernel"])))
    x = distinct_values((case["N"], case["C"], case["H"], case["W"]), case["seed"])
    pool = make_pool(case)
    expected = torch.nn.functional.max_pool2d(torch.from_numpy(x), case["kernel"], case["stride"],
                                              case["padding"], ceil_mode=case["ceil_mode"])
    np.testing.assert_array_equal(pool.forward(x), expected.numpy())


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
