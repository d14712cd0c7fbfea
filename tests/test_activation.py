"""ReLU, LeakyReLU, Sigmoid, Tanh, Softmax: forward against their formulas, backward against gradcheck."""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg

# Values kept at least 0.01 away from ReLU's kink at 0, where the derivative is undefined.
away_from_zero = hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=4, max_side=4),
                            elements=st.floats(0.01, 5)).flatmap(
    lambda a: hnp.arrays(np.float64, a.shape, elements=st.sampled_from([-1.0, 1.0])).map(lambda s: a * s))

FORMULAS = {
    "relu": (mg.ReLU, lambda x: np.maximum(x, 0)),
    "leaky": (lambda: mg.LeakyReLU(0.1), lambda x: np.where(x > 0, x, 0.1 * x)),
    "sigmoid": (mg.Sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    "tanh": (mg.Tanh, np.tanh),
    "softmax": (lambda: mg.Softmax(axis=-1), lambda x: np.exp(x) / np.exp(x).sum(axis=-1, keepdims=True)),
}


@pytest.mark.parametrize("name", FORMULAS)
@given(x=away_from_zero)
def test_forward_and_backward(name, x):
    make, formula = FORMULAS[name]
    np.testing.assert_allclose(make().forward(x), formula(x), rtol=1e-12, atol=1e-15)
    assert (result := mg.gradcheck(make(), x)).passed, result


def test_sigmoid_does_not_overflow_for_huge_inputs():
    with np.errstate(all="raise"):
        y = mg.Sigmoid().forward(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_array_equal(y, [0.0, 0.5, 1.0])


def test_relu_gradient_is_zero_at_and_below_the_kink():
    relu = mg.ReLU()
    relu.forward(np.array([-1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(relu.backward(np.ones(3)), [0.0, 0.0, 1.0])


def test_softmax_along_the_class_axis_does_not_overflow():
    y = mg.Softmax(axis=1).forward(np.array([[1000.0, 1000.0], [0.0, -1000.0]]))
    np.testing.assert_array_equal(y, [[0.5, 0.5], [1.0, 0.0]])


@pytest.mark.parametrize("make", [mg.ReLU, mg.LeakyReLU, mg.Sigmoid, mg.Tanh, mg.Softmax])
def test_errors(make):
    with pytest.raises(RuntimeError, match="backward called before forward"):
        make().backward(np.ones(3))
    with pytest.raises(ValueError, match="floating-point input"):
        make().forward(np.array([1, 2, 3]))
    layer = make()
    layer.forward(np.ones(3))
    with pytest.raises(ValueError, match="expected a gradient of shape"):
        layer.backward(np.ones(4))
