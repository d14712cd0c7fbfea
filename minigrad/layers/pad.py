"""Zero padding of the maps as a layer of its own: how exporters write padding that the next layer's
own attribute cannot hold (before opset 10, PyTorch wrote an average pool's counted padding as a Pad
node; TensorFlow's converters put Pad before Conv for its asymmetric SAME padding)."""
import numpy as np

from .. import backend
from .base import Layer


class ZeroPad2d(Layer):
    """(N, C, H, W) -> (N, C, top + H + bottom, left + W + right), zeros around each map. padding: an
    int, (ph, pw), or (top, left, bottom, right) (ONNX's order, as the pools take it; PyTorch's
    nn.ZeroPad2d takes (left, right, top, bottom)). axes: where H and W are, (2, 3) in NCHW, (1, 2) in
    TensorFlow's NHWC. Backward keeps the gradient of the cells that came from x."""

    def __init__(self, padding, axes=(2, 3)):
        pads = (padding,) * 4 if isinstance(padding, (int, np.integer)) else tuple(padding)
        pads = pads * 2 if len(pads) == 2 else pads
        if len(pads) != 4 or not all(isinstance(p, (int, np.integer)) and p >= 0 for p in pads):
            raise ValueError(f"ZeroPad2d: padding must be an int, (ph, pw) or (top, left, bottom, right) of ints "
                             f">= 0, got {padding!r}")
        pads = tuple(int(p) for p in pads)
        if tuple(axes) not in ((2, 3), (1, 2)):
            raise ValueError(f"ZeroPad2d: axes must be (2, 3) (NCHW) or (1, 2) (NHWC), got {axes!r}")
        self.pads, self.axes = pads, tuple(axes)
        self.x_shape = None

    def describe(self):
        return f"ZeroPad2d({self.pads}{'' if self.axes == (2, 3) else f', axes={self.axes}'})"

    def _widths(self):
        """np.pad's ((before, after), ...) for the four axes."""
        top, left, bottom, right = self.pads
        widths = [(0, 0)] * 4
        widths[self.axes[0]], widths[self.axes[1]] = (top, bottom), (left, right)
        return widths

    def output_shape(self, input_shape):
        shape = self.check_shape(input_shape, 4, "(N, C, H, W)" if self.axes == (2, 3) else "(N, H, W, C)")
        return tuple(None if size is None else size + before + after
                     for size, (before, after) in zip(shape, self._widths()))

    def forward(self, x):
        self.check_input(x, 4, "(N, C, H, W)" if self.axes == (2, 3) else "(N, H, W, C)")
        self.x_shape = x.shape
        return backend.array_module(x).pad(x, self._widths())

    def backward(self, dy):
        x_shape = self.saved(self.x_shape)
        self.check_grad(dy, self.output_shape(x_shape))
        return dy[tuple(slice(before, before + size) for size, (before, _) in zip(x_shape, self._widths()))]
