"""The communicators: MPICommunicator over MPI (mpi4py) for NumPy arrays, CuPy arrays handed to gpu.py
(NCCL or host staging), and LocalCommunicator for one process; world() picks this process's.

    comm = minigrad.distributed.world()     # this process's communicator
    comm.rank, comm.size

Outside an MPI launcher `world()` is a one-process communicator whose collectives return their input
(copied where the operation makes a new array), and mpi4py is never imported. Under `mpiexec` (the
launcher's environment variables are set, or mpi4py.MPI is already imported) it wraps MPI.COMM_WORLD,
and with several ranks it makes a failing or hanging rank end the whole job (launch.py).

Every all-reduce is a reduce-scatter followed by an all-gather (the ring all-reduce's two halves): each
slice of the sum is added up on exactly one rank and then copied to the others, so every rank holds the
same bits whatever algorithm the MPI library picks. Replicas that start equal therefore stay bitwise
equal, step after step. MPI makes progress on non-blocking collectives only inside MPI calls; the
gradient buckets poll their requests after every layer's backward (data_parallel.py).
"""
import os
from collections import deque

import numpy as np

from ..backend import array_module, is_gpu_array
from .gpu import gpu_collectives
from .launch import bounded, end_job_on_failure, launched_by_mpi, mpi, watchdog
from .requests import Done, Then, check_op, divide_for_mean

_world = None


def world():
    """The communicator of every process of the job (created once, then the same object)."""
    global _world
    if _world is None:
        _world = MPICommunicator(mpi().COMM_WORLD) if launched_by_mpi() else LocalCommunicator()
        if _world.size > 1:
            end_job_on_failure(_world)
    return _world


class _AllreduceRequest:
    """An all-reduce in flight: its reduce-scatter, then (started by the communicator, in issue order)
    its all-gather. test() advances it without blocking; wait() completes it and returns the result."""

    def __init__(self, comm, flat, op):
        self.comm, self.flat, self.op = comm, flat, op
        self.chunk = np.empty(flat.size // comm.size, flat.dtype)
        self.scatter = comm.comm.Ireduce_scatter_block(flat, self.chunk, op=mpi().SUM)
        self.gather = self.result = None

    def test(self):
        self.comm._start_gathers()
        if self.result is None and self.gather is not None and self.gather.Test():
            self.result = divide_for_mean(self.flat, self.comm.size, self.op)
        return self.result is not None

    @bounded("an all-reduce")
    def wait(self):
        if self.result is None:
            self.comm._start_gathers(until=self)
            self.gather.Wait()
            self.result = divide_for_mean(self.flat, self.comm.size, self.op)
        return self.result


class LocalCommunicator:
    """One process, no MPI: every collective is the identity (a copy where it returns a new array)."""

    rank, size, local_rank = 0, 1, 0

    def broadcast(self, array, root=0):
        return array

    def allreduce(self, array, op="sum"):
        check_op(op, "allreduce")
        return divide_for_mean(array.copy(), 1, op)

    def iallreduce(self, array, op="sum"):
        return Done(self.allreduce(array, op))

    def start_allreduce_in_place(self, flat, op="sum"):
        """In place on a flat contiguous buffer whose length `size` divides; returns a request."""
        return Done(divide_for_mean(flat, 1, op))

    def allgather(self, array, axis=0):
        return array.copy()

    def reduce_scatter(self, array, axis=0, op="sum"):
        check_op(op, "reduce_scatter")
        return array.copy()

    def barrier(self):
        pass

    def bcast_object(self, obj, root=0):
        return obj

    def allgather_object(self, obj):
        return [obj]

    def split(self, color, key=None):
        return LocalCommunicator()

    def abort(self, code=1):
        os._exit(code)


class MPICommunicator:
    """A communicator over an mpi4py Comm. NumPy arrays go through MPI; CuPy arrays through NCCL or
    host staging (gpu.py). Every collective must be called by every rank of the
    communicator, in the same order, with arrays of the same shape and dtype."""

    def __init__(self, comm):
        self.comm, self.rank, self.size = comm, comm.Get_rank(), comm.Get_size()
        self._gpu = None
        self._local_rank = None
        # The all-gathers go on a communicator of their own: every rank must issue the collectives of
        # a communicator in one order, and the reduce-scatters complete in an order that may differ.
        self._gather_comm, self._waiting_gathers = None, deque()

    @property
    def local_rank(self):
        """This rank's number among the ranks on its machine (to pick its GPU)."""
        if self._local_rank is None:
            with watchdog.waiting("a communicator split"):
                node = self.comm.Split_type(mpi().COMM_TYPE_SHARED, key=self.rank)
            self._local_rank = node.Get_rank()
            node.Free()
        return self._local_rank

    # --- arrays -----------------------------------------------------------------------------------
    @bounded("a broadcast")
    def broadcast(self, array, root=0):
        """Root's `array` into every rank's `array` (same shape and dtype), in place; returns it."""
        if is_gpu_array(array):
            return self._gpu_ops().broadcast(array, root)
        buffer = array if array.flags.c_contiguous else np.ascontiguousarray(array)
        self.comm.Bcast(buffer, root=root)
        if buffer is not array:
            array[...] = buffer
        return array

    def allreduce(self, array, op="sum"):
        """The element-wise sum (or mean) over the ranks, a new array with the same bits on every rank."""
        return self.iallreduce(array, op).wait()

    def iallreduce(self, array, op="sum"):
        """Start allreduce without waiting: a request whose wait() returns the reduced array."""
        check_op(op, "iallreduce")
        xp = array_module(array)
        padded = xp.zeros(-(-array.size // self.size) * self.size, array.dtype)
        padded[:array.size] = array.ravel()
        shape, count = array.shape, array.size
        request = self.start_allreduce_in_place(padded, op)
        return Then(request, lambda flat: flat[:count].reshape(shape))

    def start_allreduce_in_place(self, flat, op="sum"):
        """All-reduce a flat contiguous buffer whose length `size` divides, in place: the reduce-scatter
        then the all-gather. Returns a request; wait() returns `flat`."""
        check_op(op, "allreduce")
        if flat.ndim != 1 or flat.size % self.size:
            raise ValueError(f"start_allreduce_in_place: expected a flat buffer whose length {self.size} ranks "
                             f"divide, got shape {tuple(flat.shape)}")
        if is_gpu_array(flat):
            return self._gpu_ops().start_allreduce_in_place(flat, op)
        if self._gather_comm is None:
            with watchdog.waiting("a communicator duplication"):
                self._gather_comm = self.comm.Dup()
        request = _AllreduceRequest(self, flat, op)
        self._waiting_gathers.append(request)
        return request

    def _start_gathers(self, until=None):
        """Start the all-gathers of the all-reduces whose reduce-scatter has completed, strictly in the
        order the all-reduces were started, and blocking until `until`'s has started when given."""
        while self._waiting_gathers:
            head = self._waiting_gathers[0]
            if until is not None and until.gather is None:
                head.scatter.Wait()
            elif not head.scatter.Test():
                return
            head.gather = self._gather_comm.Iallgather(head.chunk, head.flat)
            self._waiting_gathers.popleft()

    @bounded("an all-gather")
    def allgather(self, array, axis=0):
        """The ranks' arrays concatenated along `axis` in rank order. The lengths along `axis` may
        differ; every other dimension must agree (ValueError naming the rank otherwise)."""
        axis = self._axis(array, axis, "allgather")
        shapes = self.allgather_object(tuple(array.shape))
        for rank, shape in enumerate(shapes):
            if len(shape) != array.ndim or shape[:axis] + shape[axis + 1:] != array.shape[:axis] + array.shape[axis + 1:]:
                raise ValueError(f"allgather: rank {rank} has an array of shape {shape}, rank {self.rank} one "
                                 f"of shape {tuple(array.shape)}; only the length along axis {axis} may differ")
        if is_gpu_array(array):
            return self._gpu_ops().allgather(array, axis, shapes)
        front = np.ascontiguousarray(np.moveaxis(array, axis, 0))
        row = int(np.prod(front.shape[1:], dtype=np.int64))          # elements per index along axis
        counts = [shape[axis] * row for shape in shapes]
        gathered = np.empty((sum(shape[axis] for shape in shapes),) + front.shape[1:], array.dtype)
        self.comm.Allgatherv(front, [gathered, counts])
        return np.ascontiguousarray(np.moveaxis(gathered, 0, axis))

    @bounded("a reduce-scatter")
    def reduce_scatter(self, array, axis=0, op="sum"):
        """This rank's slice, along `axis`, of the element-wise sum (or mean) over the ranks: the
        rank-th of `size` equal slices (the length along `axis` must be divisible by `size`)."""
        check_op(op, "reduce_scatter")
        axis = self._axis(array, axis, "reduce_scatter")
        if array.shape[axis] % self.size:
            raise ValueError(f"reduce_scatter: the length {array.shape[axis]} along axis {axis} of rank "
                             f"{self.rank}'s array is not divisible by the {self.size} ranks")
        if is_gpu_array(array):
            return self._gpu_ops().reduce_scatter(array, axis, op)
        front = np.ascontiguousarray(np.moveaxis(array, axis, 0))
        mine = np.empty((front.shape[0] // self.size,) + front.shape[1:], array.dtype)
        self.comm.Reduce_scatter_block(front, mine, op=mpi().SUM)
        return np.ascontiguousarray(np.moveaxis(divide_for_mean(mine, self.size, op), 0, axis))

    def _axis(self, array, axis, who):
        if not -array.ndim <= axis < array.ndim:
            raise ValueError(f"{who}: axis {axis} is out of range for rank {self.rank}'s array of shape "
                             f"{tuple(array.shape)}")
        return axis % array.ndim

    # --- Python objects and synchronisation ------------------------------------------------------
    @bounded("a barrier")
    def barrier(self):
        self.comm.Barrier()

    @bounded("a broadcast")
    def bcast_object(self, obj, root=0):
        return self.comm.bcast(obj, root=root)

    @bounded("an all-gather")
    def allgather_object(self, obj):
        return self.comm.allgather(obj)

    @bounded("a communicator split")
    def split(self, color, key=None):
        """The sub-communicator of the ranks that pass the same `color`, numbered by `key` (default:
        their rank here)."""
        return MPICommunicator(self.comm.Split(color, self.rank if key is None else key))

    def abort(self, code=1):
        """End every process of the job now (an error on one rank must not leave the others waiting)."""
        self.comm.Abort(code)

    def _gpu_ops(self):
        if self._gpu is None:
            self._gpu = gpu_collectives(self)
        return self._gpu
