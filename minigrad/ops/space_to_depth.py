"""Strided convolutions as stride-1 ones, by space-to-depth: how the CPU runs AlexNet's conv1 (11 x 11
kernels at stride 4) through Winograd's minimal filtering (ops/winograd.py), which needs stride 1.

A convolution with stride s reads its input at rows s*o + a (o an output row, a a kernel row). Write
a = s*a' + i with 0 <= i < s: the kernel rows i, i + s, i + 2s, ... read the input rows that are i
modulo s. So cut the padded input into s x s blocks and stack each block's s*s pixels as channels,

    x'[c*s*s + i*s + j, u, v] = x[c, u*s + i, v*s + j],

and cut every kernel the same way into k' x k' blocks, k' = ceil(k / s), with zeros where a'*s + i >= k:

    w'[o, c*s*s + i*s + j, a', b'] = w[o, c, a'*s + i, b'*s + j].

Then y = w' * x' at stride 1, the same sums term for term: a stride-1 convolution with s*s times the
channels and a k' x k' kernel, which Winograd computes with far fewer multiplications. AlexNet's conv1
(3 channels, 11 x 11 at stride 4, 224 x 224 padded by 2) becomes 48 channels, 3 x 3 at stride 1 on
57 x 57; with F(5x5, 3x3) it needs 3.8 times fewer multiplications than im2col at batch 32, the kernel's
zero rows (11 padded to 12) and the weight transform counted, and takes about 0.8 times im2col's time
from batch 2 on. The grouped channels stay contiguous
(group g's blocks follow its channels), so groups carry over unchanged.

The backward pass is the adjoint of each step: Winograd's backward, the weight gradient read back
through the same cut (the padding entries dropped), and the input gradient put back in place
(depth-to-space, the padding cropped). `forward` and `backward` have the interface ops/__init__.py
describes; Conv2d takes this path where it saves time (`saves_time`).
"""
from collections import namedtuple

import numpy as np

from . import cpu_kernels as kernels
from . import winograd
from .cpu_runtime import in_worker, use_numba_workqueue

Saved = namedtuple("Saved", "inner x_shape weight_shape stride padding tile")

# A multiplication count alone does not choose well here: the blocks' channels (C*s*s in, OC out) can be
# few, and Winograd's tile passes then cost more than its GEMMs (ResNet's 7 x 7 stem at stride 2 needs 4.5
# times fewer multiplications through this path and takes 1.5 times longer). One value through a tile
# pass (an input tile's or an output tile's) costs about as much time as this many of im2col's
# multiplications: 44-107 in four layers measured, about 60 in three of them (benchmarks/results/
# cpu_alexnet_vm.md, "Space-to-depth").
TRANSFORMED_VALUE_COST = 60


def applies(kernel_size, stride):
    """Square kernels at equal strides of 2 or more, whose blocks (k' = ceil(k / s)) Winograd takes."""
    (kh, kw), (sh, sw) = kernel_size, stride
    return kh == kw and sh == sw >= 2 and winograd.applies((-(-kh // sh),) * 2, (1, 1))


def _geometry(x_shape, kernel, stride, padding):
    """(output rows, output columns, blocks per kernel side)."""
    (_, _, H, W), (ph, pw) = x_shape, padding
    return (H + 2 * ph - kernel) // stride + 1, (W + 2 * pw - kernel) // stride + 1, -(-kernel // stride)


def saves_time(x_shape, weight_shape, stride, padding, groups):
    """Whether this path costs less than im2col for this batch: its GEMMs' multiplications, Winograd's
    weight transform (as winograd.tile_size counts it) and TRANSFORMED_VALUE_COST per value through a
    tile pass, against im2col's multiplications."""
    (N, C), (OC, _, kernel, _), s = x_shape[:2], weight_shape, stride[0]
    out_h, out_w, blocks = _geometry(x_shape, kernel, s, padding)
    tile = winograd.tile_size(blocks, out_h, out_w, N)
    if tile is None:
        return False
    gemms_and_weights = winograd.multiplications(blocks, out_h, out_w, N, tile) * (C * s * s // groups) * OC
    tile_passes = N * winograd.multiplications(blocks, out_h, out_w, None, tile) * (C * s * s + OC)
    direct = N * out_h * out_w * kernel * kernel * (C // groups) * OC
    return gemms_and_weights + TRANSFORMED_VALUE_COST * tile_passes <= direct


def space_to_depth_reference(x, s, padding, rows, columns):
    """x (N, C, H, W), padded by `padding` and cut or extended with zeros to rows*s x columns*s ->
    (N, rows, columns, C*s*s), channels last: x'[n, u, v, c*s*s + i*s + j] = padded x[n, c, u*s + i, v*s + j]."""
    N, C, H, W = x.shape
    (ph, pw) = padding
    padded = np.zeros((N, C, rows * s, columns * s), x.dtype)
    height, width = max(0, min(H, rows * s - ph)), max(0, min(W, columns * s - pw))
    padded[:, :, ph:ph + height, pw:pw + width] = x[:, :, :height, :width]
    return padded.reshape(N, C, rows, s, columns, s).transpose(0, 2, 4, 1, 3, 5).reshape(N, rows, columns, C * s * s)


def space_to_depth(x, s, padding, rows, columns):
    """x' as (N, C*s*s, rows, columns), a view of channels-last memory: Winograd's tile pass reads it
    channels last without another copy. One parallel Numba pass (cpu_kernels.space_to_depth: the NumPy
    reference's six-axis transpose took 12 ms of conv1's forward at batch 32); the reference where the
    kernel cannot run (dtypes Numba has no arithmetic for, or one of minigrad's workers)."""
    N, C = x.shape[:2]
    if x.dtype not in (np.float32, np.float64) or in_worker():
        return space_to_depth_reference(x, s, padding, rows, columns).transpose(0, 3, 1, 2)
    use_numba_workqueue()
    blocks = np.empty((N, rows, columns, C * s * s), x.dtype)
    kernels.space_to_depth(np.ascontiguousarray(x), s, *padding, blocks)
    return blocks.transpose(0, 3, 1, 2)


def depth_to_space(dx_blocks, x_shape, s, padding):
    """The adjoint of space_to_depth: each block channel back to its pixel, the padding cropped."""
    N, C, H, W = x_shape
    (ph, pw), (_, _, rows, columns) = padding, dx_blocks.shape
    padded = dx_blocks.reshape(N, C, s, s, rows, columns).transpose(0, 1, 4, 2, 5, 3).reshape(N, C, rows * s, columns * s)
    dx = np.zeros(x_shape, dx_blocks.dtype)
    height, width = max(0, min(H, rows * s - ph)), max(0, min(W, columns * s - pw))
    dx[:, :, :height, :width] = padded[:, :, ph:ph + height, pw:pw + width]
    return dx


def blocked_weight(weight, s):
    """(OC, C, k, k) -> (OC, C*s*s, k', k'): w'[o, c*s*s + i*s + j, a', b'] = w[o, c, a'*s + i, b'*s + j]."""
    OC, C, k, _ = weight.shape
    blocks = -(-k // s)
    padded = np.zeros((OC, C, blocks * s, blocks * s), weight.dtype)
    padded[:, :, :k, :k] = weight
    return padded.reshape(OC, C, blocks, s, blocks, s).transpose(0, 1, 3, 5, 2, 4).reshape(OC, C * s * s, blocks, blocks)


def unblocked_weight(grad_blocks, weight_shape, s):
    """The adjoint of blocked_weight: the gradient of the k x k kernel (its padding entries dropped)."""
    OC, C, k, _ = weight_shape
    blocks = grad_blocks.shape[-1]
    padded = grad_blocks.reshape(OC, C, s, s, blocks, blocks).transpose(0, 1, 4, 2, 5, 3)
    return np.ascontiguousarray(padded.reshape(OC, C, blocks * s, blocks * s)[:, :, :k, :k])


def forward(x, weight, bias, stride, padding, groups):
    if not applies(weight.shape[2:], stride):
        raise ValueError(f"space_to_depth.forward: needs a square kernel at an equal stride >= 2 whose blocks "
                         f"Winograd takes, got kernel {tuple(weight.shape[2:])}, stride {tuple(stride)}")
    s = stride[0]
    out_h, out_w, blocks = _geometry(x.shape, weight.shape[2], s, padding)
    x_blocks = space_to_depth(x, s, padding, out_h + blocks - 1, out_w + blocks - 1)
    y, inner = winograd.forward(x_blocks, blocked_weight(weight, s), bias, (1, 1), (0, 0), groups)
    return y, Saved(inner, x.shape, weight.shape, s, padding, inner.tile)


def backward(dy, saved, needs_input_grad):
    inner, x_shape, weight_shape, s, padding, _ = saved
    dx_blocks, weight_grad, bias_grad = winograd.backward(dy, inner, needs_input_grad)
    dx = None if dx_blocks is None else depth_to_space(dx_blocks, x_shape, s, padding)
    return dx, unblocked_weight(weight_grad, weight_shape, s), bias_grad
