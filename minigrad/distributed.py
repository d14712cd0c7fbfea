"""Several processes: a communicator over MPI (mpi4py) for NumPy arrays and over NCCL for CuPy arrays,
and data-parallel training on it.

    comm = minigrad.distributed.world()     # this process's communicator
    comm.rank, comm.size

Outside an MPI launcher `world()` is a one-process communicator whose collectives return their input
(copied where the operation makes a new array), and mpi4py is never imported. Under `mpiexec` (the
launcher's environment variables are set, or mpi4py.MPI is already imported) it wraps MPI.COMM_WORLD.

Every all-reduce is a reduce-scatter followed by an all-gather (the ring all-reduce's two halves): each
slice of the sum is added up on exactly one rank and then copied to the others, so every rank holds the
same bits whatever algorithm the MPI library picks. Replicas that start equal therefore stay bitwise
equal, step after step. MPI makes progress on non-blocking collectives only inside MPI calls; the
gradient buckets poll their requests after every layer's backward (DataParallel below).

A failing rank ends the whole job. With several ranks, world() makes an uncaught exception (Ctrl-C
included) print its traceback and then call MPI_Abort: otherwise the rank would finalize MPI and exit,
and the others would wait for it in their next collective forever. `python -m mpi4py` does the same
for exceptions, but only once MPI is initialised, so a program calls world() before anything that can
fail. A program that stops itself with a status (sys.exit, argparse's usage errors) ends through
exit_job(status). A rank that hangs without failing (a deadlock, a stuck file system, a stopped
process) is ended by the others: a rank that waits in one collective longer than set_timeout's
seconds (TIMEOUT by default, as PyTorch's process groups) says so and aborts the job, from a watchdog
thread that world() starts (NCCL's collectives are asynchronous and are not watched). These are the
only changes world() makes to the process, and only under a launcher with more than one rank; a
one-process import changes nothing.

CuPy arrays go through NCCL (`cupy.cuda.nccl`, its unique id sent over MPI) when every rank has NCCL and
its own GPU; otherwise (NCCL missing, or two ranks on one GPU, which NCCL refuses) they are staged
through host memory over MPI after the stream is synchronised. The GPU code has not run on a GPU in
this project yet (see benchmarks/results/distributed.md).
"""
import contextlib
import functools
import hashlib
import os
import signal
import sys
import threading
import time
from collections import deque

import numpy as np

from .backend import array_module, is_gpu_array

# Set by the launchers: MPICH/Hydra (PMI_*), Open MPI (OMPI_*), PMIx-based ones (PMIX_RANK).
LAUNCHER_VARIABLES = ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK")
OPS = ("sum", "mean")
ABORT_PAUSE = 0.5             # seconds between a failing rank's last output and MPI_Abort
TIMEOUT = 600.0               # seconds a rank may wait in one collective (PyTorch's NCCL default: 10 min)
_world = None


def launched_by_mpi():
    """True when an MPI launcher started this process, or the program has already initialised MPI
    through mpi4py itself (`python -m mpi4py` does); importing the mpi4py package alone does not count."""
    return "mpi4py.MPI" in sys.modules or any(name in os.environ for name in LAUNCHER_VARIABLES)


def world():
    """The communicator of every process of the job (created once, then the same object)."""
    global _world
    if _world is None:
        _world = MPICommunicator(_mpi().COMM_WORLD) if launched_by_mpi() else LocalCommunicator()
        if _world.size > 1:
            _abort_on_uncaught_exception(_world)
            _watchdog.start(_world)
    return _world


def set_timeout(seconds):
    """How long a rank may wait in one collective for the others before it ends the job (None: for
    ever). Long enough for the slowest legitimate wait: rank 0 writing a checkpoint, a rank decoding
    a larger share of the images at start-up."""
    if seconds is not None and not seconds > 0:
        raise ValueError(f"set_timeout: expected a number of seconds > 0, or None, got {seconds!r}")
    _watchdog.timeout = seconds


class _Watchdog:
    """Watches this rank's collectives from a thread of its own: one that has waited longer than the
    timeout means another rank hangs (or this one does, with them), and nothing else would end it."""

    def __init__(self):
        self.timeout, self.wait, self.depth, self.thread = TIMEOUT, None, 0, None

    @contextlib.contextmanager
    def waiting(self, what):
        if self.depth == 0:                       # (a collective that calls another is one wait)
            self.wait = (time.monotonic(), what)  # (one attribute: the thread reads both at once)
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if self.depth == 0:
                self.wait = None

    def start(self, comm):
        if self.thread is None:
            self.thread = threading.Thread(target=self._watch, args=(comm,), name="minigrad-watchdog", daemon=True)
            self.thread.start()

    def _watch(self, comm):
        while True:
            timeout = self.timeout                # (read once: set_timeout may change it meanwhile)
            time.sleep(1.0 if timeout is None else min(1.0, timeout / 10))
            wait = self.wait
            if wait is not None and timeout is not None and time.monotonic() - wait[0] > timeout:
                print(f"minigrad.distributed: rank {comm.rank} of {comm.size} (host {os.uname().nodename}, pid "
                      f"{os.getpid()}) waited more than {timeout:g} s in {wait[1]} for the other ranks: one "
                      f"of them hangs or has stopped; ending every rank of the job (exit status 1)",
                      file=sys.stderr, flush=True)
                time.sleep(ABORT_PAUSE)
                if _mpi().Query_thread() == _mpi().THREAD_MULTIPLE:
                    comm.abort(1)                 # (MPI_Abort from this thread while the main one waits in MPI)
                os._exit(1)                       # the launcher ends the others when a rank exits unfinalized


_watchdog = _Watchdog()


def _bounded(what):
    """Decorate a blocking collective so that the watchdog knows while this rank waits in it."""
    def decorate(method):
        @functools.wraps(method)
        def waits(self, *args, **kwargs):
            with _watchdog.waiting(what):
                return method(self, *args, **kwargs)
        return waits
    return decorate


def _abort_on_uncaught_exception(comm):
    """Make an uncaught exception print its traceback as usual, then end every rank (MPI_Abort, exit
    status 1, or 130 for Ctrl-C as a shell reports it), instead of leaving the other ranks waiting."""
    previous = sys.excepthook

    def hook(kind, value, traceback):
        try:
            previous(kind, value, traceback)
        finally:
            _abort_after_output(comm, 128 + signal.SIGINT if issubclass(kind, KeyboardInterrupt) else 1)

    sys.excepthook = hook


def exit_job(status=0):
    """sys.exit(status) for a program that may run on several ranks: a failure (a non-zero status, or a
    message, which is printed) on one rank ends the whole job through MPI_Abort. Exiting normally would
    finalize MPI on this rank alone and leave the others waiting in a collective."""
    if status not in (None, 0) and _world is not None and _world.size > 1:
        if not isinstance(status, int):
            print(status, file=sys.stderr)
        _abort_after_output(_world, status if isinstance(status, int) else 1)
    sys.exit(status)


def _abort_after_output(comm, code):
    """Say which rank ends the job (the launcher interleaves the ranks' output unlabelled), then
    MPI_Abort once what this rank printed has left it. The launcher forwards a rank's output on its
    own schedule and stops forwarding when it kills the job: aborting at once lost the traceback in
    about one run in ten under MPICH's mpiexec, a short pause lost none in forty."""
    sys.stdout.flush()
    print(f"minigrad.distributed: rank {comm.rank} of {comm.size} (host {os.uname().nodename}, pid {os.getpid()}) "
          f"failed; ending every rank of the job (exit status {code})", file=sys.stderr, flush=True)
    time.sleep(ABORT_PAUSE)
    comm.abort(code)


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as error:
        variables = [name for name in LAUNCHER_VARIABLES if name in os.environ]
        raise RuntimeError(f"minigrad.distributed: this process was started by an MPI launcher "
                           f"({', '.join(variables) or 'mpi4py.MPI imported'}) but mpi4py cannot be imported "
                           f"({error}); install it with: pip install \"minigrad[distributed]\"") from None
    return MPI


def _check_op(op, who):
    if op not in OPS:
        raise ValueError(f"{who}: op must be one of {OPS}, got {op!r}")


def _divide_for_mean(array, size, op):
    if op == "mean":
        if array.dtype.kind != "f":
            raise ValueError(f"allreduce: op='mean' needs a floating-point array, got dtype {array.dtype}")
        array /= size
    return array


class _AllreduceRequest:
    """An all-reduce in flight: its reduce-scatter, then (started by the communicator, in issue order)
    its all-gather. test() advances it without blocking; wait() completes it and returns the result."""

    def __init__(self, comm, flat, op):
        self.comm, self.flat, self.op = comm, flat, op
        self.chunk = np.empty(flat.size // comm.size, flat.dtype)
        self.scatter = comm.comm.Ireduce_scatter_block(flat, self.chunk, op=_mpi().SUM)
        self.gather = self.result = None

    def test(self):
        self.comm._start_gathers()
        if self.result is None and self.gather is not None and self.gather.Test():
            self.result = _divide_for_mean(self.flat, self.comm.size, self.op)
        return self.result is not None

    @_bounded("an all-reduce")
    def wait(self):
        if self.result is None:
            self.comm._start_gathers(until=self)
            self.gather.Wait()
            self.result = _divide_for_mean(self.flat, self.comm.size, self.op)
        return self.result


class _Done:
    """A request that completed when it was made (the one-process communicator's)."""

    def __init__(self, result):
        self._result = result

    def test(self):
        return True

    def wait(self):
        return self._result


class LocalCommunicator:
    """One process, no MPI: every collective is the identity (a copy where it returns a new array)."""

    rank, size, local_rank = 0, 1, 0

    def broadcast(self, array, root=0):
        return array

    def allreduce(self, array, op="sum"):
        _check_op(op, "allreduce")
        return _divide_for_mean(array.copy(), 1, op)

    def iallreduce(self, array, op="sum"):
        return _Done(self.allreduce(array, op))

    def allreduce_(self, flat, op="sum"):
        """In place on a flat contiguous buffer whose length `size` divides; returns a request."""
        return _Done(_divide_for_mean(flat, 1, op))

    def allgather(self, array, axis=0):
        return array.copy()

    def reduce_scatter(self, array, axis=0, op="sum"):
        _check_op(op, "reduce_scatter")
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
    host staging (see the module docstring). Every collective must be called by every rank of the
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
            with _watchdog.waiting("a communicator split"):
                node = self.comm.Split_type(_mpi().COMM_TYPE_SHARED, key=self.rank)
            self._local_rank = node.Get_rank()
            node.Free()
        return self._local_rank

    # --- arrays -----------------------------------------------------------------------------------
    @_bounded("a broadcast")
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
        _check_op(op, "iallreduce")
        xp = np if not is_gpu_array(array) else _cupy()
        padded = xp.zeros(-(-array.size // self.size) * self.size, array.dtype)
        padded[:array.size] = array.ravel()
        shape, count = array.shape, array.size
        request = self.allreduce_(padded, op)
        return _Then(request, lambda flat: flat[:count].reshape(shape))

    def allreduce_(self, flat, op="sum"):
        """All-reduce a flat contiguous buffer whose length `size` divides, in place: the reduce-scatter
        then the all-gather. Returns a request; wait() returns `flat`."""
        _check_op(op, "allreduce")
        if flat.ndim != 1 or flat.size % self.size:
            raise ValueError(f"allreduce_: expected a flat buffer whose length {self.size} ranks divide, "
                             f"got shape {tuple(flat.shape)}")
        if is_gpu_array(flat):
            return self._gpu_ops().allreduce_(flat, op)
        if self._gather_comm is None:
            with _watchdog.waiting("a communicator duplication"):
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

    @_bounded("an all-gather")
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

    @_bounded("a reduce-scatter")
    def reduce_scatter(self, array, axis=0, op="sum"):
        """This rank's slice, along `axis`, of the element-wise sum (or mean) over the ranks: the
        rank-th of `size` equal slices (the length along `axis` must be divisible by `size`)."""
        _check_op(op, "reduce_scatter")
        axis = self._axis(array, axis, "reduce_scatter")
        if array.shape[axis] % self.size:
            raise ValueError(f"reduce_scatter: the length {array.shape[axis]} along axis {axis} of rank "
                             f"{self.rank}'s array is not divisible by the {self.size} ranks")
        if is_gpu_array(array):
            return self._gpu_ops().reduce_scatter(array, axis, op)
        front = np.ascontiguousarray(np.moveaxis(array, axis, 0))
        mine = np.empty((front.shape[0] // self.size,) + front.shape[1:], array.dtype)
        self.comm.Reduce_scatter_block(front, mine, op=_mpi().SUM)
        return np.ascontiguousarray(np.moveaxis(_divide_for_mean(mine, self.size, op), 0, axis))

    def _axis(self, array, axis, who):
        if not -array.ndim <= axis < array.ndim:
            raise ValueError(f"{who}: axis {axis} is out of range for rank {self.rank}'s array of shape "
                             f"{tuple(array.shape)}")
        return axis % array.ndim

    # --- Python objects and synchronisation ------------------------------------------------------
    @_bounded("a barrier")
    def barrier(self):
        self.comm.Barrier()

    @_bounded("a broadcast")
    def bcast_object(self, obj, root=0):
        return self.comm.bcast(obj, root=root)

    @_bounded("an all-gather")
    def allgather_object(self, obj):
        return self.comm.allgather(obj)

    @_bounded("a communicator split")
    def split(self, color, key=None):
        """The sub-communicator of the ranks that pass the same `color`, numbered by `key` (default:
        their rank here)."""
        return MPICommunicator(self.comm.Split(color, self.rank if key is None else key))

    def abort(self, code=1):
        """End every process of the job now (an error on one rank must not leave the others waiting)."""
        self.comm.Abort(code)

    def _gpu_ops(self):
        if self._gpu is None:
            self._gpu = _gpu_collectives(self)
        return self._gpu


class _Then:
    """A request whose result is `then(result of request)`."""

    def __init__(self, request, then):
        self._request, self._then = request, then

    def test(self):
        return self._request.test()

    def wait(self):
        return self._then(self._request.wait())


# --- CuPy arrays (not run on a GPU in this project yet) ---------------------------------------------
def _cupy():
    import cupy
    return cupy


def _gpu_collectives(comm):
    """NCCL when every rank has it and a GPU of its own, host staging over MPI otherwise. Called by every
    rank at its first collective on a CuPy array, so the decision is made by all ranks together."""
    cupy = _cupy()
    try:
        from cupy.cuda import nccl
        nccl.get_version()
    except Exception:
        nccl = None
    device = (os.uname().nodename, cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["pciBusID"],
              cupy.cuda.Device().id)
    everyone = comm.allgather_object((nccl is not None, device))
    devices = [d for _, d in everyone]
    if all(has for has, _ in everyone) and len(set(devices)) == len(devices):
        return _NcclCollectives(comm, nccl)
    return _StagedCollectives(comm)


class _StagedCollectives:
    """CuPy arrays through host memory: synchronise the stream (the array's last kernels must have
    written it), copy to NumPy, run the MPI collective, copy back."""

    def __init__(self, comm):
        self.comm = comm

    def _host(self, array):
        _cupy().cuda.get_current_stream().synchronize()
        return array.get()

    def broadcast(self, array, root):
        array.set(self.comm.broadcast(self._host(array), root))
        return array

    def allreduce_(self, flat, op):
        def back_to_gpu(host):
            flat.set(host)
            return flat
        return _Then(self.comm.allreduce_(self._host(flat), op), back_to_gpu)

    def allgather(self, array, axis, shapes):
        return _cupy().asarray(self.comm.allgather(self._host(array), axis))

    def reduce_scatter(self, array, axis, op):
        return _cupy().asarray(self.comm.reduce_scatter(self._host(array), axis, op))


class _NcclCollectives:
    """CuPy arrays through NCCL on a stream of its own, ordered after the caller's stream by an event."""

    def __init__(self, comm, nccl):
        cupy = _cupy()
        unique_id = comm.bcast_object(nccl.get_unique_id() if comm.rank == 0 else None)
        self.comm, self.nccl = comm, nccl
        self.nccl_comm = nccl.NcclCommunicator(comm.size, unique_id, comm.rank)
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self.types = {np.dtype(np.float16): nccl.NCCL_FLOAT16, np.dtype(np.float32): nccl.NCCL_FLOAT32,
                      np.dtype(np.float64): nccl.NCCL_FLOAT64, np.dtype(np.int32): nccl.NCCL_INT32,
                      np.dtype(np.int64): nccl.NCCL_INT64}

    def _type(self, array):
        if array.dtype not in self.types:
            raise ValueError(f"NCCL collective: dtype {array.dtype} is not one of {sorted(map(str, self.types))}")
        return self.types[array.dtype]

    def _after_caller(self):
        self.stream.wait_event(_cupy().cuda.get_current_stream().record())

    def _caller_waits(self):
        _cupy().cuda.get_current_stream().wait_event(self.stream.record())

    def broadcast(self, array, root):
        buffer = array if array.flags.c_contiguous else _cupy().ascontiguousarray(array)
        self._after_caller()
        self.nccl_comm.bcast(buffer.data.ptr, buffer.size, self._type(buffer), root, self.stream.ptr)
        self._caller_waits()
        if buffer is not array:
            array[...] = buffer
        return array

    def allreduce_(self, flat, op):
        chunk = _cupy().empty(flat.size // self.comm.size, flat.dtype)
        self._after_caller()
        self.nccl_comm.reduceScatter(flat.data.ptr, chunk.data.ptr, chunk.size, self._type(flat),
                                     self.nccl.NCCL_SUM, self.stream.ptr)
        self.nccl_comm.allGather(chunk.data.ptr, flat.data.ptr, chunk.size, self._type(flat), self.stream.ptr)
        done = self.stream.record()
        return _GpuRequest(done, lambda: _divide_for_mean(flat, self.comm.size, op), chunk)

    def allgather(self, array, axis, shapes):
        cupy = _cupy()
        if len(set(shapes)) > 1:       # NCCL gathers equal counts only: uneven lengths through the host
            return _StagedCollectives(self.comm).allgather(array, axis, shapes)
        front = cupy.ascontiguousarray(cupy.moveaxis(array, axis, 0))
        gathered = cupy.empty((self.comm.size * front.shape[0],) + front.shape[1:], array.dtype)
        self._after_caller()
        self.nccl_comm.allGather(front.data.ptr, gathered.data.ptr, front.size, self._type(front), self.stream.ptr)
        self._caller_waits()
        return cupy.ascontiguousarray(cupy.moveaxis(gathered, 0, axis))

    def reduce_scatter(self, array, axis, op):
        cupy = _cupy()
        front = cupy.ascontiguousarray(cupy.moveaxis(array, axis, 0))
        mine = cupy.empty((front.shape[0] // self.comm.size,) + front.shape[1:], array.dtype)
        self._after_caller()
        self.nccl_comm.reduceScatter(front.data.ptr, mine.data.ptr, mine.size, self._type(front),
                                     self.nccl.NCCL_SUM, self.stream.ptr)
        self._caller_waits()
        return cupy.ascontiguousarray(cupy.moveaxis(_divide_for_mean(mine, self.comm.size, op), 0, axis))


class _GpuRequest:
    """An NCCL collective queued on the communication stream: test() asks its event, wait() makes the
    caller's stream wait for it (the host does not block). `buffers` (the reduce-scatter's chunk) are
    held until then: they come from the caller's stream's memory pool, which would hand them out
    again as soon as they were freed, while NCCL may still be using them."""

    def __init__(self, event, finish, *buffers):
        self.event, self.finish, self.buffers = event, finish, buffers

    def test(self):
        return self.event.done

    def wait(self):
        _cupy().cuda.get_current_stream().wait_event(self.event)
        self.buffers = ()                 # the caller's stream now runs after NCCL's use of them
        return self.finish()


class DataParallel:
    """Data-parallel training of a Sequential `model` over `comm`: every rank holds a replica and
    trains on its slice of each global batch; the gradients are summed over the ranks before the
    optimiser steps, so every replica takes the same step (the optimiser, weight decay and momentum
    included, runs unchanged after the reduction).

    On creation it checks that every rank built the same parameters (names, shapes, dtypes: a
    ValueError naming the ranks that differ), copies rank 0's values to the others, and tells the
    dropout layers to draw their masks for the global batch (layers/dropout.py).

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

    def __init__(self, model, comm, bucket_bytes=25 * 2**20):
        from .layers import Dropout

        self.model, self.comm = model, comm
        check_agreement(comm, [(name, tuple(p.shape), str(p.data.dtype)) for name, p in model.named_parameters()],
                        "the model's parameters (name, shape, dtype)")
        for p in model.parameters():
            comm.broadcast(p.data, root=0)
        for layer in model.layers:
            if isinstance(layer, Dropout):
                layer.replica = (comm.rank, comm.size)
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
            self.pending.append(self.comm.allreduce_(flat))
        for request in self.pending:
            request.test()
        if layer is self.model.layers[0]:
            start = time.perf_counter()
            for request in self.pending:
                request.wait()
            self.exposed_seconds += time.perf_counter() - start
            self.pending = []


def select_gpu(comm):
    """Make GPU local_rank % (GPUs on this machine) current: one GPU per rank (not run on a GPU yet)."""
    cupy = _cupy()
    cupy.cuda.Device(comm.local_rank % cupy.cuda.runtime.getDeviceCount()).use()


def check_global_batch(comm, batch_size):
    """Raise ValueError unless the ranks divide the global batch into equal slices."""
    if batch_size % comm.size:
        raise ValueError(f"minigrad.distributed: the global batch of {batch_size} images does not divide "
                         f"among {comm.size} ranks into equal slices; launch a number of ranks that divides "
                         f"{batch_size} (a resumed run keeps its batch), or a batch that {comm.size} divides")


def check_agreement(comm, value, what):
    """Raise ValueError on every rank unless every rank passes the same `value` (a picklable summary:
    a hash of the file list, the parameter shapes, the options), naming each rank that differs from
    rank 0 and where: the keys of a dict, the first item of a list."""
    values = comm.allgather_object(value)
    differ = [rank for rank, other in enumerate(values) if other != values[0]]
    if differ:
        raise ValueError(f"minigrad.distributed: {what} differs between ranks: "
                         + "; ".join(f"rank {rank} has {_difference(values[0], values[rank])}" for rank in differ))


def _difference(expected, got):
    """Where `got` differs from rank 0's `expected`, in a line."""
    if isinstance(expected, dict) and isinstance(got, dict):
        def show(values, key):
            return repr(values[key]) if key in values else "nothing"
        keys = sorted((key for key in expected.keys() | got.keys() if show(expected, key) != show(got, key)), key=str)
        return ", ".join(f"{key}={show(got, key)} where rank 0 has {show(expected, key)}" for key in keys)
    if isinstance(expected, (list, tuple)) and isinstance(got, (list, tuple)):
        for index, (mine, theirs) in enumerate(zip(expected, got)):
            if mine != theirs:
                return f"{theirs!r} at position {index} where rank 0 has {mine!r}"
        return f"{len(got)} entries where rank 0 has {len(expected)}"
    return f"{got!r} where rank 0 has {expected!r}"


def file_list_hash(paths):
    """A short hash of a list of files: their paths (relative to their common folder) and sizes, so
    that ranks can check that they read the same data without sending the whole list; a copy with a
    file missing, added or truncated gives another hash."""
    root = os.path.commonpath(paths) if paths else ""
    listing = "\n".join(f"{os.path.relpath(p, root)} {os.path.getsize(p)}" for p in paths)
    return hashlib.sha256(listing.encode()).hexdigest()[:16]
