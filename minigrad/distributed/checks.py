"""The cross-rank checks: the ranks must run the same training on the same data, or stop before the
first step with an error that names the rank that differs and how."""
import hashlib
import os

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
    file missing, added or truncated gives another hash. A name is hashed as its bytes on disk
    (os.fsencode), so that a name that is not UTF-8 hashes too (UTF-8 names as before)."""
    root = os.path.commonpath(paths) if paths else ""
    listing = b"\n".join(os.fsencode(os.path.relpath(p, root)) + b" %d" % os.path.getsize(p) for p in paths)
    return hashlib.sha256(listing).hexdigest()[:16]
