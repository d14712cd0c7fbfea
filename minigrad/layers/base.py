"""Parameter and Layer: the two types every layer in minigrad is made of.

Gradient semantics, stated once: `backward(dy)` returns the gradient with respect to the layer's input,
freshly computed, and ADDS (+=) the gradients of its parameters into `p.grad`, as PyTorch does, until
`zero_grad()` clears them. So two backward passes without a `zero_grad()` in between sum their
gradients, which is what gradient accumulation over several small batches needs.
"""
import numpy as np

from .. import backend, ops


class Parameter:
    """A trainable array `data`, its gradient `grad` (same shape, zeros until a backward) and a name.

    `zero_grad()` only marks the gradient as zero; `grad` writes the zeros when it is next read, and
    `accumulate_grad_product` writes its product straight into the zeroed array instead. That spares
    fc6 a 150 MB temporary and an add pass per step, and the optimiser a 240 MB memset. (So an array
    kept from before zero_grad(), g = p.grad, shows its old values until the gradient is next used.)
    """

    def __init__(self, data, name=""):
        self.data = data
        self.grad = backend.array_module(data).zeros_like(data)
        self.name = name

    @property
    def grad(self):
        if self._grad_is_zero:
            self._grad[...] = 0
            self._grad_is_zero = False
        return self._grad

    @grad.setter
    def grad(self, value):
        self._grad, self._grad_is_zero = value, False

    def zero_grad(self):
        self._grad_is_zero = True

    def accumulate_grad_product(self, a, b, split="columns"):
        """grad += a @ b (ops.matmul, split among the CPU's workers as `split` says), the product written
        straight into grad when grad is zero."""
        if self._grad_is_zero:
            ops.matmul(a, b, out=self._grad, split=split)
            self._grad_is_zero = False
        else:
            self._grad += ops.matmul(a, b, split=split)

    @property
    def shape(self):
        return self.data.shape

    def __repr__(self):
        return f"Parameter({self.name!r}, shape={tuple(self.data.shape)}, dtype={self.data.dtype})"


class Layer:
    """Base of every layer: parameters, train/eval mode, dtype and device moves, error helpers.

    Subclasses implement `forward(x)` and `backward(dy)`. Arrays that are not parameters but belong to
    the layer's state (BatchNorm's running statistics) are named in `buffers`.
    """

    buffers = ()
    SAVED = ()               # the attributes in which forward keeps what backward reads (see release)
    training = True
    arity = 1                # how many arrays forward() reads: joins (Add, Concat) read several (None: any number)

    def __call__(self, *values, name=None):
        """This layer applied to the symbolic values of a graph being written (mg.Input(), and what layers
        made of it): the value of its output, a node named `name` (default: the layer's kind). To compute
        on arrays, call forward(). See minigrad/layers/graph.py."""
        from .graph import call_symbolically
        return call_symbolically(self, values, name)

    # --- parameters -----------------------------------------------------------------------------
    def named_parameters(self):
        """(name, Parameter) pairs in the order the layer defined them."""
        return [(p.name, p) for p in vars(self).values() if isinstance(p, Parameter)]

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_leaves(self, prefix=""):
        """(name, layer) for every layer that computes something, in the order the data meets them: a
        container opens up into its layers, named "outer.inner" when nested; a plain layer is itself."""
        return [(prefix or type(self).__name__, self)]

    def wired_leaves(self, reads, prefix=""):
        """named_leaves() with the wiring between them, for a layer that reads the values named `reads`:
        ([(name, leaf, [the names of the values it reads])], [the names of the values this layer gives]),
        a value named as the leaf that makes it (or as one of `reads`). A plain layer is one leaf."""
        name = prefix or type(self).__name__
        return [(name, self, list(reads))], [name]

    def zero_grad(self):
        for p in self.parameters():
            p.zero_grad()

    def state_dict(self):
        """name -> NumPy array copy of every parameter and buffer."""
        state = {name: backend.to_numpy(p.data).copy() for name, p in self.named_parameters()}
        state.update({name: backend.to_numpy(getattr(self, name)).copy() for name in self.buffers})
        return state

    def load_state_dict(self, state):
        own = self.state_dict()
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or unexpected:
            raise ValueError(f"{self.describe()}.load_state_dict: missing keys {missing}, "
                             f"unexpected keys {unexpected}")
        params = dict(self.named_parameters())
        for name, value in state.items():
            if tuple(np.shape(value)) != own[name].shape:
                raise ValueError(f"{self.describe()}.load_state_dict: {name!r} expected shape "
                                 f"{own[name].shape}, got {tuple(np.shape(value))}")
            target = params[name].data if name in params else getattr(self, name)
            xp = backend.array_module(target)
            target[...] = xp.asarray(value, dtype=target.dtype)
        return self

    # --- modes, dtypes, devices -------------------------------------------------------------------
    def train(self, mode=True):
        self.training = mode
        return self

    def eval(self):
        return self.train(False)

    def astype(self, dtype):
        """Cast every parameter, gradient and buffer to `dtype`; returns the layer."""
        for p in self.parameters():
            p.data, p.grad = p.data.astype(dtype), p.grad.astype(dtype)
        for name in self.buffers:
            setattr(self, name, getattr(self, name).astype(dtype))
        return self

    def to(self, device):
        """Move parameters, gradients and buffers to "cpu" or "cuda"; returns the layer."""
        backend.check_device(device)
        for p in self.parameters():
            p.data, p.grad = backend.to_device(p.data, device), backend.to_device(p.grad, device)
        for name in self.buffers:
            setattr(self, name, backend.to_device(getattr(self, name), device))
        return self

    # --- random state (dropout masks), so that a run can be replayed exactly ----------------------
    def get_rng_state(self):
        return None

    def set_rng_state(self, state):
        pass

    # --- errors that name the layer ---------------------------------------------------------------
    def describe(self):
        return type(self).__name__

    def __repr__(self):
        return self.describe()

    # --- shapes ---------------------------------------------------------------------------------------
    def output_shape(self, input_shape):
        """The shape forward() returns for an input of `input_shape` (batch axis first; a size may be
        None where it is not known, as the batch of a loaded graph), from the sizes alone: nothing is
        computed. Raises ValueError naming the layer when such an input does not fit it, with the
        message forward() would give. Every layer that can stand in a chain defines it."""
        raise NotImplementedError(f"{self.describe()}: output_shape() is not defined for this layer")

    def multiply_adds(self, output_shape):
        """The multiply-adds of one example's forward pass through the layer's weights, for an output
        of `output_shape` (mg.summary). 0 for a layer without weights: an elementwise layer, a pool or a
        normalisation costs a few operations per value, which no count of a network's work includes."""
        return 0

    def check_shape(self, shape, ndim, layout):
        """`shape` as a tuple, after a ValueError unless it has `ndim` dimensions (any when None)."""
        shape = tuple(shape)
        if ndim is not None and len(shape) != ndim:
            raise ValueError(f"{self.describe()}: expected a {ndim}-D input {layout}, got shape {shape}")
        return shape

    def check_input(self, x, ndim, layout):
        """Raise ValueError unless x is a floating array with `ndim` dimensions (any when None)."""
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            raise ValueError(f"{self.describe()}: expected an array of shape {layout}, "
                             f"got {type(x).__name__}")
        self.check_shape(x.shape, ndim, layout)
        if x.dtype.kind != "f":
            raise ValueError(f"{self.describe()}: expected a floating-point input, got dtype {x.dtype}")
        params = self.parameters()
        if params and x.dtype != params[0].data.dtype:
            raise ValueError(f"{self.describe()}: expected {params[0].data.dtype} input (the dtype of "
                             f"its parameters), got {x.dtype}; cast one with .astype()")
        if params and backend.device_of(x) != backend.device_of(params[0].data):
            raise ValueError(f"{self.describe()}: expected an input on {backend.device_of(params[0].data)} "
                             f"(where its parameters are), got one on {backend.device_of(x)}")

    def saved(self, *values):
        """Return what forward saved for backward, or raise if backward came first."""
        if any(v is None for v in values):
            raise RuntimeError(f"{self.describe()}: backward called before forward, or called again after "
                               f"a container's backward had released what forward saved")
        return values if len(values) > 1 else values[0]

    def release(self):
        """Drop what forward saved for backward (the attributes named in SAVED). Sequential and Graph
        call it once a layer's backward has run, so that a step's activations are freed as the backward
        pass goes down the network, as PyTorch frees its graph, rather than kept until the next forward:
        it is what keeps a batch-128 AlexNet step's peak memory below PyTorch's
        (benchmarks/results/cpu_alexnet_vm.md). A second backward needs a second forward."""
        for name in self.SAVED:
            setattr(self, name, None)

    def check_grad(self, dy, shape):
        if tuple(dy.shape) != tuple(shape):
            raise ValueError(f"{self.describe()}.backward: expected a gradient of shape {tuple(shape)} "
                             f"(the forward output), got {tuple(dy.shape)}")


def pair(value, what, layer):
    """Normalise an int or (h, w) pair, as kernel_size, stride and padding are given."""
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, (int, np.integer)) for v in value):
        return int(value[0]), int(value[1])
    raise ValueError(f"{layer}: {what} must be an int or a pair of ints, got {value!r}")
