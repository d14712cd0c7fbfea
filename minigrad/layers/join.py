"""The layers where a graph forks and joins, and those that only cut or move channels.

    Add        y = x1 + x2 + ...     (ResNet's shortcut; ONNX's Add and Sum)   dx_i = dy, summed where x_i was broadcast
    Multiply   y = x1 * x2 * ...     (a gate: squeeze-and-excitation)         dx_i = dy * prod of the others
    Concat     y = [x1, x2, ...]     along the channels (GoogLeNet, DenseNet) dx_i = dy's slice of x_i
    Slice      y = x[:, start:stop]  one part of a channel split             dx = dy in its place, zeros elsewhere
    Identity   y = x
    ChannelShuffle                   the channels of g groups interleaved (ShuffleNet): a permutation

Add and Multiply broadcast as NumPy and ONNX do: an operand of shape (N, C, 1, 1) or (1, C, 1, 1)
stretches over (N, C, H, W). Backward sums the gradient over the axes an operand was stretched along,
because each of its cells contributed to every output cell of that axis (ops/broadcast.py). A shape
that does not join is a ValueError naming both shapes, not a broadcasting error from deep inside.
"""
import numpy as np

from ..backend import array_module
from ..ops.broadcast import broadcast_shape, sum_to_shape
from .base import Layer


class _Join(Layer):
    """A layer that reads any number (at least 2, or `least`) of arrays of one dtype."""

    arity = None
    least = 2

    def check_inputs(self, xs, layout):
        if len(xs) < self.least:
            raise ValueError(f"{self.describe()}: expected at least {self.least} inputs, got {len(xs)}")
        for x in xs:
            self.check_input(x, None, layout)
        if len({x.dtype for x in xs}) > 1:
            raise ValueError(f"{self.describe()}: expected inputs of one dtype, got {[str(x.dtype) for x in xs]}")


class Add(_Join):
    """y = x1 + x2 + ... (any number of inputs, broadcast as NumPy and ONNX broadcast them)."""

    def __init__(self):
        self.shapes = None

    def output_shape(self, *input_shapes):
        return broadcast_shape(input_shapes, self.describe())

    def forward(self, *xs):
        self.check_inputs(xs, "(N, ...)")
        self.output_shape(*(x.shape for x in xs))
        self.shapes = [x.shape for x in xs]
        y = xs[0] + xs[1]
        for x in xs[2:]:
            y += x
        return y

    def backward(self, dy):
        shapes = self.saved(self.shapes)
        self.check_grad(dy, broadcast_shape(shapes, self.describe()))
        return tuple(sum_to_shape(dy, shape) for shape in shapes)      # each input: dy where it was added


class Multiply(_Join):
    """y = x1 * x2 * ... (broadcast as Add). dy/dx_i is the product of the other inputs."""
    SAVED = ("xs",)

    def __init__(self):
        self.xs = None

    def output_shape(self, *input_shapes):
        return broadcast_shape(input_shapes, self.describe())

    def forward(self, *xs):
        self.check_inputs(xs, "(N, ...)")
        self.output_shape(*(x.shape for x in xs))
        self.xs = xs
        y = xs[0] * xs[1]
        for x in xs[2:]:
            y = y * x
        return y

    def backward(self, dy):
        xs = self.saved(self.xs)
        self.check_grad(dy, broadcast_shape([x.shape for x in xs], self.describe()))
        grads = []
        for i, x in enumerate(xs):
            others = dy
            for j, other in enumerate(xs):
                if j != i:
                    others = others * other
            grads.append(sum_to_shape(others, x.shape))
        return tuple(grads)


class Concat(_Join):
    """The inputs side by side along `axis` (the channels by default): every other size must agree."""

    least = 1

    def __init__(self, axis=1):
        if not isinstance(axis, (int, np.integer)) or axis == 0:
            raise ValueError(f"Concat: axis must be an int other than 0 (the batch), got {axis!r}")
        self.axis = int(axis)
        self.sizes = None

    def describe(self):
        return f"Concat(axis={self.axis})"

    def output_shape(self, *input_shapes):
        ranks = {len(shape) for shape in input_shapes}
        if len(ranks) > 1 or not -min(ranks) <= self.axis < min(ranks):
            raise ValueError(f"{self.describe()}: inputs of shapes {', '.join(map(str, input_shapes))} have "
                             f"different ranks or no axis {self.axis}")
        axis = self.axis % ranks.pop()
        first = input_shapes[0]
        for shape in input_shapes[1:]:
            if any(a != b and None not in (a, b) for i, (a, b) in enumerate(zip(first, shape)) if i != axis):
                raise ValueError(f"{self.describe()}: shapes {tuple(first)} and {tuple(shape)} differ on an axis "
                                 f"other than {self.axis}, so they cannot be joined")
        sizes = [shape[axis] for shape in input_shapes]
        return tuple(first[:axis]) + (None if None in sizes else sum(sizes),) + tuple(first[axis + 1:])

    def forward(self, *xs):
        self.check_inputs(xs, "(N, C, ...)")
        self.output_shape(*(x.shape for x in xs))
        self.sizes = [x.shape[self.axis] for x in xs]
        return array_module(xs[0]).concatenate(xs, axis=self.axis)

    def backward(self, dy):
        sizes = self.saved(self.sizes)
        if dy.shape[self.axis] != sum(sizes):
            raise ValueError(f"{self.describe()}.backward: expected a gradient with {sum(sizes)} along axis "
                             f"{self.axis}, got shape {tuple(dy.shape)}")
        bounds = np.cumsum([0] + sizes)
        index = [slice(None)] * dy.ndim
        grads = []
        for start, stop in zip(bounds[:-1], bounds[1:]):
            index[self.axis] = slice(start, stop)
            grads.append(dy[tuple(index)])
        return tuple(grads)


class Slice(Layer):
    """x[:, start:stop] along `axis` (the channels by default): one part of a channel split (ONNX's
    Split gives one Slice per part, each reading the same value, and the graph adds their gradients)."""

    def __init__(self, start, stop, axis=1):
        if not all(isinstance(v, (int, np.integer)) for v in (start, stop, axis)) or not 0 <= start < stop \
                or axis == 0:
            raise ValueError(f"Slice: expected ints 0 <= start < stop and an axis other than 0 (the batch), got "
                             f"start={start!r}, stop={stop!r}, axis={axis!r}")
        self.start, self.stop, self.axis = int(start), int(stop), int(axis)
        self.x_shape = None

    def describe(self):
        return f"Slice({self.start}:{self.stop}, axis={self.axis})"

    def output_shape(self, input_shape):
        shape = list(self.check_shape(input_shape, None, "(N, ...)"))
        if not -len(shape) <= self.axis < len(shape) or (shape[self.axis] is not None and
                                                         shape[self.axis] < self.stop):
            raise ValueError(f"{self.describe()}: input of shape {tuple(shape)} has no such part")
        shape[self.axis] = self.stop - self.start
        return tuple(shape)

    def _index(self, ndim):
        index = [slice(None)] * ndim
        index[self.axis] = slice(self.start, self.stop)
        return tuple(index)

    def forward(self, x):
        self.check_input(x, None, "(N, ...)")
        self.output_shape(x.shape)
        self.x_shape = x.shape
        return x[self._index(x.ndim)]

    def backward(self, dy):
        x_shape = self.saved(self.x_shape)
        self.check_grad(dy, self.output_shape(x_shape))
        dx = array_module(dy).zeros(x_shape, dy.dtype)
        dx[self._index(len(x_shape))] = dy
        return dx


class Identity(Layer):
    """y = x: a named point in a graph (ONNX's Identity)."""

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x):
        self.check_input(x, None, "(any shape)")
        return x

    def backward(self, dy):
        return dy


class ChannelShuffle(Layer):
    """The C channels of (N, C, H, W), seen as `groups` groups of C/groups, interleaved: channel
    g * (C/groups) + i moves to i * groups + g (ShuffleNet, Zhang et al. 2018), so that the next grouped
    convolution reads channels from every group. As computed: reshape to (N, groups, C/groups, H, W),
    swap the two channel axes, reshape back. Backward applies the inverse permutation."""

    def __init__(self, groups):
        if not isinstance(groups, (int, np.integer)) or groups < 1:
            raise ValueError(f"ChannelShuffle: groups must be a positive int, got {groups!r}")
        self.groups = int(groups)
        self.x_shape = None

    def describe(self):
        return f"ChannelShuffle(groups={self.groups})"

    def output_shape(self, input_shape):
        shape = self.check_shape(input_shape, 4, "(N, C, H, W)")
        if shape[1] is not None and shape[1] % self.groups:
            raise ValueError(f"{self.describe()}: groups must divide the channels, got input of shape {shape}")
        return shape

    @staticmethod
    def _swap(x, first):
        n, c, h, w = x.shape
        return x.reshape(n, first, c // first, h, w).transpose(0, 2, 1, 3, 4).reshape(n, c, h, w)

    def forward(self, x):
        self.check_input(x, 4, "(N, C, H, W)")
        self.x_shape = self.output_shape(x.shape)
        return self._swap(x, self.groups)

    def backward(self, dy):
        self.check_grad(dy, self.saved(self.x_shape))
        return self._swap(dy, dy.shape[1] // self.groups)        # the inverse: the transposed grouping
