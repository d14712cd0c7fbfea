"""LocalResponseNorm (the paper's formula, alpha not divided by n) and BatchNorm."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import minigrad as mg
import reference


@st.composite
def lrn_cases(draw):
    # groups > 1 with groups of 1 to 5 channels: windows clipped at a group boundary, or wider than a group.
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    channels = groups * draw(st.integers(1, 9 if groups == 1 else 5))
    return dict(shape=(draw(st.integers(1, 2)), channels, draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                size=draw(st.sampled_from([1, 3, 5, 7])), groups=groups,
                # alpha near 1 too: at the paper's 1e-4 a wrong channel window hides below any tolerance.
                alpha=draw(st.sampled_from([1e-4, 0.3, 1.0])), beta=draw(st.sampled_from([0.5, 0.75, 1.3])),
                k=draw(st.sampled_from([1.0, 2.0])), seed=draw(st.integers(0, 2**16)))


@given(lrn_cases())
def test_lrn_forward_matches_the_printed_formula(case):
    a = np.random.default_rng(case["seed"]).standard_normal(case["shape"])
    lrn = mg.LocalResponseNorm(case["size"], case["alpha"], case["beta"], case["k"], case["groups"])
    np.testing.assert_allclose(lrn.forward(a), reference.lrn(a, case["size"], case["alpha"], case["beta"], case["k"],
                                                             case["groups"]), rtol=1e-12)


@given(lrn_cases())
def test_lrn_backward_matches_gradcheck(case):
    a = np.random.default_rng(case["seed"]).standard_normal(case["shape"])
    lrn = mg.LocalResponseNorm(case["size"], case["alpha"], case["beta"], case["k"], case["groups"])
    assert (result := mg.gradcheck(lrn, a)).passed, result


@given(lrn_cases())
def test_lrn_groups_equal_one_lrn_per_group(case):
    """groups=G is G separate LRNs (the paper's towers normalise their own maps, section 3.2), forward
    and backward: the window never reaches into a neighbouring group."""
    rng = np.random.default_rng(case["seed"])
    a, dy = rng.standard_normal(case["shape"]), rng.standard_normal(case["shape"])
    args, groups = (case["size"], case["alpha"], case["beta"], case["k"]), case["groups"]
    grouped = mg.LocalResponseNorm(*args, groups=groups)
    b, da = grouped.forward(a), grouped.backward(dy)
    for a_g, dy_g, b_g, da_g in zip(*(np.split(t, groups, axis=1) for t in (a, dy, b, da))):
        alone = mg.LocalResponseNorm(*args)
        np.testing.assert_allclose(b_g, alone.forward(a_g), rtol=1e-12)
        np.testing.assert_allclose(da_g, alone.backward(dy_g), rtol=1e-12, atol=1e-14)


def test_lrn_groups_cut_the_window_at_the_boundary():
    """A strong response in the last channel of group 0 damps its own group only."""
    a = np.ones((1, 6, 1, 1))
    a[0, 2] = 10.0
    b = mg.LocalResponseNorm(5, alpha=0.1, groups=2).forward(a)
    quiet = mg.LocalResponseNorm(5, alpha=0.1).forward(np.ones((1, 3, 1, 1)))
    np.testing.assert_allclose(b[0, 3:], quiet[0])
    assert (b[0, :2] < quiet[0, :2]).all()


@pytest.mark.parametrize("groups", [0, -1, 1.5, "2"])
def test_lrn_groups_must_be_a_positive_int(groups):
    with pytest.raises(ValueError, match="LocalResponseNorm: groups must be a positive int"):
        mg.LocalResponseNorm(groups=groups)


def test_lrn_groups_must_divide_the_channels():
    with pytest.raises(ValueError, match=r"LocalResponseNorm\(.*groups=2\): groups=2 must divide the channels, "
                                         r"got input of shape \(1, 5, 2, 2\)"):
        mg.LocalResponseNorm(groups=2).forward(np.ones((1, 5, 2, 2)))


def test_lrn_alpha_is_not_divided_by_size():
    a = np.zeros((1, 5, 1, 1))
    a[0, 2] = 2.0
    b = mg.LocalResponseNorm(5, alpha=1.0, beta=1.0, k=2.0).forward(a)
    assert b[0, 2, 0, 0] == pytest.approx(2.0 / (2.0 + 1.0 * 4.0))      # not 2 / (2 + 4/5)


def test_lrn_inhibits_the_neighbours_of_a_strong_response():
    a = np.ones((1, 5, 1, 1))
    quiet = mg.LocalResponseNorm(5, alpha=0.1).forward(a)
    a[0, 2] = 10.0
    loud = mg.LocalResponseNorm(5, alpha=0.1).forward(a)
    assert (loud[0, [0, 1, 3, 4]] < quiet[0, [0, 1, 3, 4]]).all()


@pytest.mark.parametrize("size", [0, 2, 4, -3, 2.5])
def test_lrn_size_must_be_odd_and_positive(size):
    with pytest.raises(ValueError, match="size must be a positive odd int"):
        mg.LocalResponseNorm(size)


def test_lrn_needs_nchw():
    with pytest.raises(ValueError, match="LocalResponseNorm.*expected a 4-D input"):
        mg.LocalResponseNorm().forward(np.ones((2, 5)))


@pytest.mark.parametrize("make, shape, axes", [
    (mg.BatchNorm1d, (6, 4), (0,)), (mg.BatchNorm2d, (3, 4, 2, 3), (0, 2, 3)), (mg.BatchNorm2d, (1, 2, 3, 1), (0, 2, 3))])
def test_batchnorm_training_forward_backward(make, shape, axes, rng):
    bn = make(shape[1]).astype(np.float64)
    bn.weight.data = rng.standard_normal(shape[1])
    bn.bias.data = rng.standard_normal(shape[1])
    x = rng.standard_normal(shape) * 3 + 1
    np.testing.assert_allclose(bn.forward(x), reference.batchnorm(x, bn.weight.data, bn.bias.data, axes, bn.eps), rtol=1e-10)
    assert (result := mg.gradcheck(bn, x)).passed, result


def test_batchnorm_running_statistics_and_eval(rng):
    bn = mg.BatchNorm1d(3).astype(np.float64)
    x = rng.standard_normal((8, 3)) * 2 + 5
    bn.forward(x)
    np.testing.assert_allclose(bn.running_mean, 0.1 * x.mean(axis=0))
    np.testing.assert_allclose(bn.running_var, 0.9 + 0.1 * x.var(axis=0, ddof=1))
    bn.eval()
    expected = (x - bn.running_mean) / np.sqrt(bn.running_var + bn.eps)
    np.testing.assert_allclose(bn.forward(x), expected)
    assert (result := mg.gradcheck(bn, x)).passed, result
    assert "running_mean" in bn.state_dict() and "running_var" in bn.state_dict()


def test_batchnorm_errors():
    with pytest.raises(ValueError, match=r"BatchNorm2d\(4\): expected 4 features on axis 1"):
        mg.BatchNorm2d(4).forward(np.ones((2, 3, 2, 2), np.float32))
    with pytest.raises(ValueError, match="more than one value per feature"):
        mg.BatchNorm1d(4).forward(np.ones((1, 4), np.float32))
