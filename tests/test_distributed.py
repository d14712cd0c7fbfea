"""minigrad.distributed under mpiexec: the collectives, data-parallel training that computes what one
process computes, and the failures that must end the job with a clear error instead of a hang.

Each test launches `mpiexec -n N python -m mpi4py tests/test_distributed.py SCENARIO DIR` with a
timeout; the scenarios are at the bottom of this file and check their results inside the ranks (an
assertion on one rank aborts the job: a non-zero exit) or write them to DIR for the test to compare.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve()
MPIEXEC = next((str(p) for p in (Path(sys.executable).parent / "mpiexec", shutil.which("mpiexec") or "")
                if str(p) and os.path.exists(p)), None)
try:
    import mpi4py  # noqa: F401   (only asked whether it is installed: the ranks import it)
    HAVE_MPI4PY = True
except ImportError:
    HAVE_MPI4PY = False
needs_mpi = pytest.mark.skipif(MPIEXEC is None or not HAVE_MPI4PY,
                               reason="mpiexec or mpi4py is not installed (pip install -e '.[test]')")
LAUNCH_TIMEOUT = 120          # seconds: a hang fails the test instead of blocking the suite


def rank_environment(**extra):
    """One BLAS/Numba thread per rank (the tests run several ranks on two cores); no stray launcher
    variables from an outer job."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PMI_", "OMPI_", "PMIX_"))}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "examples" / "alexnet")]), **extra)
    return env


def launch(ranks, *args, timeout=LAUNCH_TIMEOUT):
    """Run this file's scenario `args` on `ranks` MPI processes; returns the CompletedProcess."""
    command = [MPIEXEC, "-n", str(ranks), sys.executable, "-m", "mpi4py", str(HERE), *map(str, args)]
    return subprocess.run(command, env=rank_environment(), capture_output=True, text=True, timeout=timeout)


def launch_ok(ranks, *args):
    result = launch(ranks, *args)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


# --- one process: no MPI at all -------------------------------------------------------------------
def test_outside_mpiexec_the_world_is_one_process_and_mpi4py_is_not_imported():
    code = ("import sys, numpy as np, minigrad.distributed as d; c = d.world(); x = np.arange(4.0); "
            "assert (c.rank, c.size) == (0, 1); assert c.allreduce(x) is not x and (c.allreduce(x, 'mean') == x).all(); "
            "assert c.iallreduce(x).wait().tolist() == x.tolist(); assert c.broadcast(x) is x; "
            "assert c.allgather_object(5) == [5] and c.split(1).size == 1; "
            "assert 'mpi4py' not in sys.modules, 'mpi4py was imported'")
    subprocess.run([sys.executable, "-c", code], env=rank_environment(), check=True, timeout=60)


def test_under_a_launcher_without_mpi4py_the_error_says_what_to_install():
    code = "import sys; sys.modules['mpi4py'] = None; import minigrad.distributed as d; d.world()"
    result = subprocess.run([sys.executable, "-c", code], env=rank_environment(PMI_RANK="0", PMI_SIZE="1"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert 'pip install "minigrad[distributed]"' in result.stderr and "PMI_RANK" in result.stderr


def test_a_bad_op_is_a_value_error():
    from minigrad.distributed import LocalCommunicator
    with pytest.raises(ValueError, match="op must be one of"):
        LocalCommunicator().allreduce(np.zeros(2), op="max")


# --- the collectives on 3 ranks -------------------------------------------------------------------
@needs_mpi
def test_collectives_on_three_ranks_against_numpy(tmp_path):
    launch_ok(3, "collectives", tmp_path)
    assert json.loads((tmp_path / "collectives.json").read_text()) == {"ranks": 3, "checked": True}


def scenario_collectives(out):
    from minigrad import distributed
    comm = distributed.world()
    rank, size = comm.rank, comm.size

    def data(r, shape=(5, 6)):       # what rank r holds: every rank can compute every rank's input
        return np.random.default_rng(r).standard_normal(shape)

    everyone = [data(r) for r in range(size)]
    total = sum(everyone)
    for result in (comm.allreduce(data(rank)), comm.iallreduce(data(rank)).wait()):
        np.testing.assert_allclose(result, total, rtol=1e-13)
        gathered = comm.allgather_object(result.tobytes())
        assert all(g == gathered[0] for g in gathered), "allreduce gave different bits on different ranks"
    np.testing.assert_allclose(comm.allreduce(data(rank), op="mean"), total / size, rtol=1e-13)
    x = data(rank) if rank == 1 else np.zeros((5, 6))
    assert comm.broadcast(x, root=1) is x and (x == data(1)).all()
    strided = np.zeros((5, 12))[:, ::2]
    if rank == 2:
        strided[...] = data(2)
    comm.broadcast(strided, root=2)
    assert (strided == data(2)).all()
    # allgather along axis 1 with a different length on every rank
    mine = np.full((2, rank + 1, 3), rank, np.int64)
    assert (comm.allgather(mine, axis=1) == np.concatenate(
        [np.full((2, r + 1, 3), r) for r in range(size)], axis=1)).all()
    stacked = np.stack([data(r, (6, 4)) for r in range(size)])
    np.testing.assert_allclose(comm.reduce_scatter(data(rank, (6, 4)), axis=0),
                               stacked.sum(0)[2 * rank:2 * rank + 2], rtol=1e-13)
    np.testing.assert_allclose(comm.reduce_scatter(data(rank, (4, 6)), axis=1, op="mean"),
                               np.stack([data(r, (4, 6)) for r in range(size)]).mean(0)[:, 2 * rank:2 * rank + 2],
                               rtol=1e-13)
    for bad in (lambda: comm.reduce_scatter(np.zeros(4)), lambda: comm.allgather(np.zeros((2, rank + 1)), axis=0)):
        try:
            bad()
        except ValueError as error:
            assert f"rank" in str(error)
        else:
            raise AssertionError("expected a ValueError")
    assert comm.bcast_object({"from": rank}, root=2) == {"from": 2}
    assert comm.allgather_object(rank * 10) == [0, 10, 20]
    pair = comm.split(rank % 2)
    assert pair.size == (2 if rank % 2 == 0 else 1) and pair.rank == rank // 2
    assert (pair.allreduce(np.array([rank])) == (2 if rank % 2 == 0 else 1)).all()
    comm.barrier()
    if rank == 0:
        (Path(out) / "collectives.json").write_text(json.dumps({"ranks": size, "checked": True}))


SCENARIOS = {"collectives": scenario_collectives}

if __name__ == "__main__":
    SCENARIOS[sys.argv[1]](*sys.argv[2:])
