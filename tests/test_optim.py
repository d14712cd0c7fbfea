"""The paper's SGD rule by hand, across a learning-rate change; schedules; clipping; Adam."""
import numpy as np
import pytest

import minigrad as mg


def param(values, grad):
    p = mg.Parameter(np.array(values, dtype=np.float64), "w")
    p.grad[...] = grad
    return p


def test_sgd_follows_the_paper_rule_across_a_learning_rate_change():
    p = param([1.0, -2.0], [0.5, 0.25])
    opt = mg.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.0005)
    w, v = [1.0, -2.0], [0.0, 0.0]
    for lr in [0.1, 0.1, 0.01, 0.01]:          # the rate divided by 10 after two steps
        opt.lr = lr
        opt.step()
        for i, g in enumerate([0.5, 0.25]):
            v[i] = 0.9 * v[i] - 0.0005 * lr * w[i] - lr * g     # v <- 0.9 v - 0.0005 eps w - eps dL/dw
            w[i] = w[i] + v[i]                                   # w <- w + v
        np.testing.assert_allclose(p.data, w, rtol=1e-15)
        np.testing.assert_allclose(opt.velocity[0], v, rtol=1e-15)


def test_sgd_differs_from_pytorch_only_after_the_rate_changes():
    """PyTorch: b <- m b + g + wd w; w <- w - eps b. Same as the paper while eps is constant."""
    p = param([1.0], [0.5])
    opt = mg.SGD([p], lr=0.1)
    w, b = 1.0, 0.0
    for step, lr in enumerate([0.1, 0.1, 0.01]):
        opt.lr = lr
        opt.step()
        b = 0.9 * b + 0.5 + 0.0005 * w
        w = w - lr * b
        if step < 2:
            assert p.data[0] == pytest.approx(w, rel=1e-14)
        else:
            assert abs(p.data[0] - w) > 1e-3


def test_sgd_state_dict_round_trip():
    p, q = param([1.0, 2.0], [1.0, 1.0]), param([1.0, 2.0], [1.0, 1.0])
    a, b = mg.SGD([p], lr=0.1), mg.SGD([q], lr=0.5)
    a.step()
    b.load_state_dict(a.state_dict())
    q.data[...] = p.data
    a.step(), b.step()
    np.testing.assert_array_equal(p.data, q.data)
    assert b.lr == 0.1
    with pytest.raises(ValueError, match="has shape"):
        mg.SGD([param([1.0], [0.0])], lr=0.1).load_state_dict(a.state_dict())


def test_zero_grad_and_validation():
    p = param([1.0], [3.0])
    mg.SGD([p], lr=0.1).zero_grad()
    assert p.grad[0] == 0
    with pytest.raises(ValueError, match="lr must be a non-negative number"):
        mg.SGD([p], lr=-1)
    with pytest.raises(ValueError, match="empty parameter list"):
        mg.SGD([], lr=0.1)


@pytest.mark.parametrize("settings, message", [
    (dict(lr=np.inf), "lr must be a non-negative number and finite, got inf"),
    (dict(lr=np.nan), "lr must be a non-negative number and finite, got nan"),
    (dict(lr=0.1, momentum=1.5), r"momentum must be in \[0, 1\), got 1.5"),
    (dict(lr=0.1, momentum=1.0), r"momentum must be in \[0, 1\), got 1.0"),
    (dict(lr=0.1, weight_decay=np.inf), "weight_decay must be a non-negative number and finite, got inf"),
    (dict(lr=True), "lr must be a non-negative number"),
])
def test_sgd_refuses_rates_that_cannot_train(settings, message):
    with pytest.raises(ValueError, match=message):
        mg.SGD([param([1.0], [3.0])], **settings)
    good = mg.SGD([param([1.0], [3.0])], lr=0.1)
    state = {**good.state_dict(), **settings}
    with pytest.raises(ValueError, match=message):
        good.load_state_dict(state)


def test_sgd_takes_numpy_numbers():
    p = param([1.0], [3.0])
    optimizer = mg.SGD([p], lr=np.float32(0.01), momentum=np.float64(0.9), weight_decay=np.float32(0))
    optimizer.step()
    assert p.data[0] == pytest.approx(1.0 - 0.01 * 3.0)


def test_plateau_divides_by_ten_when_the_metric_stops_improving():
    opt = mg.SGD([param([1.0], [0.0])], lr=0.01)
    schedule = mg.ReduceLROnPlateau(opt, mode="min", patience=1, max_reductions=3)
    errors = [0.9, 0.8, 0.8, 0.8, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7]
    rates = []
    for error in errors:
        schedule.step(error)
        rates.append(opt.lr)
    assert rates[:3] == [0.01, 0.01, 0.01]                   # one flat epoch is tolerated (patience 1)
    assert rates[3] == pytest.approx(0.001)                  # the second flat epoch divides by 10
    assert rates[-1] == pytest.approx(1e-5)                  # at most three reductions, as the paper
    assert schedule.reductions == 3


def test_plateau_reduce_lowers_the_rate_now_within_the_same_limits():
    opt = mg.SGD([param([1.0], [0.0])], lr=1.0)
    schedule = mg.ReduceLROnPlateau(opt, mode="min", patience=2, max_reductions=2, min_lr=0.05)
    schedule.step(0.5)
    schedule.step(0.6)                                      # one bad evaluation...
    assert schedule.reduce() and opt.lr == pytest.approx(0.1)
    assert schedule.bad_epochs == 0 and schedule.reductions == 1    # ...forgotten with the reduction
    assert schedule.reduce() and opt.lr == pytest.approx(0.05)      # min_lr bounds it
    assert not schedule.reduce() and opt.lr == pytest.approx(0.05) and schedule.reductions == 2


def test_plateau_max_mode_and_state():
    opt = mg.SGD([param([1.0], [0.0])], lr=1.0)
    schedule = mg.ReduceLROnPlateau(opt, mode="max", patience=0)
    assert not schedule.step(0.5)
    assert schedule.step(0.4)
    assert opt.lr == pytest.approx(0.1)
    other = mg.ReduceLROnPlateau(opt, mode="max", patience=0)
    other.load_state_dict(schedule.state_dict())
    assert other.best == 0.5


def test_step_schedule():
    opt = mg.SGD([param([1.0], [0.0])], lr=1.0)
    schedule = mg.StepLR(opt, step_size=2, gamma=0.1)
    rates = []
    for _ in range(5):
        schedule.step()
        rates.append(opt.lr)
    np.testing.assert_allclose(rates, [1.0, 0.1, 0.1, 0.01, 0.01])


def test_clip_grad_norm_scales_all_gradients_together():
    p, q = param([0.0, 0.0], [3.0, 0.0]), param([0.0], [4.0])
    assert mg.clip_grad_norm([p, q], 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose(np.concatenate([p.grad, q.grad]), [0.6, 0.0, 0.8])
    assert mg.clip_grad_norm([p, q], 10.0) == pytest.approx(1.0)
    np.testing.assert_allclose(p.grad, [0.6, 0.0])


def test_adam_matches_a_hand_computation():
    p = param([1.0], [0.5])
    opt = mg.Adam([p], lr=0.1)
    m = v = 0.0
    w = 1.0
    for t in range(1, 4):
        opt.step()
        m = 0.9 * m + 0.1 * 0.5
        v = 0.999 * v + 0.001 * 0.25
        w -= 0.1 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
        assert p.data[0] == pytest.approx(w, rel=1e-14)


def test_sgd_trains_a_small_net_downhill(rng):
    net = mg.Sequential(mg.Linear(4, 16), mg.ReLU(), mg.Linear(16, 3))
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0).astype(int)
    ce, opt = mg.SoftmaxCrossEntropy(), mg.SGD(net.parameters(), lr=0.1)
    losses = []
    for _ in range(100):
        opt.zero_grad()
        losses.append(ce.forward(net.forward(x), y))
        net.backward(ce.backward())
        opt.step()
    assert losses[-1] < 0.5 * losses[0]


def test_sgd_parameter_groups_scale_the_rate_and_decay_per_group_and_freeze_at_zero():
    """Caffe's lr_mult/decay_mult: each group follows the paper's rule with eps * lr_mult and
    weight_decay * decay_mult; lr_mult = 0 leaves its parameters untouched."""
    fast, slow, frozen = param([1.0, -2.0], [0.5, 0.25]), param([3.0], [1.0]), param([4.0], [2.0])
    opt = mg.SGD([{"params": [fast]}, {"params": [slow], "lr_mult": 0.1, "decay_mult": 2},
                  {"params": [frozen], "lr_mult": 0}], lr=0.1)
    reference = [mg.SGD([param([1.0, -2.0], [0.5, 0.25])], lr=0.1),
                 mg.SGD([param([3.0], [1.0])], lr=0.01, weight_decay=0.001)]
    for _ in range(3):
        opt.step()
        for r in reference:
            r.step()
    np.testing.assert_allclose(fast.data, reference[0].params[0].data, rtol=1e-15)
    np.testing.assert_allclose(slow.data, reference[1].params[0].data, rtol=1e-15)
    np.testing.assert_array_equal(frozen.data, [4.0])
    state = opt.state_dict()
    again = mg.SGD([{"params": [param([1.0, -2.0], [0.5, 0.25])]}, {"params": [param([3.0], [1.0])], "lr_mult": 0.1},
                    {"params": [param([4.0], [2.0])], "lr_mult": 0}], lr=0.5)
    again.load_state_dict(state)
    assert again.lr == 0.1 and np.array_equal(again.velocity[0], opt.velocity[0])


def test_sgd_parameter_group_errors():
    p = param([1.0], [0.0])
    with pytest.raises(ValueError, match="group 0 must be a dict with 'params'"):
        mg.SGD([{"params": [p], "lr": 0.1}], lr=0.1)
    with pytest.raises(ValueError, match="lr_mult must be a non-negative number"):
        mg.SGD([{"params": [p], "lr_mult": -1}], lr=0.1)
    with pytest.raises(ValueError, match="more than one group"):
        mg.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
