"""A small residual network (He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", 2016),
built from minigrad's own blocks, at a size a CPU trains in minutes on 32 to 64 pixel images.

    stem    conv 5x5/2, 32 kernels -> BN -> ReLU -> max-pool 3/2            (AlexNet's first steps)
    stage1  residual block, 32 maps                          64 x 64 input: 15 x 15
    stage2  residual block, 64 maps, stride 2 (a 1x1 projection on the shortcut)          8 x 8
    stage3  residual block, 128 maps, stride 2                                             4 x 4
    head    global average pool -> fc -> classes

A residual block (figure 2 of the paper) adds its input to what two 3x3 convolutions make of it,
y = relu(F(x) + x): the block learns the residual F(x) = y - x, and the gradient reaching y passes to x
through the shortcut unchanged, whatever the convolutions do (dL/dx = dL/dy * (dF/dx + 1)), which is
why a deep stack of them keeps its gradient (the book's "Beyond the chain" shows it with mg.diagnose).
Where the block changes the size or the number of maps, the shortcut is a strided 1x1 convolution
(the paper's option B). Every convolution is followed by batch normalisation, as in the paper.
"""
import minigrad as mg


def conv_bn(c_in, c_out, kernel, stride=1):
    """Convolution (no bias: the batch norm's shift takes its place) and batch normalisation."""
    return mg.Sequential(("conv", mg.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False)),
                         ("bn", mg.BatchNorm2d(c_out)))


def residual_block(c_in, c_out, stride=1):
    """relu(bn(conv(relu(bn(conv(x))))) + shortcut(x)), as an mg.Graph."""
    x = mg.Input()
    h = mg.ReLU()(conv_bn(c_in, c_out, 3, stride)(x, name="conv1"), name="relu1")
    h = conv_bn(c_out, c_out, 3)(h, name="conv2")
    shortcut = x if (c_in, stride) == (c_out, 1) else conv_bn(c_in, c_out, 1, stride)(x, name="projection")
    return mg.Graph(x, mg.ReLU()(mg.Add()(h, shortcut, name="add"), name="relu2"))


def small_resnet(num_classes, widths=(32, 64, 128), seed=0):
    """The network above as a Sequential of named blocks: "stem", "stage1".., "pool", "flatten", "fc"."""
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"small_resnet: num_classes must be an int >= 2, got {num_classes!r}")
    mg.manual_seed(seed)
    stem = mg.Sequential(("conv", mg.Conv2d(3, widths[0], 5, stride=2, padding=2, bias=False)),
                         ("bn", mg.BatchNorm2d(widths[0])), ("relu", mg.ReLU()), ("pool", mg.MaxPool2d(3, 2)))
    stages = [(f"stage{i + 1}", residual_block(widths[max(i - 1, 0)], width, 1 if i == 0 else 2))
              for i, width in enumerate(widths)]
    return mg.Sequential(("stem", stem), *stages, ("pool", mg.GlobalAvgPool2d()), ("flatten", mg.Flatten()),
                         ("fc", mg.Linear(widths[-1], num_classes)))
