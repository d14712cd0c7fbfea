"""Conv2d through im2col and one (batched) GEMM, or on the CPU, for stride-1 kernels, through
Winograd's minimal filtering (ops/winograd.py)."""
import functools

import numpy as np

from .. import init, ops
from ..backend import array_module, is_gpu_array
from ..ops import winograd
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
    backward then skips its input gradient and returns None (PyTorch skips it too for inputs without grad).

    algorithm: "im2col" unfolds the input and runs one GEMM per group (every stride, every kernel, CPU
    and GPU); "winograd" runs stride-1 square kernels through Winograd's minimal filtering on the CPU
    (ops/winograd.py); "auto" takes Winograd on the CPU wherever it needs fewer multiplications
    (AlexNet's conv2-conv5: the training step 1.57 -> 0.97 s, benchmarks/results/), else im2col.
    """

    ALGORITHMS = ("auto", "im2col", "winograd")

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
        if algorithm == "winograd" and not self._winograd_applies():
            raise ValueError(f"{name}: the Winograd algorithm needs stride 1 and a square kernel of "
                             f"2 to {winograd.MAX_TILE - 1}, got stride {self.stride}, kernel {self.kernel_size}")
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
        self.x = self.tile = self.U = None

    def describe(self):
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, groups={self.groups})")

    def output_shape(self, x_shape):
        N, _, H, W = x_shape
        return (N, self.out_channels, *(ops.output_size(s, k, st, p) for s, k, st, p in
                                        zip((H, W), self.kernel_size, self.stride, self.padding)))

    def _winograd_applies(self):
        kh, kw = self.kernel_size
        return self.stride == (1, 1) and kh == kw and 2 <= kh < winograd.MAX_TILE

    def _winograd_tile(self, x, out_hw):
        """m of the F(m x m, r x r) this forward pass uses, or None for im2col (the GPU has RawKernels
        for im2col only)."""
        if self.algorithm == "im2col" or not self._winograd_applies():
            return None
        if is_gpu_array(x):
            if self.algorithm == "winograd":
                raise ValueError(f"{self.describe()}: the Winograd algorithm runs on the CPU only; "
                                 f"use algorithm='im2col' or 'auto' for GPU arrays")
            return None
        m = winograd.tile_size(self.kernel_size[0], *out_hw)
        return m if m is not None or self.algorithm == "auto" else 2

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
        y = array_module(x).empty(self.output_shape(x.shape), dtype=x.dtype)
        self.tile = self._winograd_tile(x, y.shape[2:])
        if self.tile:
            self.U = winograd.weight_transform(self.weight.data.astype(x.dtype, copy=False), self.tile)
            convolve = self._convolve_winograd
        else:
            convolve = self._convolve_im2col
        ops.parallel_map(functools.partial(convolve, x, y), self._chunks(x, self._columns_per_image(y.shape)))
        self.x = x          # backward unfolds x again rather than keeping every column matrix alive
        return y

    def backward(self, dy):
        x = self.saved(self.x)
        self.check_grad(dy, self.output_shape(x.shape))
        dx = array_module(dy).empty_like(x) if self.needs_input_grad else None
        backpropagate = self._backpropagate_winograd if self.tile else self._backpropagate_im2col
        grads = ops.parallel_map(functools.partial(backpropagate, x, dy, dx),
                                 self._chunks(x, self._columns_per_image(dy.shape)))
        if not grads:                                                # an empty batch
            return dx
        weight_grad = sum(weight_part for weight_part, _ in grads)
        if self.tile:                                                # dL/dU (a, a, OC, C/G) -> dL/dg
            self.weight.grad += winograd.weight_grad(weight_grad, self.tile, self.kernel_size[0])
        else:                                                        # (G, C/G*kh*kw, OC/G) -> (OC, ...)
            self.weight.grad += weight_grad.transpose(0, 2, 1).reshape(self.weight.shape)
        if self.bias is not None:
            self.bias.grad += sum(bias_part for _, bias_part in grads)
        return dx

    def _columns_per_image(self, y_shape):
        """Columns of the GEMMs per image: output pixels for im2col, output tiles for Winograd."""
        if self.tile:
            _, _, tiles_h, tiles_w = self._tiling(y_shape)
            return tiles_h * tiles_w
        return y_shape[2] * y_shape[3]

    # --- im2col: y_g = W_g @ cols_g, one GEMM per group ----------------------------------------------

    def _convolve_im2col(self, x, y, batch):
        G, (n, OC, OH, OW) = self.groups, y[batch].shape
        cols = ops.im2col(x[batch], self.kernel_size, self.stride, self.padding)
        # Every group at once: (G, OC/G, C/G*kh*kw) @ (G, C/G*kh*kw, n*OH*OW).
        y_chunk = ops.matmul(self.weight.data.reshape(G, OC // G, -1), cols.reshape(G, -1, n * OH * OW))
        y[batch] = y_chunk.reshape(OC, n, OH, OW).transpose(1, 0, 2, 3)
        if self.bias is not None:          # here, while the chunk is in cache, on every core
            y[batch] += self.bias.data[:, None, None]

    def _backpropagate_im2col(self, x, dy, dx, batch):
        """This chunk's dL/dW (transposed) and dL/db; its dL/dx goes straight into dx."""
        G, (n, OC, OH, OW) = self.groups, dy[batch].shape
        cols = ops.im2col(x[batch], self.kernel_size, self.stride, self.padding)
        cols_g = cols.reshape(G, -1, n * OH * OW)                         # (G, K, n*OH*OW)
        dy_g = dy[batch].transpose(1, 0, 2, 3).reshape(G, OC // G, -1)    # (G, OC/G, n*OH*OW)
        if dx is not None:                                                # dL/dcols_g = W_g^T dy_g
            weight_t = self.weight.data.reshape(G, OC // G, -1).transpose(0, 2, 1)
            dcols = ops.matmul(weight_t, dy_g).reshape(cols.shape)
            dx[batch] = ops.col2im(dcols, (n,) + x.shape[1:], self.kernel_size, self.stride, self.padding)
        # dL/dW_g = dy_g cols_g^T, computed as its transpose cols_g dy_g^T: OpenBLAS ran that
        # 15-20% faster in conv2's and conv5's shapes.
        bias_grad = dy_g.sum(axis=2).reshape(OC) if self.bias is not None else None
        return ops.matmul(cols_g, dy_g.transpose(0, 2, 1)), bias_grad

    # --- Winograd: M[i, j] = V[i, j] @ U[i, j]^T for each of the a x a tile positions (ops/winograd.py)

    def _tiling(self, y_shape):
        AT, _, BT = winograd.transforms(self.tile, self.kernel_size[0])
        OH, OW = y_shape[2:]
        return AT, BT, -(-OH // self.tile), -(-OW // self.tile)

    def _grouped(self, t):
        """(a, a, rows, channels) -> (a*a, G, rows, channels/G), a view: one GEMM operand per tile
        position and group."""
        a, _, rows, channels = t.shape
        return t.reshape(a * a, rows, self.groups, channels // self.groups).transpose(0, 2, 1, 3)

    def _weight_grouped(self, U):
        """U or dL/dU (a, a, OC, C/G) -> (a*a, G, OC/G, C/G), a view."""
        return U.reshape(U.shape[0] * U.shape[1], self.groups, -1, U.shape[3])

    def _convolve_winograd(self, x, y, batch):
        AT, BT, tiles_h, tiles_w = self._tiling(y.shape)
        channels_last = x[batch].transpose(0, 2, 3, 1)
        V = winograd.tiles(channels_last, BT, self.tile, self.padding, tiles_h, tiles_w)   # B^T d B
        M = np.empty(V.shape[:3] + (self.out_channels,), x.dtype)                       # (a, a, P, OC)
        ops.matmul(self._grouped(V), self._weight_grouped(self.U).transpose(0, 1, 3, 2), out=self._grouped(M))
        n, OC, OH, OW = y[batch].shape
        y_channels_last = np.zeros((n, OH, OW, OC), x.dtype)
        winograd.untile(M, AT, self.tile, (0, 0), tiles_h, tiles_w, y_channels_last)    # A^T M A
        if self.bias is not None:
            y_channels_last += self.bias.data
        y[batch] = y_channels_last.transpose(0, 3, 1, 2)

    def _backpropagate_winograd(self, x, dy, dx, batch):
        """This chunk's dL/dU and dL/db; its dL/dx goes straight into dx. Each step is the adjoint of
        one step of _convolve_winograd, in reverse order."""
        AT, BT, tiles_h, tiles_w = self._tiling(dy.shape)
        dM = winograd.tiles(dy[batch].transpose(0, 2, 3, 1), AT.T, self.tile, (0, 0), tiles_h, tiles_w)
        V = winograd.tiles(x[batch].transpose(0, 2, 3, 1), BT, self.tile, self.padding, tiles_h, tiles_w)
        if dx is not None:
            dV = np.empty(V.shape, V.dtype)
            ops.matmul(self._grouped(dM), self._weight_grouped(self.U), out=self._grouped(dV))
            n, C, H, W = dx[batch].shape
            dx_channels_last = np.zeros((n, H, W, C), dx.dtype)
            winograd.untile(dV, BT.T, self.tile, self.padding, tiles_h, tiles_w, dx_channels_last)   # B dV B^T
            dx[batch] = dx_channels_last.transpose(0, 3, 1, 2)
        dU = np.empty(self.U.shape, self.U.dtype)
        ops.matmul(self._grouped(dM).transpose(0, 1, 3, 2), self._grouped(V), out=self._weight_grouped(dU))
        bias_grad = dy[batch].sum(axis=(0, 2, 3)) if self.bias is not None else None
        return dU, bias_grad
