"""Strided convolutions through space-to-depth and Winograd (ops/space_to_depth.py): the cut's kernel
against its NumPy reference, Conv2d's path against the loop reference, finite differences and im2col,
and the choice "auto" makes."""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import minigrad as mg
import reference
from test_winograd import make_conv
from minigrad.ops import parallel_map, space_to_depth, winograd


@st.composite
def cut_cases(draw):
    s = draw(st.integers(2, 4))
    H, W = draw(st.integers(1, 13)), draw(st.integers(1, 13))
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    rows, columns = draw(st.integers(1, 6)), draw(st.integers(1, 6))      # cut short or padded further
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return (draw(st.integers(1, 3)), draw(st.integers(1, 3)), H, W), s, padding, rows, columns, dtype


@given(cut_cases(), st.integers(0, 99))
def test_the_cut_matches_its_reference_and_its_adjoint(case, seed):
    shape, s, padding, rows, columns, dtype = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    blocks = space_to_depth.space_to_depth(x, s, padding, rows, columns)
    expected = space_to_depth.space_to_depth_reference(x, s, padding, rows, columns)
    assert blocks.shape == (shape[0], shape[1] * s * s, rows, columns) and blocks.dtype == dtype
    np.testing.assert_array_equal(blocks, expected.transpose(0, 3, 1, 2))
    # <cut(x), t> = <x, depth_to_space(t)>: the backward pass puts each gradient back where it came from
    t = rng.standard_normal(blocks.shape)
    back = space_to_depth.depth_to_space(t, shape, s, padding)
    np.testing.assert_allclose(np.sum(blocks * t), np.sum(x * back), rtol=1e-6 if dtype == np.float32 else 1e-12)


def test_the_cut_inside_a_worker_takes_the_reference(rng):
    """minigrad's workers cannot launch a parallel kernel (ops/cpu_runtime.py)."""
    x = rng.standard_normal((2, 3, 9, 10)).astype(np.float32)
    inside = parallel_map(lambda _: space_to_depth.space_to_depth(x, 4, (2, 2), 3, 3), range(2))
    for blocks in inside:
        np.testing.assert_array_equal(blocks, space_to_depth.space_to_depth(x, 4, (2, 2), 3, 3))


@st.composite
def strided_conv_cases(draw):
    stride = draw(st.integers(2, 4))
    kernel = draw(st.integers(stride + 1, 3 * stride))          # 2 or 3 blocks per side
    assume(space_to_depth.applies((kernel, kernel), (stride, stride)))
    groups = draw(st.integers(1, 2))
    padding = (draw(st.integers(0, kernel - 1)), draw(st.integers(0, kernel - 1)))
    H, W = draw(st.integers(kernel, 18)), draw(st.integers(kernel, 18))
    return dict(N=draw(st.integers(1, 3)), groups=groups, C=groups * draw(st.integers(1, 2)),
                OC=groups * draw(st.integers(1, 3)), H=H, W=W, kernel=kernel, stride=stride, padding=padding,
                bias=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


@given(strided_conv_cases())
def test_space_to_depth_forward_matches_loop_reference(case):
    conv, x = make_conv(case, "space_to_depth")
    y = conv.forward(x)
    assert conv.algorithm_used == "space_to_depth" and conv.tile is not None
    expected = reference.conv2d(x, conv.weight.data, conv.bias and conv.bias.data, (case["stride"],) * 2,
                                case["padding"], case["groups"])
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-10)


@given(strided_conv_cases())
def test_space_to_depth_backward_matches_gradcheck(case):
    conv, x = make_conv(case, "space_to_depth")
    result = mg.gradcheck(conv, x, eps=1e-3)     # linear in x and the weights: see test_conv_algorithms.py
    assert result.passed, result


def test_space_to_depth_matches_im2col_in_float32_on_alexnets_conv1(rng):
    """float32 rounding of F(5x5, 3x3) on the blocks, as Winograd's at conv3-conv5."""
    fast = mg.Conv2d(3, 96, 11, stride=4, padding=2)
    plain = mg.Conv2d(3, 96, 11, stride=4, padding=2, algorithm="im2col")
    plain.weight.data, plain.bias.data = fast.weight.data.copy(), rng.standard_normal(96).astype(np.float32)
    fast.bias.data = plain.bias.data.copy()
    x = rng.standard_normal((2, 3, 224, 224)).astype(np.float32)
    y_fast, y_plain = fast.forward(x), plain.forward(x)
    assert (fast.algorithm_used, fast.tile, plain.algorithm_used) == ("space_to_depth", 5, "im2col")
    dy = rng.standard_normal(y_fast.shape).astype(np.float32)
    for a, b in [(y_fast, y_plain), (fast.backward(dy), plain.backward(dy)), (fast.weight.grad, plain.weight.grad),
                 (fast.bias.grad, plain.bias.grad)]:
        assert np.abs(a - b).max() < 3e-5 * np.abs(b).max()


def test_auto_takes_space_to_depth_where_its_tile_passes_cost_less_than_im2cols_multiplications():
    """AlexNet's conv1 from batch 2 on; not at batch 1, where the weight transform is not shared, nor for
    ResNet's 7 x 7 stem, whose 12 block channels leave Winograd's tile passes the larger cost, nor at
    stride 1 (Winograd directly) or where a kernel's blocks are 1 x 1 (nothing to save)."""
    conv1 = mg.Conv2d(3, 96, 11, stride=4, padding=2)
    chosen = {}
    for batch in (1, 2, 32):
        conv1.forward(np.zeros((batch, 3, 224, 224), np.float32))
        chosen[batch] = conv1.algorithm_used
    assert chosen == {1: "im2col", 2: "space_to_depth", 32: "space_to_depth"}
    stem = mg.Conv2d(3, 64, 7, stride=2, padding=3)
    stem.forward(np.zeros((8, 3, 64, 64), np.float32))
    assert stem.algorithm_used == "im2col"
    patches = mg.Conv2d(3, 8, 4, stride=4)
    patches.forward(np.zeros((32, 3, 64, 64), np.float32))
    assert patches.algorithm_used == "im2col" and not space_to_depth.applies((4, 4), (4, 4))
    assert space_to_depth.applies((11, 11), (4, 4)) and not space_to_depth.applies((11, 11), (4, 2))


def test_space_to_depth_gives_gradients_for_an_empty_batch_and_skips_the_input_gradient_on_request(rng):
    conv = mg.Conv2d(2, 3, 5, stride=2, padding=1, algorithm="space_to_depth")
    assert conv.forward(np.zeros((0, 2, 9, 9), np.float32)).shape == (0, 3, 4, 4)
    assert conv.backward(np.zeros((0, 3, 4, 4), np.float32)).shape == (0, 2, 9, 9)
    conv.needs_input_grad = False
    conv.forward(rng.standard_normal((2, 2, 9, 9)).astype(np.float32))
    assert conv.backward(np.ones((2, 3, 4, 4), np.float32)) is None and conv.weight.grad.any()


@pytest.mark.parametrize("kwargs", [dict(stride=1), dict(stride=(4, 2)), dict(kernel_size=(11, 9)),
                                    dict(kernel_size=4), dict(kernel_size=40)])
def test_bad_space_to_depth_choices_are_refused_where_they_enter(kwargs):
    args = dict(in_channels=2, out_channels=3, kernel_size=11, stride=4, algorithm="space_to_depth") | kwargs
    with pytest.raises(ValueError, match="space-to-depth needs a square kernel") as error:
        mg.Conv2d(**args)
    assert "Conv2d(2, 3)" in str(error.value)


def test_the_tile_counts_agree_with_winograds_choice():
    """saves_time counts with winograd.multiplications, the count tile_size minimises."""
    for kernel, out, batch in [(3, 13, 32), (5, 27, 1), (3, 55, 2)]:
        tile = winograd.tile_size(kernel, out, out, batch)
        direct = batch * out * out * kernel * kernel
        assert winograd.multiplications(kernel, out, out, batch, tile) < direct
        assert all(winograd.multiplications(kernel, out, out, batch, m) >= winograd.multiplications(kernel, out, out, batch, tile)
                   for m in range(2, winograd.MAX_TILE - kernel + 2))
