"""mg.summary: each layer's output shape, parameters, multiply-adds and activation memory, counted by
hand for the paper's AlexNet and for a graph; Container.up_to, which cuts a network at a layer."""
import math

import numpy as np
import pytest

import minigrad as mg
from minigrad.models import alexnet


def test_paper_alexnet_is_the_paper_s_network_by_its_counts():
    net = alexnet("paper")
    batch = 128
    summary = mg.summary(net, (batch, 3, 224, 224))
    # (kernels, in/groups, k, output side) of each convolution, section 3.5 and figure 2
    convs = {"conv1": (96, 3, 11, 55), "conv2": (256, 48, 5, 27), "conv3": (384, 256, 3, 13),
             "conv4": (384, 192, 3, 13), "conv5": (256, 192, 3, 13)}
    for name, (kernels, depth, k, side) in convs.items():
        row = summary[name]
        assert row.output_shape == (batch, kernels, side, side)
        assert row.parameters == kernels * depth * k * k + kernels
        assert row.multiply_adds == kernels * side * side * depth * k * k
        assert row.activation_bytes == batch * kernels * side * side * 4
    for name, (inputs, outputs) in {"fc6": (9216, 4096), "fc7": (4096, 4096), "fc8": (4096, 1000)}.items():
        assert summary[name].parameters == inputs * outputs + outputs
        assert summary[name].multiply_adds == inputs * outputs
    assert summary["pool5"].output_shape == (batch, 256, 6, 6)
    assert summary["relu1"].multiply_adds == 0 and summary["pool1"].parameters == 0
    assert summary.parameters == sum(p.data.size for p in net.parameters()) == 60_965_224
    # "60 million parameters and 650,000 neurons" (section 1); 0.72 G multiply-adds per image (SPEC)
    assert summary.neurons == 96 * 55 * 55 + 256 * 27 * 27 + 2 * 384 * 13 * 13 + 256 * 13 * 13 + 2 * 4096 + 1000
    assert 650_000 < summary.neurons < 660_000
    assert round(summary.multiply_adds / 1e9, 2) == 0.72
    assert summary.batch == batch and summary.itemsize == 4
    text = str(summary)
    assert "60,965,224" in text and "conv1" in text and "fc8" in text
    assert "<table>" in summary._repr_html_()


def residual_block(channels=4):
    x = mg.Input()
    h = mg.ReLU()(mg.Conv2d(channels, channels, 3, padding=1)(x, name="conv1"), name="relu1")
    h = mg.Conv2d(channels, channels, 3, padding=1)(h, name="conv2")
    return mg.Graph(x, mg.ReLU()(mg.Add()(h, x, name="add"), name="out"))


def test_summary_opens_a_graph_inside_a_chain_and_names_its_layers_as_diagnose_does():
    net = mg.Sequential(("stem", mg.Conv2d(3, 4, 3, padding=1)), ("block", residual_block()),
                        ("flat", mg.Flatten()), ("fc", mg.Linear(4 * 6 * 5, 2))).astype(np.float64)
    summary = mg.summary(net, (2, 3, 6, 5))
    names = [row.name for row in summary.rows]
    assert names == ["stem", "block.conv1", "block.relu1", "block.conv2", "block.add", "block.out", "flat", "fc"]
    diagnosed = mg.diagnose(net, np.zeros((2, 3, 6, 5)), np.array([0, 1]))
    assert names == [row.name for row in diagnosed.layers]
    assert summary["block.conv2"].multiply_adds == 4 * 6 * 5 * 4 * 9
    assert summary["block.add"].multiply_adds == 0 and summary["block.add"].output_shape == (2, 4, 6, 5)
    assert summary.itemsize == 8 and summary["fc"].activation_bytes == 2 * 2 * 8
    assert summary.parameters == sum(p.data.size for p in net.parameters())
    # a graph alone, with several inputs
    a, b = mg.Input(name="a"), mg.Input(name="b")
    two = mg.Graph([a, b], mg.Concat()(mg.Conv2d(2, 3, 1)(a), b))
    assert mg.summary(two, [(1, 2, 4, 4), (1, 5, 4, 4)]).rows[-1].output_shape == (1, 8, 4, 4)


def test_summary_refuses_what_is_not_a_shape_or_does_not_fit():
    net = alexnet("small", num_classes=10)
    with pytest.raises(ValueError, match="batch first"):
        mg.summary(net, (3, 64, -64))
    with pytest.raises(ValueError, match="input channels"):
        mg.summary(net, (1, 1, 64, 64))
    with pytest.raises(ValueError, match="Layer"):
        mg.summary("alexnet", (1, 3, 64, 64))


def test_up_to_cuts_chains_and_graphs_at_a_layer_and_computes_what_it_computed():
    rng = np.random.default_rng(0)
    net = mg.Sequential(("stem", mg.Conv2d(3, 4, 3, padding=1)), ("block", residual_block()),
                        ("pool", mg.MaxPool2d(2))).astype(np.float64)
    x = rng.standard_normal((2, 3, 6, 6))
    seen = {}
    net.observe(lambda event, name, layer, array: seen.setdefault(name, array) if event == "forward" else None)
    net.forward(x)
    for name in ("stem", "block", "block.relu1", "block.conv2", "pool"):
        part = net.up_to(name)
        np.testing.assert_array_equal(part.forward(x), seen[name])
    block = net["block"]
    branch = block.up_to("conv2")                      # the shortcut is not needed to compute conv2
    assert [n for n, _ in branch.named_layers()] == ["conv1", "relu1", "conv2"]
    assert math.prod(mg.summary(branch, (1, 4, 6, 6)).rows[-1].output_shape) == 4 * 36
    with pytest.raises(ValueError, match="no layer 'conv9'"):
        net.up_to("conv9")
    with pytest.raises(ValueError, match="no node 'nope'"):
        net.up_to("block.nope")
