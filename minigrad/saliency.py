"""Where a network looks, from its backward pass: three maps in input space that differ only in what a
ReLU passes back.

    saliency(model, x, target)         max over colours of |d score / d pixel|, the plain gradient of the
                                       class score (Simonyan, Vedaldi, Zisserman 2014)
    deconvnet(model, x, layer=...)     Zeiler and Fergus's deconvnet (2014), made to see what AlexNet's
                                       units respond to: a unit's activation projected back to the pixels
                                       through the max-pool switches and the transposed filters, each ReLU
                                       rectifying the signal coming back, whatever its forward input was
    guided_backprop(model, x, ...)     Springenberg et al. (2015): both masks at once, the gradient's (the
                                       forward input was positive) and the deconvnet's (so is the signal)

None needs a backward of its own. Max pooling already keeps its switches (MaxPool2d.argmax, where each
window's maximum was), and the transposed filters are the convolution's input gradient; the three
differ in the ReLU's backward only:

    gradient    dx = dy * [x > 0]
    deconvnet   dx = max(dy, 0)
    guided      dx = max(dy, 0) * [x > 0]

What is projected back is a class score (the output's `target` column; the predicted class by
default) or, with `layer`, the strongest activation of one channel of that layer's output, every other
activation of the layer set to zero (Zeiler and Fergus, section 2.1). The model is deep-copied and put
in eval mode, so nothing of the caller's changes: weights, gradients, forward caches, dropout.
"""
import copy

import numpy as np

from .backend import array_module
from .layers import Layer, ReLU
from .layers.container import Container


class _DeconvReLU(ReLU):
    """The deconvnet's ReLU: it rectifies the signal coming back (Zeiler and Fergus, section 2.1)."""

    def backward(self, dy):
        self.check_grad(dy, self.saved(self.mask).shape)
        return array_module(dy).maximum(dy, 0)


class _GuidedReLU(ReLU):
    """Guided backpropagation's ReLU: the gradient's mask, and only the positive signal."""

    def backward(self, dy):
        return super().backward(array_module(dy).maximum(dy, 0))


def saliency(model, x, target=None):
    """(N, H, W): for each pixel, the largest |d score / d x| over its colour channels, where score is
    the output's column `target` (an int, one per example, or None for each example's predicted class)."""
    if getattr(x, "ndim", None) != 4:
        raise ValueError(f"saliency: x must be images (N, C, H, W), got shape {getattr(x, 'shape', None)}")
    gradient = _project(model, x, ReLU, target, None, None, "saliency")
    return array_module(gradient).abs(gradient).max(axis=1)


def deconvnet(model, x, target=None, layer=None, channel=None):
    """(N, C, H, W): Zeiler and Fergus's reconstruction of the class score `target` or, with `layer` (a
    layer's name, "block.conv1" inside a nested container), of the strongest activation of `channel`
    (None: each example's strongest channel) in that layer's output."""
    return _project(model, x, _DeconvReLU, target, layer, channel, "deconvnet")


def guided_backprop(model, x, target=None, layer=None, channel=None):
    """(N, C, H, W): guided backpropagation of the class score or of one layer's activation, chosen as
    deconvnet's."""
    return _project(model, x, _GuidedReLU, target, layer, channel, "guided_backprop")


def _project(model, x, relu_rule, target, layer, channel, caller):
    """Run x forward through a copy of the model (up to `layer`) whose ReLUs pass back by `relu_rule`,
    then seed the output and return what reaches the input."""
    check_model_and_input(model, x, caller)
    net = copy.deepcopy(model).eval()
    if layer is not None:
        if not isinstance(net, Container):
            raise ValueError(f"{caller}: layer={layer!r} names a layer inside a Sequential or Graph; the model "
                             f"is a single {net.describe()}")
        net = net.up_to(layer)
    for _, leaf in net.named_leaves():
        if hasattr(leaf, "needs_input_grad"):         # AlexNet's conv1 skips d loss / d image in training
            leaf.needs_input_grad = True
        if type(leaf) is ReLU:
            leaf.__class__ = relu_rule
    y = net.forward(x)
    seed = class_score_seed(y, target, caller) if layer is None else _strongest_activation(y, channel, layer, caller)
    return net.backward(seed)


def check_model_and_input(model, x, caller):
    if not isinstance(model, Layer):
        raise ValueError(f"{caller}: model must be a minigrad Layer, Sequential or Graph, got {type(model).__name__}")
    if not hasattr(x, "shape") or not hasattr(x, "dtype") or x.ndim < 2 or x.dtype.kind != "f":
        raise ValueError(f"{caller}: x must be a floating-point array with the batch first, e.g. (N, 3, H, W), "
                         f"got {getattr(x, 'dtype', type(x).__name__)} of shape {getattr(x, 'shape', None)}")


def class_score_seed(y, target, caller):
    """One at each example's class `target` of the scores y (N, classes), zero elsewhere."""
    xp = array_module(y)
    if y.ndim != 2:
        raise ValueError(f"{caller}: the model must output class scores of shape (N, classes), got {tuple(y.shape)}")
    classes = target_classes(y, target, caller)
    seed = xp.zeros_like(y)
    seed[xp.arange(len(y)), xp.asarray(classes)] = 1
    return seed


def target_classes(y, target, caller):
    """The class of each example as a NumPy int array: `target` (an int or one per example), or the
    predicted class when it is None."""
    if target is None:
        return np.asarray(array_module(y).argmax(y, axis=1).tolist())
    classes = np.broadcast_to(np.asarray(target), (len(y),)) if np.ndim(target) == 0 else np.asarray(target)
    if classes.shape != (len(y),) or classes.dtype.kind not in "iu" or classes.min() < 0 or classes.max() >= y.shape[1]:
        raise ValueError(f"{caller}: target must be a class index in [0, {y.shape[1]}) or one per example "
                         f"({len(y)}), got {target!r}")
    return classes


def _strongest_activation(y, channel, layer, caller):
    """y with only the largest activation of `channel` kept in each example (each example's strongest
    channel when channel is None), everything else zero."""
    xp = array_module(y)
    if y.ndim < 2:
        raise ValueError(f"{caller}: layer {layer!r} writes no channels, its output has shape {tuple(y.shape)}")
    flat = y.reshape(len(y), y.shape[1], -1)
    if channel is None:
        channels = flat.max(axis=2).argmax(axis=1)
    elif isinstance(channel, (int, np.integer)) and 0 <= channel < y.shape[1]:
        channels = xp.full(len(y), channel)
    else:
        raise ValueError(f"{caller}: channel must be an int in [0, {y.shape[1]}) (layer {layer!r} has "
                         f"{y.shape[1]} channels) or None, got {channel!r}")
    examples = xp.arange(len(y))
    positions = flat[examples, channels].argmax(axis=1)
    seed = xp.zeros_like(flat)
    seed[examples, channels, positions] = flat[examples, channels, positions]
    return seed.reshape(y.shape)
