"""Convolution through im2col and one GEMM per group (Caffe's method), on the CPU and the GPU, for
every stride and kernel. forward and backward have the interface ops/__init__.py describes.

im2col copies every kernel window of the input into a column (ops/cpu.py lays the columns out), so that
the convolution of group g is one matrix product over all output positions:

    y_g = W_g cols_g                  W_g (OC/G, C/G*kh*kw), cols_g (C/G*kh*kw, n*OH*OW)
    dL/dW_g = dy_g cols_g^T,    dL/dcols_g = W_g^T dy_g,    dL/dx = col2im(dL/dcols)

The batch goes in chunks (ops.map_batch): a chunk's column matrix stays small, and on the CPU each
worker takes its share of the chunks. backward unfolds x again rather than keeping every column matrix
alive from the forward pass.
"""
from collections import namedtuple

from ..backend import array_module
from . import col2im, im2col, map_batch, matmul, output_size

Saved = namedtuple("Saved", "x weight has_bias stride padding groups")


def forward(x, weight, bias, stride, padding, groups):
    (N, _, H, W), (OC, _, kh, kw) = x.shape, weight.shape
    OH, OW = output_size(H, kh, stride[0], padding[0]), output_size(W, kw, stride[1], padding[1])
    y = array_module(x).empty((N, OC, OH, OW), dtype=x.dtype)

    def convolve(batch):
        n = y[batch].shape[0]
        cols = im2col(x[batch], (kh, kw), stride, padding)
        # Every group at once: (G, OC/G, C/G*kh*kw) @ (G, C/G*kh*kw, n*OH*OW).
        y_chunk = matmul(weight.reshape(groups, OC // groups, -1), cols.reshape(groups, -1, n * OH * OW))
        y[batch] = y_chunk.reshape(OC, n, OH, OW).transpose(1, 0, 2, 3)
        if bias is not None:           # here, while the chunk is in cache, on every core
            y[batch] += bias[:, None, None]

    map_batch(convolve, x, OH * OW)
    return y, Saved(x, weight, bias is not None, stride, padding, groups)


def backward(dy, saved, needs_input_grad):
    x, weight, has_bias, stride, padding, G = saved
    (_, OC, OH, OW), kernel_size = dy.shape, weight.shape[2:]
    dx = array_module(dy).empty_like(x) if needs_input_grad else None

    def backpropagate(batch):
        """This chunk's dL/dW (transposed, per group) and dL/db; its dL/dx goes straight into dx."""
        n = dy[batch].shape[0]
        cols = im2col(x[batch], kernel_size, stride, padding)
        cols_g = cols.reshape(G, -1, n * OH * OW)                         # (G, K, n*OH*OW)
        dy_g = dy[batch].transpose(1, 0, 2, 3).reshape(G, OC // G, -1)    # (G, OC/G, n*OH*OW)
        if dx is not None:                                                # dL/dcols_g = W_g^T dy_g
            dcols = matmul(weight.reshape(G, OC // G, -1).transpose(0, 2, 1), dy_g).reshape(cols.shape)
            dx[batch] = col2im(dcols, (n,) + x.shape[1:], kernel_size, stride, padding)
        # dL/dW_g = dy_g cols_g^T, computed as its transpose cols_g dy_g^T, which OpenBLAS runs
        # faster in conv2's and conv5's shapes (benchmarks/results/cpu_alexnet_vm.md).
        bias_grad = dy_g.sum(axis=2).reshape(OC) if has_bias else None
        return matmul(cols_g, dy_g.transpose(0, 2, 1)), bias_grad

    grads = map_batch(backpropagate, x, OH * OW)
    if not grads:                                                         # an empty batch
        xp = array_module(dy)
        return dx, xp.zeros_like(weight), xp.zeros(OC, dy.dtype) if has_bias else None
    weight_grad = sum(weight_part for weight_part, _ in grads)            # (G, C/G*kh*kw, OC/G)
    bias_grad = sum(bias_part for _, bias_part in grads) if has_bias else None
    return dx, weight_grad.transpose(0, 2, 1).reshape(weight.shape), bias_grad
