"""Each convolution algorithm's module on its own, through the interface ops/__init__.py describes
(forward(x, weight, bias, stride, padding, groups) -> (y, saved); backward(dy, saved,
needs_input_grad) -> (dx, dweight, dbias)), without Conv2d: forward against the loop reference,
backward against gradcheck in float64, and the interface's edges."""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import minigrad as mg
import reference
from minigrad.ops import im2col_gemm, winograd

ALGORITHMS = {"im2col_gemm": im2col_gemm, "winograd": winograd}


class OneAlgorithm(mg.Layer):
    """Just enough of a layer around one algorithm for mg.gradcheck: parameters, forward, backward."""

    def __init__(self, name, weight, bias, stride, padding, groups):
        self.name, self.stride, self.padding, self.groups = name, stride, padding, groups
        self.weight = mg.Parameter(weight, "weight")
        self.bias = mg.Parameter(bias, "bias") if bias is not None else None
        self.saved = None

    def forward(self, x):
        bias = None if self.bias is None else self.bias.data
        y, self.saved = ALGORITHMS[self.name].forward(x, self.weight.data, bias, self.stride, self.padding, self.groups)
        return y

    def backward(self, dy):
        dx, weight_grad, bias_grad = ALGORITHMS[self.name].backward(dy, self.saved, True)
        self.weight.grad += weight_grad
        if self.bias is not None:
            self.bias.grad += bias_grad
        return dx


@st.composite
def cases(draw, name):
    """Any stride and (non-square) kernel for im2col; stride 1 and square kernels of 2 to 5 for Winograd."""
    groups = draw(st.integers(1, 2))
    if name == "winograd":
        kernel, stride = (draw(st.integers(2, 5)),) * 2, (1, 1)
    else:
        kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, kernel[0] - 1)), draw(st.integers(0, kernel[1] - 1)))
    H, W = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    assume(H + 2 * padding[0] >= kernel[0] and W + 2 * padding[1] >= kernel[1])
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    C, OC = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    x = rng.standard_normal((draw(st.integers(1, 3)), C, H, W))
    weight = rng.standard_normal((OC, C // groups) + kernel)
    bias = rng.standard_normal(OC) if draw(st.booleans()) else None
    return OneAlgorithm(name, weight, bias, stride, padding, groups), x


@pytest.mark.parametrize("name", ALGORITHMS)
@given(data=st.data())
def test_forward_matches_the_loop_reference(name, data):
    layer, x = data.draw(cases(name))
    expected = reference.conv2d(x, layer.weight.data, None if layer.bias is None else layer.bias.data,
                                layer.stride, layer.padding, layer.groups)
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ALGORITHMS)
@given(data=st.data())
def test_backward_matches_gradcheck(name, data):
    layer, x = data.draw(cases(name))
    # A convolution is linear in x, in the weight and in the bias, so central differences have no
    # truncation error: a large step only shrinks the rounding of L (larger in Winograd's transforms),
    # which at the default step can exceed the tolerance where a gradient is exactly zero.
    result = mg.gradcheck(layer, x, eps=1e-3)
    assert result.passed, result
    assert set(result.errors) == {"input", "weight"} | ({"bias"} if layer.bias is not None else set())


@pytest.mark.parametrize("name", ALGORITHMS)
def test_backward_skips_what_is_not_asked_for_and_an_empty_batch_gives_zero_gradients(name, rng):
    weight = rng.standard_normal((4, 3, 3, 3))
    x, bias = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal(4)
    y, saved = ALGORITHMS[name].forward(x, weight, None, (1, 1), (1, 1), 1)
    dx, weight_grad, bias_grad = ALGORITHMS[name].backward(np.ones_like(y), saved, needs_input_grad=False)
    assert dx is None and bias_grad is None and weight_grad.shape == weight.shape and weight_grad.any()
    y, saved = ALGORITHMS[name].forward(x[:0], weight, bias, (1, 1), (1, 1), 1)
    dx, weight_grad, bias_grad = ALGORITHMS[name].backward(y, saved, needs_input_grad=True)
    assert y.shape == (0, 4, 6, 6) and dx.shape == (0, 3, 6, 6)
    assert weight_grad.shape == weight.shape and not weight_grad.any()
    assert bias_grad.shape == (4,) and not bias_grad.any()


def test_winograd_refuses_a_convolution_it_cannot_compute():
    with pytest.raises(ValueError, match=r"winograd.forward: needs stride 1 .* got stride \(2, 2\)"):
        winograd.forward(np.zeros((1, 2, 8, 8)), np.zeros((3, 2, 3, 3)), None, (2, 2), (0, 0), 1)
