"""AlexNet (Krizhevsky, Sutskever, Hinton 2012, section 3.5 and figure 2), built from minigrad layers.

    conv1  96 x 11x11/4 (pad 2 at 224, 0 at 227) -> ReLU -> LRN -> max-pool 3/2      96 x 27 x 27
    conv2  256 x 5x5, pad 2, groups=2            -> ReLU -> LRN -> max-pool 3/2     256 x 13 x 13
    conv3  384 x 3x3, pad 1 (crosses the GPUs)   -> ReLU                            384 x 13 x 13
    conv4  384 x 3x3, pad 1, groups=2            -> ReLU                            384 x 13 x 13
    conv5  256 x 3x3, pad 1, groups=2            -> ReLU -> max-pool 3/2            256 x  6 x  6
    fc6    9216 -> 4096 -> ReLU -> dropout 0.5
    fc7    4096 -> 4096 -> ReLU -> dropout 0.5
    fc8    4096 -> classes (softmax in the loss)

groups=2 is the paper's two-GPU split (section 3.2) on one device: conv2, conv4 and conv5 only see the
maps on their own GPU, and both LRNs normalise each GPU's maps separately (groups=2: the window stops
at the tower boundary). The paper does not say so, but the authors' own two-GPU configuration does:
cuda-convnet2's layers-imagenet-2gpu-model.cfg has rnorm1a over conv1a's 48 maps and rnorm1b over
conv1b's. With it this one-device net is the same function as the two towers on two ranks
(examples/alexnet/towers.py), which tests/test_towers.py checks to 1e-10. The "small" preset keeps every one of these features (LRN after ReLU,
overlapping pools, dropout, groups) at a size a laptop CPU trains in minutes on 64 x 64 images.
"""
from dataclasses import dataclass

import minigrad as mg


@dataclass(frozen=True)
class Preset:
    image_size: int                 # the side of the square crop the network takes
    conv1: tuple                    # (kernels, kernel size, stride)
    channels: tuple                 # kernels of conv2, conv3, conv4, conv5
    conv2_kernel: int
    hidden: int                     # units of fc6 and fc7
    init: str                       # "paper": N(0, 0.01^2), biases 1 in conv2/4/5 and fc6/7; "he"
    dropout_mode: str = "classic"   # the paper's form (section 4.2)


PRESETS = {
    "paper": Preset(224, (96, 11, 4), (256, 384, 384, 256), 5, 4096, "paper"),
    "small": Preset(64, (32, 5, 2), (64, 96, 96, 64), 5, 256, "he", "inverted"),
}


def alexnet(preset="paper", num_classes=1000, image_size=None, seed=0):
    """The network as a Sequential with named layers ("conv1", "relu1", "norm1", "pool1", ...).

    preset: "paper", "small", or a Preset of your own (the tests build a tiny one).
    image_size: 224 (padding 2 on conv1, as torchvision) or 227 (no padding, as Caffe) for the paper;
    defaults to the preset's size. Output sizes follow from the layers; fc6 is sized to match.
    """
    if not isinstance(preset, Preset) and preset not in PRESETS:
        raise ValueError(f"alexnet: preset must be one of {sorted(PRESETS)} or a Preset, got {preset!r}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"alexnet: num_classes must be an int >= 2, got {num_classes!r}")
    p = preset if isinstance(preset, Preset) else PRESETS[preset]
    image_size = p.image_size if image_size is None else image_size
    k1, kernel1, stride1 = p.conv1
    c2, c3, c4, c5 = p.channels
    # Padding that makes conv1's windows tile the image: 2 at 224 (torchvision), 0 at 227 (Caffe).
    paper = p == PRESETS["paper"]
    pad1 = (2 if image_size == 224 else 0) if paper else kernel1 // 2
    mg.manual_seed(seed)

    def after_conv1(size):
        conv = (size + 2 * pad1 - kernel1) // stride1 + 1
        for _ in range(3):            # three overlapping 3/2 pools; convs 2-5 keep the size
            conv = (conv - 3) // 2 + 1
        return conv

    side = after_conv1(image_size)
    if side < 1:
        raise ValueError(f"alexnet: image_size {image_size} is too small for the {preset!r} preset")
    net = mg.Sequential(
        ("conv1", mg.Conv2d(3, k1, kernel1, stride=stride1, padding=pad1)), ("relu1", mg.ReLU()),
        ("norm1", mg.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0, groups=2)), ("pool1", mg.MaxPool2d(3, 2)),
        ("conv2", mg.Conv2d(k1, c2, p.conv2_kernel, padding=p.conv2_kernel // 2, groups=2)),
        ("relu2", mg.ReLU()),
        ("norm2", mg.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0, groups=2)), ("pool2", mg.MaxPool2d(3, 2)),
        ("conv3", mg.Conv2d(c2, c3, 3, padding=1)), ("relu3", mg.ReLU()),
        ("conv4", mg.Conv2d(c3, c4, 3, padding=1, groups=2)), ("relu4", mg.ReLU()),
        ("conv5", mg.Conv2d(c4, c5, 3, padding=1, groups=2)), ("relu5", mg.ReLU()),
        ("pool5", mg.MaxPool2d(3, 2)),
        ("flatten", mg.Flatten()),
        ("fc6", mg.Linear(c5 * side * side, p.hidden)), ("relu6", mg.ReLU()),
        ("drop6", mg.Dropout(0.5, mode=p.dropout_mode, seed=seed + 6)),
        ("fc7", mg.Linear(p.hidden, p.hidden)), ("relu7", mg.ReLU()),
        ("drop7", mg.Dropout(0.5, mode=p.dropout_mode, seed=seed + 7)),
        ("fc8", mg.Linear(p.hidden, num_classes)),
    )
    net["conv1"].needs_input_grad = False     # nobody needs d loss / d image: skip conv1's col2im
    initialise(net, p.init)
    return net


def initialise(net, scheme):
    """'paper' (section 5): weights N(0, 0.01^2); biases 1 in conv2, conv4, conv5, fc6, fc7 (to give the
    ReLUs positive input early), 0 in conv1, conv3, fc8. 'he': He-normal weights, zero biases."""
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"):
        if scheme == "paper":
            mg.init.gaussian(net[name], std=0.01, bias=1.0 if name in ("conv2", "conv4", "conv5", "fc6", "fc7") else 0.0)
        else:
            mg.init.he_normal(net[name])
