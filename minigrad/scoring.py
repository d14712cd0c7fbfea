"""Scoring a classifier: class probabilities averaged over the paper's ten crops (footnote 5), top-k
hits, and the loss and accuracies of a model over a loader.

A batch of ten crops per image, x (n, 10, 3, s, s), is scored as the paper scores ILSVRC: the softmax
outputs of the ten crops averaged, then ranked. One crop per image, x (n, 3, s, s), is the same with
one crop.
"""
import numpy as np

from .backend import to_device, to_numpy
from .layers import Softmax


def class_probabilities(model, x, device="cpu"):
    """(n, classes) NumPy probabilities of `model` (logits out) on the batch x (n, 3, s, s), or on ten
    crops per image (n, crops, 3, s, s), the crops' softmax outputs averaged."""
    crops = x.shape[1] if x.ndim == 5 else 1
    logits = model.forward(to_device(x.reshape(-1, *x.shape[-3:]), device))
    probabilities = to_numpy(Softmax(axis=1).forward(logits))
    return probabilities.reshape(len(x), crops, probabilities.shape[1]).mean(axis=1)


def top_k_hits(probabilities, labels, k):
    """How many of the rows rank their label among their k most likely classes."""
    ranked = np.argsort(-probabilities, axis=1)[:, :k]
    return int((ranked == np.asarray(labels)[:, None]).any(axis=1).sum())


def evaluate(model, loader, device="cpu", comm=None, desc="val", bar=True):
    """(loss, top-1 accuracy, top-5 accuracy) of `model` in eval mode over `loader` (batches of one
    crop or of ten crops per image). The loss is the cross-entropy of the (averaged) probabilities.
    With a communicator of several ranks (`comm`), each evaluates its share of the images and the sums
    are added up."""
    from .console import progress

    model.eval()
    total_loss, correct1, correct5, seen = 0.0, 0, 0, 0
    for x, y in progress(loader.epoch(0), len(loader), desc, show=bar):
        if len(y) == 0:
            continue
        probabilities = class_probabilities(model, x, device)
        total_loss -= float(np.log(np.maximum(probabilities[np.arange(len(y)), y], 1e-30)).sum())
        correct1 += top_k_hits(probabilities, y, 1)
        correct5 += top_k_hits(probabilities, y, 5)
        seen += len(y)
    if comm is not None:
        total_loss, correct1, correct5, seen = comm.allreduce(np.array([total_loss, correct1, correct5, seen],
                                                                       np.float64))
    if not seen:
        raise ValueError("evaluate: no readable image to evaluate")
    return total_loss / seen, correct1 / seen, correct5 / seen
