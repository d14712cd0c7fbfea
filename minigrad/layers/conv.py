"""Conv2d through im2col and one (batched) GEMM."""
import numpy as np

from .. import init, ops
from ..backend import array_module
from .base import Layer, Parameter, pair


class Conv2d(Layer):
    """2-D convolution (cross-correlation, as every framework computes it), NCHW.

    weight (out_channels, in_channels/groups, kh, kw), bias (out_channels,). With groups=G the channels
    split into G independent convolutions: the paper's two-GPU split (section 3.2) is groups=2.
    Default initialisation is He-normal with zero bias; the paper's is `mg.init.gaussian`.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, groups=1, bias=True):
        name = f"Conv2d({in_channels}, {out_channels})"
        self.kernel_size = pair(kernel_size, "kernel_size", name)
        self.stride = pair(stride, "stride", name)
        self.padding = pair(padding, "padding", name)
        for what, value in [("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)]:
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: {what} must be a positive int, got {value!r}")
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise ValueError(f"{name}: expected kernel_size >= 1, stride >= 1, padding >= 0, got "
                             f"{self.kernel_size}, {self.stride}, {self.padding}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: groups={groups} must divide in_channels={in_channels} "
                             f"and out_channels={out_channels}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        kh, kw = self.kernel_size
        self.weight = Parameter(np.zeros((out_channels, in_channels // groups, kh, kw), np.float32), "weight")
        self.bias = Parameter(np.zeros(out_channels, np.float32), "bias") if bias else None
        init.he_normal(self)
        self.cols = self.x_shape = None

    def describe(self):
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, groups={self.groups})")

    def output_shape(self, x_shape):
        N, _, H, W = x_shape
        return (N, self.out_channels, *(ops.output_size(s, k, st, p) for s, k, st, p in
                                        zip((H, W), self.kernel_size, self.stride, self.padding)))

    def forward(self, x):
        self.check_input(x, 4, "(N, C, H, W)")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{self.describe()}: expected {self.in_channels} input channels, "
                             f"got input of shape {tuple(x.shape)}")
        padded = tuple(s + 2 * p for s, p in zip(x.shape[2:], self.padding))
        if any(p < k for p, k in zip(padded, self.kernel_size)):
            raise ValueError(f"{self.describe()}: kernel {self.kernel_size} is larger than the padded "
                             f"input {padded} (input shape {tuple(x.shape)})")
        N, OC, OH, OW = self.output_shape(x.shape)
        G = self.groups
        self.x_shape, self.cols = x.shape, ops.im2col(x, self.kernel_size, self.stride, self.padding)
        # y_g = W_g @ cols_g for every group g at once: (G, OC/G, K) @ (G, K, N*OH*OW).
        y = array_module(x).matmul(self.weight.data.reshape(G, OC // G, -1),
                                   self.cols.reshape(G, -1, N * OH * OW))
        y = y.reshape(OC, N, OH, OW)
        if self.bias is not None:
            y += self.bias.data[:, None, None, None]
        return y.transpose(1, 0, 2, 3)

    def backward(self, dy):
        cols, x_shape = self.saved(self.cols, self.x_shape)
        self.check_grad(dy, self.output_shape(x_shape))
        xp, G, OC = array_module(dy), self.groups, self.out_channels
        dy_g = dy.transpose(1, 0, 2, 3).reshape(G, OC // G, -1)        # (G, OC/G, N*OH*OW)
        cols_g = cols.reshape(G, -1, dy_g.shape[-1])                      # (G, K, N*OH*OW)
        self.weight.grad += xp.matmul(dy_g, cols_g.transpose(0, 2, 1)).reshape(self.weight.shape)
        if self.bias is not None:
            self.bias.grad += dy.sum(axis=(0, 2, 3))
        dcols = xp.matmul(self.weight.data.reshape(G, OC // G, -1).transpose(0, 2, 1), dy_g)
        return ops.col2im(dcols.reshape(cols.shape), x_shape, self.kernel_size, self.stride, self.padding)
