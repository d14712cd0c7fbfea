"""Winograd's minimal filtering (ops/winograd.py): its transforms, its tile kernels against their NumPy
references, and Conv2d's Winograd path against the loop reference, im2col and finite differences."""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import minigrad as mg
import reference
from minigrad.ops import winograd

FILTERS = [(m, r) for r in range(2, winograd.MAX_TILE) for m in range(1, winograd.MAX_TILE - r + 2)]


@pytest.mark.parametrize("m, r", FILTERS)
def test_transforms_compute_the_correlation_of_a_tile(m, r, rng):
    """1-D: A^T [(G g) * (B^T d)] = (sum_k g_k d_{i+k})_i; 2-D: the same nested in both directions."""
    AT, G, BT = winograd.transforms(m, r)
    assert AT.shape == (m, m + r - 1) and G.shape == (m + r - 1, r) and BT.shape == (m + r - 1,) * 2
    d, g = rng.standard_normal(m + r - 1), rng.standard_normal(r)
    np.testing.assert_allclose(AT @ ((G @ g) * (BT @ d)), np.correlate(d, g, "valid"), rtol=1e-12, atol=1e-12)
    d2, g2 = rng.standard_normal((m + r - 1,) * 2), rng.standard_normal((r, r))
    expected = [[np.sum(d2[i:i + r, j:j + r] * g2) for j in range(m)] for i in range(m)]
    np.testing.assert_allclose(AT @ ((G @ g2 @ G.T) * (BT @ d2 @ BT.T)) @ AT.T, expected, rtol=1e-11, atol=1e-11)


def test_the_transforms_are_the_papers_for_f_2_3():
    """Lavin & Gray's F(2, 3) up to the signs of B^T's rows (a sign moved from B^T into G)."""
    AT, G, BT = winograd.transforms(2, 3)
    np.testing.assert_array_equal(AT, [[1, 1, 1, 0], [0, 1, -1, 1]])
    np.testing.assert_array_equal(np.abs(BT), [[1, 0, 1, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 1, 0, 1]])
    np.testing.assert_array_equal(np.abs(G), [[1, 0, 0], [.5, .5, .5], [.5, .5, .5], [0, 0, 1]])


def test_tile_size_picks_the_fewest_multiplications():
    assert winograd.tile_size(3, 13, 13) == 5          # conv3-conv5: 9 tiles of 7 x 7 (441 < 169 * 9)
    assert winograd.tile_size(5, 27, 27) == 4          # conv2: 49 tiles of 8 x 8
    assert winograd.tile_size(3, 1, 1) is None         # one output: direct convolution needs 9


@st.composite
def tile_cases(draw):
    m, r = draw(st.sampled_from([(2, 3), (4, 3), (2, 5), (3, 2)]))
    forward = draw(st.booleans())                      # B^T on input windows, or A on output gradients
    AT, _, BT = winograd.transforms(m, r)
    mat, size = (BT, m + r - 1) if forward else (AT.T, m)
    pad = (draw(st.integers(0, r - 1)), draw(st.integers(0, r - 1))) if forward else (0, 0)
    H, W = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    tiles_h, tiles_w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    return mat, m, pad, tiles_h, tiles_w, (draw(st.integers(1, 2)), H, W, draw(st.integers(1, 5))), draw(st.integers(0, 99))


@given(tile_cases())
def test_tile_kernels_match_their_references_and_are_adjoint(case):
    mat, step, pad, tiles_h, tiles_w, shape, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    tiles = winograd.tiles(x, mat, step, pad, tiles_h, tiles_w)
    np.testing.assert_allclose(tiles, winograd.tiles_reference(x, mat, step, pad, tiles_h, tiles_w), atol=1e-12)
    t = rng.standard_normal(tiles.shape)
    out = winograd.untile(t, mat.T, step, pad, tiles_h, tiles_w, np.zeros(shape))
    expected = winograd.untile_reference(t, mat.T, step, pad, tiles_h, tiles_w, np.zeros(shape))
    np.testing.assert_allclose(out, expected, atol=1e-12)
    # <tiles(x), t> = <x, untile(t)>: the backward pass's tile passes are the forward pass's transposes
    np.testing.assert_allclose(np.sum(tiles * t), np.sum(x * out), rtol=1e-10, atol=1e-10)


@st.composite
def winograd_conv_cases(draw):
    groups, kernel = draw(st.integers(1, 2)), draw(st.integers(2, 5))
    padding = (draw(st.integers(0, kernel - 1)), draw(st.integers(0, kernel - 1)))
    H, W = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    assume(H + 2 * padding[0] >= kernel and W + 2 * padding[1] >= kernel)
    return dict(N=draw(st.integers(1, 4)), groups=groups, C=groups * draw(st.integers(1, 3)),
                OC=groups * draw(st.integers(1, 3)), H=H, W=W, kernel=kernel, padding=padding,
                bias=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


def make_conv(case, algorithm="winograd"):
    """A float64 Conv2d of the drawn case (stride 1 unless the case says), random weights, and an input."""
    conv = mg.Conv2d(case["C"], case["OC"], case["kernel"], case.get("stride", 1), case["padding"], case["groups"],
                     bias=case["bias"], algorithm=algorithm).astype(np.float64)
    rng = np.random.default_rng(case["seed"])
    conv.weight.data = rng.standard_normal(conv.weight.shape)
    if conv.bias is not None:
        conv.bias.data = rng.standard_normal(conv.bias.shape)
    return conv, rng.standard_normal((case["N"], case["C"], case["H"], case["W"]))


@given(winograd_conv_cases())
def test_winograd_forward_matches_loop_reference(case):
    conv, x = make_conv(case)
    y = conv.forward(x)
    assert conv.tile is not None
    expected = reference.conv2d(x, conv.weight.data, conv.bias and conv.bias.data, (1, 1), case["padding"], case["groups"])
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-10)


@given(winograd_conv_cases())
def test_winograd_backward_matches_gradcheck(case):
    conv, x = make_conv(case)
    result = mg.gradcheck(conv, x, eps=1e-3)     # linear in x and the weights: see test_conv_algorithms.py
    assert result.passed, result


@pytest.mark.parametrize("C, OC, kernel, padding, groups, size", [
    (96, 256, 5, 2, 2, 27),          # AlexNet's conv2: F(4x4, 5x5)
    (256, 384, 3, 1, 1, 13),         # conv3: F(5x5, 3x3)
    (384, 256, 3, 1, 2, 13),         # conv5
])
def test_winograd_matches_im2col_in_float32_on_alexnet_shapes(C, OC, kernel, padding, groups, size, rng):
    """float32 rounding grows with the tile (benchmarks/results/cpu_alexnet_vm.md); it stays 30x below
    1e-3 of the scale."""
    fast = mg.Conv2d(C, OC, kernel, padding=padding, groups=groups)
    plain = mg.Conv2d(C, OC, kernel, padding=padding, groups=groups, algorithm="im2col")
    plain.weight.data, plain.bias.data = fast.weight.data.copy(), rng.standard_normal(OC).astype(np.float32)
    fast.bias.data = plain.bias.data.copy()
    x = rng.standard_normal((4, C, size, size)).astype(np.float32)
    y_fast, y_plain = fast.forward(x), plain.forward(x)
    assert fast.tile == winograd.tile_size(kernel, size, size, batch=4) and plain.tile is None
    dy = rng.standard_normal(y_fast.shape).astype(np.float32)
    for a, b in [(y_fast, y_plain), (fast.backward(dy), plain.backward(dy)), (fast.weight.grad, plain.weight.grad),
                 (fast.bias.grad, plain.bias.grad)]:
        assert np.abs(a - b).max() < 3e-5 * np.abs(b).max()


def test_auto_takes_winograd_for_alexnets_stride_1_convolutions_only():
    net = mg.Sequential(mg.Conv2d(3, 8, 11, stride=4, padding=2), mg.Conv2d(8, 8, 5, padding=2),
                        mg.Conv2d(8, 8, 3, padding=1), mg.Conv2d(8, 8, (3, 1), padding=1), mg.Conv2d(8, 8, 1))
    net.forward(np.zeros((32, 3, 55, 55), np.float32))              # 13 x 13 after the first
    assert [layer.tile for layer in net.layers] == [None, 4, 5, None, None]


def test_auto_counts_the_weight_transform_which_the_batch_does_not_share():
    """At batch 1 conv3's transformed weights cost more than the multiplications Winograd saves."""
    assert winograd.tile_size(3, 13, 13, batch=1) is None and winograd.tile_size(3, 13, 13, batch=32) == 5
    assert winograd.tile_size(5, 27, 27, batch=1) == 3      # conv2 still gains, with fewer transformed values
    conv3 = mg.Conv2d(8, 8, 3, padding=1)
    conv3.forward(np.zeros((1, 8, 13, 13), np.float32))
    assert conv3.algorithm_used == "im2col"
    conv3.forward(np.zeros((32, 8, 13, 13), np.float32))
    assert conv3.algorithm_used == "winograd" and conv3.tile == 5


def test_winograd_gives_gradients_for_an_empty_batch_and_skips_the_input_gradient_on_request(rng):
    conv = mg.Conv2d(2, 3, 3, padding=1, algorithm="winograd")
    assert conv.forward(np.zeros((0, 2, 5, 5), np.float32)).shape == (0, 3, 5, 5)
    assert conv.backward(np.zeros((0, 3, 5, 5), np.float32)).shape == (0, 2, 5, 5)
    conv.needs_input_grad = False
    conv.forward(rng.standard_normal((2, 2, 5, 5)).astype(np.float32))
    assert conv.backward(np.ones((2, 3, 5, 5), np.float32)) is None and conv.weight.grad.any()


@pytest.mark.parametrize("kwargs, message", [
    (dict(algorithm="fft"), "algorithm must be one of"),
    (dict(algorithm="winograd", stride=2), "needs stride 1"),
    (dict(algorithm="winograd", kernel_size=(3, 5)), "square kernel"),
    (dict(algorithm="winograd", kernel_size=1), "square kernel of 2"),
])
def test_bad_algorithm_choices_are_refused_where_they_enter(kwargs, message):
    args = dict(in_channels=2, out_channels=3, kernel_size=3) | kwargs
    with pytest.raises(ValueError, match=message) as error:
        mg.Conv2d(**args)
    assert "Conv2d(2, 3)" in str(error.value)
