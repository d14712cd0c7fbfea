"""Initialisers: the paper's Gaussian, He and Glorot, with the right fans for conv weights."""
import math

import numpy as np
import pytest

import minigrad as mg


def test_fans_of_linear_and_conv_weights():
    assert mg.init.fans((4096, 9216)) == (9216, 4096)
    # conv2 of AlexNet: 256 kernels of 5x5x48 (groups=2) -> each unit sees 48*5*5 inputs.
    assert mg.init.fans((256, 48, 5, 5)) == (48 * 25, 256 * 25)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        mg.init.fans((10,))


@pytest.mark.parametrize("scheme, std", [
    ("he_normal", math.sqrt(2 / (48 * 25))),
    ("he_uniform", math.sqrt(2 / (48 * 25))),                    # uniform(-b, b) has std b / sqrt(3)
    ("glorot_normal", math.sqrt(2 / (48 * 25 + 256 * 25))),
    ("glorot_uniform", math.sqrt(2 / (48 * 25 + 256 * 25))),
])
def test_standard_deviations(scheme, std):
    conv = mg.Conv2d(96, 256, 5, groups=2)
    getattr(mg.init, scheme)(conv, bias=0.5, rng=0)
    assert conv.weight.data.std() == pytest.approx(std, rel=0.02)
    assert abs(conv.weight.data.mean()) < 0.05 * std
    assert (conv.bias.data == 0.5).all()
    if scheme.endswith("uniform"):
        assert np.abs(conv.weight.data).max() <= std * math.sqrt(3) + 1e-7


def test_paper_gaussian_and_bias_constant():
    fc = mg.Linear(500, 400)
    mg.init.gaussian(fc, std=0.01, bias=1.0, rng=1)
    assert fc.weight.data.std() == pytest.approx(0.01, rel=0.02)
    assert (fc.bias.data == 1.0).all() and fc.weight.data.dtype == np.float32


def test_seeds_make_initialisation_reproducible():
    mg.manual_seed(5)
    a = mg.Linear(3, 3).weight.data.copy()
    mg.manual_seed(5)
    np.testing.assert_array_equal(mg.Linear(3, 3).weight.data, a)
    np.testing.assert_array_equal(mg.init.he_normal(mg.Linear(3, 3), rng=9).weight.data,
                                  mg.init.he_normal(mg.Linear(3, 3), rng=9).weight.data)
