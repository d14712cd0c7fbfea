"""Dropout (section 4.2), in the paper's classic form and the now usual inverted form."""
import numpy as np

from ..backend import array_module
from .base import Layer

MODES = ("inverted", "classic")


class Dropout(Layer):
    """Zero each unit with probability p, a fresh mask per example per unit at every forward.

    mode="classic" (the paper's): training keeps the surviving units as they are; eval multiplies every
    output by 1 - p. mode="inverted": training divides the survivors by 1 - p; eval is the identity.
    Both give every unit the same expectation in training as in eval. Kept units are r ~ Bernoulli(1 - p).
    The mask comes from the layer's own generator (`seed`), drawn on the CPU so that a seed gives the
    same masks on either device, and it is part of a checkpoint through get_rng_state().

    Under several processes a layer may hold a share of the one-process layer's work: draw_share()
    makes it draw the whole layer's mask and keep its own part.
    """
    SAVED = ("mask",)

    def __init__(self, p=0.5, mode="inverted", seed=None):
        if not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p!r}")
        if mode not in MODES:
            raise ValueError(f"Dropout: mode must be one of {MODES}, got {mode!r}")
        self.p, self.mode = float(p), mode
        self.rng = np.random.default_rng(seed)
        self.mask = None
        self.batch_share = self.unit_share = (0, 1)

    def describe(self):
        return f"Dropout(p={self.p}, mode={self.mode!r})"

    def draw_share(self, batch=None, units=None):
        """Draw each training mask as a part of the one-process layer's, so that every part applies
        the one-process run's masks and every generator stays in step with its generator (a
        checkpoint resumes on any number of ranks and towers). batch=(rank, ranks): the input is
        the rank-th of `ranks` equal slices of the global batch (data parallelism,
        minigrad.distributed.DataParallel). units=(tower, towers): its units (axis 1) are the
        tower-th of `towers` equal parts of the layer's (model parallelism,
        minigrad.distributed.towers). The mask is drawn for the global batch and all the units, and
        sliced. A share not given stays as it is; returns the layer."""
        for name, share in (("batch", batch), ("units", units)):
            if share is not None and not (len(share) == 2 and 0 <= share[0] < share[1]):
                raise ValueError(f"{self.describe()}: {name} must be (index, count) with 0 <= index < count, "
                                 f"got {share!r}")
        self.batch_share = self.batch_share if batch is None else tuple(batch)
        self.unit_share = self.unit_share if units is None else tuple(units)
        return self

    def get_rng_state(self):
        return self.rng.bit_generator.state

    def set_rng_state(self, state):
        self.rng.bit_generator.state = state

    def output_shape(self, input_shape):
        return self.check_shape(input_shape, None, "(any shape)")

    def forward(self, x):
        self.check_input(x, None, "(any shape)")
        xp = array_module(x)
        if not self.training:
            self.mask = x.dtype.type(1 - self.p) if self.mode == "classic" else x.dtype.type(1)
            return x * self.mask
        scale = 1 / (1 - self.p) if self.mode == "inverted" else 1
        self.mask = xp.asarray(self._kept(x.shape).astype(x.dtype) * x.dtype.type(scale))
        return x * self.mask

    def _kept(self, shape):
        """The kept units of an input of `shape`: its share of a draw for the whole layer."""
        (rank, ranks), (tower, towers) = self.batch_share, self.unit_share
        whole, part = [shape[0] * ranks, *shape[1:]], [slice(rank * shape[0], (rank + 1) * shape[0])]
        if towers > 1:
            if len(shape) < 2:
                raise ValueError(f"{self.describe()}: a share of the units needs an input (N, units, ...), "
                                 f"got shape {tuple(shape)}")
            whole[1] *= towers
            part.append(slice(tower * shape[1], (tower + 1) * shape[1]))
        return self.rng.random(tuple(whole), dtype=np.float32)[tuple(part)] >= self.p

    def backward(self, dy):
        return dy * self.saved(self.mask)        # the same mask (or eval factor) as the forward
