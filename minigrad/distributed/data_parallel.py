"""Data parallelism: every rank trains a replica of the model on its slice of each global batch, and
the gradients are summed over the ranks while backward runs."""
import time

from ..backend import array_module
from ..layers import Dropout
from .checks import check_agreement


class DataParallel:
    """Data-parallel training of a Sequential `model` over `comm`: every rank holds a replica and
    trains on its slice of each global batch; the gradients are summed over the ranks before the
    optimiser steps, so every replica takes the same step (the optimiser, weight decay and momentum
    included, runs unchanged after the reduction).

    On creation it checks that every rank built the same parameters (names, shapes, dtypes: a
    ValueError naming the ranks that differ), copies rank 0's values to the others, and those of the
    velocities of `optimizer` (an SGD, a resumed run's) when one is given, and makes every dropout
    layer draw its masks for the global batch (Dropout.draw_share), so that the replicas apply the
    one-process run's masks.

    The gradients live in a few flat buckets (`bucket_bytes` each at least, whole layers, in the
    order backward produces them: last layer first); each parameter's `grad` is a view into its
    bucket, so nothing is copied. As soon as backward has passed every layer of a bucket, its
    all-reduce starts without blocking, and the requests in flight are polled after every layer
    (MPI progresses only inside MPI calls) while backward goes on, as PyTorch's DDP does. After the
    first layer's backward it waits for them all: when `model.backward` returns, every rank holds the
    sum of the ranks' gradients. The loss must therefore be scaled so that the sum is the gradient of
    the global batch's loss (train.py: each rank's mean loss times its share of the batch).
    One backward per optimiser step (accumulating two would sum the first one twice).
    """

    def __init__(self, model, comm, optimizer=None, bucket_bytes=25 * 2**20):
        if optimizer is not None and not hasattr(optimizer, "velocity"):
            raise ValueError(f"DataParallel: optimizer must be an SGD (its velocities are copied from rank 0), "
                             f"got {type(optimizer).__name__}")
        self.model, self.comm = model, comm
        check_agreement(comm, [(name, tuple(p.shape), str(p.data.dtype)) for name, p in model.named_parameters()],
                        "the model's parameters (name, shape, dtype)")
        velocities = optimizer.velocity if optimizer is not None else []
        for array in [p.data for p in model.parameters()] + velocities:      # rank 0's, on every rank
            comm.broadcast(array, root=0)
        for _, layer in model.named_leaves():
            if isinstance(layer, Dropout):
                layer.draw_share(batch=(comm.rank, comm.size))
        self.buckets, self.ready_after = [], {}      # ready_after: id(layer) -> buckets complete after it
        members, size = [], 0
        last = len(model.layers) - 1
        for index in range(last, -1, -1):
            layer = model.layers[index]
            members += layer.parameters()
            size += sum(p.data.nbytes for p in layer.parameters())
            if members and (size >= bucket_bytes or index == 0):
                self.buckets.append(self._bucket(members))
                self.ready_after.setdefault(id(layer), []).append(self.buckets[-1])
                members, size = [], 0
        self.pending, self.exposed_seconds = [], 0.0
        model.backward_hooks.append(self._after_layer)

    def _bucket(self, params):
        """A flat buffer (padded to a multiple of the rank count) and each parameter's view into it."""
        xp = array_module(params[0].data)
        dtypes = {p.data.dtype for p in params}
        if len(dtypes) > 1:
            raise ValueError(f"DataParallel: the parameters {[p.name for p in params]} share a bucket but "
                             f"have different dtypes {sorted(map(str, dtypes))}")
        count = sum(p.data.size for p in params)
        flat = xp.zeros(-(-count // self.comm.size) * self.comm.size, params[0].data.dtype)
        members, offset = [], 0
        for p in params:
            members.append((p, flat[offset:offset + p.data.size].reshape(p.data.shape)))
            offset += p.data.size
        self._adopt(members)
        return flat, members

    @staticmethod
    def _adopt(members):
        """Make each parameter's grad its view into the bucket (again, if astype() or to() replaced it)."""
        for p, view in members:
            if p.grad is not view:
                view[...] = p.grad
                p.grad = view

    def _after_layer(self, layer):
        for flat, members in self.ready_after.get(id(layer), ()):
            self._adopt(members)
            self.pending.append(self.comm.start_allreduce_in_place(flat))
        for request in self.pending:
            request.test()
        if layer is self.model.layers[0]:
            start = time.perf_counter()
            for request in self.pending:
                request.wait()
            self.exposed_seconds += time.perf_counter() - start
            self.pending = []

