"""minigrad.scoring: the ten-crop average of softmax outputs (the paper's footnote 5), top-k hits, and
evaluate over a loader."""
import numpy as np

import minigrad as mg
from minigrad import scoring


class Fixed(mg.Layer):
    """A 'network' whose logits are the first values of each crop, to know the answer in advance."""

    def forward(self, x):
        return x.reshape(len(x), -1)[:, :3]


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_ten_crops_average_the_softmax_outputs_not_the_logits():
    crops = np.random.default_rng(0).standard_normal((2, 10, 3, 1, 1)) * 3
    probabilities = scoring.class_probabilities(Fixed(), crops)
    expected = softmax(crops.reshape(20, 3)).reshape(2, 10, 3).mean(axis=1)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-12)
    assert not np.allclose(probabilities, softmax(crops.reshape(2, 10, 3).mean(axis=1)))
    single = scoring.class_probabilities(Fixed(), crops[:, 0])
    np.testing.assert_allclose(single, softmax(crops[:, 0].reshape(2, 3)), rtol=1e-12)


def test_top_k_hits_count_labels_among_the_k_most_likely():
    probabilities = np.array([[0.1, 0.5, 0.4], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    labels = np.array([2, 0, 1])
    assert scoring.top_k_hits(probabilities, labels, 1) == 1
    assert scoring.top_k_hits(probabilities, labels, 2) == 2
    assert scoring.top_k_hits(probabilities, labels, 3) == 3


class Batches:
    def __init__(self, batches):
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def epoch(self, _):
        return iter(self.batches)


def test_evaluate_sums_over_batches_and_skips_empty_ones():
    x = np.array([[5.0, 0, 0], [0, 5, 0], [0, 0, 5], [5, 0, 0]]).reshape(4, 3, 1, 1)
    y = np.array([0, 1, 0, 0])
    empty = (np.zeros((0, 3, 1, 1)), np.zeros(0, np.int64))
    loss, top1, top5 = scoring.evaluate(Fixed(), Batches([(x[:2], y[:2]), empty, (x[2:], y[2:])]), bar=False)
    assert top1 == 0.75 and top5 == 1.0
    expected = -np.log(softmax(x.reshape(4, 3))[np.arange(4), y]).mean()
    assert abs(loss - expected) < 1e-12
