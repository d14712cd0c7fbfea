"""Small PyTorch networks of the families after AlexNet, written here as their papers draw them
(torchvision is not installed beside this torch): a residual network of basic blocks and one of
bottleneck blocks (He et al. 2016), SqueezeNet's fire modules (Iandola et al. 2016), a dense block
(Huang et al. 2017), MobileNetV2's inverted residuals of depthwise convolutions and ReLU6 (Sandler et al.
2018), ShuffleNetV2's units with their channel split and shuffle (Ma et al. 2018) and an inception
module (Szegedy et al. 2015); each ends with a global average pool before its classifier. Their weights
and BatchNorm statistics are random (seeded), so that every channel differs. Used by
tests/test_onnx_torch_exports.py and tests/test_finetune.py."""
import torch
from torch import nn

INPUT = (3, 24, 20)             # one example: small, and not square
CLASSES = 10


def conv_bn(c_in, c_out, kernel, stride=1, groups=1, relu=True):
    layers = [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out)]
    return nn.Sequential(*layers, *[nn.ReLU()] * relu)


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.body = nn.Sequential(conv_bn(c_in, c_out, 3, stride), conv_bn(c_out, c_out, 3, relu=False))
        self.shortcut = nn.Identity() if (c_in, stride) == (c_out, 1) else conv_bn(c_in, c_out, 1, stride, relu=False)

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


class Bottleneck(BasicBlock):
    def __init__(self, c_in, c_out, stride):
        super().__init__(c_in, c_out, stride)
        self.body = nn.Sequential(conv_bn(c_in, c_out // 4, 1), conv_bn(c_out // 4, c_out // 4, 3, stride),
                                  conv_bn(c_out // 4, c_out, 1, relu=False))


class Fire(nn.Module):
    def __init__(self, c_in, squeeze, expand):
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(c_in, squeeze, 1), nn.ReLU())
        self.expand1 = nn.Sequential(nn.Conv2d(squeeze, expand, 1), nn.ReLU())
        self.expand3 = nn.Sequential(nn.Conv2d(squeeze, expand, 3, padding=1), nn.ReLU())

    def forward(self, x):
        x = self.squeeze(x)
        return torch.cat([self.expand1(x), self.expand3(x)], 1)


class DenseLayer(nn.Module):
    def __init__(self, c_in, growth):
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(), nn.Conv2d(c_in, 2 * growth, 1, bias=False),
                                  nn.BatchNorm2d(2 * growth), nn.ReLU(), nn.Conv2d(2 * growth, growth, 3, padding=1,
                                                                                    bias=False))

    def forward(self, x):
        return torch.cat([x, self.body(x)], 1)


class InvertedResidual(nn.Module):
    def __init__(self, c_in, c_out, stride, expansion=3):
        super().__init__()
        hidden = c_in * expansion
        self.body = nn.Sequential(
            nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.residual = (c_in, stride) == (c_out, 1)

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


def channel_shuffle(x, groups):
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, -1, h, w)


class ShuffleUnit(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        half = c_out // 2
        self.stride = stride
        self.branch1 = nn.Sequential(conv_bn(c_in, c_in, 3, stride, groups=c_in, relu=False),
                                     conv_bn(c_in, half, 1)) if stride > 1 else nn.Identity()
        self.branch2 = nn.Sequential(conv_bn(c_in if stride > 1 else half, half, 1),
                                     conv_bn(half, half, 3, stride, groups=half, relu=False), conv_bn(half, half, 1))

    def forward(self, x):
        if self.stride == 1:
            kept, x = x.chunk(2, dim=1)
            return channel_shuffle(torch.cat([kept, self.branch2(x)], 1), 2)
        return channel_shuffle(torch.cat([self.branch1(x), self.branch2(x)], 1), 2)


class Inception(nn.Module):
    def __init__(self, c_in, widths=(4, (3, 6), (2, 3), 3)):
        super().__init__()
        one, (reduce3, three), (reduce5, five), pool = widths
        self.b1 = conv_bn(c_in, one, 1)
        self.b2 = nn.Sequential(conv_bn(c_in, reduce3, 1), conv_bn(reduce3, three, 3))
        self.b3 = nn.Sequential(conv_bn(c_in, reduce5, 1), conv_bn(reduce5, five, 5))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv_bn(c_in, pool, 1))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


class Classifier(nn.Module):
    """stem -> body -> global average pool -> (dropout) -> fc: the head of every family here."""

    def __init__(self, stem, body, features, mean=False):
        super().__init__()
        self.stem, self.body, self.mean = stem, body, mean
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(features, CLASSES)

    def forward(self, x):
        x = self.body(self.stem(x))
        x = x.mean((2, 3)) if self.mean else torch.flatten(self.pool(x), 1)
        return self.fc(self.dropout(x))


class SqueezeNet(nn.Module):
    """Its classifier is a 1x1 convolution to the classes, then the global average pool."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True),
                                      Fire(8, 4, 8), Fire(16, 4, 8), nn.MaxPool2d(3, 2, ceil_mode=True),
                                      Fire(16, 6, 12))
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(24, CLASSES, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))

    def forward(self, x):
        return torch.flatten(self.classifier(self.features(x)), 1)


def families():
    """name -> a seeded network in eval mode (random BatchNorm statistics)."""
    torch.manual_seed(0)
    nets = {
        "resnet_basic": Classifier(conv_bn(3, 8, 3), nn.Sequential(BasicBlock(8, 8, 1), BasicBlock(8, 16, 2)), 16),
        "resnet_bottleneck": Classifier(conv_bn(3, 8, 3, 2), nn.Sequential(Bottleneck(8, 16, 1), Bottleneck(16, 16, 1),
                                                                           Bottleneck(16, 32, 2)), 32),
        "squeezenet": SqueezeNet(),
        "densenet": Classifier(conv_bn(3, 8, 3), nn.Sequential(
            DenseLayer(8, 4), DenseLayer(12, 4), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 8, 1, bias=False),
            nn.AvgPool2d(2), DenseLayer(8, 4), nn.BatchNorm2d(12), nn.ReLU()), 12),
        "mobilenet_v2": Classifier(nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6()),
                                   nn.Sequential(InvertedResidual(8, 8, 1), InvertedResidual(8, 12, 2),
                                                 InvertedResidual(12, 12, 1)), 12, mean=True),
        "shufflenet_v2": Classifier(conv_bn(3, 8, 3, 2), nn.Sequential(ShuffleUnit(8, 16, 2), ShuffleUnit(16, 16, 1)),
                                    16),
        "inception": Classifier(nn.Sequential(conv_bn(3, 8, 3), nn.MaxPool2d(3, 2, 1)),
                                nn.Sequential(Inception(8), Inception(16)), 16),
    }
    with torch.no_grad():
        for net in nets.values():
            for module in net.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.running_mean.uniform_(-0.5, 0.5), module.running_var.uniform_(0.5, 2)
                    module.weight.uniform_(0.5, 1.5), module.bias.uniform_(-0.5, 0.5)
    return {name: net.eval() for name, net in nets.items()}
