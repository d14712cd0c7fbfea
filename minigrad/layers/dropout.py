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

    Data-parallel training (minigrad.distributed) sets `replica = (rank, ranks)`: the input is then
    the rank-th of `ranks` equal slices of the global batch, and the mask is drawn for the whole
    global batch and sliced, so that the ranks apply the one-process run's masks and their
    generators stay in step with it (a checkpoint resumes on any number of ranks).
    """

    def __init__(self, p=0.5, mode="inverted", seed=None):
        if not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p!r}")
        if mode not in MODES:
            raise ValueError(f"Dropout: mode must be one of {MODES}, got {mode!r}")
        self.p, self.mode = float(p), mode
        self.rng = np.random.default_rng(seed)
        self.mask = None
        self.replica = (0, 1)

    def describe(self):
        return f"Dropout(p={self.p}, mode={self.mode!r})"

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
        rank, ranks = self.replica
        drawn = self.rng.random((x.shape[0] * ranks,) + x.shape[1:], dtype=np.float32)
        keep = drawn[rank * x.shape[0]:(rank + 1) * x.shape[0]] >= self.p
        scale = 1 / (1 - self.p) if self.mode == "inverted" else 1
        self.mask = xp.asarray(keep.astype(x.dtype) * x.dtype.type(scale))
        return x * self.mask

    def backward(self, dy):
        return dy * self.saved(self.mask)        # the same mask (or eval factor) as the forward
