"""minigrad.distributed under mpiexec: the collectives, data-parallel training that computes what one
process computes, and the failures that must end the job with a clear error instead of a hang.

Each test launches `mpiexec -n N python -m mpi4py tests/test_distributed.py SCENARIO DIR` (some without
`-m mpi4py`, as a user who forgets it) with a timeout; the scenarios are at the bottom of this file and check their results inside the ranks (an
assertion on one rank aborts the job: a non-zero exit) or write them to DIR for the test to compare.
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve()
MPIEXEC = next((str(p) for p in (Path(sys.executable).parent / "mpiexec", shutil.which("mpiexec") or "")
                if str(p) and os.path.exists(p)), None)
# Only asked whether it is installed: importing MPI here would initialise MPI in the pytest process.
HAVE_MPI4PY = importlib.util.find_spec("mpi4py") is not None
needs_mpi = pytest.mark.skipif(MPIEXEC is None or not HAVE_MPI4PY,
                               reason="mpiexec or mpi4py is not installed (pip install -e '.[test]')")
LAUNCH_TIMEOUT = 120          # seconds: a hang fails the test instead of blocking the suite
HANG_TIMEOUT = 5              # seconds: distributed.set_timeout in the scenarios where a rank hangs


def rank_environment(**extra):
    """One BLAS/Numba thread per rank (the tests run several ranks on two cores); no stray launcher
    variables from an outer job."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PMI_", "OMPI_", "PMIX_"))}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "examples" / "alexnet")]), **extra)
    return env


def launch(ranks, *args, timeout=LAUNCH_TIMEOUT, mpi4py=True):
    """Run this file's scenario `args` on `ranks` MPI processes (mpi4py=False: without `-m mpi4py`, as
    a user who forgets it would); returns the CompletedProcess."""
    command = [MPIEXEC, "-n", str(ranks), sys.executable, *(["-m", "mpi4py"] if mpi4py else []), str(HERE),
               *map(str, args)]
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
            "assert 'mpi4py' not in sys.modules, 'mpi4py was imported'; "
            "assert sys.excepthook is sys.__excepthook__, 'one process: the excepthook must stay as it was'")
    subprocess.run([sys.executable, "-c", code], env=rank_environment(), check=True, timeout=60)


def test_under_a_launcher_without_mpi4py_the_error_says_what_to_install():
    code = "import sys; sys.modules['mpi4py'] = None; import minigrad.distributed as d; d.world()"   # not importable
    result = subprocess.run([sys.executable, "-c", code], env=rank_environment(PMI_RANK="0", PMI_SIZE="1"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert 'pip install "minigrad[distributed]"' in result.stderr and "PMI_RANK" in result.stderr


def test_a_bad_op_is_a_value_error():
    from minigrad.distributed import LocalCommunicator
    with pytest.raises(ValueError, match="op must be one of"):
        LocalCommunicator().allreduce(np.zeros(2), op="max")


def test_the_ranks_slices_of_a_global_batch_put_together_are_the_one_process_batch(rng):
    """The loader's shards (augmentation drawn for the whole batch) and the dropout masks of the
    replicas (drawn for the whole batch), concatenated in rank order, are the one-process ones."""
    from minigrad import data
    import minigrad as mg

    class Images:
        images, labels = rng.integers(0, 256, (24, 20, 20, 3), dtype=np.uint8), np.arange(24) % 4

        def __len__(self):
            return 24

        def batch(self, indices):
            return self.images[indices], self.labels[indices]

    pca = data.PCAColor.fit(Images.images)
    transform = data.TrainTransform(16, Images.images.mean(axis=0).astype(np.float32), pca, scale=0.02)
    def batches(shard):
        return list(data.DataLoader(Images(), 12, transform, shuffle=True, seed=5, workers=0, drop_last=True,
                                    shard=shard).epoch(3))
    whole = batches(None)
    parts = [batches((rank, 3)) for rank in range(3)]
    for number, (x, y) in enumerate(whole):
        assert (np.concatenate([part[number][0] for part in parts]) == x).all()
        assert (np.concatenate([part[number][1] for part in parts]) == y).all()
    x = rng.standard_normal((12, 7))
    full = mg.Dropout(0.5, seed=9).forward(x)
    replicas = []
    for rank in range(3):
        layer = mg.Dropout(0.5, seed=9).draw_share(batch=(rank, 3))
        replicas.append(layer.forward(x[4 * rank:4 * rank + 4]))
    assert (np.concatenate(replicas) == full).all()


def test_data_parallel_takes_rank_0s_weights_and_velocities_and_shares_every_dropout_layer():
    """Rank 1 of 2, played by one process: every parameter and SGD velocity is broadcast from rank 0,
    and every Dropout, one inside a nested Sequential too, draws its rows of the global batch."""
    import minigrad as mg
    from minigrad.distributed import DataParallel, LocalCommunicator

    class Rank1(LocalCommunicator):
        rank, size = 1, 2
        broadcasts = []

        def broadcast(self, array, root=0):           # rank 0's values: sevens
            self.broadcasts.append(root)
            array[...] = 7
            return array

        def allgather_object(self, obj):
            return [obj, obj]

    inner = mg.Sequential(("fc", mg.Linear(4, 4)), ("drop", mg.Dropout(0.5)))
    model = mg.Sequential(("block", inner), ("drop", mg.Dropout(0.5)), ("out", mg.Linear(4, 2)))
    optimizer = mg.SGD(model.parameters(), lr=0.1, momentum=0.9)
    DataParallel(model, Rank1(), optimizer)
    assert all((p.data == 7).all() for p in model.parameters()) and all((v == 7).all() for v in optimizer.velocity)
    assert Rank1.broadcasts == [0] * 8
    assert inner["drop"].batch_share == model["drop"].batch_share == (1, 2)
    with pytest.raises(ValueError, match="optimizer must be an SGD .* got Adam"):
        DataParallel(model, Rank1(), mg.Adam(model.parameters()))


def test_the_file_list_hash_takes_names_that_are_not_utf8(tmp_path):
    """A file name of bytes that are not UTF-8 (a Latin-1 name copied from an old disk) reaches Python
    as a str with surrogates: it is hashed as the bytes on disk, and another such name hashes otherwise."""
    from minigrad.distributed import file_list_hash
    folder = os.fsencode(tmp_path)
    for name in (b"caf\xe9.png", b"caf\xe8.png", b"plain.png"):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(b"12345")
    latin, other, plain = (os.path.join(str(tmp_path), os.fsdecode(name))
                           for name in (b"caf\xe9.png", b"caf\xe8.png", b"plain.png"))
    digest = file_list_hash([latin, plain])
    assert len(digest) == 16 and int(digest, 16) >= 0
    assert digest == file_list_hash([latin, plain])
    assert digest != file_list_hash([other, plain])


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


# --- data-parallel training: the one-process run's numbers ----------------------------------------
TINY = dict(image_size=31, conv1_kernels=4, conv1_kernel_size=5, conv1_stride=2, channels=(4, 6, 6, 4),
            conv2_kernel_size=3, hidden=8, init="he", dropout_mode="classic")
GLOBAL_BATCH, STEPS = 12, 3


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """36 training and 9 validation images in 3 classes (random pixels): 3 steps of batch 12."""
    from PIL import Image
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(7)
    for split, per_class in (("train", GLOBAL_BATCH * STEPS // 3), ("val", 3)):
        for label in range(3):
            (root / split / f"class{label}").mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (40, 44, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / f"class{label}" / f"{i}.png")
    return root


def run_plain(*args):
    """The scenario in one process, without mpiexec (the reference)."""
    subprocess.run([sys.executable, str(HERE), *map(str, args)], env=rank_environment(), check=True,
                   timeout=LAUNCH_TIMEOUT, capture_output=True)


@needs_mpi
def test_two_and_three_ranks_train_as_one_process_does(folder, tmp_path):
    """float64, dropout and augmentation on: after each of 3 steps, the weights and velocities of 2
    and 3 ranks match the one-process run to 1e-10, and so do the losses; the replicas are bitwise
    identical after every step (checked inside the ranks)."""
    run_plain("train", folder, tmp_path / "one")
    one = np.load(tmp_path / "one" / "steps.npz")
    assert one["weights"].shape[0] == STEPS
    for ranks in (2, 3):
        launch_ok(ranks, "train", folder, tmp_path / str(ranks))
        many = np.load(tmp_path / str(ranks) / "steps.npz")
        assert int(many["ranks"]) == ranks and int(one["ranks"]) == 1
        for key in ("weights", "velocities", "losses", "epoch"):
            np.testing.assert_allclose(many[key], one[key], rtol=0, atol=1e-10, err_msg=f"{key} on {ranks} ranks")
        assert not np.array_equal(one["weights"][0], one["weights"][1])       # the steps did something


def scenario_train(folder, out):
    """3 steps of train.py's train_epoch on the tiny AlexNet; rank 0 saves what each step left."""
    import train
    from minigrad.models import Preset, alexnet

    from minigrad import data, distributed, scoring
    import minigrad as mg

    comm = distributed.world()
    config = {"data": folder, "resize": 35, "image_size": TINY["image_size"], "seed": 3, "batch_size": GLOBAL_BATCH,
              "scale": "unit", "dtype": "float64"}
    train_set, val_set = data.open_datasets(config, 2**30, workers=0)
    normalisation = data.Normalisation.fit(train_set, config["seed"], config["scale"])
    model = alexnet(Preset(**TINY), num_classes=3, seed=config["seed"]).astype(np.float64)
    optimizer = mg.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=0.0005)
    # several buckets, even in this tiny net
    replicas = distributed.DataParallel(model, comm, optimizer, bucket_bytes=1000) if comm.size > 1 else None
    assert comm.size == 1 or len(replicas.buckets) == 4
    train_loader, val_loader = data.make_loaders(train_set, val_set, config, normalisation, 0, comm)
    loss_fn, steps = mg.SoftmaxCrossEntropy(), {"weights": [], "velocities": [], "losses": []}
    forward, step = loss_fn.forward, optimizer.step

    def recording_forward(logits, labels):
        loss = forward(logits, labels)
        steps["losses"].append(sum(l * n for l, n in comm.allgather_object((loss, len(labels)))) / GLOBAL_BATCH)
        return loss

    def recording_step():
        step()
        weights = np.concatenate([p.data.ravel() for p in model.parameters()])
        velocities = np.concatenate([v.ravel() for v in optimizer.velocity])
        for name, values in (("weights", weights), ("velocities", velocities)):
            replicas = comm.allgather_object(values.tobytes())
            assert all(r == replicas[0] for r in replicas), f"the replicas' {name} differ after step {len(steps[name]) + 1}"
            steps[name].append(values)

    loss_fn.forward, optimizer.step = recording_forward, recording_step
    epoch = train.train_epoch(model, loss_fn, optimizer, train_loader, 1, 1, "cpu", comm)
    evaluation = scoring.evaluate(model, val_loader, "cpu", comm=comm)
    if comm.rank == 0:
        os.makedirs(out, exist_ok=True)
        np.savez(Path(out) / "steps.npz", ranks=comm.size, epoch=np.array(epoch + evaluation),
                 **{key: np.array(value) for key, value in steps.items()})


# --- failures: a clear error and an end, never a hang ----------------------------------------------
TRAIN_PY = ROOT / "examples" / "alexnet" / "train.py"


def train_py(ranks, *args, mpmd=None, mpi4py=True):
    """examples/alexnet/train.py on `ranks` ranks; mpmd: a second argument list for one more rank;
    mpi4py=False: launched without `-m mpi4py`."""
    def program(arguments):
        return [sys.executable, *(["-m", "mpi4py"] if mpi4py else []), str(TRAIN_PY), "--workers", "0",
                *map(str, arguments)]
    command = [MPIEXEC, "-n", str(ranks), *program(args)] + ([":", "-n", "1", *program(mpmd)] if mpmd else [])
    return subprocess.run(command, env=rank_environment(), capture_output=True, text=True, timeout=LAUNCH_TIMEOUT)


def assert_failed_with(result, *phrases):
    assert result.returncode != 0, f"expected a failure, got exit 0\n{result.stdout[-2000:]}"
    for phrase in phrases:
        assert phrase in result.stderr, f"{phrase!r} not in stderr:\n{result.stderr[-3000:]}"


@needs_mpi
@pytest.mark.parametrize("where, how, mpi4py", [("forward", "raise", True), ("forward", "raise", False),
                                                ("backward", "raise", False), ("backward", "interrupt", True),
                                                ("forward", "kill", False), ("forward", "hang", True),
                                                ("backward", "stop", False)])
def test_a_failure_on_one_rank_ends_the_whole_job(folder, tmp_path, where, how, mpi4py):
    """Rank 1 fails in its second training step, in forward (rank 0 goes on into the step's
    all-reduces) or in backward once a bucket's non-blocking all-reduce is in flight: an exception,
    a Ctrl-C or SIGKILL, launched with or without `-m mpi4py`; or it hangs (sleeps, or stops on
    SIGSTOP), and rank 0, waiting for it in an all-reduce, ends the job after the timeout. The job
    ends, with the traceback when there is one (the launch's timeout fails the test on a hang)."""
    result = launch(2, "fail_in_step", folder, where, how, mpi4py=mpi4py)
    if how == "raise":
        assert_failed_with(result, "Traceback", f"injected failure on rank 1 in {where}", "rank 1 of 2")
    elif how == "interrupt":
        assert_failed_with(result, "KeyboardInterrupt", "rank 1 of 2")
        assert result.returncode == 130, result.returncode        # what a shell reports for Ctrl-C
    elif how in ("hang", "stop"):
        assert_failed_with(result, f"rank 0 of 2", f"waited more than {HANG_TIMEOUT:g} s in an all-reduce for the "
                           f"other ranks: one of them hangs or has stopped")
    else:
        assert_failed_with(result)


@needs_mpi
def test_a_global_batch_the_ranks_do_not_divide_is_refused_before_training(folder, tmp_path):
    assert_failed_with(train_py(2, "--data", folder, "--batch-size", 13, "--out", tmp_path / "run"),
                       "the global batch of 13 images does not divide among 2 ranks")
    assert not (tmp_path / "run" / "last.npz").exists()


@needs_mpi
def test_ranks_whose_data_folders_differ_are_refused_naming_the_rank(folder, tmp_path):
    """The other copy has the same file names, but one file is longer (still a readable image)."""
    other = tmp_path / "other"
    shutil.copytree(folder, other)
    with open(next((other / "train" / "class1").iterdir()), "ab") as f:
        f.write(b"trailing bytes")
    result = train_py(1, "--data", folder, "--batch-size", 12, "--out", tmp_path / "run",
                      mpmd=["--data", other, "--batch-size", 12, "--out", tmp_path / "run"])
    assert_failed_with(result, "the list of readable image files (names and sizes) under --data",
                       "differs between ranks", "rank 1 has '45 files, hash")


@needs_mpi
def test_an_option_or_a_usage_error_on_one_rank_only_ends_the_job_naming_it(folder, tmp_path):
    """An MPMD launch whose second rank gets another --lr (it would train a replica of its own
    silently), then an invalid --epochs (it stops before the others' first collective): both end the
    whole job, launched without `-m mpi4py`."""
    common = ["--data", folder, "--batch-size", 12, "--out", tmp_path / "run"]
    result = train_py(1, *common, mpmd=[*common, "--lr", 0.02], mpi4py=False)
    assert_failed_with(result, "the run's configuration differs between ranks: "
                               "rank 1 has lr=0.02 where rank 0 has 0.01")
    result = train_py(1, *common, mpmd=[*common, "--epochs", 0], mpi4py=False)
    assert_failed_with(result, "train.py: --epochs must be a positive int, got 0")
    result = train_py(1, *common, mpmd=[*common, "--rank-timeout", -1], mpi4py=False)
    assert_failed_with(result, "train.py: --rank-timeout must be >= 0 seconds, got -1")


@needs_mpi
def test_replicas_with_different_parameter_shapes_are_refused_naming_the_rank(tmp_path):
    assert_failed_with(launch(2, "mismatched_models"), "the model's parameters (name, shape, dtype) differs",
                       "rank 1 has")


@needs_mpi
def test_a_run_of_two_ranks_resumes_on_one_as_if_it_had_never_stopped(folder, tmp_path):
    """train.py itself, in float64: a 2-epoch run on 2 ranks that dies once epoch 1 is saved, resumed
    on 1 process, against 2 epochs on 1 process. The sums' order differs, so agreement is to float64
    rounding, not bitwise."""
    common = ["--data", folder, "--batch-size", 12, "--dtype", "float64"]
    assert_failed_with(launch(2, "stop_after_epoch_1", folder, tmp_path / "split"), "stopped after epoch 1")
    assert sorted(p.name for p in (tmp_path / "split").iterdir()) == ["best.npz", "last.npz", "metrics.json"]
    resumed = subprocess.run([sys.executable, str(TRAIN_PY), "--workers", "0", "--resume", str(tmp_path / "split")],
                             env=rank_environment(), capture_output=True, text=True, timeout=LAUNCH_TIMEOUT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    straight = subprocess.run([sys.executable, str(TRAIN_PY), "--workers", "0", *map(str, common), "--epochs", "2",
                               "--out", str(tmp_path / "straight")], env=rank_environment(), capture_output=True, text=True,
                              timeout=LAUNCH_TIMEOUT)
    assert straight.returncode == 0, straight.stderr[-3000:]
    with np.load(tmp_path / "split" / "last.npz") as split, np.load(tmp_path / "straight" / "last.npz") as whole:
        assert sorted(split.files) == sorted(whole.files)
        weights = [key for key in whole.files if key.startswith(("model.", "velocity."))]
        for key in weights:
            assert split[key].dtype == np.float64
            np.testing.assert_allclose(split[key], whole[key], rtol=0, atol=1e-10, err_msg=key)
        assert json.loads(str(split["meta"]))["dropout_rng"] == json.loads(str(whole["meta"]))["dropout_rng"]
    split_history = json.loads((tmp_path / "split" / "metrics.json").read_text())["epochs"]
    whole_history = json.loads((tmp_path / "straight" / "metrics.json").read_text())["epochs"]
    assert [row["epoch"] for row in split_history] == [1, 2]
    for a, b in zip(split_history, whole_history):
        for key in ("train_loss", "val_loss", "val_top1", "val_top5"):
            assert a[key] == pytest.approx(b[key], rel=1e-12, abs=1e-12), key


def scenario_stop_after_epoch_1(folder, out):
    """train.py on the ranks, 2 epochs in float64, dying on rank 0 once epoch 1's checkpoint is written."""
    import train

    def stop(out, history):
        raise RuntimeError(f"stopped after epoch {history[-1]['epoch']}")
    train.plot_curves = stop
    train.main(["--data", folder, "--batch-size", "12", "--dtype", "float64", "--epochs", "2", "--workers", "0",
                "--out", out])


def scenario_fail_in_step(folder, where, how):
    import signal

    import train
    from minigrad.models import PRESETS, alexnet

    from minigrad import data, distributed
    import minigrad as mg

    comm = distributed.world()
    config = {"data": folder, "resize": 73, "image_size": 64, "seed": 0, "batch_size": GLOBAL_BATCH, "scale": "unit",
              "dtype": "float32"}
    train_set, val_set = data.open_datasets(config, 2**30, workers=0)
    model = alexnet(PRESETS["small"], num_classes=3)
    optimizer = mg.SGD(model.parameters(), lr=0.01)
    replicas = distributed.DataParallel(model, comm, optimizer, bucket_bytes=100_000)
    assert len(replicas.buckets) > 2
    normalisation = data.Normalisation.fit(train_set, config["seed"], config["scale"])
    loader, _ = data.make_loaders(train_set, val_set, config, normalisation, 0, comm)
    forward, steps = model.forward, []

    distributed.set_timeout(HANG_TIMEOUT)

    def fail():
        if how == "raise":
            raise RuntimeError(f"injected failure on rank {comm.rank} in {where}")
        if how == "interrupt":
            raise KeyboardInterrupt
        if how == "hang":
            time.sleep(10 * LAUNCH_TIMEOUT)
        os.kill(os.getpid(), signal.SIGSTOP if how == "stop" else signal.SIGKILL)

    def counting_forward(x):
        steps.append(1)
        if where == "forward" and comm.rank == 1 and len(steps) == 2:
            fail()
        return forward(x)

    def in_backward(layer):           # after DataParallel's hook: a bucket's all-reduce has started
        if where == "backward" and comm.rank == 1 and len(steps) == 2 and replicas.pending:
            fail()

    model.forward = counting_forward
    model.backward_hooks.append(in_backward)
    train.train_epoch(model, mg.SoftmaxCrossEntropy(), optimizer, loader, 1, 1, "cpu", comm)


@needs_mpi
def test_a_failure_while_rank_0_writes_a_checkpoint_leaves_the_last_one_to_resume_from(folder, tmp_path):
    """Rank 0 fails halfway through writing epoch 2's last.npz while rank 1 waits: the job ends,
    last.npz is still epoch 1's and loads; a temporary file that a killed writer would have left is
    removed by the next write, and the run resumes from epoch 1 in one process."""
    out = tmp_path / "run"
    assert_failed_with(launch(2, "fail_writing_checkpoint", folder, out, mpi4py=False),
                       "Traceback", "injected failure while writing")
    meta = json.loads(str(np.load(out / "last.npz")["meta"]))
    assert [row["epoch"] for row in meta["history"]] == [1]
    assert not list(out.glob(".*.tmp"))
    (out / ".last.npz.killed.tmp").write_bytes(b"PK, then SIGKILL")
    resumed = subprocess.run([sys.executable, str(TRAIN_PY), "--workers", "0", "--resume", str(out)],
                             env=rank_environment(), capture_output=True, text=True, timeout=LAUNCH_TIMEOUT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [row["epoch"] for row in json.loads(str(np.load(out / "last.npz")["meta"]))["history"]] == [1, 2]
    assert not list(out.glob(".*.tmp"))


def scenario_fail_writing_checkpoint(folder, out):
    import train

    savez = np.savez

    def failing_savez(file, **arrays):
        if os.path.exists(Path(out) / "last.npz"):      # epoch 2's: there is an epoch-1 file to keep
            file.write(b"PK, half a checkpoint")
            raise RuntimeError("injected failure while writing a checkpoint")
        savez(file, **arrays)

    np.savez = failing_savez
    train.main(["--data", folder, "--batch-size", "12", "--epochs", "2", "--workers", "0", "--out", out])


def scenario_mismatched_models():
    from minigrad.models import Preset, alexnet

    from minigrad import distributed

    comm = distributed.world()
    tiny = dict(TINY, hidden=8 if comm.rank == 0 else 10)
    distributed.DataParallel(alexnet(Preset(**tiny), num_classes=3), comm)


# --- CuPy arrays staged through the host (the logic only: no GPU here) ------------------------------
@needs_mpi
def test_gpu_arrays_without_nccl_are_staged_through_host_memory(tmp_path):
    """A stand-in for CuPy (NumPy arrays whose type says "cupy", no NCCL) on 2 ranks: the communicator
    chooses host staging and gives the NumPy path's results, as CuPy arrays. What runs on a real GPU
    (NCCL, streams) is not tested by this."""
    launch_ok(2, "staged_gpu")


def scenario_staged_gpu():
    import types

    class FakeGpuArray(np.ndarray):
        """A NumPy array that minigrad.backend takes for a CuPy one."""
        def get(self):
            return np.array(self)

        def set(self, host):
            self[...] = host

    FakeGpuArray.__module__ = "cupy"
    synchronised = []
    stream = types.SimpleNamespace(synchronize=lambda: synchronised.append(1))
    device = types.SimpleNamespace(id=0)
    cupy = types.ModuleType("cupy")
    cupy.asarray = lambda a: np.asarray(a).view(FakeGpuArray)
    cupy.zeros = lambda *a, **k: np.zeros(*a, **k).view(FakeGpuArray)
    cupy.cuda = types.SimpleNamespace(get_current_stream=lambda: stream, Device=lambda: device,
                                      runtime=types.SimpleNamespace(getDeviceProperties=lambda i: {"pciBusID": 3}))
    sys.modules["cupy"], sys.modules["cupy.cuda"] = cupy, None      # `from cupy.cuda import nccl` fails

    from minigrad import distributed
    from minigrad.backend import is_gpu_array
    comm = distributed.world()
    x = cupy.asarray(np.arange(6.0).reshape(2, 3) * (comm.rank + 1))
    assert is_gpu_array(x)
    total = comm.allreduce(x)
    assert is_gpu_array(total) and (np.asarray(total) == np.arange(6.0).reshape(2, 3) * 3).all()
    assert type(comm._gpu_ops()).__name__ == "_StagedCollectives" and synchronised
    assert (np.asarray(comm.iallreduce(x, op="mean").wait()) == np.arange(6.0).reshape(2, 3) * 1.5).all()
    y = cupy.asarray(np.full(4, comm.rank, np.float64))
    assert comm.broadcast(y, root=1) is y and (np.asarray(y) == 1).all()
    gathered = comm.allgather(cupy.asarray(np.full((1, 2), comm.rank)), axis=0)
    assert is_gpu_array(gathered) and np.asarray(gathered).tolist() == [[0, 0], [1, 1]]
    mine = comm.reduce_scatter(cupy.asarray(np.arange(4.0) * (comm.rank + 1)))
    assert is_gpu_array(mine) and np.asarray(mine).tolist() == [[0.0, 3.0], [6.0, 9.0]][comm.rank]


SCENARIOS = {"collectives": scenario_collectives, "train": scenario_train, "fail_in_step": scenario_fail_in_step,
             "fail_writing_checkpoint": scenario_fail_writing_checkpoint, "stop_after_epoch_1": scenario_stop_after_epoch_1,
             "mismatched_models": scenario_mismatched_models, "staged_gpu": scenario_staged_gpu}

if __name__ == "__main__":
    SCENARIOS[sys.argv[1]](*sys.argv[2:])
