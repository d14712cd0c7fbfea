"""The paper's AlexNet as built by minigrad.models.alexnet, rebuilt in PyTorch with the same weights,
for the side-by-side benchmarks. PyTorch is passed in, so that importing this file never needs it."""
from collections import OrderedDict

import minigrad as mg


def torch_twin(net, nn, torch):
    """The same network in PyTorch with minigrad's weights. PyTorch's LRN divides alpha by n and has no
    groups: a grouped LRN is PyTorch's LRN on each group's channels, concatenated."""

    class PerGroup(nn.Module):
        def __init__(self, module, groups):
            super().__init__()
            self.module, self.groups = module, groups

        def forward(self, x):
            return torch.cat([self.module(part) for part in x.chunk(self.groups, dim=1)], dim=1)

    layers = []
    for name, layer in net.named_layers():
        if isinstance(layer, mg.Conv2d):
            twin = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                             layer.padding, groups=layer.groups)
        elif isinstance(layer, mg.Linear):
            twin = nn.Linear(layer.in_features, layer.out_features)
        elif isinstance(layer, mg.LocalResponseNorm):
            twin = nn.LocalResponseNorm(layer.size, alpha=layer.alpha * layer.size, beta=layer.beta, k=layer.k)
            twin = PerGroup(twin, layer.groups) if layer.groups > 1 else twin
        elif isinstance(layer, mg.MaxPool2d):
            twin = nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding)
        elif isinstance(layer, mg.Dropout):
            twin = nn.Dropout(layer.p)
        else:
            twin = {mg.ReLU: nn.ReLU, mg.Flatten: nn.Flatten}[type(layer)]()
        if isinstance(layer, (mg.Conv2d, mg.Linear)):
            with torch.no_grad():
                twin.weight.copy_(torch.from_numpy(mg.backend.to_numpy(layer.weight.data)))
                twin.bias.copy_(torch.from_numpy(mg.backend.to_numpy(layer.bias.data)))
        layers.append((name, twin))
    return nn.Sequential(OrderedDict(layers))
