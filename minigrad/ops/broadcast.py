"""NumPy's broadcasting, as ONNX's Add, Mul and Sum use it (a bias of shape (1, C, 1, 1) added to maps
(N, C, H, W)), and its adjoint: where an operand was stretched along an axis, its gradient is the sum
of the output's gradient along that axis."""


def broadcast_shape(shapes, who):
    """The shape the operands of `shapes` broadcast to (None for a size not known), or a ValueError
    naming `who` and the shapes that do not fit."""
    rank = max(len(shape) for shape in shapes)
    result = []
    for axis in range(rank):
        sizes = {shape[axis - rank + len(shape)] for shape in shapes if axis - rank + len(shape) >= 0}
        known = {size for size in sizes if size is not None} - {1}
        if len(known) > 1:
            raise ValueError(f"{who}: the shapes {', '.join(str(tuple(s)) for s in shapes)} do not broadcast "
                             f"(axis {axis - rank} has sizes {sorted(known)})")
        result.append(known.pop() if known else (None if None in sizes else 1))
    return tuple(result)


def sum_to_shape(gradient, shape):
    """The gradient of an operand of `shape` that was broadcast to gradient.shape: summed over the
    leading axes it lacked and over the axes where it had size 1."""
    shape = tuple(shape)
    extra = gradient.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(extra + axis for axis, size in enumerate(shape)
                                       if size == 1 and gradient.shape[extra + axis] != 1)
    return gradient.sum(axis=axes).reshape(shape) if axes else gradient.reshape(shape)
