"""Dropout: the paper's classic form and the inverted form have the same expectation."""
import numpy as np
import pytest

import minigrad as mg


@pytest.mark.parametrize("mode", ["classic", "inverted"])
def test_training_and_eval_have_the_same_expectation(mode):
    x = np.full((4000, 50), 2.0)
    drop = mg.Dropout(0.5, mode=mode, seed=0)
    trained_mean = drop.forward(x).mean()
    eval_mean = drop.eval().forward(x).mean()
    assert trained_mean == pytest.approx(eval_mean, rel=0.01)   # 200k Bernoulli draws: 0.2% std


def test_classic_mode_keeps_survivors_unscaled_and_halves_at_test():
    x = np.full((100, 100), 3.0)
    drop = mg.Dropout(0.5, mode="classic", seed=1)
    y = drop.forward(x)
    assert set(np.unique(y)) == {0.0, 3.0}
    assert (y == 0).mean() == pytest.approx(0.5, abs=0.02)        # kept units are Bernoulli(1 - p)
    np.testing.assert_array_equal(drop.eval().forward(x), x * 0.5)


def test_inverted_mode_scales_survivors_in_training_only():
    x = np.full((100, 100), 3.0)
    drop = mg.Dropout(0.2, mode="inverted", seed=1)
    y = drop.forward(x)
    assert set(np.unique(y)) == {0.0, 3.0 / 0.8}
    assert (y == 0).mean() == pytest.approx(0.2, abs=0.02)
    np.testing.assert_array_equal(drop.eval().forward(x), x)


@pytest.mark.parametrize("mode", ["classic", "inverted"])
def test_backward_reuses_the_forward_mask_and_passes_gradcheck(mode, rng):
    x = rng.standard_normal((6, 7))
    drop = mg.Dropout(0.4, mode=mode, seed=3)
    y = drop.forward(x)
    dx = drop.backward(np.ones_like(x))
    np.testing.assert_array_equal(dx == 0, y == 0)
    assert (result := mg.gradcheck(drop, x)).passed, result
    assert (result := mg.gradcheck(drop.eval(), x)).passed, result


def test_eval_is_deterministic_and_training_is_seeded(rng):
    x = rng.standard_normal((5, 5))
    drop = mg.Dropout(0.5, seed=7).eval()
    np.testing.assert_array_equal(drop.forward(x), drop.forward(x))
    a, b = mg.Dropout(0.5, seed=7), mg.Dropout(0.5, seed=7)
    np.testing.assert_array_equal(a.forward(x), b.forward(x))


def test_masks_are_fresh_at_every_forward_and_replayable():
    drop = mg.Dropout(0.5, seed=0)
    x = np.ones((20, 20))
    state = drop.get_rng_state()
    first, second = drop.forward(x), drop.forward(x)
    assert not np.array_equal(first, second)
    drop.set_rng_state(state)
    np.testing.assert_array_equal(drop.forward(x), first)


def test_p_zero_is_the_identity(rng):
    x = rng.standard_normal((3, 3))
    np.testing.assert_array_equal(mg.Dropout(0.0).forward(x), x)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, "half"])
def test_p_outside_the_unit_interval(p):
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
        mg.Dropout(p)


def test_unknown_mode():
    with pytest.raises(ValueError, match="mode must be one of .* got 'scaled'"):
        mg.Dropout(0.5, mode="scaled")


def test_the_shares_of_a_layer_put_together_are_the_whole_layers_mask_and_keep_its_generator(rng):
    """2 replicas (rows of the global batch) x 2 towers (columns of the units), 2 steps: each part's
    mask is its block of the one-layer mask, and every generator ends where the one layer's does."""
    x = rng.standard_normal((6, 8, 3))
    whole = mg.Dropout(0.5, seed=4)
    parts = {(rank, tower): mg.Dropout(0.5, seed=4).draw_share(batch=(rank, 2), units=(tower, 2))
             for rank in range(2) for tower in range(2)}
    for _ in range(2):
        y = whole.forward(x)
        for (rank, tower), part in parts.items():
            block = (slice(3 * rank, 3 * rank + 3), slice(4 * tower, 4 * tower + 4))
            np.testing.assert_array_equal(part.forward(x[block]), y[block])
    assert all(part.get_rng_state() == whole.get_rng_state() for part in parts.values())
    assert not np.array_equal(y[:3], y[3:])                   # the replicas' rows are different draws


def test_a_share_is_validated_and_a_share_of_the_units_needs_a_units_axis():
    with pytest.raises(ValueError, match=r"batch must be \(index, count\) .* got \(2, 2\)"):
        mg.Dropout(0.5).draw_share(batch=(2, 2))
    drop = mg.Dropout(0.5).draw_share(units=(1, 2))
    assert drop.draw_share(batch=(0, 3)).unit_share == (1, 2)        # a share not given stays
    with pytest.raises(ValueError, match=r"a share of the units needs an input \(N, units, ...\), got shape \(4,\)"):
        drop.forward(np.ones(4))
