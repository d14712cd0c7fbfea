"""Where a network looks, from its forward pass alone: hide one square of the image at a time and
watch the probability of the class fall (Zeiler and Fergus 2014, section 4.2, figure 7).

    probability = mg.occlusion(model, x, target, size=8, stride=4)     # (N, rows, cols)

Cell (i, j) is the probability of class `target` when the size x size square whose top-left pixel is
(i * stride, j * stride) is covered with `fill`: 0 by default, the mean pixel of inputs from which the
mean was subtracted (a grey square, as in the paper). Where the map is low, the network needed what the
square hid. Unlike the gradient, it measures a finite change, so it sees what a ReLU switched off.
"""
import copy

from .backend import array_module
from .layers import Softmax
from .saliency import check_model_and_input, target_classes


def occlusion(model, x, target=None, size=8, stride=4, fill=0.0, batch_size=64):
    """(N, rows, cols) probabilities of each example's class `target` (an int, one per example, or None
    for the class predicted on the whole image) with a square of side `size` covered at every `stride`;
    rows = (H - size) // stride + 1, cols likewise. The model runs in eval mode on a copy."""
    check_model_and_input(model, x, "occlusion")
    if x.ndim != 4:
        raise ValueError(f"occlusion: x must be images (N, C, H, W), got shape {tuple(x.shape)}")
    height, width = x.shape[2:]
    for name, value in (("size", size), ("stride", stride), ("batch_size", batch_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"occlusion: {name} must be a positive int, got {value!r}")
    if size > min(height, width):
        raise ValueError(f"occlusion: the square (size {size}) must fit the images ({height} x {width})")
    xp = array_module(x)
    net = copy.deepcopy(model).eval()
    classes = target_classes(net.forward(x), target, "occlusion")
    tops, lefts = range(0, height - size + 1, stride), range(0, width - size + 1, stride)
    probabilities = Softmax(axis=1)
    corners = [(top, left) for top in tops for left in lefts]
    probability = xp.empty((len(x), len(corners)), dtype=x.dtype)
    for n, image in enumerate(x):
        for start in range(0, len(corners), batch_size):
            chunk = corners[start:start + batch_size]
            occluded = xp.repeat(image[None], len(chunk), axis=0)
            for k, (top, left) in enumerate(chunk):
                occluded[k, :, top:top + size, left:left + size] = fill
            probability[n, start:start + len(chunk)] = probabilities.forward(net.forward(occluded))[:, int(classes[n])]
    return probability.reshape(len(x), len(tops), len(lefts))
