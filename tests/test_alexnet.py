"""The paper's AlexNet assembled from minigrad layers: shapes, parameter count, end-to-end gradients."""
import dataclasses

import numpy as np
import pytest
from hypothesis import given, strategies as st

import minigrad as mg
from minigrad.models import PRESETS, Preset, alexnet


def test_parameter_count_is_what_the_table_implies():
    weights_and_biases = [
        96 * 3 * 11 * 11 + 96,        # conv1
        256 * 48 * 5 * 5 + 256,       # conv2, groups=2: each kernel sees 48 maps
        384 * 256 * 3 * 3 + 384,      # conv3 sees all 256 (crosses the GPUs)
        384 * 192 * 3 * 3 + 384,      # conv4, groups=2
        256 * 192 * 3 * 3 + 256,      # conv5, groups=2
        9216 * 4096 + 4096,           # fc6: 256 * 6 * 6 = 9216 inputs
        4096 * 4096 + 4096,           # fc7
        4096 * 1000 + 1000,           # fc8
    ]
    net = alexnet("paper")
    assert sum(p.data.size for p in net.parameters()) == sum(weights_and_biases) == 60_965_224


@pytest.mark.parametrize("size", [224, 227])
def test_output_shapes_at_224_and_227(size):
    net = alexnet("paper", image_size=size).eval()
    shapes = {}
    x = np.zeros((1, 3, size, size), np.float32)
    for name, layer in net.named_layers():
        x = layer.forward(x)
        shapes[name] = x.shape[1:]
    assert shapes["conv1"] == (96, 55, 55) and shapes["pool1"] == (96, 27, 27)
    assert shapes["conv2"] == (256, 27, 27) and shapes["pool2"] == (256, 13, 13)
    assert shapes["conv3"] == shapes["conv4"] == (384, 13, 13)
    assert shapes["conv5"] == (256, 13, 13) and shapes["pool5"] == (256, 6, 6)
    assert shapes["flatten"] == (9216,) and shapes["fc8"] == (1000,)


def test_paper_layout_and_initialisation():
    net = alexnet("paper")
    assert [net[n].groups for n in ("conv1", "conv2", "conv3", "conv4", "conv5")] == [1, 2, 1, 2, 2]
    names = net.names
    assert names.index("relu1") < names.index("norm1") < names.index("pool1")   # LRN after ReLU (3.3)
    assert net["pool1"].kernel_size == (3, 3) and net["pool1"].stride == (2, 2)
    assert net["drop6"].p == 0.5 and net["drop6"].mode == "classic"
    lrn = net["norm1"]
    assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 1e-4, 0.75, 2.0)
    # Each tower normalises its own maps (cuda-convnet2's rnorm1a / rnorm1b), in both presets.
    assert [alexnet(p)[n].groups for p in ("paper", "small") for n in ("norm1", "norm2")] == [2] * 4
    for name in ("conv2", "conv4", "conv5", "fc6", "fc7"):
        assert (net[name].bias.data == 1).all()
    for name in ("conv1", "conv3", "fc8"):
        assert (net[name].bias.data == 0).all()
    assert net["fc6"].weight.data.std() == pytest.approx(0.01, rel=0.01)


def test_a_shrunken_alexnet_passes_gradcheck_end_to_end(rng):
    """Every layer kind of the paper, in the paper's order, small enough for central differences."""
    tiny = Preset(image_size=31, conv1_kernels=4, conv1_kernel_size=5, conv1_stride=2, channels=(4, 6, 6, 4),
                  conv2_kernel_size=3, hidden=8, init="he", dropout_mode="classic")
    net = alexnet(tiny, num_classes=5).astype(np.float64)
    net["conv1"].needs_input_grad = True     # alexnet() skips d loss / d image; check it here too
    for name in ("norm1", "norm2"):          # LRN strong enough to matter in the check (paper: 1e-4)
        net[name].alpha = 0.5
    x = rng.standard_normal((2, 3, 31, 31))
    assert net.forward(x).shape == (2, 5)
    result = mg.gradcheck(net, x, samples=60)
    assert result.passed, result
    assert len(result.errors) == 1 + 16      # the input and the 8 layers' weights and biases


def test_a_shrunken_alexnet_with_the_loss_passes_gradcheck(rng):
    tiny = Preset(image_size=31, conv1_kernels=4, conv1_kernel_size=5, conv1_stride=2, channels=(4, 6, 6, 4),
                  conv2_kernel_size=3, hidden=8, init="paper", dropout_mode="inverted")
    net = alexnet(tiny, num_classes=5).astype(np.float64)
    net["conv1"].needs_input_grad = True
    net_and_loss = _WithLoss(net)
    result = mg.gradcheck(net_and_loss, rng.standard_normal((3, 3, 31, 31)), labels=np.array([0, 4, 2]), samples=40)
    assert result.passed, result


class _WithLoss(mg.Sequential):
    """The network followed by softmax cross-entropy, checked as one function of input and weights."""

    def __init__(self, net):
        super().__init__(*net.named_layers())
        self.loss = mg.SoftmaxCrossEntropy()

    def forward(self, x, labels):
        return self.loss.forward(super().forward(x), labels)

    def backward(self):
        return super().backward(self.loss.backward())


def test_presets_are_validated():
    with pytest.raises(ValueError, match="preset must be one of"):
        alexnet("huge")
    with pytest.raises(ValueError, match="too small"):
        alexnet("paper", image_size=32)


@given(st.integers(1, 3).map(lambda half: 2 * half), st.integers(1, 5), st.integers(1, 3),
       st.tuples(*[st.integers(1, 3).map(lambda half: 2 * half)] * 4), st.sampled_from([1, 3, 5]),
       st.integers(1, 6), st.integers(2, 5), st.integers(12, 40))
def test_the_parameter_count_from_the_sizes_is_the_built_networks(kernels, kernel, stride, channels, kernel2,
                                                                    hidden, classes, image):
    """Preset.parameter_count, which checkpoint.py trusts before building a network, counts what
    alexnet() builds, over presets drawn small (and conv1's padding as alexnet() sets it)."""
    preset = Preset(image, kernels, kernel, stride, channels, kernel2, hidden, "he")
    try:
        built = sum(p.data.size for p in alexnet(preset, classes).parameters())
    except ValueError:                                   # an image too small for this preset: so says the count
        with pytest.raises(ValueError, match="too small"):
            preset.parameter_count(classes)
        return
    assert preset.parameter_count(classes) == built


def test_the_parameter_count_of_the_paper_and_its_refusals():
    assert PRESETS["paper"].parameter_count(1000) == 60_965_224 == PRESETS["paper"].parameter_count(1000, 227)
    assert PRESETS["small"].parameter_count(10) == sum(p.data.size for p in alexnet("small", 10).parameters())
    for sizes in ({"hidden": "8"}, {"hidden": True}, {"channels": (4, 4, 4)}, {"conv1_stride": 0}):
        with pytest.raises(ValueError, match="sizes of a preset must be positive ints"):
            dataclasses.replace(PRESETS["small"], **sizes).parameter_count(10)
