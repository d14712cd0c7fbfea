"""The crossings between the paper's two towers (section 3.2) as layers: collectives with a backward.

Each tower lives on its own rank and holds half of every layer's kernels or units. Where a layer reads
the maps or units of both towers (conv3, fc6, fc7, fc8 in AlexNet), an AllGather hands every rank the
whole input; at the end a GatherOutput hands every rank the whole output, so that both compute the same
loss. A SharedInput in front sums the towers' gradients of the image they both read. `comm` is a communicator of minigrad.distributed (world() or one of its split() parts).
"""
import copy

from .base import Layer


class _Collective(Layer):
    def __deepcopy__(self, memo):
        """A copy (gradcheck makes one) shares the communicator, which MPI cannot copy."""
        clone = copy.copy(self)
        memo[id(self)] = clone
        for key, value in vars(self).items():
            if key != "comm":
                setattr(clone, key, copy.deepcopy(value, memo))
        return clone


class AllGather(_Collective):
    """y = the ranks' x concatenated along `axis`, in rank order (every rank's x of one shape).

    Backward: rank s's next layer read all of y, so the gradient dy_s that arrives on rank s is the
    part of dL/dy that flows through rank s's half of that layer. dL/dx_r is therefore the sum over
    the ranks s of dy_s's slice r: a reduce-scatter (sum), which hands each rank its own slice.
    """

    def __init__(self, comm, axis=1):
        self.comm, self.axis = comm, axis
        self.x_shape = None

    def describe(self):
        return f"AllGather(axis={self.axis}, ranks={self.comm.size})"

    def output_shape(self, input_shape):
        """Every rank's x has input_shape (equal halves, as forward requires)."""
        shape = list(self.check_shape(input_shape, None, "(N, ...)"))
        if not -len(shape) <= self.axis < len(shape):
            raise ValueError(f"{self.describe()}: axis out of range for input of shape {tuple(shape)}")
        if shape[self.axis] is not None:
            shape[self.axis] *= self.comm.size
        return tuple(shape)

    def forward(self, x):
        self.check_input(x, None, "(N, ...)")
        y = self.comm.allgather(x, axis=self.axis)
        if y.shape[self.axis] != self.comm.size * x.shape[self.axis]:
            raise ValueError(f"{self.describe()}: rank {self.comm.rank} has {x.shape[self.axis]} along axis "
                             f"{self.axis}, another rank a different number; the towers must be equal halves")
        self.x_shape = x.shape
        return y

    def backward(self, dy):
        x_shape = self.saved(self.x_shape)
        self.check_grad(dy, self.output_shape(x_shape))
        return self.comm.reduce_scatter(dy, axis=self.axis, op="sum")     # sum_s dy_s[slice r]


class GatherOutput(_Collective):
    """y = the ranks' x concatenated along `axis` (the halves may differ in length, as fc8's 1000 units
    need not split evenly), for layers that every rank then computes alike: the loss.

    Backward: every rank computed the same loss from the same y, so each holds the whole dL/dy; the
    gradient of its own x is its own slice (summing over the ranks would count the loss `size` times).
    """
    SAVED = ("own",)

    def __init__(self, comm, axis=1):
        self.comm, self.axis = comm, axis
        self.own = self.y_shape = None

    def describe(self):
        return f"GatherOutput(axis={self.axis}, ranks={self.comm.size})"

    def forward(self, x):
        self.check_input(x, None, "(N, ...)")
        lengths = self.comm.allgather_object(x.shape[self.axis])
        start = sum(lengths[:self.comm.rank])
        y = self.comm.allgather(x, axis=self.axis)
        self.own, self.y_shape = slice(start, start + x.shape[self.axis]), y.shape
        return y

    def backward(self, dy):
        own = self.saved(self.own)
        self.check_grad(dy, self.y_shape)
        index = [slice(None)] * dy.ndim
        index[self.axis] = own
        return dy[tuple(index)].copy()


class SharedInput(_Collective):
    """y = x, the same array on every rank (both towers read the whole image; each rank loads it).

    Backward: every rank's layers read all of x, so dL/dx is the sum of the ranks' gradients, an
    all-reduce. When no layer computed an input gradient (AlexNet's conv1 skips it) None passes through.
    """

    def __init__(self, comm):
        self.comm = comm
        self.x_shape = None

    def describe(self):
        return f"SharedInput(ranks={self.comm.size})"

    def output_shape(self, input_shape):
        return self.check_shape(input_shape, None, "(N, ...)")

    def forward(self, x):
        self.check_input(x, None, "(N, ...)")
        self.x_shape = x.shape
        return x

    def backward(self, dy):
        x_shape = self.saved(self.x_shape)
        if dy is None:
            return None
        self.check_grad(dy, x_shape)
        return self.comm.allreduce(dy, op="sum")          # sum_r dL_r/dx
