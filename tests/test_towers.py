"""The paper's two towers (minigrad/distributed/towers.py) on two MPI ranks against the one-device net.

Each test launches `mpiexec -n 2 python -m mpi4py tests/test_towers.py SCENARIO` (one BLAS thread per
rank, a timeout); the scenarios at the bottom check their results inside the ranks, where a failed
assertion ends the job with a non-zero exit. The one-device net has LocalResponseNorm(groups=2), as
model.py builds it, so both are the same function: float64 results agree to 1e-10.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minigrad as mg

from test_distributed import MPIEXEC, TRAIN_PY, folder, needs_mpi, rank_environment  # noqa: F401 (fixture)
from test_distributed import assert_failed_with, train_py as train_py_mpmd

HERE = Path(__file__).resolve()
TIMEOUT = 120                 # seconds: a hang fails the test instead of blocking the suite


def launch_ok(ranks, *args):
    command = [MPIEXEC, "-n", str(ranks), sys.executable, "-m", "mpi4py", str(HERE), *map(str, args)]
    result = subprocess.run(command, env=rank_environment(), capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


@needs_mpi
@pytest.mark.parametrize("ranks", [2, 4])
def test_two_towers_compute_what_the_one_device_net_computes(ranks):
    """Outputs, input gradient and every parameter gradient, in training mode (dropout on), then one
    SGD step on both and the next step's outputs; the bytes each crossing sends; the collective layers
    against gradcheck. On 4 ranks: 2 towers x 2 data-parallel replicas, each on half of the batch."""
    launch_ok(ranks, "equivalence")


def train_py(ranks, *args):
    prefix = [MPIEXEC, "-n", str(ranks), sys.executable, "-m", "mpi4py"] if ranks > 1 else [sys.executable]
    result = subprocess.run(prefix + [str(TRAIN_PY), "--workers", "0", *map(str, args)], env=rank_environment(),
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


@needs_mpi
def test_a_run_resumes_across_the_one_device_and_the_two_tower_layouts(folder, tmp_path):  # noqa: F811
    """A 2-epoch run stopped after epoch 1 on two towers and resumed on one process, and the other way
    round, against 2 epochs on one process (float32: agreement to rounding). The first run checks that
    each rank holds its tower's parameters only (scenario_train)."""
    common = ["--data", folder, "--batch-size", 12, "--epochs", 2]
    for ranks, run in ((2, "towers_first"), (1, "one_first")):
        result = subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable, "-m", "mpi4py", str(HERE), "train",
                                 "--stop-after-epoch-1", "--workers", "0", *map(str, common), "--model-parallel",
                                 str(ranks), "--out", str(tmp_path / run)],
                                env=rank_environment(), capture_output=True, text=True, timeout=TIMEOUT)
        assert_failed_with(result, "stopped after epoch 1")
    train_py(1, "--resume", tmp_path / "towers_first")
    train_py(2, "--resume", tmp_path / "one_first", "--model-parallel", 2)
    train_py(1, *common, "--epochs", 2, "--out", tmp_path / "straight")
    with np.load(tmp_path / "straight" / "last.npz") as straight:
        for run in ("towers_first", "one_first"):
            with np.load(tmp_path / run / "last.npz") as resumed:
                assert sorted(resumed.files) == sorted(straight.files)
                for key in straight.files:
                    if key.startswith(("model.", "velocity.")):
                        np.testing.assert_allclose(resumed[key], straight[key], rtol=1e-4, atol=1e-6,
                                                   err_msg=f"{run}: {key}")
                rng_states = [json.loads(str(meta["meta"]))["dropout_rng"] for meta in (resumed, straight)]
                assert rng_states[0] == rng_states[1]
            history = json.loads((tmp_path / run / "metrics.json").read_text())["epochs"]
            expected = json.loads((tmp_path / "straight" / "metrics.json").read_text())["epochs"]
            assert [row["epoch"] for row in history] == [1, 2]
            for a, b in zip(history, expected):
                assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4), run


@needs_mpi
def test_four_ranks_as_two_towers_times_two_replicas_train_as_one_process(folder, tmp_path):  # noqa: F811
    """cuda-convnet2's 4-GPU layout: each replica's two towers see half of the global batch."""
    common = ["--data", folder, "--batch-size", 12, "--epochs", 1]
    train_py(4, *common, "--model-parallel", 2, "--out", tmp_path / "four")
    train_py(1, *common, "--out", tmp_path / "one")
    with np.load(tmp_path / "four" / "last.npz") as four, np.load(tmp_path / "one" / "last.npz") as one:
        for key in one.files:
            if key.startswith(("model.", "velocity.")):
                np.testing.assert_allclose(four[key], one[key], rtol=1e-4, atol=1e-6, err_msg=key)
        assert json.loads(str(four["meta"]))["dropout_rng"] == json.loads(str(one["meta"]))["dropout_rng"]


@needs_mpi
def test_towers_whose_data_folders_differ_are_refused(folder, tmp_path):  # noqa: F811
    """Both towers must read the same batches: the file lists are compared over all ranks, not only
    over the replicas (each tower here is a replica of its own)."""
    other = tmp_path / "other"
    shutil.copytree(folder, other)
    next((other / "train" / "class1").iterdir()).unlink()
    common = ["--batch-size", 12, "--model-parallel", 2, "--out", tmp_path / "run"]
    result = train_py_mpmd(1, "--data", folder, *common, mpmd=["--data", other, *common])
    assert_failed_with(result, "the list of readable image files (names and sizes) under --data", "differs between ranks",
                       "rank 1 has")


def test_a_net_whose_lrn_window_crosses_the_towers_cannot_be_split():
    """A tower split computes the one-device net only if its LRN runs per tower (groups=2)."""
    from minigrad.distributed import LocalCommunicator, towers
    net = tiny_alexnet()
    net["norm2"].groups = 1
    rank = type("Rank", (), {"rank": 0, "size": 2})()       # building a tower calls no collective
    with pytest.raises(ValueError, match=r"norm2 is LocalResponseNorm\(.*\); its window crosses the towers"):
        towers.tower(net, rank)
    with pytest.raises(ValueError, match="2 towers per replica need a multiple of 2 ranks"):
        towers.layout(LocalCommunicator(), 2)


def test_the_collective_layers_refuse_a_backward_before_forward_and_a_wrong_gradient():
    from minigrad.distributed import LocalCommunicator
    layers = [mg.SharedInput(LocalCommunicator()), mg.AllGather(LocalCommunicator()),
              mg.GatherOutput(LocalCommunicator())]
    for layer in layers:
        with pytest.raises(RuntimeError, match=r"ranks=1\): backward called before forward"):
            layer.backward(np.ones((2, 3)))
        layer.forward(np.ones((2, 3)))
        with pytest.raises(ValueError, match=r"ranks=1\)\.backward: expected a gradient of shape \(2, 3\)"):
            layer.backward(np.ones((2, 4)))


# --- the scenarios, run inside the ranks ------------------------------------------------------------
def tiny_alexnet(num_classes=5):
    """Every layer kind of the paper at a size central differences can check, with LRN strong enough
    (alpha 0.5, not 1e-4) that a window crossing the towers would show; 5 classes split 3 + 2."""
    from minigrad.models import Preset, alexnet
    tiny = Preset(image_size=31, conv1_kernels=4, conv1_kernel_size=5, conv1_stride=2, channels=(4, 6, 6, 4),
                  conv2_kernel_size=3, hidden=8, init="he", dropout_mode="classic")
    net = alexnet(tiny, num_classes=num_classes, seed=3).astype(np.float64)
    net["conv1"].needs_input_grad = True
    for name in ("norm1", "norm2"):
        net[name].alpha = 0.5
    return net


def scenario_equivalence():
    """The one-device net on the whole batch against this rank's tower on its replica's share of it
    (the whole batch when there is one replica), in lockstep."""
    from minigrad import distributed
    from minigrad.distributed import towers
    replicas, comm = towers.layout(distributed.world(), 2)       # comm: this replica's two towers
    net = tiny_alexnet()
    model = towers.tower(net, comm)
    if replicas.size > 1:
        distributed.DataParallel(model, replicas)
    optimiser_one = mg.SGD(net.parameters(), lr=0.1)
    optimiser_towers = mg.SGD(model.parameters(), lr=0.1)
    rng, n = np.random.default_rng(4), 3                         # n images per replica
    share = slice(replicas.rank * n, (replicas.rank + 1) * n)
    for step in range(2):
        x, labels = rng.standard_normal((n * replicas.size, 3, 31, 31)), rng.integers(0, 5, n * replicas.size)
        loss_one, loss_towers = mg.SoftmaxCrossEntropy(), mg.SoftmaxCrossEntropy()
        for optimiser in (optimiser_one, optimiser_towers):
            optimiser.zero_grad()
        y_one, y_towers = net.forward(x), model.forward(x[share])
        np.testing.assert_allclose(y_towers, y_one[share], rtol=0, atol=1e-10)
        loss = replicas.allreduce(np.array([loss_towers.forward(y_towers, labels[share])]))[0] / replicas.size
        assert loss == pytest.approx(loss_one.forward(y_one, labels), abs=1e-12)
        np.testing.assert_allclose(model.backward(loss_towers.backward(1 / replicas.size)),
                                   net.backward(loss_one.backward())[share], rtol=0, atol=1e-10)
        whole = dict(net.named_parameters())
        for name, p in model.named_parameters():
            mine = towers.rows(len(whole[name].grad), comm.rank, comm.size)
            np.testing.assert_allclose(p.grad, whole[name].grad[mine], rtol=0, atol=1e-10, err_msg=name)
        assert np.abs(whole["conv1.weight"].grad).max() > 0          # the check saw real gradients
        optimiser_one.step()
        optimiser_towers.step()
        for name, p in model.named_parameters():
            mine = towers.rows(len(whole[name].data), comm.rank, comm.size)
            np.testing.assert_allclose(p.data, whole[name].data[mine], rtol=0, atol=1e-10, err_msg=f"step: {name}")
    # The halves gathered back are the one-device net, velocities included.
    copy = tiny_alexnet()
    gathered = towers.gather_whole(model, optimiser_towers, copy, comm)
    for (name, p), q, v, w in zip(copy.named_parameters(), net.parameters(), gathered.velocity, optimiser_one.velocity):
        np.testing.assert_allclose(p.data, q.data, rtol=0, atol=1e-10, err_msg=name)
        np.testing.assert_allclose(v, w, rtol=0, atol=1e-10, err_msg=name)
    check_traffic(comm)
    scenario_gradcheck(comm)


def check_traffic(comm):
    """The bytes that the crossings hand to the communicator in one step are towers.crossings' table
    (the one the notebook prints for the paper's net): each rank's half forward, the other rank's half
    of the gradient backward."""
    from minigrad.distributed import towers
    table = towers.crossings(tiny_alexnet(num_classes=6).eval(), batch=3, image_size=31, itemsize=8)
    model = towers.tower(tiny_alexnet(num_classes=6), comm)
    sent, gather, scatter = [], comm.allgather, comm.reduce_scatter
    comm.allgather = lambda a, axis=0: sent.append(("forward", a.nbytes)) or gather(a, axis)
    comm.reduce_scatter = lambda a, axis=0, op="sum": sent.append(("backward", a.nbytes // 2)) or scatter(a, axis, op)
    try:
        y = model.forward(np.random.default_rng(5).standard_normal((3, 3, 31, 31)))
        model.backward(np.ones_like(y))
    finally:
        del comm.allgather, comm.reduce_scatter
    assert sent == [("forward", f) for _, _, f, _ in table] + [("backward", b) for _, _, _, b in table[::-1] if b], sent


class OwnSlice(mg.Layer):
    """x (N, F) the same on every rank -> this rank's equal slice of the features (and back)."""

    def __init__(self, rank, ranks):
        self.rank, self.ranks, self.shape = rank, ranks, None

    def forward(self, x):
        self.shape = x.shape
        width = x.shape[1] // self.ranks
        return x[:, self.rank * width:(self.rank + 1) * width]

    def backward(self, dy):
        dx = np.zeros(self.shape)
        width = self.shape[1] // self.ranks
        dx[:, self.rank * width:(self.rank + 1) * width] = dy
        return dx


class Times(mg.Layer):
    """y = x @ M, a fixed matrix (another on each rank): the rank's different use of the gathered x."""

    def __init__(self, matrix):
        self.matrix = matrix

    def forward(self, x):
        return x @ self.matrix

    def backward(self, dy):
        return dy @ self.matrix.T


def scenario_gradcheck(comm):
    """SharedInput -> own slice -> AllGather -> a different matrix per rank -> GatherOutput: every rank
    computes the same function of the same x, so mg.gradcheck on both ranks at once (the same
    perturbations in lockstep) checks the three collective layers' backward across the ranks."""
    matrix = np.random.default_rng(10 + comm.rank).standard_normal((6, 3 + comm.rank))
    chain = mg.Sequential(mg.SharedInput(comm), OwnSlice(comm.rank, comm.size), mg.AllGather(comm, axis=1),
                          Times(matrix), mg.GatherOutput(comm, axis=1))
    x = np.random.default_rng(11).standard_normal((2, 6))
    assert chain.forward(x).shape == (2, 7)
    assert (result := mg.gradcheck(chain, x)).passed, result


def scenario_train(*argv):
    """train.py on these ranks, checking at each epoch's start that the process holds the parameters
    and velocities of its tower and nothing more: no one-device net kept beside it. With
    --stop-after-epoch-1 the job ends (status 1) once epoch 1's checkpoint is written."""
    import gc
    import train
    from minigrad import distributed
    epoch = train.train_epoch

    def checked(model, loss_fn, optimizer, *args):
        gc.collect()
        mine = sum(p.data.size for p in model.parameters())
        if distributed.world().size > 1:
            assert isinstance(model["gather3"], mg.AllGather), "not a tower"
        held = sum(o.data.size for o in gc.get_objects() if isinstance(o, mg.Parameter))
        velocities = sum(v.size for o in gc.get_objects() if isinstance(o, mg.SGD) for v in o.velocity)
        assert held == velocities == mine, f"the tower has {mine} parameters, the process holds {held} ({velocities})"
        return epoch(model, loss_fn, optimizer, *args)

    train.train_epoch = checked
    argv = list(argv)
    if "--stop-after-epoch-1" in argv:
        argv.remove("--stop-after-epoch-1")
        train.plot_curves = lambda out, history: distributed.exit_job(f"stopped after epoch {history[-1]['epoch']}")
    assert train.main(argv) == 0


SCENARIOS = {"equivalence": scenario_equivalence, "train": scenario_train}

if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    SCENARIOS[sys.argv[1]](*sys.argv[2:])
