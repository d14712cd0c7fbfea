"""Conv2d through im2col and one (batched) GEMM."""
import numpy as np

from .. import init, ops
from ..backend import array_module, is_gpu_array
from ..ops.cpu_runtime import WORKERS
from .base import Layer, Parameter, pair


# About 2k columns per chunk: GEMMs stay large enough for BLAS while a chunk's column matrix stays
# a few MB (cache-sized) rather than gigabytes at batch 128, and each worker gets several chunks.
# Measured on AlexNet's conv2 (batch 32, two workers), forward/backward: 1024 columns 77/156 ms,
# 2048 71/147 ms, 4096 82/175 ms, one 16-image chunk per worker 88/186 ms.
CPU_COLUMNS_PER_CHUNK = 2048


class Conv2d(Layer):
    """2-D convolution (cross-correlation, as every framework computes it), NCHW.

    weight (out_channels, in_channels/groups, kh, kw), bias (out_channels,). With groups=G the channels
    split into G independent convolutions: the paper's two-GPU split (section 3.2) is groups=2.
    Default initialisation is He-normal with zero bias; the paper's is `mg.init.gaussian`.
    Set `needs_input_grad = False` on a network's first layer: nobody needs d loss / d image, and
    backward then skips col2im and returns None (PyTorch skips it too for inputs without grad).
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
        self.needs_input_grad = True
        self.x = None

    def describe(self):
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, groups={self.groups})")

    def output_shape(self, x_shape):
        N, _, H, W = x_shape
        return (N, self.out_channels, *(ops.output_size(s, k, st, p) for s, k, st, p in
                                        zip((H, W), self.kernel_size, self.stride, self.padding)))

    def _chunks(self, x, columns_per_image):
        """Slices of the batch to unfold at once. On the CPU about CPU_COLUMNS_PER_CHUNK columns at a
        time, in a multiple of the workers' count of equal slices so that every core gets the same
        work (ops/cpu_runtime.py); on a GPU the whole batch in one launch."""
        N = x.shape[0]
        if N == 0:
            return []
        count = 1
        if not is_gpu_array(x):
            count = -(-N * columns_per_image // CPU_COLUMNS_PER_CHUNK)    # ceil
            count = min(N, -(-count // WORKERS) * WORKERS)
        bounds = [N * i // count for i in range(count + 1)]
        return [slice(start, stop) for start, stop in zip(bounds, bounds[1:])]

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
        xp, G = array_module(x), self.groups
        weight = self.weight.data.reshape(G, OC // G, -1)                 # (G, OC/G, C/G*kh*kw)
        y = xp.empty((N, OC, OH, OW), dtype=x.dtype)

        def convolve(batch):
            n = batch.stop - batch.start
            cols = ops.im2col(x[batch], self.kernel_size, self.stride, self.padding)
            # y_g = W_g @ cols_g for every group g at once: (G, OC/G, K) @ (G, K, n*OH*OW).
            y_chunk = ops.matmul(weight, cols.reshape(G, -1, n * OH * OW))
            y[batch] = y_chunk.reshape(OC, n, OH, OW).transpose(1, 0, 2, 3)
            if self.bias is not None:          # here, while the chunk is in cache, on every core
                y[batch] += self.bias.data[:, None, None]

        ops.parallel_map(convolve, self._chunks(x, OH * OW))
        self.x = x          # backward unfolds x again rather than keeping every column matrix alive
        return y

    def backward(self, dy):
        x = self.saved(self.x)
        self.check_grad(dy, self.output_shape(x.shape))
        xp, G, (N, OC, OH, OW) = array_module(dy), self.groups, dy.shape
        weight = self.weight.data.reshape(G, OC // G, -1)
        dx = xp.empty_like(x) if self.needs_input_grad else None

        def backpropagate(batch):
            """This chunk's dL/dW (transposed) and dL/db; its dL/dx goes straight into dx."""
            n = batch.stop - batch.start
            cols = ops.im2col(x[batch], self.kernel_size, self.stride, self.padding)
            cols_g = cols.reshape(G, -1, n * OH * OW)                         # (G, K, n*OH*OW)
            dy_g = dy[batch].transpose(1, 0, 2, 3).reshape(G, OC // G, -1)    # (G, OC/G, n*OH*OW)
            if dx is not None:                                                # dL/dcols_g = W_g^T dy_g
                dcols = ops.matmul(weight.transpose(0, 2, 1), dy_g).reshape(cols.shape)
                dx[batch] = ops.col2im(dcols, (n,) + x.shape[1:], self.kernel_size, self.stride, self.padding)
            # dL/dW_g = dy_g cols_g^T, computed as its transpose cols_g dy_g^T: OpenBLAS ran that
            # 15-20% faster in conv2's and conv5's shapes.
            bias_grad = dy_g.sum(axis=2).reshape(OC) if self.bias is not None else None
            return ops.matmul(cols_g, dy_g.transpose(0, 2, 1)), bias_grad

        grads = ops.parallel_map(backpropagate, self._chunks(x, OH * OW))
        for weight_part, bias_part in grads:                             # weight_part: (G, K, OC/G)
            self.weight.grad += weight_part.transpose(0, 2, 1).reshape(self.weight.shape)
            if self.bias is not None:
                self.bias.grad += bias_part
        return dx
