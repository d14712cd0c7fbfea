"""minigrad.checkpoint: save writes atomically; load trusts nothing in the file. Each tampered or damaged
checkpoint below is refused with one ValueError naming the file and what is wrong, before anything
large is allocated, and the scripts print that message instead of a traceback."""
import json
import os
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

import minigrad as mg
from minigrad import checkpoint, data, models

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "alexnet"))
import predict  # noqa: E402
import train  # noqa: E402

TINY = dict(image_size=31, conv1_kernels=4, conv1_kernel_size=5, conv1_stride=2, channels=(4, 6, 6, 4),
            conv2_kernel_size=3, hidden=8, init="he", dropout_mode="classic")


def tiny_record():
    config = {"preset": "small", "architecture": TINY, "image_size": 31, "resize": 35, "seed": 0, "batch_size": 4,
              "lr": 0.01, "epochs": 2, "scale": "unit", "flip": True, "momentum": 0.9, "weight_decay": 0.0005,
              "dtype": "float32", "data": "/nowhere"}
    history = [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.1, "val_top1": 0.5, "val_top5": 1.0, "lr": 0.01,
                "seconds": 1.0, "train_top1": 0.5}]
    return {"config": config, "classes": ["a", "b", "c"], "history": history,
            "best": {"epoch": 1, "val_top1": 0.5, "val_top5": 1.0}, "skipped": []}


@pytest.fixture
def saved(tmp_path):
    """A valid checkpoint of a tiny AlexNet, and its arrays as np.load reads them."""
    record = tiny_record()
    model = models.from_config(record["config"], 3)
    optimizer = mg.SGD(model.parameters(), lr=0.01)
    pca = data.PCAColor(np.ones(3, np.float32), np.eye(3, dtype=np.float32))
    normalisation = data.Normalisation(np.zeros((35, 35, 3), np.float32), pca, 0.5)
    path = tmp_path / "last.npz"
    checkpoint.save(path, model, optimizer, mg.ReduceLROnPlateau(optimizer), normalisation, record)
    with np.load(path) as archive:
        return path, {key: archive[key] for key in archive.files}


def rewrite(path, arrays, meta=None):
    """Write `arrays` (and `meta`, a dict, as the record) as an .npz at path."""
    arrays = dict(arrays)
    if meta is not None:
        arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    return path


def record_of(arrays):
    return json.loads(str(arrays["meta"]))


def test_a_valid_checkpoint_round_trips(saved):
    path, arrays = saved
    loaded = checkpoint.load(path)
    assert loaded.classes == ["a", "b", "c"] and loaded.epoch == 1
    model = loaded.model()
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, arrays[f"model.{key}"])
    assert loaded.normalisation().scale == 0.5
    assert checkpoint.load(path.parent).path == str(path)          # a run folder: its last.npz


@pytest.mark.parametrize("damage, message", [
    (lambda path: path.write_bytes(b""), "the file is empty"),
    (lambda path: path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2]), "not a readable checkpoint"),
    (lambda path: path.write_text("epoch 3, loss 0.2\n" * 20), "not a readable checkpoint"),
    (lambda path: path.unlink(), "does not exist"),
])
def test_a_damaged_file_is_named_not_a_traceback(saved, damage, message):
    path, _ = saved
    damage(path)
    with pytest.raises(ValueError, match=f"checkpoint {path}: .*{message}"):
        checkpoint.load(path)


def tampered(arrays, change):
    """arrays with the record changed by change(record) (in place)."""
    record = record_of(arrays)
    change(record)
    return {**arrays, "meta": np.array(json.dumps(record))}


@pytest.mark.parametrize("change, message", [
    (lambda r: r.update(history=[]), "history is empty"),
    (lambda r: r["optimizer"].update(momentum=-0.5), "momentum is -0.5"),
    (lambda r: r["optimizer"].update(momentum=1.5), "momentum is 1.5"),
    (lambda r: r["optimizer"].update(lr=float("nan")), "lr is nan"),
    (lambda r: r["config"].update(lr=float("inf")), "lr is inf"),
    (lambda r: r.update(format=7), "format 7"),
    (lambda r: r.update(classes=["only"]), "at least 2 distinct names"),
    (lambda r: r["config"].pop("image_size"), "image_size is None"),
    (lambda r: r["config"].update(dtype="int8"), "dtype is 'int8'"),
    (lambda r: r.pop("scheduler"), "no scheduler state"),
])
def test_a_record_out_of_range_is_refused_not_used(saved, change, message):
    path, arrays = saved
    rewrite(path, tampered(arrays, change))
    with pytest.raises(ValueError, match=f"checkpoint {path}: .*{message}"):
        checkpoint.load(path)


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop("mean_image"), "has no mean_image"),
    (lambda a: a.update(mean_image=np.zeros((31, 31, 3), np.float32)), r"mean_image has shape \(31, 31, 3\)"),
    (lambda a: a.update(stray=np.zeros(4, np.float32)), "array 'stray' that no checkpoint holds"),
    (lambda a: a.update(mean_image=np.zeros((35, 35, 3), object)), "'mean_image.npy' holds Python objects"),
    (lambda a: a.pop("velocity.1"), "not numbered 0, 1, ... without a gap"),
    (lambda a: a.update({"model.fc6.weight": a["model.fc6.weight"].astype(np.float64)}), "trains in float32"),
])
def test_arrays_that_do_not_belong_are_refused_from_their_headers(saved, change, message):
    path, arrays = saved
    arrays = dict(arrays)
    change(arrays)
    rewrite(path, arrays)                      # (np.savez pickles an object array)
    with pytest.raises(ValueError, match=f"checkpoint {path}: .*{message}"):
        checkpoint.load(path)


def test_weights_that_do_not_fit_the_architecture_or_are_not_finite_are_refused(saved):
    path, arrays = saved
    rewrite(path, {**arrays, "model.fc7.weight": np.zeros((8, 9), np.float32)})
    with pytest.raises(ValueError, match=r"do not fit the network its config describes: model.fc7.weight"):
        checkpoint.load(path).model()
    poisoned = arrays["model.conv2.weight"].copy()
    poisoned.flat[3] = np.nan
    rewrite(path, {**arrays, "model.conv2.weight": poisoned})
    with pytest.raises(ValueError, match="model.conv2.weight holds NaN or infinite values"):
        checkpoint.load(path).model()
    with pytest.raises(SystemExit, match=f"predict.py: checkpoint {path}: model.conv2.weight holds NaN"):
        predict.main([str(path), "--checkpoint", str(path)])


def with_central_directory_byte(path, offset, value):
    """Set one byte, `offset` bytes into each central-directory record of the zip at `path`."""
    content = bytearray(path.read_bytes())
    at = content.find(b"PK\x01\x02")
    while at >= 0:
        content[at + offset] = value
        at = content.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(content))


def first_dropout_state(record):
    return next(state for state in record["dropout_rng"] if state)["state"]


@pytest.mark.parametrize("damage, message", [       # each first found by fuzz/checkpoint_loader.py
    (lambda path, arrays: with_central_directory_byte(path, 6, 0xFF),          # "version needed to extract"
     r"not a readable checkpoint \(NotImplementedError: zip file version 25.5"),
    (lambda path, arrays: with_central_directory_byte(path, 8, 0x01), "its array '[^']+' is encrypted"),   # flag bit 0
    (lambda path, arrays: rewrite(path, {**arrays, "meta": np.array('{"format": 1, "config": ' + "[" * 10**5
                                                                      + "]" * 10**5 + "}")}),
     "its 'meta' record nests lists or objects too deeply"),
    (lambda path, arrays: rewrite(path, tampered(arrays, lambda r: r["config"].update(epochs=10**400))),
     "its config's epochs is 1000000"),
    (lambda path, arrays: rewrite(path, tampered(arrays, lambda r: first_dropout_state(r).update(state=2**200))),
     "its training state cannot be restored"),
])
def test_damage_found_by_fuzzing_is_named_not_a_traceback(saved, damage, message):
    path, arrays = saved
    damage(path, arrays)
    with pytest.raises(ValueError, match=f"checkpoint {path}: .*{message}"):
        saved_again = checkpoint.load(path)
        model = saved_again.model()
        optimizer = mg.SGD(model.parameters(), lr=0.01)
        saved_again.restore(model, optimizer, mg.ReduceLROnPlateau(optimizer))


def test_a_header_that_numpy_cannot_tokenize_is_named(saved):
    path, arrays = saved
    rewrite(path, arrays)
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (3,"       # never closed
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("model.extra.npy", b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header)
    with pytest.raises(ValueError, match=f"checkpoint {path}: not a readable checkpoint \\(TokenError"):
        checkpoint.load(path)


def test_a_record_asking_for_a_huge_network_is_refused_before_it_is_built(saved):
    """The architecture's numbers are the record's: 20,000 units (1.6 GB for fc7) or 2**31 kernels in a file
    of a few hundred KB are refused from its size alone, before a weight is drawn."""
    path, arrays = saved
    for sizes in ({"hidden": 20_000}, {"conv1_kernels": 2**31}, {"channels": (4, 6, 6, 2**31)}):
        rewrite(path, tampered(arrays, lambda r: r["config"]["architecture"].update(sizes)))
        tracemalloc.start()
        with pytest.raises(ValueError, match=f"checkpoint {path}: its weights do not fit the network its config "
                                             r"describes: the network has [\d,]+ weights and biases, the file 1"):
            checkpoint.load(path).model()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 2**24, sizes


def test_a_small_file_cannot_make_load_allocate_much(saved):
    """A compressed member (here 256 MiB of zeros in a file of a few hundred KB) is refused from the zip
    directory, before a byte of it is decompressed."""
    path, arrays = saved
    rewrite(path, arrays)
    size = 2**28
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("unused.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False,
                                                          "shape": (size // 4,)})
            zeros = bytes(2**20)
            for _ in range(size // len(zeros)):
                member.write(zeros)
    assert os.path.getsize(path) < 2**20
    tracemalloc.start()
    with pytest.raises(ValueError, match="'unused.npy' is compressed"):
        checkpoint.load(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2**24


def test_resume_names_a_bad_checkpoint_and_takes_the_file_itself(saved, tmp_path):
    path, arrays = saved
    rewrite(path, tampered(arrays, lambda r: r["optimizer"].update(lr=-1)))
    with pytest.raises(SystemExit, match=f"train.py: --resume: checkpoint {path}: its optimiser's lr is -1"):
        train.main(["--resume", str(path)])
    path.write_bytes(b"")
    with pytest.raises(SystemExit, match=f"train.py: --resume: checkpoint {tmp_path / 'last.npz'}: the file is empty"):
        train.main(["--resume", str(tmp_path)])


def test_save_is_atomic_and_follows_the_umask(saved, tmp_path):
    path, _ = saved
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o666 & ~checkpoint._umask())
    (tmp_path / ".last.npz.abc.tmp").write_bytes(b"torn")           # left by a writer killed mid-write
    checkpoint.atomic_write(path, lambda f: f.write(b"new"))
    assert path.read_bytes() == b"new" and not list(tmp_path.glob(".last.npz.*"))

    def fails(f):
        f.write(b"half")
        raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        checkpoint.atomic_write(path, fails)
    assert path.read_bytes() == b"new" and not list(tmp_path.glob(".last.npz.*"))


@pytest.mark.parametrize("arch", ["resnet", "inception"])
def test_the_parameter_count_of_the_graph_networks_is_the_built_ones(arch):
    config = {"arch": arch, "seed": 0, "preset": "small", "image_size": 64}
    for classes in (2, 7, 1000):
        built = models.from_config(config, classes)
        assert models.parameter_count(config, classes) == sum(p.data.size for p in built.parameters())
