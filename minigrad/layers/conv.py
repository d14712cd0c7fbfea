"""Conv2d: checks its input, chooses a convolution algorithm (ops/im2col_gemm.py, ops/winograd.py) and
calls its forward and backward."""
import math

import numpy as np

from .. import init, ops
from ..backend import is_gpu_array
from ..ops import im2col_gemm, space_to_depth, winograd
from .base import Layer, Parameter, pair


class Conv2d(Layer):
    """2-D convolution (cross-correlation, as every framework computes it), NCHW.

    weight (out_channels, in_channels/groups, kh, kw), bias (out_channels,). With groups=G the channels
    split into G independent convolutions: the paper's two-GPU split (section 3.2) is groups=2.
    Default initialisation is He-normal with zero bias; the paper's is `mg.init.gaussian`.
    Set `needs_input_grad = False` on a network's first layer: nobody needs d loss / d image, and
    backward then skips its input gradient and returns None (PyTorch skips it too for inputs without grad).

    algorithm: "im2col" unfolds the input and runs one GEMM per group (every stride, every kernel, CPU
    and GPU; ops/im2col_gemm.py); "winograd" runs stride-1 square kernels through Winograd's minimal
    filtering on the CPU (ops/winograd.py); "space_to_depth" turns a square kernel at stride s >= 2 into
    a stride-1 one over s*s times the channels and gives that to Winograd (ops/space_to_depth.py:
    AlexNet's conv1). "auto" takes Winograd on the CPU wherever it saves time (AlexNet's conv2-conv5
    directly, its conv1 through space-to-depth, which makes the CPU's training step much faster:
    benchmarks/results/cpu_alexnet_vm.md), else im2col.
    """
    SAVED = ("saved_for_backward",)

    ALGORITHMS = ("auto", "im2col", "winograd", "space_to_depth")
    # each algorithm's forward and backward
    MODULES = {"im2col": im2col_gemm, "winograd": winograd, "space_to_depth": space_to_depth}

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, groups=1, bias=True,
                 algorithm="auto"):
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
        if algorithm not in self.ALGORITHMS:
            raise ValueError(f"{name}: algorithm must be one of {self.ALGORITHMS}, got {algorithm!r}")
        if algorithm == "winograd" and not winograd.applies(self.kernel_size, self.stride):
            raise ValueError(f"{name}: the Winograd algorithm needs stride 1 and a square kernel of "
                             f"2 to {winograd.MAX_TILE - 1}, got stride {self.stride}, kernel {self.kernel_size}")
        if algorithm == "space_to_depth" and not space_to_depth.applies(self.kernel_size, self.stride):
            raise ValueError(f"{name}: space-to-depth needs a square kernel at an equal stride of 2 or more, "
                             f"cut into blocks of 2 to {winograd.MAX_TILE - 1} per side (ceil(kernel / "
                             f"stride)), got stride {self.stride}, kernel {self.kernel_size}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: groups={groups} must divide in_channels={in_channels} "
                             f"and out_channels={out_channels}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        kh, kw = self.kernel_size
        self.weight = Parameter(np.zeros((out_channels, in_channels // groups, kh, kw), np.float32), "weight")
        self.bias = Parameter(np.zeros(out_channels, np.float32), "bias") if bias else None
        init.he_normal(self)
        self.algorithm = algorithm
        self.needs_input_grad = True
        # what the last forward ran, its output's shape, and what it kept for backward
        self.algorithm_used = self.y_shape = self.saved_for_backward = None
        self.tile = None              # m of the Winograd F(m x m, r x r) the last forward ran; None after im2col

    def describe(self):
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, groups={self.groups})")

    def output_shape(self, input_shape):
        N, C, H, W = self.check_shape(input_shape, 4, "(N, C, H, W)")
        if C not in (None, self.in_channels):
            raise ValueError(f"{self.describe()}: expected {self.in_channels} input channels, "
                             f"got input of shape {tuple(input_shape)}")
        padded = tuple(None if s is None else s + 2 * p for s, p in zip((H, W), self.padding))
        if any(p is not None and p < k for p, k in zip(padded, self.kernel_size)):
            raise ValueError(f"{self.describe()}: kernel {self.kernel_size} is larger than the padded "
                             f"input {padded} (input shape {tuple(input_shape)})")
        return (N, self.out_channels, *(ops.output_size(s, k, st, p) for s, k, st, p in
                                        zip((H, W), self.kernel_size, self.stride, self.padding)))

    def multiply_adds(self, output_shape):
        """Each output value sums (in_channels / groups) x kh x kw products (counted as direct convolution,
        as the paper's and PyTorch's counts are, whatever Winograd saves)."""
        kh, kw = self.kernel_size
        return math.prod(output_shape[1:]) * (self.in_channels // self.groups) * kh * kw

    def _choose_algorithm(self, x):
        """The algorithm for this input: "auto" takes Winograd where it saves time at this output size and
        batch (fewer multiplications, its weight transform counted), on the CPU only (the GPU has kernels
        for im2col only): AlexNet's conv2-conv5 when it trains, its conv3-conv5 not at batches 1 and 2, and
        its conv1 through space-to-depth from batch 2 on."""
        if self.algorithm == "im2col":
            return "im2col"
        if is_gpu_array(x):
            if self.algorithm != "auto":
                raise ValueError(f"{self.describe()}: the {self.algorithm} algorithm runs on the CPU only; "
                                 f"use algorithm='im2col' or 'auto' for GPU arrays")
            return "im2col"
        if self.algorithm != "auto":
            return self.algorithm                           # checked against the geometry in __init__
        if winograd.applies(self.kernel_size, self.stride):
            out_h, out_w = self.y_shape[2:]
            return "im2col" if winograd.tile_size(self.kernel_size[0], out_h, out_w, len(x)) is None else "winograd"
        if space_to_depth.applies(self.kernel_size, self.stride) and \
                space_to_depth.saves_time(x.shape, self.weight.data.shape, self.stride, self.padding, self.groups):
            return "space_to_depth"
        return "im2col"

    def forward(self, x):
        self.check_input(x, 4, "(N, C, H, W)")
        self.y_shape = self.output_shape(x.shape)
        self.algorithm_used = self._choose_algorithm(x)
        y, self.saved_for_backward = self.MODULES[self.algorithm_used].forward(
            x, self.weight.data, None if self.bias is None else self.bias.data, self.stride, self.padding, self.groups)
        self.tile = None if self.algorithm_used == "im2col" else self.saved_for_backward.tile
        return y

    def backward(self, dy):
        saved = self.saved(self.saved_for_backward)
        self.check_grad(dy, self.y_shape)
        dx, weight_grad, bias_grad = self.MODULES[self.algorithm_used].backward(dy, saved, self.needs_input_grad)
        self.weight.grad += weight_grad
        if self.bias is not None:
            self.bias.grad += bias_grad
        return dx
