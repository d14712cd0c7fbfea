"""Linear, Flatten and SoftmaxCrossEntropy."""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import minigrad as mg
import reference


@given(n=st.integers(1, 4), fin=st.integers(1, 6), fout=st.integers(1, 6), bias=st.booleans(),
       seed=st.integers(0, 2**16))
def test_linear_forward_and_backward(n, fin, fout, bias, seed):
    rng = np.random.default_rng(seed)
    layer = mg.Linear(fin, fout, bias=bias).astype(np.float64)
    layer.weight.data = rng.standard_normal((fout, fin))
    if bias:
        layer.bias.data = rng.standard_normal(fout)
    x = rng.standard_normal((n, fin))
    np.testing.assert_allclose(layer.forward(x), reference.linear(x, layer.weight.data, layer.bias and layer.bias.data),
                               rtol=1e-12, atol=1e-12)
    assert (result := mg.gradcheck(layer, x)).passed, result


def test_linear_errors():
    with pytest.raises(ValueError, match=r"Linear\(4, 2\): expected 4 input features, got input of shape \(3, 5\)"):
        mg.Linear(4, 2).forward(np.ones((3, 5), np.float32))
    with pytest.raises(ValueError, match=r"expected a 2-D input"):
        mg.Linear(4, 2).forward(np.ones((3, 4, 1), np.float32))


def test_flatten_round_trip(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    flat = mg.Flatten()
    assert flat.forward(x).shape == (2, 60)
    assert flat.backward(np.ones((2, 60))).shape == x.shape
    assert (result := mg.gradcheck(flat, x)).passed, result


@given(n=st.integers(1, 5), classes=st.integers(2, 6), seed=st.integers(0, 2**16), scale=st.sampled_from([1.0, 30.0]))
def test_cross_entropy_forward_and_backward(n, classes, seed, scale):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, classes)) * scale
    labels = rng.integers(0, classes, n)
    ce = mg.SoftmaxCrossEntropy()
    loss = ce.forward(logits, labels)
    assert isinstance(loss, float)
    assert loss == pytest.approx(reference.softmax_cross_entropy(logits.tolist(), labels.tolist()), rel=1e-12)
    assert (result := mg.gradcheck(ce, logits, labels=labels)).passed, result


def test_cross_entropy_is_stable_for_huge_logits():
    ce = mg.SoftmaxCrossEntropy()
    logits = np.array([[1e4, 0.0, -1e4], [5e3, 5e3, 0.0]], np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):    # exp(-1e4) may underflow to 0
        loss = ce.forward(logits, np.array([0, 1]))
        grad = ce.backward()
    assert loss == pytest.approx(math.log(2) / 2, rel=1e-6)
    np.testing.assert_allclose(grad, [[0, 0, 0], [0.25, -0.25, 0]], atol=1e-7)


def test_uniform_logits_give_log_classes():
    """The plateau learners see when a network has not started learning: ln(1000) = 6.907."""
    assert mg.SoftmaxCrossEntropy().forward(np.zeros((4, 1000)), np.arange(4)) == pytest.approx(math.log(1000))


@pytest.mark.parametrize("labels, message", [
    (np.array([0, 3]), r"labels must be in \[0, 3\), got values from 0 to 3"),
    (np.array([0, -1]), r"labels must be in \[0, 3\)"),
    (np.array([0, 1, 2]), "expected 2 labels"),
    (np.array([[0], [1]]), "expected 2 labels"),
    (np.array([0.0, 1.0]), "expected integer class labels"),
])
def test_cross_entropy_bad_labels(labels, message):
    with pytest.raises(ValueError, match=message):
        mg.SoftmaxCrossEntropy().forward(np.zeros((2, 3)), labels)


def test_a_batch_of_no_images_flows_through_alexnet_and_has_no_loss():
    """As Conv2d does (test_conv.py), every layer of AlexNet takes a batch of 0 images; Flatten's
    reshape(N, -1) could not infer its size. The mean loss of nothing is refused by name."""
    from minigrad import models, scoring

    net = models.alexnet("small", 10)
    net["conv1"].needs_input_grad = True
    for mode in (net.train, net.eval):
        mode()
        y = net.forward(np.zeros((0, 3, 64, 64), np.float32))
        assert y.shape == (0, 10) and net.backward(np.zeros_like(y)).shape == (0, 3, 64, 64)
    assert scoring.class_probabilities(net, np.zeros((0, 10, 3, 64, 64), np.float32)).shape == (0, 10)
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy: a batch of 0 rows has no mean loss"):
        mg.SoftmaxCrossEntropy().forward(np.zeros((0, 10)), np.zeros(0, np.int64))
