"""Elementwise nonlinearities: ReLU (section 3.1), its leaky cousin, sigmoid and tanh."""
import numpy as np

from .. import ops
from ..backend import array_module
from .base import Layer


class ReLU(Layer):
    """f(x) = max(0, x); its derivative is 1 where x > 0 and 0 elsewhere (0 at the kink itself)."""
    SAVED = ("mask",)

    def __init__(self):
        self.mask = None

    def output_shape(self, input_shape):
        return self.check_shape(input_shape, None, "(any shape)")

    def forward(self, x):
        self.check_input(x, None, "(any shape)")
        y, self.mask = ops.relu_forward(x)   # the mask x > 0: all that backward needs
        return y

    def backward(self, dy):
        mask = self.saved(self.mask)
        self.check_grad(dy, mask.shape)
        return ops.relu_backward(dy, mask)


class LeakyReLU(Layer):
    """f(x) = x for x > 0, negative_slope * x otherwise: a unit that is never completely dead."""
    SAVED = ("slope",)

    def __init__(self, negative_slope=0.01):
        self.negative_slope = negative_slope
        self.slope = None

    def describe(self):
        return f"LeakyReLU(negative_slope={self.negative_slope})"

    def output_shape(self, input_shape):
        return self.check_shape(input_shape, None, "(any shape)")

    def forward(self, x):
        self.check_input(x, None, "(any shape)")
        xp = array_module(x)
        self.slope = xp.where(x > 0, x.dtype.type(1), x.dtype.type(self.negative_slope))
        return x * self.slope

    def backward(self, dy):
        slope = self.saved(self.slope)
        self.check_grad(dy, slope.shape)
        return dy * slope


class Sigmoid(Layer):
    """s(x) = 1 / (1 + e^-x), s' = s (1 - s): at most 1/4, which is why deep sigmoid nets vanish."""
    SAVED = ("y",)

    def __init__(self):
        self.y = None

    def output_shape(self, input_shape):
        return self.check_shape(input_shape, None, "(any shape)")

    def forward(self, x):
        self.check_input(x, None, "(any shape)")
        xp = array_module(x)
        # Written through tanh so that neither large positive nor large negative x overflows.
        self.y = 0.5 * (1 + xp.tanh(0.5 * x))
        return self.y

    def backward(self, dy):
        y = self.saved(self.y)
        self.check_grad(dy, y.shape)
        return dy * y * (1 - y)


class Tanh(Layer):
    """tanh(x), with derivative 1 - tanh(x)^2."""
    SAVED = ("y",)

    def __init__(self):
        self.y = None

    def output_shape(self, input_shape):
        return self.check_shape(input_shape, None, "(any shape)")

    def forward(self, x):
        self.check_input(x, None, "(any shape)")
        self.y = array_module(x).tanh(x)
        return self.y

    def backward(self, dy):
        y = self.saved(self.y)
        self.check_grad(dy, y.shape)
        return dy * (1 - y * y)


class Softmax(Layer):
    """softmax(x) along `axis`: the probabilities a classifier's graph often ends with (the BVLC AlexNet's
    "prob"). Training does not use it: SoftmaxCrossEntropy takes the logits, which is more stable."""
    SAVED = ("y",)

    def __init__(self, axis=-1):
        if not isinstance(axis, (int, np.integer)):
            raise ValueError(f"Softmax: axis must be an int, got {axis!r}")
        self.axis = int(axis)
        self.y = None

    def describe(self):
        return f"Softmax(axis={self.axis})"

    def output_shape(self, input_shape):
        shape = self.check_shape(input_shape, None, "(any shape)")
        if not -len(shape) <= self.axis < len(shape):
            raise ValueError(f"{self.describe()}: axis out of range for input of shape {shape}")
        return shape

    def forward(self, x):
        self.check_input(x, None, "(any shape)")
        self.output_shape(x.shape)
        xp = array_module(x)
        e = xp.exp(x - x.max(axis=self.axis, keepdims=True))     # shifted: no overflow
        self.y = e / e.sum(axis=self.axis, keepdims=True)
        return self.y

    def backward(self, dy):
        y = self.saved(self.y)
        self.check_grad(dy, y.shape)
        return y * (dy - (dy * y).sum(axis=self.axis, keepdims=True))


class Clip(Layer):
    """f(x) = min(max(x, low), high); the derivative is 1 strictly between the bounds, 0 outside.
    Clip(0, 6) is ReLU6, the activation of MobileNet's inverted residuals (ONNX writes it as Clip)."""
    SAVED = ("inside",)

    def __init__(self, low=None, high=None):
        for what, bound in (("low", low), ("high", high)):
            if bound is not None and not (isinstance(bound, (int, float, np.floating)) and np.isfinite(bound)):
                raise ValueError(f"Clip: {what} must be a finite number or None, got {bound!r}")
        if low is not None and high is not None and low > high:
            raise ValueError(f"Clip: low {low} is above high {high}")
        self.low, self.high = low, high
        self.inside = None

    def describe(self):
        return f"Clip({self.low}, {self.high})"

    def output_shape(self, input_shape):
        return self.check_shape(input_shape, None, "(any shape)")

    def forward(self, x):
        self.check_input(x, None, "(any shape)")
        xp = array_module(x)
        inside = xp.ones(x.shape, bool)
        if self.low is not None:
            inside &= x > self.low
        if self.high is not None:
            inside &= x < self.high
        self.inside = inside
        return xp.clip(x, self.low, self.high)

    def backward(self, dy):
        inside = self.saved(self.inside)
        self.check_grad(dy, inside.shape)
        return dy * inside


def ReLU6():
    """min(max(x, 0), 6): Clip(0, 6)."""
    return Clip(0.0, 6.0)
