"""Where a network looks: saliency, the deconvnet, guided backpropagation, occlusion and feature maps,
each on networks whose answer is known (one that only looks at one corner, one linear layer whose
three backward rules can be written down), and none of them changing the model it is given."""
import copy

import numpy as np
import pytest

import minigrad as mg
from minigrad.models import alexnet

SIDE, CORNER = 16, 5          # the corner network sees pixels [0, 5) x [0, 5) of a 16 x 16 image, no others


def corner_network(seed=0):
    """conv 3x3 (padding 1) -> ReLU -> max-pool 2 -> a classifier whose weights are zero except on the
    pooled cells (0..1, 0..1): those pool conv outputs 0..3, which read pixels 0..4."""
    rng = np.random.default_rng(seed)
    net = mg.Sequential(("conv", mg.Conv2d(3, 4, 3, padding=1)), ("relu", mg.ReLU()), ("pool", mg.MaxPool2d(2)),
                        ("flat", mg.Flatten()), ("fc", mg.Linear(4 * 8 * 8, 3))).astype(np.float64)
    net["conv"].bias.data[...] = 0.5                     # most units on: the corner's pixels matter
    weights = np.zeros((3, 4, 8, 8))
    weights[:, :, :2, :2] = 0.3 * rng.standard_normal((3, 4, 2, 2))
    net["fc"].weight.data[...] = weights.reshape(3, -1)
    return net


def images(count=2, side=SIDE, seed=1):
    return np.random.default_rng(seed).standard_normal((count, 3, side, side))


def outside_the_corner(maps):
    mask = np.ones(maps.shape[-2:], bool)
    mask[:CORNER, :CORNER] = False
    return maps[..., mask]


@pytest.mark.parametrize("method", [mg.saliency, mg.deconvnet, mg.guided_backprop])
def test_a_network_that_only_looks_at_one_corner_is_seen_looking_there(method):
    net, x = corner_network(), images()
    maps = method(net, x)
    assert maps.shape == ((2, SIDE, SIDE) if method is mg.saliency else x.shape)
    assert np.all(outside_the_corner(maps) == 0)
    assert np.all(np.abs(maps[..., :CORNER, :CORNER]).reshape(2, -1).max(axis=1) > 0)


def test_occlusion_changes_the_probability_only_where_the_square_hides_the_corner():
    net, x = corner_network(), images()
    probability = mg.occlusion(net, x, target=[0, 2], size=4, stride=2)
    assert probability.shape == (2, (SIDE - 4) // 2 + 1, (SIDE - 4) // 2 + 1)
    logits = net.forward(x)
    whole = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    for n, target in enumerate([0, 2]):
        for (i, j), p in np.ndenumerate(probability[n]):
            hides_corner = i * 2 < CORNER and j * 2 < CORNER
            if not hides_corner:
                assert p == pytest.approx(whole[n, target], rel=1e-12)
        assert probability[n, 0, 0] != pytest.approx(whole[n, target], rel=1e-4)


def test_occlusion_of_a_linear_score_is_the_softmax_of_what_is_left():
    """Two classes, logit0 = the sum of the pixels, logit1 = 0: hiding a square with zeros leaves
    p0 = sigmoid(sum of the pixels outside it)."""
    linear = mg.Linear(1 * 6 * 6, 2).astype(np.float64)
    linear.weight.data[...] = [[1.0] * 36, [0.0] * 36]
    linear.bias.data[...] = 0
    net = mg.Sequential(("flat", mg.Flatten()), ("fc", linear))
    x = np.random.default_rng(2).standard_normal((1, 1, 6, 6))
    probability = mg.occlusion(net, x, target=0, size=3, stride=3)
    for (i, j), p in np.ndenumerate(probability[0]):
        kept = x[0, 0].copy()
        kept[3 * i:3 * i + 3, 3 * j:3 * j + 3] = 0
        assert p == pytest.approx(1 / (1 + np.exp(-kept.sum())), rel=1e-12)


def test_the_three_backward_rules_on_one_relu_written_out():
    """ReLU -> Linear, the score of class 0 is w . relu(x): the gradient is w [x > 0], the deconvnet
    passes max(w, 0) whatever x was, guided backpropagation max(w, 0) [x > 0]."""
    linear = mg.Linear(4, 2).astype(np.float64)
    net = mg.Sequential(("relu", mg.ReLU()), ("flat", mg.Flatten()), ("fc", linear))
    x = np.array([[[[1.0, -2.0], [3.0, -0.5]]]])
    w = linear.weight.data[0].reshape(1, 1, 2, 2)
    w[0, 0, 0, 0], w[0, 0, 0, 1] = -0.7, 0.4            # a negative weight where x > 0, a positive where x < 0
    on = x > 0
    np.testing.assert_allclose(mg.saliency(net, x, target=0), np.abs(w * on)[:, 0])
    np.testing.assert_allclose(mg.deconvnet(net, x, target=0), np.maximum(w, 0))
    np.testing.assert_allclose(mg.guided_backprop(net, x, target=0), np.maximum(w, 0) * on)


def test_saliency_is_the_gradient_of_the_class_score_by_finite_differences():
    x = mg.Input()
    h = mg.ReLU()(mg.Conv2d(3, 3, 3, padding=1)(x))
    block = mg.Graph(x, mg.Add()(mg.Conv2d(3, 3, 3, padding=1)(h), x))          # a fork and a join
    net = mg.Sequential(("block", block), ("relu", mg.ReLU()), ("pool", mg.MaxPool2d(2)), ("flat", mg.Flatten()),
                        ("fc", mg.Linear(3 * 4 * 4, 5))).astype(np.float64)
    image = images(1, side=8, seed=3)
    target = int(net.forward(image).argmax())
    maps = mg.saliency(net, image)                       # target: the predicted class
    eps = 1e-6
    for row, col in [(0, 0), (3, 5), (7, 2)]:
        numeric = []
        for channel in range(3):
            plus, minus = image.copy(), image.copy()
            plus[0, channel, row, col] += eps
            minus[0, channel, row, col] -= eps
            numeric.append((net.forward(plus)[0, target] - net.forward(minus)[0, target]) / (2 * eps))
        assert maps[0, row, col] == pytest.approx(np.abs(numeric).max(), rel=1e-6, abs=1e-9)


def test_deconvnet_from_a_pooled_unit_is_its_kernel_placed_at_the_switch():
    """conv (one 3x3 kernel, no padding) -> ReLU -> max-pool 2: the strongest pooled activation a, whose
    switch chose conv output (r, c), comes back as a * kernel over the pixels that output read."""
    conv = mg.Conv2d(1, 1, 3).astype(np.float64)
    conv.weight.data[...] = np.arange(9.0).reshape(1, 1, 3, 3) / 10
    conv.bias.data[...] = 0
    net = mg.Sequential(("conv", conv), ("relu", mg.ReLU()), ("pool", mg.MaxPool2d(2)))
    x = np.random.default_rng(4).random((1, 1, 6, 6))   # positive pixels and kernel: every unit on
    conv_out = conv.forward(x)[0, 0]
    pooled = net.forward(x)[0, 0]
    i, j = np.unravel_index(pooled.argmax(), pooled.shape)
    window = conv_out[2 * i:2 * i + 2, 2 * j:2 * j + 2]
    r, c = np.unravel_index(window.argmax(), window.shape)
    r, c = 2 * i + r, 2 * j + c
    expected = np.zeros_like(x)
    expected[0, 0, r:r + 3, c:c + 3] = pooled.max() * conv.weight.data[0, 0]
    for method in (mg.deconvnet, mg.guided_backprop):
        np.testing.assert_allclose(method(net, x, layer="pool", channel=0), expected, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(method(net, x, layer="pool"), expected, rtol=1e-12, atol=1e-12)   # the only channel


def test_projections_change_nothing_of_the_model_and_refuse_bad_requests():
    net = alexnet("small", num_classes=10)
    before = copy.deepcopy(net.state_dict())
    x = np.random.default_rng(5).standard_normal((2, 3, 64, 64)).astype(np.float32)
    assert mg.saliency(net, x).shape == (2, 64, 64)
    assert mg.deconvnet(net, x, layer="conv5").shape == x.shape
    assert mg.guided_backprop(net, x, layer="pool2", channel=3).shape == x.shape
    assert mg.occlusion(net, x, size=16, stride=16).shape == (2, 4, 4)
    assert set(mg.feature_maps(net, x, ["conv1", "conv5"])) == {"conv1", "conv5"}
    after = net.state_dict()
    assert all(np.array_equal(before[key], after[key]) for key in before)
    assert net.training and net["conv1"].needs_input_grad is False and net["relu1"].mask is None
    assert all(not p.grad.any() for p in net.parameters())
    with pytest.raises(ValueError, match="no layer 'conv9'"):
        mg.deconvnet(net, x, layer="conv9")
    with pytest.raises(ValueError, match="channel must be an int in \\[0, 64\\)"):
        mg.guided_backprop(net, x, layer="conv5", channel=64)
    with pytest.raises(ValueError, match="target must be a class index in \\[0, 10\\)"):
        mg.saliency(net, x, target=10)
    with pytest.raises(ValueError, match="floating-point"):
        mg.saliency(net, x.astype(np.int32))
    with pytest.raises(ValueError, match="must fit"):
        mg.occlusion(net, x, size=65)
    with pytest.raises(ValueError, match="single"):
        mg.deconvnet(mg.Conv2d(3, 2, 3), x, layer="conv")


def test_feature_maps_are_the_outputs_of_the_layers_named():
    net = mg.Sequential(("stem", mg.Conv2d(3, 2, 3)), ("relu", mg.ReLU()),
                        ("inner", mg.Sequential(("conv", mg.Conv2d(2, 2, 1)), ("pool", mg.MaxPool2d(2)))))
    x = images(1, side=6).astype(np.float32)
    maps = mg.feature_maps(net, x, ["relu", "inner.pool"])
    expected = np.maximum(net["stem"].forward(x), 0)
    np.testing.assert_array_equal(maps["relu"], expected)
    np.testing.assert_array_equal(maps["inner.pool"], net["inner"].forward(expected))
    assert list(mg.feature_maps(net, x)) == ["stem", "relu", "inner.conv", "inner.pool"]
    with pytest.raises(ValueError, match="no layer"):
        mg.feature_maps(net, x, "conv")


def test_mosaic_lays_out_images_each_scaled_to_0_1_with_white_between():
    maps = np.stack([np.full((2, 3), 5.0), np.arange(6.0).reshape(2, 3), -np.arange(6.0).reshape(2, 3)])
    picture = mg.mosaic(maps, columns=2)
    assert picture.shape == (2 * 3 - 1, 2 * 4 - 1)
    np.testing.assert_allclose(picture[:2, 4:], np.arange(6.0).reshape(2, 3) / 5)
    np.testing.assert_allclose(picture[3:, :3], 1 - np.arange(6.0).reshape(2, 3) / 5)
    assert np.all(picture[:2, :3] == 0) and np.all(picture[2] == 1) and np.all(picture[3:, 4:] == 1)
    kernels = np.random.default_rng(6).standard_normal((5, 3, 4, 4))
    colour = mg.mosaic(kernels)
    assert colour.shape == (2 * 5 - 1, 3 * 5 - 1, 3) and colour.min() == 0 and colour.max() == 1
    with pytest.raises(ValueError, match="expected"):
        mg.mosaic(np.zeros((2, 2)))
