"""CuPy arrays between the ranks: through NCCL (`cupy.cuda.nccl`, its unique id sent over MPI) when
every rank has NCCL and its own GPU; otherwise (NCCL missing, or two ranks on one GPU, which NCCL
refuses) staged through host memory over MPI after the stream is synchronised. The GPU code has not
run on a GPU in this project yet (see benchmarks/results/distributed.md).
"""
import os

import numpy as np

from .requests import Then, divide_for_mean


def _cupy():
    import cupy
    return cupy


def gpu_collectives(comm):
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

    def start_allreduce_in_place(self, flat, op):
        def back_to_gpu(host):
            flat.set(host)
            return flat
        return Then(self.comm.start_allreduce_in_place(self._host(flat), op), back_to_gpu)

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

    def start_allreduce_in_place(self, flat, op):
        chunk = _cupy().empty(flat.size // self.comm.size, flat.dtype)
        self._after_caller()
        self.nccl_comm.reduceScatter(flat.data.ptr, chunk.data.ptr, chunk.size, self._type(flat),
                                     self.nccl.NCCL_SUM, self.stream.ptr)
        self.nccl_comm.allGather(chunk.data.ptr, flat.data.ptr, chunk.size, self._type(flat), self.stream.ptr)
        done = self.stream.record()
        return _GpuRequest(done, lambda: divide_for_mean(flat, self.comm.size, op), chunk)

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
        return cupy.ascontiguousarray(cupy.moveaxis(divide_for_mean(mine, self.comm.size, op), 0, axis))


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



def select_gpu(comm):
    """Make GPU local_rank % (GPUs on this machine) current: one GPU per rank (not run on a GPU yet)."""
    cupy = _cupy()
    cupy.cuda.Device(comm.local_rank % cupy.cuda.runtime.getDeviceCount()).use()
