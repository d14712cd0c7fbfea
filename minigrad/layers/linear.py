"""Linear (fully connected), and the layers that only rearrange: Flatten and Transpose."""
import numpy as np

from .. import init, ops
from ..backend import array_module
from .base import Layer, Parameter


class Linear(Layer):
    """y = x @ W.T + b with W (out_features, in_features), as PyTorch lays it out."""
    SAVED = ("x",)

    def __init__(self, in_features, out_features, bias=True):
        for what, value in [("in_features", in_features), ("out_features", out_features)]:
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Linear: {what} must be a positive int, got {value!r}")
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.zeros((out_features, in_features), np.float32), "weight")
        self.bias = Parameter(np.zeros(out_features, np.float32), "bias") if bias else None
        init.he_normal(self)
        self.x = None

    def describe(self):
        return f"Linear({self.in_features}, {self.out_features})"

    def output_shape(self, input_shape):
        N, features = self.check_shape(input_shape, 2, "(N, in_features)")
        if features not in (None, self.in_features):
            raise ValueError(f"{self.describe()}: expected {self.in_features} input features, "
                             f"got input of shape {tuple(input_shape)}")
        return (N, self.out_features)

    def multiply_adds(self, output_shape):
        return self.out_features * self.in_features          # each output sums in_features products

    def forward(self, x):
        self.check_input(x, 2, "(N, in_features)")
        self.output_shape(x.shape)
        self.x = x
        # y = (W x^T)^T: the CPU's workers then take half of W's rows each, read in order as OpenBLAS's
        # first operand, rather than halves of the transposed W^T (fc6 at batch 32: 24 -> 18 ms;
        # benchmarks/results/cpu_alexnet_vm.md). The copy makes y contiguous again (32 x 4096 values).
        y = array_module(x).ascontiguousarray(ops.matmul(self.weight.data, x.T, split="rows").T)
        if self.bias is not None:
            y += self.bias.data
        return y

    def backward(self, dy):
        x = self.saved(self.x)
        self.check_grad(dy, (x.shape[0], self.out_features))
        # dL/dW = dy^T x, each worker writing its own rows of it (fc6: 27 -> 22 ms, as above)
        self.weight.accumulate_grad_product(dy.T, x, split="rows")
        if self.bias is not None:
            self.bias.grad += dy.sum(axis=0)
        return ops.matmul(dy, self.weight.data)          # dL/dx = dy W


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W), the step between the last pool and fc6."""

    def __init__(self):
        self.x_shape = None

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) < 2:
            raise ValueError(f"Flatten: expected an input with a batch axis and at least 2 dimensions, "
                             f"got {shape}")
        features = None if None in shape[1:] else int(np.prod(shape[1:]))
        return (shape[0], features)

    def forward(self, x):
        if not hasattr(x, "ndim"):
            raise ValueError(f"Flatten: expected an array with a batch axis, got {type(x).__name__}")
        _, features = self.output_shape(x.shape)
        self.x_shape = x.shape
        return x.reshape(x.shape[0], features)          # (-1 cannot be inferred for a batch of 0)

    def backward(self, dy):
        return dy.reshape(self.saved(self.x_shape))


class Transpose(Layer):
    """x.transpose(axes), the batch axis staying first: how graphs converted from TensorFlow move
    between its (N, H, W, C) layout and (N, C, H, W), e.g. Transpose((0, 3, 1, 2)) on an NHWC input,
    and Transpose((0, 2, 3, 1)) before a Flatten that must read the maps in TensorFlow's order."""

    def __init__(self, axes):
        axes = tuple(int(a) for a in axes)
        if sorted(axes) != list(range(len(axes))) or axes[:1] != (0,):
            raise ValueError(f"Transpose: axes must be a permutation of 0..n-1 that keeps the batch axis 0 first, "
                             f"got {axes}")
        self.axes = axes
        self.inverse = tuple(int(a) for a in np.argsort(axes))

    def describe(self):
        return f"Transpose({self.axes})"

    def output_shape(self, input_shape):
        shape = self.check_shape(input_shape, len(self.axes), "(N, ...)")
        return tuple(shape[axis] for axis in self.axes)

    def forward(self, x):
        self.check_input(x, len(self.axes), "(N, ...)")
        return x.transpose(self.axes)

    def backward(self, dy):
        return dy.transpose(self.inverse)
