"""Max pooling, overlapping when the stride is smaller than the window (section 3.4)."""
from .. import ops
from .base import Layer, pair


class MaxPool2d(Layer):
    """Max over kh x kw windows moved by `stride` (default: the window, i.e. no overlap).

    AlexNet pools 3x3 windows with stride 2, so neighbouring windows share a row or column. Backward
    sends each window's gradient to exactly one input, its first maximum in row-major order, so the
    gradient is conserved even when values tie (as they do after a ReLU). Output sizes round down.
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        self.kernel_size = pair(kernel_size, "kernel_size", "MaxPool2d")
        self.stride = self.kernel_size if stride is None else pair(stride, "stride", "MaxPool2d")
        self.padding = pair(padding, "padding", "MaxPool2d")
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise ValueError(f"{self.describe()}: expected kernel_size >= 1, stride >= 1, padding >= 0")
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"{self.describe()}: padding must be at most half the window, "
                             f"got padding {self.padding} for window {self.kernel_size}")
        self.argmax = self.x_shape = None

    def describe(self):
        return f"MaxPool2d(kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding})"

    def forward(self, x):
        self.check_input(x, 4, "(N, C, H, W)")
        padded = tuple(s + 2 * p for s, p in zip(x.shape[2:], self.padding))
        if any(p < k for p, k in zip(padded, self.kernel_size)):
            raise ValueError(f"{self.describe()}: window {self.kernel_size} is larger than the padded "
                             f"input {padded} (input shape {tuple(x.shape)})")
        y, self.argmax = ops.maxpool_forward(x, self.kernel_size, self.stride, self.padding)
        self.x_shape = x.shape
        return y

    def backward(self, dy):
        argmax, x_shape = self.saved(self.argmax, self.x_shape)
        self.check_grad(dy, argmax.shape)
        return ops.maxpool_backward(dy, argmax, x_shape, self.kernel_size, self.stride, self.padding)
