"""Containers: layers made of named layers. Sequential runs its list forwards, then backwards (the chain
rule); Graph (graph.py) runs a network that forks and joins. What both share lives in Container."""
from .. import backend
from .base import Layer


class Container(Layer):
    """Named layers that act as one: their parameters are "<layer name>.<parameter name>"
    ("conv1.weight"), and train/eval, astype, to(device), state_dict and the dropout generators reach
    every one of them. A subclass defines named_layers(), forward and backward.

    observe(observer) lets a tool watch every layer at work without changing the network
    (mg.diagnose does): the container calls observer("forward", name, layer, output) after each
    layer's forward, and observer("backward", name, layer, gradient) with the gradient that reaches a
    layer's output, before its backward runs; nested containers report their layers under
    "outer.inner" names.
    """

    _plain = ()                 # (forward, backward) of the class: a subclass that overrides one is a layer

    def named_layers(self):
        raise NotImplementedError

    def layer_shapes(self, *input_shapes):
        """(name, layer, the shapes it reads, the shape it writes) for each layer in the order forward
        runs them, for inputs of `input_shapes` (batch first), from the sizes alone (mg.summary)."""
        raise NotImplementedError

    def replace(self, name, layer):
        """Put `layer` in the place of the layer named `name` (a new classifier for fine-tuning)."""
        raise NotImplementedError

    def up_to(self, name):
        """The network that computes the value `name` (a layer's output; "block.conv1" inside a nested
        container): the same layer objects, from the input up to that layer, those it needs only."""
        raise NotImplementedError

    @property
    def opens_up(self):
        """Whether this container is the sum of its layers (a subclass with a forward or backward of its
        own is one layer: its layers are not observed, nor listed as leaves)."""
        return (type(self).forward, type(self).backward) == self._plain

    def named_leaves(self, prefix=""):
        """The layers that compute, nested containers opened up, named "outer.inner", in the order the
        data meets them (a graph's: its nodes' topological order)."""
        if not self.opens_up:
            return super().named_leaves(prefix)
        return [leaf for name, layer in self.named_layers()
                for leaf in layer.named_leaves(f"{prefix}.{name}" if prefix else name)]

    def wired_leaves(self, reads, prefix=""):
        if not self.opens_up:
            return super().wired_leaves(reads, prefix)
        return self._wired_layers(reads, prefix)

    def _wired_layers(self, reads, prefix):
        """wired_leaves() of a container that is the sum of its layers."""
        raise NotImplementedError

    def observe(self, observer, prefix=""):
        """Report every layer's output and output gradient to observer(event, name, layer, array)
        (see the class docstring); observe(None) stops it."""
        self._observer, self._prefix = observer, prefix
        for name, layer in self.named_layers():
            if isinstance(layer, Container) and layer.opens_up:
                layer.observe(observer, f"{prefix}{name}.")
        return self

    _observer = None

    def _report(self, event, name, layer, array):
        if self._observer is not None:
            self._observer(event, self._prefix + name, layer, array)

    def describe(self):
        lines = [f"  ({name}): {layer.describe()}" for name, layer in self.named_layers()]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"

    def named_parameters(self):
        return [(f"{name}.{pname}", p) for name, layer in self.named_layers()
                for pname, p in layer.named_parameters()]

    def state_dict(self):
        return {f"{name}.{key}": value for name, layer in self.named_layers()
                for key, value in layer.state_dict().items()}

    def load_state_dict(self, state):
        own = self.state_dict()
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or unexpected:
            raise ValueError(f"{type(self).__name__}.load_state_dict: missing keys {missing}, "
                             f"unexpected keys {unexpected}")
        for name, layer in self.named_layers():
            prefix = name + "."
            layer.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
        return self

    def train(self, mode=True):
        self.training = mode
        for _, layer in self.named_layers():
            layer.train(mode)
        return self

    def astype(self, dtype):
        for _, layer in self.named_layers():
            layer.astype(dtype)
        return self

    def to(self, device):
        backend.check_device(device)
        for _, layer in self.named_layers():
            layer.to(device)
        return self

    def get_rng_state(self):
        return [layer.get_rng_state() for _, layer in self.named_layers()]

    def set_rng_state(self, state):
        layers = self.named_layers()
        if not isinstance(state, list) or len(state) != len(layers):
            raise ValueError(f"{type(self).__name__}.set_rng_state: expected a list of {len(layers)} layer states, "
                             f"got {type(state).__name__} of length {len(state) if hasattr(state, '__len__') else '-'}")
        for (_, layer), layer_state in zip(layers, state):
            layer.set_rng_state(layer_state)


class Sequential(Container):
    """Layers applied in order. Each item is a layer or a (name, layer) pair; unnamed layers are
    named by their position. Parameter names are "<layer name>.<parameter name>" (e.g. "conv1.weight").
    """

    def __init__(self, *layers):
        self.names, self.layers = [], []
        taken = set()                           # (a set: a list's `in` would make building n layers take n^2)
        for index, item in enumerate(layers):
            name, layer = item if isinstance(item, tuple) else (str(index), item)
            if not isinstance(layer, Layer):
                raise ValueError(f"Sequential: item {index} must be a minigrad Layer, got {type(layer).__name__}")
            if name in taken:
                raise ValueError(f"Sequential: the name {name!r} is used twice")
            taken.add(name)
            self.names.append(name)
            self.layers.append(layer)
        # Called as hook(layer) after each layer's backward: data-parallel training starts reducing
        # the gradients that are complete while backward goes on (minigrad.distributed.DataParallel).
        self.backward_hooks = []

    def __getitem__(self, key):
        return self.layers[self.names.index(key)] if isinstance(key, str) else self.layers[key]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def named_layers(self):
        return list(zip(self.names, self.layers))

    def replace(self, name, layer):
        if name not in self.names or not isinstance(layer, Layer):
            raise ValueError(f"Sequential.replace: expected one of its layers {self.names} and a minigrad Layer, got "
                             f"{name!r} and {type(layer).__name__}")
        self.layers[self.names.index(name)] = layer

    def layer_shapes(self, input_shape):
        shapes = []
        for name, layer in self.named_layers():
            output_shape = tuple(layer.output_shape(input_shape))
            shapes.append((name, layer, (tuple(input_shape),), output_shape))
            input_shape = output_shape
        return shapes

    def output_shape(self, input_shape):
        shapes = self.layer_shapes(input_shape)
        return shapes[-1][3] if shapes else tuple(input_shape)

    def up_to(self, name):
        if name in self.names:
            return Sequential(*self.named_layers()[:self.names.index(name) + 1])
        outer, _, inner = name.partition(".")
        if outer not in self.names or not isinstance(self[outer], Container):
            raise ValueError(f"Sequential: no layer {name!r}; its layers are {self.names}")
        index = self.names.index(outer)
        return Sequential(*self.named_layers()[:index], (outer, self[outer].up_to(inner)))

    def _wired_layers(self, reads, prefix):
        leaves = []
        for name, layer in self.named_layers():             # each layer reads what the one before gives
            inner, reads = layer.wired_leaves(reads, f"{prefix}.{name}" if prefix else name)
            leaves += inner
        return leaves, reads

    def forward(self, x):
        for name, layer in zip(self.names, self.layers):
            x = layer.forward(x)
            self._report("forward", name, layer, x)
        return x

    def backward(self, dy):
        for name, layer in zip(reversed(self.names), reversed(self.layers)):   # the chain rule: last layer first
            self._report("backward", name, layer, dy)
            if dy is not None:            # (None: the layer behind computed no input gradient, as conv1)
                dy = layer.backward(dy)
            layer.release()
            for hook in self.backward_hooks:
                hook(layer)
        return dy


Sequential._plain = (Sequential.forward, Sequential.backward)
