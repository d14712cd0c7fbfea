"""The gradient checker itself: a checker that never fails proves nothing."""
import numpy as np

import minigrad as mg


class LinearForgetsTheBias(mg.Linear):
    def backward(self, dy):
        self.weight.grad += dy.T @ self.x
        return dy @ self.weight.data


class LinearWithTransposedInputGradient(mg.Linear):
    def backward(self, dy):
        super().backward(dy)
        return (dy @ self.weight.data)[::-1]          # rows swapped: wrong for batch > 1


class ReLUThatLeaks(mg.ReLU):
    def backward(self, dy):
        return dy * (self.mask + 0.01)


def test_a_wrong_parameter_gradient_is_caught_and_named(rng):
    result = mg.gradcheck(LinearForgetsTheBias(3, 2), rng.standard_normal((4, 3)))
    assert not result.passed
    assert result.where.startswith("bias[") and result.errors["weight"] < 1e-6
    assert "FAILED" in str(result)


def test_a_wrong_input_gradient_is_caught(rng):
    result = mg.gradcheck(LinearWithTransposedInputGradient(3, 2), rng.standard_normal((4, 3)))
    assert not result.passed and result.where.startswith("input[")


def test_a_slightly_wrong_gradient_is_caught(rng):
    x = rng.uniform(0.1, 1, (3, 4)) * rng.choice([-1, 1], (3, 4))
    assert not mg.gradcheck(ReLUThatLeaks(), x).passed


def test_the_callers_layer_is_left_untouched(rng):
    layer = mg.Linear(3, 2)
    before = layer.weight.data.copy()
    mg.gradcheck(layer, rng.standard_normal((4, 3)))
    assert layer.weight.data.dtype == np.float32
    np.testing.assert_array_equal(layer.weight.data, before)
    assert not layer.weight.grad.any()


def test_sampling_checks_a_subset(rng):
    result = mg.gradcheck(mg.Linear(30, 20), rng.standard_normal((5, 30)), samples=10)
    assert result.passed and set(result.errors) == {"input", "weight", "bias"}


def test_a_first_layer_without_an_input_gradient_has_its_weights_checked(rng):
    conv = mg.Conv2d(2, 3, 3)
    conv.needs_input_grad = False
    result = mg.gradcheck(conv, rng.standard_normal((2, 2, 5, 5)))
    assert result.passed and set(result.errors) == {"weight", "bias"}


def test_a_backward_that_forgets_the_input_gradient_fails(rng):
    class Forgetful(mg.Linear):
        def backward(self, dy):
            super().backward(dy)

    result = mg.gradcheck(Forgetful(3, 2), rng.standard_normal((4, 3)))
    assert not result.passed and result.where.startswith("input")


def test_an_input_that_is_a_transposed_view_is_checked_as_well(rng):
    """A view in another order (an NHWC array seen as NCHW) must be perturbed in place too."""
    x = rng.standard_normal((2, 3, 4, 5)).transpose(0, 2, 3, 1)
    assert (result := mg.gradcheck(mg.Tanh(), x)).passed, result
    assert not mg.gradcheck(ReLUThatLeaks(), x * 0 + rng.uniform(0.1, 1, x.shape)).passed
