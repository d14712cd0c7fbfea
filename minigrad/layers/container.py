"""Sequential: the chain rule as a list run forwards, then backwards."""
from .. import backend
from .base import Layer


class Sequential(Layer):
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

    def describe(self):
        lines = [f"  ({name}): {layer.describe()}" for name, layer in self.named_layers()]
        return "Sequential(\n" + "\n".join(lines) + "\n)"

    def output_shape(self, input_shape):
        for layer in self.layers:
            input_shape = layer.output_shape(input_shape)
        return tuple(input_shape)

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy):
        for layer in reversed(self.layers):   # the chain rule: last layer first
            dy = layer.backward(dy)
            for hook in self.backward_hooks:
                hook(layer)
        return dy

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
            raise ValueError(f"Sequential.load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for name, layer in self.named_layers():
            prefix = name + "."
            layer.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
        return self

    def train(self, mode=True):
        self.training = mode
        for layer in self.layers:
            layer.train(mode)
        return self

    def astype(self, dtype):
        for layer in self.layers:
            layer.astype(dtype)
        return self

    def to(self, device):
        backend.check_device(device)
        for layer in self.layers:
            layer.to(device)
        return self

    def get_rng_state(self):
        return [layer.get_rng_state() for layer in self.layers]

    def set_rng_state(self, state):
        for layer, layer_state in zip(self.layers, state):
            layer.set_rng_state(layer_state)
