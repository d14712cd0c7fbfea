"""Direct, obvious implementations of each layer's forward (loops where loops are clearest).

They share no code with minigrad: a test that compares the two can see a bug in either.
"""
import math

import numpy as np


def conv2d(x, w, b, stride, padding, groups):
    N, C, H, W = x.shape
    OC, Cg, kh, kw = w.shape
    (sh, sw), (ph, pw) = stride, padding
    xp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), x.dtype)
    xp[:, :, ph:ph + H, pw:pw + W] = x
    OH, OW = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    out = np.zeros((N, OC, OH, OW), x.dtype)
    OCg = OC // groups
    for n in range(N):
        for oc in range(OC):
            g = oc // OCg
            for i in range(OH):
                for j in range(OW):
                    window = xp[n, g * Cg:(g + 1) * Cg, i * sh:i * sh + kh, j * sw:j * sw + kw]
                    out[n, oc, i, j] = (window * w[oc]).sum() + (b[oc] if b is not None else 0)
    return out


def maxpool2d(x, kernel, stride, padding, ceil_mode=False, reduce=lambda values, row, column: max(values)):
    """padding (ph, pw) or (top, left, bottom, right). A window starting at `start` (in input rows) is
    taken when it fits inside the padded input, or with ceil_mode when it only overhangs the far end by
    less than a stride and still starts inside the input. `reduce` turns the window's input values
    (and where it starts) into its output."""
    N, C, H, W = x.shape
    (kh, kw), (sh, sw) = kernel, stride
    top, left, bottom, right = padding if len(padding) == 4 else tuple(padding) * 2

    def starts(size, k, s, before, after):
        found = []
        while True:
            start = len(found) * s - before
            fits = start + k <= size + after
            if not (fits or (ceil_mode and start + k < size + after + s and start < size)):
                return found
            found.append(start)

    rows, cols = starts(H, kh, sh, top, bottom), starts(W, kw, sw, left, right)
    out = np.zeros((N, C, len(rows), len(cols)), x.dtype)
    for n in range(N):
        for c in range(C):
            for i, r in enumerate(rows):
                for j, q in enumerate(cols):
                    out[n, c, i, j] = reduce([x[n, c, h, w] for h in range(max(r, 0), min(r + kh, H))
                                              for w in range(max(q, 0), min(q + kw, W))], r, q)
    return out


def avgpool2d(x, kernel, stride, padding, ceil_mode=False, count_include_pad=True):
    """The windows of maxpool2d, each the sum of its input cells divided by their number, or with
    count_include_pad by the cells it covers inside the padded input (so never those past the padding,
    which only a ceil_mode window reaches)."""
    H, W = x.shape[2:]
    (kh, kw) = kernel
    top, left, bottom, right = padding if len(padding) == 4 else tuple(padding) * 2

    def mean(values, r, q):
        if not count_include_pad:
            return sum(values) / len(values)
        rows = min(r + kh, H + bottom) - max(r, -top)
        cols = min(q + kw, W + right) - max(q, -left)
        return sum(values) / (rows * cols)
    return maxpool2d(x, kernel, stride, padding, ceil_mode, reduce=mean)


def lrn(a, size, alpha, beta, k, groups=1):
    """b_i = a_i / (k + alpha sum_{j=max(0,i-n/2)}^{min(N-1,i+n/2)} a_j^2)^beta, as printed in 3.3, with
    the window clipped to i's group of C / groups channels instead of to [0, C - 1] when groups > 1."""
    N, C = a.shape[:2]
    per_group = C // groups
    b = np.empty_like(a)
    for i in range(C):
        first = i - i % per_group
        last = first + per_group - 1
        lo, hi = max(first, i - size // 2), min(last, i + size // 2)
        energy = sum(a[:, j] ** 2 for j in range(lo, hi + 1))
        b[:, i] = a[:, i] / (k + alpha * energy) ** beta
    return b


def linear(x, w, b):
    out = np.zeros((x.shape[0], w.shape[0]), x.dtype)
    for n in range(x.shape[0]):
        for o in range(w.shape[0]):
            out[n, o] = sum(x[n, i] * w[o, i] for i in range(w.shape[1])) + (b[o] if b is not None else 0)
    return out


def softmax_cross_entropy(logits, labels):
    total = 0.0
    for row, label in zip(logits, labels):
        m = max(row)
        log_sum = m + math.log(sum(math.exp(v - m) for v in row))
        total += log_sum - row[label]
    return total / len(labels)


def batchnorm(x, gamma, beta, axes, eps):
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    shape = [1] * x.ndim
    shape[1] = -1
    return gamma.reshape(shape) * (x - mean) / np.sqrt(var + eps) + beta.reshape(shape)


def broadcast_elementwise(arrays, combine):
    """Each output cell combines the cells of the operands it lines up with, an operand of size 1 (or
    missing, to the left) along an axis lining up with every cell of that axis: broadcasting by hand."""
    rank = max(a.ndim for a in arrays)
    padded = [a.reshape((1,) * (rank - a.ndim) + a.shape) for a in arrays]
    shape = tuple(max(a.shape[axis] for a in padded) for axis in range(rank))
    out = np.zeros(shape, arrays[0].dtype)
    for index in np.ndindex(*shape):
        out[index] = combine([a[tuple(i if a.shape[axis] > 1 else 0 for axis, i in enumerate(index))] for a in padded])
    return out


def concat_channels(arrays):
    """Channel c of the output is channel c - (channels of the arrays before) of its array."""
    total = sum(a.shape[1] for a in arrays)
    out = np.zeros((arrays[0].shape[0], total) + arrays[0].shape[2:], arrays[0].dtype)
    c = 0
    for a in arrays:
        for own in range(a.shape[1]):
            out[:, c] = a[:, own]
            c += 1
    return out


def channel_shuffle(x, groups):
    """ShuffleNet's shuffle as its paper draws it: channel i of group g goes to position i * groups + g."""
    per_group = x.shape[1] // groups
    out = np.empty_like(x)
    for g in range(groups):
        for i in range(per_group):
            out[:, i * groups + g] = x[:, g * per_group + i]
    return out
