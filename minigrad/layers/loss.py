"""Softmax cross-entropy: the loss AlexNet's fc8 feeds (a 1000-way softmax, section 3.5)."""
from ..backend import array_module
from .base import Layer


class SoftmaxCrossEntropy(Layer):
    """loss = mean_n -log softmax(z_n)[y_n];  d loss / d z = (softmax(z) - onehot(y)) / N.

    `forward(logits, labels)` returns the batch-mean loss as a Python float. Subtracting each row's
    maximum before exponentiating makes it exact for logits of any size.
    """

    def __init__(self):
        self.probs = self.labels = None

    def forward(self, logits, labels):
        self.check_input(logits, 2, "(N, classes)")
        xp = array_module(logits)
        N, classes = logits.shape
        if N == 0:
            raise ValueError("SoftmaxCrossEntropy: a batch of 0 rows has no mean loss; expected logits of shape "
                             "(N, classes) with N >= 1")
        labels = xp.asarray(labels)
        if labels.ndim != 1 or labels.shape[0] != N:
            raise ValueError(f"SoftmaxCrossEntropy: expected {N} labels (one per row of logits), "
                             f"got labels of shape {tuple(labels.shape)}")
        if labels.dtype.kind not in "iu":
            raise ValueError(f"SoftmaxCrossEntropy: expected integer class labels, got dtype {labels.dtype}")
        if int(labels.min()) < 0 or int(labels.max()) >= classes:
            raise ValueError(f"SoftmaxCrossEntropy: labels must be in [0, {classes}), got values from "
                             f"{int(labels.min())} to {int(labels.max())}")
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        self.probs, self.labels = xp.exp(log_probs), labels
        return float(-log_probs[xp.arange(N), labels].mean())

    def backward(self, dloss=1.0):
        probs, labels = self.saved(self.probs, self.labels)
        xp, N = array_module(probs), probs.shape[0]
        grad = probs.copy()
        grad[xp.arange(N), labels] -= 1
        return grad * (dloss / N)
