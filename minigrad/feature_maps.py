"""What a network computes on the way: the outputs of its layers for one input, and a mosaic to look
at many small images at once (the maps of a layer, or the kernels of conv1 as the paper's figure 3).

    maps = mg.feature_maps(model, x, ["conv1", "conv2", "conv5"])    # {name: (N, C, H, W)}
    plt.imshow(mg.mosaic(maps["conv1"][0]), cmap="gray")              # its C maps side by side
    plt.imshow(mg.mosaic(model["conv1"].weight.data))                # (K, 3, kh, kw): colour kernels
"""
import copy
import math

import numpy as np

from . import backend
from .layers.container import Container
from .saliency import check_model_and_input


def feature_maps(model, x, layers=None):
    """{name: output} of the model's layers for the input x, as NumPy arrays, in eval mode, on a copy of
    the model (nothing of the caller's changes). layers: names as mg.diagnose and mg.summary give them
    ("conv1", "block.conv1"); None for all."""
    check_model_and_input(model, x, "feature_maps")
    net = copy.deepcopy(model).eval()
    names = [name for name, _ in net.named_leaves()]
    wanted = names if layers is None else [layers] if isinstance(layers, str) else list(layers)
    unknown = [name for name in wanted if name not in names]
    if unknown:
        raise ValueError(f"feature_maps: no layer(s) {unknown} in the model; its layers are {names}")
    outputs = {}

    def keep(event, name, layer, array):
        if event == "forward" and name in wanted:
            outputs[name] = backend.to_numpy(array)

    if isinstance(net, Container) and net.opens_up:
        net.observe(keep)
        net.forward(x)
    else:                                  # a single layer: its output is the only map
        outputs[names[0]] = backend.to_numpy(net.forward(x))
    return {name: outputs[name] for name in wanted}


def mosaic(images, columns=None, pad=1, each=True):
    """One picture of K small images, in rows of `columns` (default: about square), separated by `pad`
    pixels of white. images: (K, H, W) grey maps, or (K, 3, H, W) colour images such as conv1's kernels.
    each: scale every image to [0, 1] on its own (else all together). Returns (rows * (H + pad) - pad,
    columns * (W + pad) - pad) values, with a last axis of 3 for colour, ready for plt.imshow."""
    images = np.asarray(backend.to_numpy(images), dtype=np.float64)
    if images.ndim == 4 and images.shape[1] == 3:
        images = images.transpose(0, 2, 3, 1)                    # (K, H, W, RGB)
    elif images.ndim != 3:
        raise ValueError(f"mosaic: expected (K, H, W) maps or (K, 3, H, W) colour images, got shape {images.shape}")
    count, height, width = images.shape[:3]
    if count == 0:
        raise ValueError("mosaic: no images")
    axes = tuple(range(1, images.ndim)) if each else None
    low = images.min(axis=axes, keepdims=each)
    span = images.max(axis=axes, keepdims=each) - low
    scaled = (images - low) / np.where(span > 0, span, 1)
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    picture = np.ones((rows * (height + pad) - pad, columns * (width + pad) - pad) + images.shape[3:])
    for k, image in enumerate(scaled):
        top, left = (k // columns) * (height + pad), (k % columns) * (width + pad)
        picture[top:top + height, left:left + width] = image
    return picture
