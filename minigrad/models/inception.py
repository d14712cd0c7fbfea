"""A small inception network (Szegedy et al., "Going Deeper with Convolutions", 2015, GoogLeNet; with
batch normalisation after every convolution, as Ioffe and Szegedy's Inception-v2 added it), built from
minigrad's own blocks at a size a CPU trains in minutes on 32 to 64 pixel images.

    stem        conv 5x5/2, 32 kernels -> BN -> ReLU -> max-pool 3/2        (AlexNet's first steps)
    inception1  four branches concatenated: 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | max-pool 3/1 -> 1x1
    pool        max-pool 3/2
    inception2  the same, wider
    head        global average pool -> dropout 0.4 (GoogLeNet's) -> fc -> classes

An inception module (figure 2b of the paper) looks at the same maps through windows of several sizes at
once and lets the next layer choose among them; the 1x1 convolutions before the 3x3 and 5x5 ones cut
the number of maps they read, which is what makes the wide module affordable. In the backward pass
the four branches' gradients with respect to the module's input add up (mg.Graph does the sum).
"""
import minigrad as mg

from .resnet import conv_bn


def unit(c_in, c_out, kernel):
    """Convolution, batch normalisation, ReLU."""
    return mg.Sequential(("conv", conv_bn(c_in, c_out, kernel)), ("relu", mg.ReLU()))


def inception_module(c_in, ones, reduce3, threes, reduce5, fives, pool_proj):
    """The module of figure 2b with the given numbers of kernels per branch (GoogLeNet's table 1 columns
    "#1x1", "#3x3 reduce", "#3x3", "#5x5 reduce", "#5x5", "pool proj"), as an mg.Graph."""
    x = mg.Input()
    b1 = unit(c_in, ones, 1)(x, name="b1")
    b2 = unit(reduce3, threes, 3)(unit(c_in, reduce3, 1)(x, name="b2_reduce"), name="b2")
    b3 = unit(reduce5, fives, 5)(unit(c_in, reduce5, 1)(x, name="b3_reduce"), name="b3")
    b4 = unit(c_in, pool_proj, 1)(mg.MaxPool2d(3, 1, padding=1)(x, name="b4_pool"), name="b4")
    return mg.Graph(x, mg.Concat()(b1, b2, b3, b4, name="concat"))


def small_inception(num_classes, seed=0):
    """The network above as a Sequential: "stem", "inception1", "pool", "inception2", "pool2", "flatten",
    "drop", "fc"."""
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"small_inception: num_classes must be an int >= 2, got {num_classes!r}")
    mg.manual_seed(seed)
    stem = mg.Sequential(("conv", mg.Conv2d(3, 32, 5, stride=2, padding=2, bias=False)),
                         ("bn", mg.BatchNorm2d(32)), ("relu", mg.ReLU()), ("pool", mg.MaxPool2d(3, 2)))
    first = inception_module(32, 16, 16, 24, 8, 8, 8)             # 16 + 24 + 8 + 8 = 56 maps
    second = inception_module(56, 32, 32, 48, 8, 16, 16)           # 32 + 48 + 16 + 16 = 112 maps
    return mg.Sequential(("stem", stem), ("inception1", first), ("pool", mg.MaxPool2d(3, 2)),
                         ("inception2", second), ("pool2", mg.GlobalAvgPool2d()), ("flatten", mg.Flatten()),
                         ("drop", mg.Dropout(0.4, seed=seed + 1)), ("fc", mg.Linear(112, num_classes)))
