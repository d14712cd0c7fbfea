"""Layer.output_shape: the shape forward gives, from the sizes alone, for every layer that can stand in
a chain; None sizes (a batch or a map size not known) carried through; a misfit refused as forward
refuses it."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import minigrad as mg

rng = np.random.default_rng(0)


def chain_layers(channels):
    """One of every layer that keeps 4-D maps, for `channels` input channels (an even number)."""
    return [mg.Conv2d(channels, 4, (3, 2), stride=(2, 1), padding=(1, 0), groups=2), mg.ReLU(), mg.LeakyReLU(0.1),
            mg.Sigmoid(), mg.Tanh(), mg.Softmax(1), mg.Dropout(0.3), mg.LocalResponseNorm(3, groups=2),
            mg.BatchNorm2d(4), mg.MaxPool2d(2, 1, padding=(0, 1, 1, 0), ceil_mode=True),
            mg.AvgPool2d(2, 2, padding=1, count_include_pad=False), mg.ZeroPad2d((1, 0, 2, 3)),
            mg.Transpose((0, 1, 3, 2)), mg.GlobalAvgPool2d()]


@given(st.integers(1, 3), st.sampled_from([2, 4]), st.integers(3, 9), st.integers(3, 9))
def test_output_shape_is_the_shape_forward_gives(n, channels, height, width):
    x = rng.standard_normal((n, channels, height, width)).astype(np.float32)
    for layer in chain_layers(channels):
        try:
            y = layer.forward(x)
        except ValueError as refused:                  # a map too small for the layer: refused alike
            with pytest.raises(ValueError, match=str(refused)[:20]):
                layer.output_shape(x.shape)
            return
        assert layer.output_shape(x.shape) == y.shape, layer.describe()
        x = y if y.shape[1] == 4 else x
    flat = mg.Flatten()
    y = flat.forward(x)
    assert flat.output_shape(x.shape) == y.shape
    assert mg.Linear(y.shape[1], 5).output_shape(y.shape) == (n, 5)


def test_sequential_folds_its_layers_and_unknown_sizes_stay_unknown():
    net = mg.Sequential(mg.Conv2d(3, 8, 5, stride=2), mg.ReLU(), mg.MaxPool2d(3, 2), mg.Flatten())
    assert net.output_shape((None, 3, 31, 31)) == (None, 8 * 6 * 6)
    assert net.output_shape((2, 3, None, 31)) == (2, None)
    assert mg.Conv2d(3, 8, 5, stride=2).output_shape((1, 3, None, 31)) == (1, 8, None, 14)


@pytest.mark.parametrize("layer, shape, message", [
    (mg.Conv2d(3, 8, 3), (1, 4, 9, 9), "expected 3 input channels"),
    (mg.Conv2d(3, 8, 5), (1, 3, 2, 9), "larger than the padded input"),
    (mg.MaxPool2d(3, 2), (1, 3, 2, 2), "larger than the padded input"),
    (mg.Linear(10, 2), (4, 11), "expected 10 input features"),
    (mg.LocalResponseNorm(5, groups=2), (1, 3, 4, 4), "must divide the channels"),
    (mg.BatchNorm1d(6), (2, 5), "expected 6 features"),
    (mg.GlobalAvgPool2d(), (2, 5), "expected a 4-D input"),
    (mg.Softmax(2), (2, 5), "axis out of range"),
])
def test_a_misfit_is_refused_as_forward_refuses_it(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer.output_shape(shape)
    with pytest.raises(ValueError, match=message):
        layer.forward(np.zeros(shape, np.float32))
