"""Numba kernels for the CPU primitives: parallel over the cores with `prange`, or serial (col2im, ReLU,
Winograd's tile passes, max pooling's small inputs), which can run on minigrad's workers.

Each kernel writes every element of its output (no reliance on zeroed memory) and mirrors a NumPy
reference in ops/cpu.py that the tests compare it with. `cache=True` stores the compiled machine code
beside this file (or in NUMBA_CACHE_DIR), so only a machine's first run pays for compilation.
ops/cpu.py calls the parallel ones after cpu_runtime.use_numba_workqueue(), which says why.
"""
import numpy as np
from numba import njit, prange, uintp


@njit(cache=True, inline="always")
def _valid_range(pad, offset, stride, size, count):
    """The output positions o in [0, count) whose input o * stride - pad + offset lies in [0, size)."""
    first = max(0, (pad - offset + stride - 1) // stride)
    last = min(count, (size - 1 + pad - offset) // stride + 1)
    return first, max(first, last)


@njit(nogil=True, cache=True)
def col2im(cols, kh, kw, sh, sw, ph, pw, OH, OW, dx):
    """dx[n, c, h, w] = sum of the column entries copied from (h, w), one (n, c) plane at a time.

    Serial, and without the GIL: Conv2d calls it from minigrad's workers, one batch chunk each
    (ops/cpu_runtime.py), and Numba's parallel layer must not be entered from two threads at once.
    The innermost loop indexes the flat arrays with unsigned ints: a signed index makes Numba check
    for negative indices (Python's wrap-around), and that branch kept LLVM from vectorising the loop
    (benchmarks/results/cpu_alexnet_vm.md).
    """
    N, C, H, W = dx.shape
    dx_flat, cols_flat, columns = dx.reshape(-1), cols.reshape(-1), cols.shape[1]
    dx_flat[:] = 0
    for plane in range(N * C):
        n, c = plane // C, plane % C
        for i in range(kh):
            oh_first, oh_last = _valid_range(ph, i, sh, H, OH)
            for j in range(kw):
                row = (c * kh + i) * kw + j
                ow_first, ow_last = _valid_range(pw, j, sw, W, OW)
                for oh in range(oh_first, oh_last):
                    h = oh * sh - ph + i
                    to = uintp((plane * H + h) * W + ow_first * sw - pw + j)       # dx[n, c, h, w]
                    start = uintp(row * columns + (n * OH + oh) * OW + ow_first)   # cols[row, (n, oh, ow)]
                    for t in range(uintp(ow_last - ow_first)):
                        dx_flat[to + t * uintp(sw)] += cols_flat[start + t]


@njit(cache=True, inline="always")
def _maxpool_planes(x, kh, kw, sh, sw, ph, pw, first, last, y, argmax):
    """For the (n, c) planes first to last - 1: each window's maximum and the window-local index i*kw + j
    of its first occurrence in row-major order; NaN, and the index of the last NaN, for a window that
    holds NaN (PyTorch's rule, ops/cpu.py).

    Separable, one row of outputs at a time, every loop along a contiguous row so that LLVM vectorises
    it: first down the columns (each input column's maximum over the window's kh rows, and the row it
    came from); then across, one pass for each of the kw columns of a window, reading the column maxima
    split into sw phases (column p of the padded row at phase p % sw, place p // sw), so that the
    windows' j-th columns lie side by side; a tie goes to the smaller row, which keeps row-major order.
    The padding is -inf from a row no real value has, so it never wins. 2.6-3.7x faster at AlexNet's
    pools than one window at a time, whose data-dependent branches the processor mispredicted
    (benchmarks/results/cpu_alexnet_vm.md)."""
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    places = ((OW - 1) * sw + kw + sw - 1) // sw          # per phase, to the last window's last column
    padding_row = np.int32(kh)
    column_max, column_row = np.empty(W, x.dtype), np.empty(W, np.int32)
    phase_max, phase_row = np.empty((sw, places), x.dtype), np.empty((sw, places), np.int32)
    best, best_i, best_j = np.empty(OW, x.dtype), np.empty(OW, np.int32), np.empty(OW, np.int32)
    for plane in range(first, last):
        n, c = plane // C, plane % C
        for oh in range(OH):
            i_first, i_last = max(0, ph - oh * sh), min(kh, H + ph - oh * sh)
            top = x[n, c, oh * sh - ph + i_first]
            for w in range(uintp(W)):
                column_max[w], column_row[w] = top[w], i_first
            for i in range(i_first + 1, i_last):
                row = x[n, c, oh * sh - ph + i]
                for w in range(uintp(W)):
                    value, b = row[w], column_max[w]
                    # strictly greater: the first maximum wins ties; any NaN wins (and stays: nothing
                    # is greater than NaN), a later NaN taking its place. | rather than `or`: no branch
                    take = (value > b) | (value != value)
                    column_max[w] = value if take else b
                    column_row[w] = np.int32(i) if take else column_row[w]
            for q in range(sw):
                for m in range(places):
                    w = m * sw + q - pw
                    inside, clamped = 0 <= w < W, min(max(w, 0), W - 1)
                    phase_max[q, m] = column_max[clamped] if inside else -np.inf
                    phase_row[q, m] = column_row[clamped] if inside else padding_row
            for ow in range(uintp(OW)):
                best[ow], best_i[ow], best_j[ow] = phase_max[0, ow], phase_row[0, ow], 0
            for j in range(1, kw):
                source_max, source_row, shift = phase_max[j % sw], phase_row[j % sw], uintp(j // sw)
                for ow in range(uintp(OW)):
                    value, i, b, bi = source_max[ow + shift], source_row[ow + shift], best[ow], best_i[ow]
                    # (i, j) comes after (best_i, best_j) in row-major order when i >= best_i
                    take = ((value > b) | ((value == b) & (i < bi)) | ((value != value) & ((b == b) | (i >= bi))))
                    best[ow] = value if take else b
                    best_i[ow] = i if take else bi
                    best_j[ow] = np.int32(j) if take else best_j[ow]
            out, index = y[n, c, oh], argmax[n, c, oh]
            for ow in range(uintp(OW)):
                out[ow] = best[ow]
                index[ow] = best_i[ow] * kw + best_j[ow]


@njit(parallel=True, cache=True)
def maxpool_forward(x, kh, kw, sh, sw, ph, pw, y, argmax):
    """_maxpool_planes on the cores, one plane per task."""
    for plane in prange(x.shape[0] * x.shape[1]):
        _maxpool_planes(x, kh, kw, sh, sw, ph, pw, plane, plane + 1, y, argmax)


@njit(nogil=True, cache=True)
def maxpool_forward_serial(x, kh, kw, sh, sw, ph, pw, y, argmax):
    """_maxpool_planes on one core, for small inputs (a parallel launch costs more than it saves there,
    ops/cpu.py) and for minigrad's workers."""
    _maxpool_planes(x, kh, kw, sh, sw, ph, pw, 0, x.shape[0] * x.shape[1], y, argmax)


@njit(cache=True, inline="always")
def _max_planes(x, kh, kw, sh, sw, ph, pw, first, last, y):
    """The maxima of _maxpool_planes (NaN where a window holds one) without their positions: half its
    time (benchmarks/results/cpu_alexnet_vm.md, "Launch costs"), for a forward pass that no backward may
    follow (MaxPool2d in eval mode)."""
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    places = ((OW - 1) * sw + kw + sw - 1) // sw
    column_max, best, phase_max = np.empty(W, x.dtype), np.empty(OW, x.dtype), np.empty((sw, places), x.dtype)
    for plane in range(first, last):
        n, c = plane // C, plane % C
        for oh in range(OH):
            i_first, i_last = max(0, ph - oh * sh), min(kh, H + ph - oh * sh)
            top = x[n, c, oh * sh - ph + i_first]
            for w in range(uintp(W)):
                column_max[w] = top[w]
            for i in range(i_first + 1, i_last):
                row = x[n, c, oh * sh - ph + i]
                for w in range(uintp(W)):
                    value, b = row[w], column_max[w]
                    column_max[w] = value if (value > b) | (value != value) else b
            for q in range(sw):                       # the column maxima in phases, as above
                for m in range(places):
                    w = m * sw + q - pw
                    phase_max[q, m] = column_max[min(max(w, 0), W - 1)] if 0 <= w < W else -np.inf
            for ow in range(uintp(OW)):
                best[ow] = phase_max[0, ow]
            for j in range(1, kw):
                source, shift = phase_max[j % sw], uintp(j // sw)
                for ow in range(uintp(OW)):
                    value, b = source[ow + shift], best[ow]
                    best[ow] = value if (value > b) | (value != value) else b
            out = y[n, c, oh]
            for ow in range(uintp(OW)):
                out[ow] = best[ow]


@njit(parallel=True, cache=True)
def maxpool_values(x, kh, kw, sh, sw, ph, pw, y):
    """_max_planes on the cores, one plane per task."""
    for plane in prange(x.shape[0] * x.shape[1]):
        _max_planes(x, kh, kw, sh, sw, ph, pw, plane, plane + 1, y)


@njit(nogil=True, cache=True)
def maxpool_values_serial(x, kh, kw, sh, sw, ph, pw, y):
    _max_planes(x, kh, kw, sh, sw, ph, pw, 0, x.shape[0] * x.shape[1], y)


@njit(parallel=True, cache=True)
def maxpool_backward(dy, argmax, kh, kw, sh, sw, ph, pw, dx):
    """Add each window's gradient to the one input that was its maximum."""
    N, C, OH, OW = dy.shape
    for plane in prange(N * C):
        n, c = plane // C, plane % C
        dx[n, c] = 0
        for oh in range(OH):
            for ow in range(OW):
                k = argmax[n, c, oh, ow]
                dx[n, c, oh * sh - ph + k // kw, ow * sw - pw + k % kw] += dy[n, c, oh, ow]


@njit(cache=True, inline="always")
def _power(scale, exponent):
    """scale ** exponent. At the paper's beta = 0.75, s^-0.75 = 1 / (sqrt(s) sqrt(sqrt(s))): two
    vectorised square roots instead of a call to powf per element, which was half of norm1's time
    (benchmarks/results/cpu_alexnet_vm.md)."""
    if exponent == -0.75:
        root = np.sqrt(scale)
        return 1 / (root * np.sqrt(root))
    return scale ** exponent


@njit(cache=True, inline="always")
def _channel_window_sum(t, squared, n, c, C, group_channels, half, HW, s, out):
    """s[out:out + HW] = the sum of t's planes (n, j), or of their squares, over |j - c| <= half,
    clipped at the first and last channel of c's group (group_channels contiguous channels each). t and s
    are flat; the loops over a plane's HW pixels use unsigned indices so that they vectorise (see col2im)."""
    for p in range(uintp(HW)):
        s[out + p] = 0
    first = c - c % group_channels
    for j in range(max(first, c - half), min(first + group_channels, c + half + 1)):
        source = uintp((n * C + j) * HW)
        if squared:
            for p in range(uintp(HW)):
                s[out + p] += t[source + p] * t[source + p]
        else:
            for p in range(uintp(HW)):
                s[out + p] += t[source + p]


@njit(parallel=True, cache=True)
def lrn_forward(a, size, group_channels, alpha, beta, k, b, scale):
    """scale = k + alpha * (sum of a^2 over `size` channels of a group), b = a * scale^-beta (section 3.3).
    One (n, c) plane per task, in one pass over its pixels after the window sum."""
    N, C, HW = a.shape[0], a.shape[1], a.shape[2] * a.shape[3]
    a, b, scale = a.reshape(-1), b.reshape(-1), scale.reshape(-1)
    for plane in prange(N * C):
        out = uintp(plane * HW)
        _channel_window_sum(a, True, plane // C, plane % C, C, group_channels, size // 2, HW, scale, out)
        for p in range(uintp(HW)):
            scale[out + p] = k + alpha * scale[out + p]
            b[out + p] = a[out + p] * _power(scale[out + p], -beta)


@njit(parallel=True, cache=True)
def lrn_backward(dy, a, b, scale, size, group_channels, alpha, beta, ratio, da):
    """da_c = dy_c scale_c^-beta - 2 alpha beta a_c sum_{i near c} dy_i b_i / scale_i.

    `ratio` is scratch space for dy * b / scale, computed once per element before the window sums,
    which are accumulated in da itself.
    """
    N, C, HW = a.shape[0], a.shape[1], a.shape[2] * a.shape[3]
    dy, a, b, scale = dy.reshape(-1), a.reshape(-1), b.reshape(-1), scale.reshape(-1)
    ratio, da = ratio.reshape(-1), da.reshape(-1)
    for i in prange(uintp(N * C * HW)):
        ratio[i] = dy[i] * b[i] / scale[i]
    for plane in prange(N * C):
        out = uintp(plane * HW)
        _channel_window_sum(ratio, False, plane // C, plane % C, C, group_channels, size // 2, HW, da, out)
        for p in range(uintp(HW)):
            i = out + p
            da[i] = dy[i] * _power(scale[i], -beta) - 2 * alpha * beta * a[i] * da[i]


@njit(nogil=True, cache=True)
def relu_forward(x, y, mask):
    """y = max(x, 0) and mask = (x > 0), in one pass over flat arrays (NumPy takes one pass for each). A
    NaN stays NaN in y, as np.maximum keeps it, and is False in the mask. Serial: one core streams as fast
    as two here, and a parallel launch costs 70-100 us, more than a batch-1 ReLU takes (measured from
    4 thousand to 9 million values, benchmarks/results/cpu_alexnet_vm.md); so it runs on a worker too."""
    for i in range(x.size):
        value = x[i]
        y[i] = 0 if value <= 0 else value
        mask[i] = value > 0


@njit(nogil=True, cache=True)
def relu_backward(dy, mask, dx):
    for i in range(dy.size):
        dx[i] = dy[i] * mask[i]


@njit(parallel=True, cache=True)
def sgd_update(w, v, grad, lr, momentum, weight_decay):
    """The paper's step (section 5) in one pass over flat arrays: v = m v - wd lr w - lr g; w += v."""
    for i in prange(w.size):
        v[i] = momentum * v[i] - weight_decay * lr * w[i] - lr * grad[i]
        w[i] += v[i]



@njit(parallel=True, cache=True)
def space_to_depth(x, s, ph, pw, out):
    """out[n, u, v, (c*s + i)*s + j] = x[n, c, u*s + i - ph, v*s + j - pw], zero outside x: the s x s
    blocks of the padded input stacked as channels, channels last (ops/space_to_depth.py). One output
    row per task; its reads stay within C*s input rows."""
    N, C, H, W = x.shape
    _, rows, columns, _ = out.shape
    for task in prange(N * rows):
        n, u = task // rows, task % rows
        for v in range(columns):
            for c in range(C):
                for i in range(s):
                    h = u * s + i - ph
                    for j in range(s):
                        w = v * s + j - pw
                        out[n, u, v, (c * s + i) * s + j] = x[n, c, h, w] if 0 <= h < H and 0 <= w < W else 0


@njit(nogil=True, cache=True)
def winograd_tiles(x, mat, step, ph, pw, tiles_h, tiles_w, out):
    """out[i, j, (n, ty, tx), :] = (mat @ window @ mat^T)[i, j, :], window the t x t block of x[n]
    (N, H, W, C: channels last) at (ty*step - ph, tx*step - pw), zero outside x (ops/winograd.py).
    Serial and without the GIL, like col2im. Channels last make every innermost loop run along the
    channels, contiguous and vectorised; with channels first the loops would run along a 13-pixel row."""
    N, H, W, C = x.shape
    a, t = mat.shape
    down = np.empty((a, t, C), x.dtype)                  # mat down the window's columns
    for n in range(N):
        for ty in range(tiles_h):
            for tx in range(tiles_w):
                down[:] = 0
                for k in range(t):
                    h = ty * step - ph + k
                    if 0 <= h < H:
                        for l in range(t):
                            w = tx * step - pw + l
                            if 0 <= w < W:
                                for i in range(a):
                                    if mat[i, k] != 0:
                                        for c in range(C):
                                            down[i, l, c] += mat[i, k] * x[n, h, w, c]
                tile = (n * tiles_h + ty) * tiles_w + tx
                for i in range(a):
                    for j in range(a):
                        out[i, j, tile] = 0
                        for l in range(t):
                            if mat[j, l] != 0:
                                for c in range(C):
                                    out[i, j, tile, c] += mat[j, l] * down[i, l, c]


@njit(nogil=True, cache=True)
def winograd_untile(tiles, mat, step, ph, pw, tiles_h, tiles_w, out):
    """The reverse of winograd_tiles: adds mat @ tiles[:, :, (n, ty, tx), :] @ mat^T (t x t) into the
    block of out[n] (N, H, W, C) at (ty*step - ph, tx*step - pw), clipped to out. Blocks may overlap."""
    N, H, W, C = out.shape
    t, a = mat.shape
    down = np.empty((t, a, C), out.dtype)                # mat down each column of the tile
    for n in range(N):
        for ty in range(tiles_h):
            for tx in range(tiles_w):
                tile = (n * tiles_h + ty) * tiles_w + tx
                down[:] = 0
                for k in range(t):
                    for i in range(a):
                        if mat[k, i] != 0:
                            for j in range(a):
                                for c in range(C):
                                    down[k, j, c] += mat[k, i] * tiles[i, j, tile, c]
                for k in range(t):
                    h = ty * step - ph + k
                    if 0 <= h < H:
                        for l in range(t):
                            w = tx * step - pw + l
                            if 0 <= w < W:
                                for j in range(a):
                                    if mat[l, j] != 0:
                                        for c in range(C):
                                            out[n, h, w, c] += mat[l, j] * down[k, j, c]
