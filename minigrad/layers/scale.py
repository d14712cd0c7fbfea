"""Scale and Bias: a trainable multiplier or offset broadcast over the input, the per-channel scale and
shift that graphs write as Mul and Add by a constant (BatchNorm folded into them, a layer scale, a
bias added after a convolution exported without one)."""
import numpy as np

from ..ops.broadcast import broadcast_shape, sum_to_shape
from .base import Layer, Parameter


class _Broadcast(Layer):
    """One trainable array `weight` of `shape`, broadcast against the input as NumPy broadcasts (e.g.
    (C, 1, 1) or (1, C, 1, 1) per channel of (N, C, H, W) maps, () one value for all)."""

    def __init__(self, shape, fill):
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        if not all(isinstance(size, (int, np.integer)) and size >= 1 for size in shape):
            raise ValueError(f"{type(self).__name__}: shape must be sizes >= 1, got {shape!r}")
        self.weight = Parameter(np.full(shape, fill, np.float32), "weight")
        self.x = None

    def describe(self):
        return f"{type(self).__name__}({tuple(self.weight.data.shape)})"

    def output_shape(self, input_shape):
        shape = broadcast_shape([tuple(input_shape), self.weight.data.shape], self.describe())
        if len(shape) != len(input_shape) or any(a != b and None not in (a, b) for a, b in zip(shape, input_shape)):
            raise ValueError(f"{self.describe()}: its weight would stretch an input of shape {tuple(input_shape)} "
                             f"to {shape}")
        return tuple(input_shape)


class Scale(_Broadcast):
    """y = x * w, w broadcast (the per-channel scale of a graph's Mul by a constant); starts at 1."""
    SAVED = ("x",)

    def __init__(self, shape):
        super().__init__(shape, 1.0)

    def forward(self, x):
        self.check_input(x, None, "(N, ...)")
        self.output_shape(x.shape)
        self.x = x
        return x * self.weight.data

    def backward(self, dy):
        x = self.saved(self.x)
        self.check_grad(dy, x.shape)
        self.weight.grad += sum_to_shape(dy * x, self.weight.data.shape)     # dL/dw: summed where w was stretched
        return dy * self.weight.data


class Bias(_Broadcast):
    """y = x + b, b broadcast (a graph's Add of a constant); starts at 0."""

    def __init__(self, shape):
        super().__init__(shape, 0.0)

    def forward(self, x):
        self.check_input(x, None, "(N, ...)")
        self.output_shape(x.shape)
        self.x = x.shape
        return x + self.weight.data

    def backward(self, dy):
        x_shape = self.saved(self.x)
        self.check_grad(dy, x_shape)
        self.weight.grad += sum_to_shape(dy, self.weight.data.shape)
        return dy
