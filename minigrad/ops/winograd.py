"""Winograd's minimal filtering F(m x m, r x r) for stride-1 convolutions (Lavin & Gray, "Fast
Algorithms for Convolutional Neural Networks", 2016): the CPU's fast path for conv2-conv5.

A stride-1 convolution computes each m x m tile of its output from an alpha x alpha tile of its input,
alpha = m + r - 1. Winograd computes that tile as

    Y = A^T [ (G g G^T) * (B^T d B) ] A          (* elementwise; g the r x r kernel, d the input tile)

with alpha^2 multiplications instead of m^2 r^2: F(4x4, 3x3) needs 36 where direct convolution needs
144. Summed over input channels, the elementwise products become alpha^2 independent GEMMs, one per
position (i, j) of the alpha x alpha tile: M[i, j] = U[i, j] @ V[i, j], U = G g G^T over (out, in)
channels, V = B^T d B over (in channels, tiles). The transforms are cheap passes over memory; the GEMMs
carry the arithmetic: 3.4x less of it than im2col's at AlexNet's conv3-conv5 (F(5x5, 3x3) on 13 x 13)
and 5.8x less at conv2 (F(4x4, 5x5) on 27 x 27).

The backward pass is the exact adjoint of that chain, not a second convolution:
    dM = A dY A^T,   dU[i, j] = dM[i, j] @ V[i, j]^T,   dV[i, j] = U[i, j]^T @ dM[i, j],
    dg = G^T dU G,   dd = B dV B^T   (added into the overlapping input tiles).
so the gradients are those of the very function the forward pass computed (the gradient checks hold it
to float64 precision), and every step is one of the two tile passes below or a GEMM.

Layout: channels last inside the Winograd path (x transposed to (N, H, W, C) on the way in, the
output back to (N, C, H, W) on the way out). AlexNet's 13 x 13 planes make rows too short to
vectorise; its 256-384 channels do not. Tile passes (NumPy references here, Numba kernels in
ops/cpu_kernels.py that the tests compare with them):
- tiles(x (N, H, W, C), mat (a, t), step, pad) -> (a, a, P, C), P = N * tiles_h * tiles_w: the t x t
  window of x[n] at (ty*step - ph, tx*step - pw), zero outside x, becomes mat @ window @ mat^T.
- untile(t (a, a, P, C), mat (t, a), step, pad, out (N, H, W, C)): the reverse, adding
  mat @ t[:, :, p] @ mat^T into the window of out[n] at (ty*step - ph, tx*step - pw), clipped to out.
The forward pass runs tiles(x, B^T) and untile(M, A^T); the backward pass tiles(dy, A) and untile(dV, B).

The convolution itself (`forward`, `backward`, with the interface ops/__init__.py describes) is at the
end of this file; its batch goes in chunks over minigrad's workers (cpu_runtime.map_batch), one GEMM
column per output tile.
"""
import functools
import math
from collections import namedtuple
from fractions import Fraction

import numpy as np

from . import cpu_kernels as kernels
from .cpu_runtime import map_batch, matmul

# Interpolation points, in the order Lavin & Gray take them: small ones keep the transforms' entries
# small, and with them float32's rounding error.
POINTS = [Fraction(0), Fraction(1), Fraction(-1), Fraction(2), Fraction(-2), Fraction(1, 2), Fraction(-1, 2)]
# Input tiles of at most 8 x 8: AlexNet then gets F(5x5, 3x3) at conv3-conv5 and F(4x4, 5x5) at conv2.
# Larger tiles save more multiplications but round more in float32 (the error grows with the
# transforms' entries); 8 x 8 measured faster than 6 x 6 and 7 x 7, with float32 errors still below
# 2e-5 of the output's scale (benchmarks/results/cpu_alexnet_vm.md has both tables).
MAX_TILE = 8
# The transformed weights U = G g G^T (a*a values per kernel) are written at every forward and read by
# the GEMMs, whatever the batch: at a small batch they can cost more than the multiplications Winograd
# saves. One transformed value costs about as much time as this many of the GEMMs' multiplications:
# with it, AlexNet's 3 x 3 layers take im2col at batches 1 and 2 and Winograd from 3 on, as measured
# (benchmarks/results/cpu_alexnet_vm.md, "Winograd at small batches").
TRANSFORMED_WEIGHT_COST = 100


def _polynomial_product(roots):
    """Coefficients (constant first) of prod (x - root)."""
    coefficients = [Fraction(1)]
    for root in roots:
        shifted = [Fraction(0)] + coefficients                       # x * p
        coefficients = [s - root * c for s, c in zip(shifted, coefficients + [Fraction(0)])]
    return coefficients


@functools.lru_cache(maxsize=None)
def transforms(m, r):
    """(A^T (m, a), G (a, r), B^T (a, a)) of F(m, r), a = m + r - 1, as float64 arrays.

    Toom-Cook: evaluate at a - 1 points and at infinity. Correlating d with g is the transpose of
    multiplying polynomials g and h (degree m - 1), which evaluation at the points turns into an
    elementwise product: A^T evaluates h's coefficients (transposed), G evaluates g's, and B^T is the
    transposed interpolation (Lagrange's: row k holds prod_{l != k} (x - p_l) / prod_{l != k} (p_k - p_l)).
    Each row k's denominator moves from B^T to G so that B^T keeps small integers, as in the paper.
    """
    a = m + r - 1
    if not (m >= 1 and r >= 1 and a - 1 <= len(POINTS)):
        raise ValueError(f"winograd.transforms: no F({m}, {r}) with {len(POINTS)} interpolation points")
    points = POINTS[:a - 1]
    AT = [[p ** i for p in points] + [Fraction(int(i == m - 1))] for i in range(m)]
    G, BT = [], []
    for k, p in enumerate(points):
        others = points[:k] + points[k + 1:]
        denominator = math.prod(p - q for q in others)
        G.append([p ** i / denominator for i in range(r)])
        BT.append(_polynomial_product(others) + [Fraction(0)])
    G.append([Fraction(int(i == r - 1)) for i in range(r)])
    BT.append(_polynomial_product(points))
    return tuple(np.array(matrix, dtype=np.float64) for matrix in (AT, G, BT))


def tile_size(kernel, out_h, out_w, batch=None):
    """The output tile m for an r x r kernel that needs the fewest multiplications at this output size
    (ceil(out/m)^2 tiles of (m + r - 1)^2 each), or None where none beats direct convolution. Given the
    batch, the weight transform's cost (TRANSFORMED_WEIGHT_COST per transformed value, once per batch)
    counts too, per (input, output) channel pair: Winograd then wins only where it saves time."""
    best, best_count = None, (batch or 1) * out_h * out_w * kernel * kernel
    for m in range(2, MAX_TILE - kernel + 2):
        count = multiplications(kernel, out_h, out_w, batch, m)
        if count < best_count:
            best, best_count = m, count
    return best


def multiplications(kernel, out_h, out_w, batch, tile):
    """Winograd's multiplications per (input, output) channel pair with tile m: (m + r - 1)^2 per tile,
    and, given the batch, TRANSFORMED_WEIGHT_COST per transformed weight value (None: one image, the
    weight transform not counted)."""
    images, fixed = (1, 0) if batch is None else (batch, TRANSFORMED_WEIGHT_COST)
    return (images * -(-out_h // tile) * -(-out_w // tile) + fixed) * (tile + kernel - 1) ** 2


def weight_transform(weight, m):
    """U = G g G^T for every (out, in) channel pair: (a, a, OC, C/groups). One GEMM, with each r x r
    kernel a column: U = (G kron G) g. On the workers (ops.matmul): a multi-threaded OpenBLAS call
    here would leave its threads spinning against the convolution's workers (ops/cpu_runtime.py)."""
    OC, C, r, _ = weight.shape
    _, G, _ = transforms(m, r)
    U = matmul(np.kron(G, G).astype(weight.dtype), weight.reshape(OC * C, r * r).T)   # (a*a, OC*C)
    return U.reshape(len(G), len(G), OC, C)


def weight_grad(dU, m, r):
    """dL/dg = G^T dU G, the adjoint of weight_transform: (OC, C/groups, r, r)."""
    a, _, OC, C = dU.shape
    _, G, _ = transforms(m, r)
    grad = matmul(np.kron(G, G).T.astype(dU.dtype), dU.reshape(a * a, OC * C))         # (r*r, OC*C)
    return grad.T.reshape(OC, C, r, r)


def _padded_windows(x, size, step, pad, tiles_h, tiles_w):
    """(N, tiles_h, tiles_w, size, size, C): every window of x (N, H, W, C), zero outside x."""
    N, H, W, C = x.shape
    (ph, pw) = pad
    rows, cols = (tiles_h - 1) * step + size, (tiles_w - 1) * step + size
    padded = np.zeros((N, max(rows, H + ph), max(cols, W + pw), C), x.dtype)
    padded[:, ph:ph + H, pw:pw + W] = x
    return padded, [[padded[:, ty * step:ty * step + size, tx * step:tx * step + size]
                     for tx in range(tiles_w)] for ty in range(tiles_h)]


def tiles_reference(x, mat, step, pad, tiles_h, tiles_w):
    _, windows = _padded_windows(x, mat.shape[1], step, pad, tiles_h, tiles_w)
    windows = np.stack([np.stack(row, axis=1) for row in windows], axis=1)    # (N, ty, tx, t, t, C)
    out = np.einsum("ik,nyxklc,jl->ijnyxc", mat, windows, mat)
    return out.reshape(out.shape[:2] + (-1, x.shape[3]))


def untile_reference(t, mat, step, pad, tiles_h, tiles_w, out):
    N, H, W, C = out.shape
    size, (ph, pw) = mat.shape[0], pad
    blocks = np.einsum("ki,ijnyxc,lj->nyxklc", mat, t.reshape(t.shape[:2] + (N, tiles_h, tiles_w, C)), mat)
    padded, windows = _padded_windows(np.zeros_like(out), size, step, pad, tiles_h, tiles_w)
    for ty in range(tiles_h):
        for tx in range(tiles_w):
            windows[ty][tx] += blocks[:, ty, tx]
    out += padded[:, ph:ph + H, pw:pw + W]
    return out


def tiles(x, mat, step, pad, tiles_h, tiles_w):
    a = mat.shape[0]
    out = np.empty((a, a, x.shape[0] * tiles_h * tiles_w, x.shape[3]), x.dtype)
    kernels.winograd_tiles(np.ascontiguousarray(x), np.ascontiguousarray(mat, x.dtype), step, *pad,
                           tiles_h, tiles_w, out)
    return out


def untile(t, mat, step, pad, tiles_h, tiles_w, out):
    """Adds into `out`, which must be C-contiguous."""
    if not out.flags.c_contiguous:
        raise ValueError(f"winograd.untile: expected a C-contiguous output, got strides {out.strides}")
    kernels.winograd_untile(np.ascontiguousarray(t), np.ascontiguousarray(mat, out.dtype), step, *pad,
                            tiles_h, tiles_w, out)
    return out


# --- The convolution: M[i, j] = V[i, j] @ U[i, j]^T for each of the a x a tile positions ----------

Saved = namedtuple("Saved", "x U tile kernel has_bias padding groups")


def applies(kernel_size, stride):
    """Whether this file computes the convolution: stride 1 and a square kernel of 2 to MAX_TILE - 1."""
    kh, kw = kernel_size
    return tuple(stride) == (1, 1) and kh == kw and 2 <= kh < MAX_TILE


def _tiling(tile, r, out_hw):
    AT, _, BT = transforms(tile, r)
    return AT, BT, -(-out_hw[0] // tile), -(-out_hw[1] // tile)


def _grouped(t, groups):
    """(a, a, rows, channels) -> (a*a, G, rows, channels/G), a view: one GEMM operand per tile position
    and group."""
    a, _, rows, channels = t.shape
    return t.reshape(a * a, rows, groups, channels // groups).transpose(0, 2, 1, 3)


def _weight_grouped(U, groups):
    """U or dL/dU (a, a, OC, C/G) -> (a*a, G, OC/G, C/G), a view."""
    return U.reshape(U.shape[0] * U.shape[1], groups, -1, U.shape[3])


def _columns_per_image(tiles_h, tiles_w, tile, r):
    """What one image weighs in cpu_runtime's chunks, which count im2col's columns (r*r values of every
    channel each): its tiles' (m + r - 1)^2 transformed values of every channel, in units of r*r.
    Counted as tiles alone, a chunk of a batch of 128 held 25 times im2col's: conv4's backward then
    needed 380 MB at once (benchmarks/results/cpu_alexnet_vm.md). At batch 32 the chunks are the same."""
    a = tile + r - 1
    return -(-tiles_h * tiles_w * a * a // (r * r))


def forward(x, weight, bias, stride, padding, groups):
    """The tile is tile_size's for this batch, or for one image where the weight transform outweighs
    the savings (Conv2d takes im2col there unless asked for Winograd), or 2 where no tile needs fewer
    multiplications than direct convolution."""
    (N, _, H, W), (OC, _, r, _) = x.shape, weight.shape
    if not applies(weight.shape[2:], stride):
        raise ValueError(f"winograd.forward: needs stride 1 and a square kernel of 2 to {MAX_TILE - 1}, "
                         f"got stride {tuple(stride)}, kernel {tuple(weight.shape[2:])}")
    OH, OW = H + 2 * padding[0] - r + 1, W + 2 * padding[1] - r + 1
    tile = tile_size(r, OH, OW, N) or tile_size(r, OH, OW) or 2
    AT, BT, tiles_h, tiles_w = _tiling(tile, r, (OH, OW))
    U = weight_transform(weight.astype(x.dtype, copy=False), tile)             # G g G^T
    y = np.empty((N, OC, OH, OW), x.dtype)

    def convolve(batch):
        V = tiles(x[batch].transpose(0, 2, 3, 1), BT, tile, padding, tiles_h, tiles_w)   # B^T d B
        M = np.empty(V.shape[:3] + (OC,), x.dtype)                                     # (a, a, P, OC)
        matmul(_grouped(V, groups), _weight_grouped(U, groups).transpose(0, 1, 3, 2), out=_grouped(M, groups))
        y_channels_last = np.zeros((y[batch].shape[0], OH, OW, OC), x.dtype)
        untile(M, AT, tile, (0, 0), tiles_h, tiles_w, y_channels_last)                  # A^T M A
        if bias is not None:
            y_channels_last += bias
        y[batch] = y_channels_last.transpose(0, 3, 1, 2)

    map_batch(convolve, N, _columns_per_image(tiles_h, tiles_w, tile, r))
    return y, Saved(x, U, tile, r, bias is not None, padding, groups)


def backward(dy, saved, needs_input_grad):
    """Each step is the adjoint of one step of forward, in reverse order."""
    x, U, tile, r, has_bias, padding, groups = saved
    AT, BT, tiles_h, tiles_w = _tiling(tile, r, dy.shape[2:])
    dx = np.empty_like(x) if needs_input_grad else None

    def backpropagate(batch):
        """This chunk's dL/dU and dL/db; its dL/dx goes straight into dx."""
        dM = tiles(dy[batch].transpose(0, 2, 3, 1), AT.T, tile, (0, 0), tiles_h, tiles_w)      # A dY A^T
        V = tiles(x[batch].transpose(0, 2, 3, 1), BT, tile, padding, tiles_h, tiles_w)
        if dx is not None:
            dV = np.empty(V.shape, V.dtype)
            matmul(_grouped(dM, groups), _weight_grouped(U, groups), out=_grouped(dV, groups))
            n, C, H, W = dx[batch].shape
            dx_channels_last = np.zeros((n, H, W, C), dx.dtype)
            untile(dV, BT.T, tile, padding, tiles_h, tiles_w, dx_channels_last)           # B dV B^T
            dx[batch] = dx_channels_last.transpose(0, 3, 1, 2)
        dU = np.empty(U.shape, U.dtype)
        matmul(_grouped(dM, groups).transpose(0, 1, 3, 2), _grouped(V, groups), out=_weight_grouped(dU, groups))
        return dU, dy[batch].sum(axis=(0, 2, 3)) if has_bias else None

    grads = map_batch(backpropagate, len(x), _columns_per_image(tiles_h, tiles_w, tile, r))
    OC, C = U.shape[2:]
    if not grads:                                                                  # an empty batch
        return dx, np.zeros((OC, C, r, r), dy.dtype), np.zeros(OC, dy.dtype) if has_bias else None
    bias_grad = sum(db for _, db in grads) if has_bias else None
    return dx, weight_grad(sum(dU for dU, _ in grads), tile, r), bias_grad         # G^T dU G
