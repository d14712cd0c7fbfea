"""What every communicator's collectives share: the reduction ops, and the requests that a collective
started without waiting returns (test() advances it without blocking; wait() completes it and returns
its result). The MPI all-reduce's own request is in communicators.py, the NCCL one's in gpu.py."""

OPS = ("sum", "mean")


def check_op(op, who):
    if op not in OPS:
        raise ValueError(f"{who}: op must be one of {OPS}, got {op!r}")


def divide_for_mean(array, size, op):
    if op == "mean":
        if array.dtype.kind != "f":
            raise ValueError(f"allreduce: op='mean' needs a floating-point array, got dtype {array.dtype}")
        array /= size
    return array


class Done:
    """A request that completed when it was made (the one-process communicator's)."""

    def __init__(self, result):
        self._result = result

    def test(self):
        return True

    def wait(self):
        return self._result


class Then:
    """A request whose result is `then(result of request)`."""

    def __init__(self, request, then):
        self._request, self._then = request, then

    def test(self):
        return self._request.test()

    def wait(self):
        return self._then(self._request.wait())
