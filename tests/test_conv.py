"""Conv2d: forward against a loop reference, backward against gradcheck, on drawn shapes."""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import minigrad as mg
import reference


@st.composite
def conv_cases(draw):
    """Non-square images, kernels, strides and paddings (an im2col that swaps H and W fails here)."""
    groups = draw(st.integers(1, 3))
    case = dict(
        N=draw(st.integers(1, 2)), groups=groups,
        C=groups * draw(st.integers(1, 2)), OC=groups * draw(st.integers(1, 2)),
        H=draw(st.integers(1, 7)), W=draw(st.integers(1, 7)),
        kernel=(draw(st.integers(1, 4)), draw(st.integers(1, 4))),
        stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        padding=(draw(st.integers(0, 2)), draw(st.integers(0, 2))),
        bias=draw(st.booleans()), seed=draw(st.integers(0, 2**16)),
        algorithm=draw(st.sampled_from(["auto", "im2col"])))      # auto: Winograd where it applies
    assume(case["H"] + 2 * case["padding"][0] >= case["kernel"][0])
    assume(case["W"] + 2 * case["padding"][1] >= case["kernel"][1])
    return case


def make_conv(case):
    conv = mg.Conv2d(case["C"], case["OC"], case["kernel"], case["stride"], case["padding"],
                     case["groups"], bias=case["bias"], algorithm=case["algorithm"]).astype(np.float64)
    rng = np.random.default_rng(case["seed"])
    conv.weight.data = rng.standard_normal(conv.weight.shape)
    if conv.bias is not None:
        conv.bias.data = rng.standard_normal(conv.bias.shape)
    x = rng.standard_normal((case["N"], case["C"], case["H"], case["W"]))
    return conv, x


@given(conv_cases())
def test_forward_matches_loop_reference(case):
    conv, x = make_conv(case)
    expected = reference.conv2d(x, conv.weight.data, conv.bias and conv.bias.data,
                                case["stride"], case["padding"], case["groups"])
    np.testing.assert_allclose(conv.forward(x), expected, rtol=1e-12, atol=1e-12)


@given(conv_cases())
def test_backward_matches_gradcheck(case):
    conv, x = make_conv(case)
    result = mg.gradcheck(conv, x)
    assert result.passed, result
    assert set(result.errors) == {"input", "weight"} | ({"bias"} if case["bias"] else set())


def test_groups_equal_separate_convolutions_on_channel_halves(rng):
    """The paper's two-GPU split (3.2): groups=2 is two convolutions that each see half the maps."""
    x = rng.standard_normal((2, 4, 6, 5))
    grouped = mg.Conv2d(4, 6, 3, padding=1, groups=2).astype(np.float64)
    halves = [mg.Conv2d(2, 3, 3, padding=1).astype(np.float64) for _ in range(2)]
    for g, half in enumerate(halves):
        half.weight.data = grouped.weight.data[3 * g:3 * g + 3].copy()
        half.bias.data = grouped.bias.data[3 * g:3 * g + 3].copy()
    expected = np.concatenate([h.forward(x[:, 2 * g:2 * g + 2]) for g, h in enumerate(halves)], axis=1)
    np.testing.assert_allclose(grouped.forward(x), expected, rtol=1e-12)


def test_parameter_gradients_accumulate_until_zero_grad(rng):
    conv = mg.Conv2d(2, 3, 3).astype(np.float64)
    x = rng.standard_normal((2, 2, 5, 5))
    dy = rng.standard_normal(conv.forward(x).shape)
    dx_first = conv.backward(dy)
    once = conv.weight.grad.copy()
    conv.forward(x)
    dx_second = conv.backward(dy)
    np.testing.assert_allclose(conv.weight.grad, 2 * once)       # parameter gradients add up
    np.testing.assert_allclose(dx_second, dx_first)               # the input gradient is fresh
    conv.zero_grad()
    assert not conv.weight.grad.any() and not conv.bias.grad.any()


def test_an_empty_batch_gives_empty_outputs_and_no_gradient():
    conv = mg.Conv2d(3, 4, 3, padding=1)
    y = conv.forward(np.zeros((0, 3, 5, 5), np.float32))
    assert y.shape == (0, 4, 5, 5)
    assert conv.backward(np.zeros_like(y)).shape == (0, 3, 5, 5)
    assert not conv.weight.grad.any() and not conv.bias.grad.any()


def test_float32_forward_stays_float32(rng):
    conv = mg.Conv2d(3, 4, 3)
    y = conv.forward(rng.standard_normal((1, 3, 8, 8)).astype(np.float32))
    assert y.dtype == np.float32
    assert conv.backward(np.ones_like(y)).dtype == np.float32


@pytest.mark.parametrize("kwargs, message", [
    (dict(in_channels=4, out_channels=6, kernel_size=3, groups=4), "groups=4 must divide"),
    (dict(in_channels=3, out_channels=6, kernel_size=0), "kernel_size >= 1"),
    (dict(in_channels=3, out_channels=6, kernel_size=3, stride=0), "stride >= 1"),
    (dict(in_channels=3, out_channels=6, kernel_size=(3, 3, 3)), "kernel_size must be an int or a pair"),
    (dict(in_channels=0, out_channels=6, kernel_size=3), "in_channels must be a positive int"),
])
def test_bad_construction_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        mg.Conv2d(**kwargs)


@pytest.mark.parametrize("shape, message", [
    ((3, 8, 8), "expected a 4-D input"),
    ((1, 4, 8, 8), "expected 3 input channels"),
    ((1, 3, 2, 8), r"kernel \(3, 3\) is larger than the padded input \(2, 8\)"),
])
def test_bad_input_raises_naming_the_layer(shape, message):
    conv = mg.Conv2d(3, 6, 3)
    with pytest.raises(ValueError, match=message) as error:
        conv.forward(np.zeros(shape, np.float32))
    assert "Conv2d(3, 6" in str(error.value)


def test_dtype_mismatch_and_backward_before_forward():
    conv = mg.Conv2d(3, 6, 3)
    with pytest.raises(ValueError, match="expected float32 input .* got float64"):
        conv.forward(np.zeros((1, 3, 5, 5)))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        mg.Conv2d(3, 6, 3).backward(np.zeros((1, 6, 3, 3), np.float32))
    conv.forward(np.zeros((1, 3, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"expected a gradient of shape \(1, 6, 3, 3\)"):
        conv.backward(np.zeros((1, 6, 4, 3), np.float32))
