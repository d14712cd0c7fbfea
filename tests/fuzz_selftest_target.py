"""A fuzzing target that misbehaves on purpose, as each input asks (tests/test_fuzz.py): the engine must
record each way of failing, with its input."""
import os
import time


def seeds(workdir):
    return [b"fine"]


def mutate(data, seeds, rng):
    return data


def run(data, workdir):
    if data == b"raises":
        raise KeyError("not an exception this target may raise")
    if data == b"crashes":
        os.abort()
    if data == b"hangs":
        time.sleep(600)
    if data == b"allocates":
        return str(len(bytearray(8 << 30)))           # past the worker's memory limit: MemoryError
    return "fine"
