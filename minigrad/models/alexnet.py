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
(minigrad/distributed/towers.py), which tests/test_towers.py checks to 1e-10. The "small" preset keeps every one of these features (LRN after ReLU,
overlapping pools, dropout, groups) at a size a laptop CPU trains in minutes on 64 x 64 images.
"""
from dataclasses import asdict, dataclass

import minigrad as mg
from minigrad.ops.geometry import output_size


@dataclass(frozen=True)
class Preset:
    image_size: int                 # the side of the square crop the network takes
    conv1_kernels: int              # conv1: how many kernels, their side and their stride
    conv1_kernel_size: int
    conv1_stride: int
    channels: tuple                 # kernels of conv2, conv3, conv4, conv5
    conv2_kernel_size: int
    hidden: int                     # units of fc6 and fc7
    init: str                       # "paper": N(0, 0.01^2), biases 1 in conv2/4/5 and fc6/7; "he"
    dropout_mode: str = "classic"   # the paper's form (section 4.2)

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, sizes):
        """A Preset from to_dict()'s record, or from a record written before conv1's sizes had names
        (conv1: [kernels, size, stride], conv2_kernel), as checkpoints of earlier runs hold it."""
        sizes = dict(sizes)
        if "conv1" in sizes:
            sizes["conv1_kernels"], sizes["conv1_kernel_size"], sizes["conv1_stride"] = sizes.pop("conv1")
        if "conv2_kernel" in sizes:
            sizes["conv2_kernel_size"] = sizes.pop("conv2_kernel")
        return cls(**{name: tuple(value) if isinstance(value, list) else value for name, value in sizes.items()})

    def conv1_padding(self, image_size):
        """conv1's padding, which makes its windows tile the image: for the paper's net 2 at 224
        (torchvision) and 0 at 227 (Caffe); half the kernel for any other preset."""
        if self == PRESETS["paper"]:
            return 2 if image_size == 224 else 0
        return self.conv1_kernel_size // 2

    def parameter_count(self, num_classes, image_size=None):
        """How many weights and biases alexnet(self, num_classes, image_size) holds, from the sizes alone,
        without allocating the network (checkpoint.py compares it with a file's before building one).
        ValueError for sizes that are not positive ints, or an image too small for the network."""
        image_size = self.image_size if image_size is None else image_size
        channels = tuple(self.channels) if isinstance(self.channels, (tuple, list)) else ()
        sizes = (self.conv1_kernels, self.conv1_kernel_size, self.conv1_stride, self.conv2_kernel_size, self.hidden,
                 num_classes, image_size, *channels)
        if len(channels) != 4 or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes):
            raise ValueError(f"alexnet: the sizes of a preset must be positive ints (channels four of them), got "
                             f"{str(self.to_dict())[:300]}")
        (c1, k1, k2), (c2, c3, c4, c5) = (self.conv1_kernels, self.conv1_kernel_size, self.conv2_kernel_size), channels
        side = output_size(image_size, k1, self.conv1_stride, self.conv1_padding(image_size))   # conv1
        # pool1, conv2, pool2 and pool5 (conv3, conv4 and conv5 keep the size)
        for kernel, stride, padding in ((3, 2, 0), (k2, 1, k2 // 2), (3, 2, 0), (3, 2, 0)):
            side = output_size(side, kernel, stride, padding) if side >= 1 else side
        if side < 1:
            raise ValueError(f"alexnet: image_size {image_size} is too small for the preset {self}")
        layers = [(c1, 3 * k1 * k1), (c2, c1 // 2 * k2 * k2), (c3, c2 * 9), (c4, c3 // 2 * 9), (c5, c4 // 2 * 9),
                  (self.hidden, c5 * side * side), (self.hidden, self.hidden), (num_classes, self.hidden)]
        return sum(outputs * (inputs + 1) for outputs, inputs in layers)     # (out, in) weights and out biases


PRESETS = {
    "paper": Preset(224, conv1_kernels=96, conv1_kernel_size=11, conv1_stride=4, channels=(256, 384, 384, 256),
                    conv2_kernel_size=5, hidden=4096, init="paper"),
    "small": Preset(64, conv1_kernels=32, conv1_kernel_size=5, conv1_stride=2, channels=(64, 96, 96, 64),
                    conv2_kernel_size=5, hidden=256, init="he", dropout_mode="inverted"),
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
    c2, c3, c4, c5 = p.channels
    pad1 = p.conv1_padding(image_size)
    mg.manual_seed(seed)
    features = mg.Sequential(
        ("conv1", mg.Conv2d(3, p.conv1_kernels, p.conv1_kernel_size, stride=p.conv1_stride, padding=pad1)),
        ("relu1", mg.ReLU()),
        ("norm1", mg.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0, groups=2)), ("pool1", mg.MaxPool2d(3, 2)),
        ("conv2", mg.Conv2d(p.conv1_kernels, c2, p.conv2_kernel_size, padding=p.conv2_kernel_size // 2, groups=2)),
        ("relu2", mg.ReLU()),
        ("norm2", mg.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0, groups=2)), ("pool2", mg.MaxPool2d(3, 2)),
        ("conv3", mg.Conv2d(c2, c3, 3, padding=1)), ("relu3", mg.ReLU()),
        ("conv4", mg.Conv2d(c3, c4, 3, padding=1, groups=2)), ("relu4", mg.ReLU()),
        ("conv5", mg.Conv2d(c4, c5, 3, padding=1, groups=2)), ("relu5", mg.ReLU()),
        ("pool5", mg.MaxPool2d(3, 2)),
        ("flatten", mg.Flatten()),
    )
    try:
        _, fc6_inputs = features.output_shape((1, 3, image_size, image_size))
    except ValueError:
        raise ValueError(f"alexnet: image_size {image_size} is too small for the {preset!r} preset") from None
    net = mg.Sequential(
        *features.named_layers(),
        ("fc6", mg.Linear(fc6_inputs, p.hidden)), ("relu6", mg.ReLU()),
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
