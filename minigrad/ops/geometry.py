"""Where windows fall: the output sizes of convolutions and pools and the padding that makes pooling
windows fit, as plain integer arithmetic on shapes. Device-neutral: the CPU and GPU kernels, average
pooling, the layers' output_shape() and the ONNX converters all compute their sizes here.

Output sizes round down, OH = (H + 2*ph - kh) // sh + 1 (PyTorch's rule; AlexNet's 55, 27, 13 and 6
are exact under either rounding). Pools also take padding as (top, left, bottom, right) and ceil_mode,
the forms Caffe and ONNX graphs use. A size that is not known (None, as the height of a graph loaded
with a free input size) gives None wherever it matters.
"""


def output_size(size, kernel, stride, padding):
    if size is None:
        return None
    return (size + 2 * padding - kernel) // stride + 1


def pool_output_size(size, kernel, stride, pad_begin, pad_end, ceil_mode):
    """Windows along one axis. ceil_mode rounds up, as Caffe always did, but drops a last window that
    would start in the trailing padding (Caffe's, PyTorch's and ONNX Runtime's rule), so every window
    holds at least one real value."""
    if size is None:
        return None
    span = size + pad_begin + pad_end - kernel
    if not ceil_mode:
        return span // stride + 1
    count = -(-span // stride) + 1
    return count - 1 if (count - 1) * stride >= size + pad_begin else count


def pool_geometry(x_shape, kernel_size, stride, padding, ceil_mode):
    """padding (ph, pw) or (top, left, bottom, right) -> ((top, left), (OH, OW)). The kernels need only
    the leading pads: a window is clipped at the input's far edge, and the output size says where to stop."""
    top, left, bottom, right = padding if len(padding) == 4 else (padding[0], padding[1]) * 2
    H, W = x_shape[2:]
    return (top, left), (pool_output_size(H, kernel_size[0], stride[0], top, bottom, ceil_mode),
                         pool_output_size(W, kernel_size[1], stride[1], left, right, ceil_mode))


def check_every_window_holds_input(x_shape, kernel_size, stride, padding, ceil_mode):
    """Raise ValueError if a pooling window would lie wholly in the padding: the max-pool kernels need
    an input value in every window (the layers refuse such padding when they are made; this guards a
    direct call of the ops). Returns pool_geometry's ((top, left), (OH, OW))."""
    (top, left), (OH, OW) = pool_geometry(x_shape, kernel_size, stride, padding, ceil_mode)
    for size, out, kernel, step, lead in zip(x_shape[2:], (OH, OW), kernel_size, stride, (top, left)):
        # The first and the last window are the ones that can lie wholly in the padding.
        if out > 0 and (lead >= kernel or (out - 1) * step - lead >= size):
            raise ValueError(f"max pool: padding {tuple(padding)} leaves a {tuple(kernel_size)} window with no "
                             f"input value (input {tuple(x_shape)}, stride {tuple(stride)})")
    return (top, left), (OH, OW)


def pool_padding(x_shape, kernel_size, stride, padding, ceil_mode):
    """The leading pads, the output size, and the padding ((top, bottom), (left, right)) that makes every
    window fit (the trailing side extended or cut to what the last window reaches)."""
    (top, left), (OH, OW) = pool_geometry(x_shape, kernel_size, stride, padding, ceil_mode)
    H, W = x_shape[2:]
    if None in (H, W, OH, OW):
        raise ValueError(f"pool_padding: the input's height and width must be known, got {tuple(x_shape)}")
    bottom = max(0, (OH - 1) * stride[0] + kernel_size[0] - H - top)
    right = max(0, (OW - 1) * stride[1] + kernel_size[1] - W - left)
    return (top, left), (OH, OW), ((top, bottom), (left, right))
