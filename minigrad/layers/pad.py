"""Zero padding of the maps as a layer of its own: how exporters write padding that the next layer's
own attribute cannot hold (before opset 10, PyTorch wrote an average pool's counted padding as a Pad
node; TensorFlow's converters put Pad before Conv for its asymmetric SAME padding)."""
from .. import backend
from .base import Layer


class ZeroPad2d(Layer):
    """(N, C, H, W) -> (N, C, top + H + bottom, left + W + right), zeros around each map. padding: an
    int, or (top, left, bottom, right). Backward keeps the gradient of the cells that came from x."""

    def __init__(self, padding):
        pads = (padding,) * 4 if isinstance(padding, int) else tuple(padding)
        if len(pads) != 4 or not all(isinstance(p, int) and p >= 0 for p in pads):
            raise ValueError(f"ZeroPad2d: padding must be an int or (top, left, bottom, right) of ints >= 0, "
                             f"got {padding!r}")
        self.pads = pads
        self.x_shape = None

    def describe(self):
        return f"ZeroPad2d({self.pads})"

    def forward(self, x):
        self.check_input(x, 4, "(N, C, H, W)")
        self.x_shape = x.shape
        top, left, bottom, right = self.pads
        return backend.array_module(x).pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))

    def backward(self, dy):
        N, C, H, W = self.saved(self.x_shape)
        top, left, bottom, right = self.pads
        self.check_grad(dy, (N, C, top + H + bottom, left + W + right))
        return dy[:, :, top:top + H, left:left + W]
