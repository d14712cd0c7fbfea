"""examples/alexnet/train.py, evaluate.py and predict.py end to end on tiny image folders: the outputs of
a run, bit-identical resume, the NaN stop that keeps the last good checkpoint, and the checkpoint round trip."""
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "alexnet"
sys.path.insert(0, str(EXAMPLES))
import evaluate  # noqa: E402
import predict  # noqa: E402
import train  # noqa: E402

import minigrad as mg  # noqa: E402
from minigrad import checkpoint, data, models  # noqa: E402


def write_split(root, per_class, seed):
    """Two classes a CNN tells apart at once and a colour histogram cannot: a bright vertical bar or a
    bright horizontal bar, at a random place, on noise."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(("horizontal", "vertical")):
        os.makedirs(root / name, exist_ok=True)
        for i in range(per_class):
            image = rng.integers(0, 120, (64, 64, 3)).astype(np.uint8)
            at = rng.integers(8, 48)
            if label:
                image[:, at:at + 8] = 230
            else:
                image[at:at + 8, :] = 230
            Image.fromarray(image).save(root / name / f"{i}.png")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("bars")
    write_split(root / "train", 96, 0)
    write_split(root / "val", 24, 1)
    return root


def run(folder, out, *extra):
    return train.main(["--data", str(folder), "--out", str(out), "--workers", "1", "--batch-size", "16",
                       "--lr", "0.005", *extra])


def test_a_tiny_run_learns_and_writes_its_outputs(folder, tmp_path, capsys):
    assert run(folder, tmp_path, "--epochs", "3") == 0
    # Every fall of the rate is announced; one happens at the latest at the plan's last call.
    falls = [line for line in capsys.readouterr().out.splitlines() if line.startswith("learning rate ")]
    meta = checkpoint.load(tmp_path).record
    assert len(falls) == meta["scheduler"]["reductions"] >= 1, falls
    assert falls[0].startswith("learning rate 0.005 -> 0.0005: ")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    rows = metrics["epochs"]
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    assert set(rows[0]) == {"epoch", "train_loss", "val_loss", "val_top1", "val_top5", "lr", "seconds"}
    assert rows[-1]["val_top1"] >= 0.9, rows                # chance is 0.5
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert metrics["classes"] == ["horizontal", "vertical"]
    for name in ("last.npz", "best.npz", "curves.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


@pytest.mark.parametrize("arch", ["alexnet", "resnet", "inception"])
def test_resume_is_bit_identical(folder, tmp_path, monkeypatch, arch):
    """Also for the graphs (their batch norms' running statistics are in the checkpoint)."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert run(folder, straight, "--epochs", "2", "--arch", arch) == 0

    def crash(out, history):                # the run dies once its first epoch is saved
        raise KeyboardInterrupt
    with monkeypatch.context() as patched:
        patched.setattr(train, "plot_curves", crash)
        with pytest.raises(KeyboardInterrupt):
            run(folder, resumed, "--epochs", "2", "--arch", arch)
    # (--resume takes the run folder or its last.npz: here the file; the folder elsewhere in this file)
    assert train.main(["--resume", str(resumed / "last.npz"), "--workers", "2"]) == 0
    a, b = checkpoint.load(straight), checkpoint.load(resumed)
    (meta_a, arrays_a), (meta_b, arrays_b) = (a.record, a.arrays()), (b.record, b.arrays())
    assert sorted(arrays_a) == sorted(arrays_b)
    assert any(key.startswith("velocity.") for key in arrays_a)
    for key in arrays_a:
        assert np.array_equal(arrays_a[key], arrays_b[key]), key
    assert meta_a["dropout_rng"] == meta_b["dropout_rng"] and meta_a["scheduler"] == meta_b["scheduler"]
    assert [r["val_loss"] for r in meta_a["history"]] == [r["val_loss"] for r in meta_b["history"]]


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(folder, tmp_path, capsys):
    assert run(folder, tmp_path, "--epochs", "1") == 0
    before = (tmp_path / "last.npz").read_bytes()
    status = train.main(["--resume", str(tmp_path), "--epochs", "2", "--lr", "1e30"])
    assert status == 0                                      # --lr is ignored on resume: it keeps 0.005
    # Poison the run: a checkpoint whose learning rate is huge makes the loss overflow.
    saved = checkpoint.load(tmp_path)
    meta, model, normalisation = saved.record, saved.model(), saved.normalisation()
    optimizer = mg.SGD(model.parameters(), lr=1e30)
    scheduler = mg.ReduceLROnPlateau(optimizer)
    model.set_rng_state(meta["dropout_rng"])
    meta["config"]["epochs"] = 3
    checkpoint.save(str(tmp_path / "last.npz"), model, optimizer, scheduler, normalisation, meta)
    good = (tmp_path / "last.npz").read_bytes()
    assert train.main(["--resume", str(tmp_path)]) == 1
    assert "the training loss became" in capsys.readouterr().out
    assert (tmp_path / "last.npz").read_bytes() == good != before


def test_checkpoint_round_trip_evaluate_and_predict(folder, tmp_path, capsys, monkeypatch):
    assert run(folder, tmp_path, "--epochs", "2") == 0
    # The checkpoint records the network's sizes: it loads after the preset has changed.
    monkeypatch.setitem(models.PRESETS, "small", dataclasses.replace(models.PRESETS["small"], hidden=8))
    saved = checkpoint.load(tmp_path / "best.npz")
    arrays, model, normalisation = saved.arrays(), saved.model(), saved.normalisation()
    mean, pca = normalisation.mean, normalisation.pca
    assert all(np.array_equal(value, arrays[f"model.{key}"]) for key, value in model.state_dict().items())
    assert model["fc7"].weight.data.shape != (8, 8)
    side = data.resize_for(models.PRESETS["small"].image_size)
    assert mean.shape == (side, side, 3) and pca.eigenvectors.shape == (3, 3)
    assert evaluate.main([str(tmp_path / "best.npz"), "--data", str(folder / "val"), "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "centre crop: top-1 error" in printed and "10 crops: top-1 error" in printed
    assert evaluate.main([str(tmp_path / "best.npz"), "--data", str(folder), "--workers", "1"]) == 0
    again = capsys.readouterr().out       # the folder train.py was given: its val/, the same figures
    assert f"{folder} is the folder the run trained on: evaluating on its validation images" in again
    assert again.splitlines()[-2:] == printed.splitlines()[-2:]
    shutil.copytree(folder, tmp_path / "copy")                # another folder laid out the same way: its val/
    assert evaluate.main([str(tmp_path / "best.npz"), "--data", str(tmp_path / "copy"), "--workers", "1"]) == 0
    again = capsys.readouterr().out
    assert "copy holds train/ and val/: evaluating on val/" in again and again.splitlines()[-2:] == printed.splitlines()[-2:]
    image = folder / "val" / "vertical" / "0.png"
    assert predict.main([str(image), "--checkpoint", str(tmp_path / "best.npz")]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{image}: vertical")
    # A folder is read as a class folder is: sub-folders in, hidden files out, other files warned about.
    album = tmp_path / "album"
    (album / "2019").mkdir(parents=True)
    (album / ".thumbnails").mkdir()
    for name in ("a.png", "2019/b.png", ".thumbnails/c.png"):
        (album / name).write_bytes(image.read_bytes())
    (album / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (album / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.warns(UserWarning, match="Thumbs.db: not an image file"):
        assert predict.main([str(album), "--checkpoint", str(tmp_path / "best.npz")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines[:2]] == [str(album / "a.png"), str(album / "2019" / "b.png")]
    assert lines[2:] == ["1 file(s) skipped (each warned about above)"]
    with pytest.raises(ValueError, match="does not exist"):
        checkpoint.load(tmp_path / "missing.npz")


def test_evaluate_finds_the_images_a_run_without_val_held_out(folder, tmp_path, capsys):
    assert run(folder / "train", tmp_path, "--epochs", "1") == 0
    assert "holding out 20 of 192 images" in capsys.readouterr().out       # 10 of each class's 96
    assert evaluate.main([str(tmp_path / "last.npz"), "--workers", "1"]) == 0
    assert "20 images of" in capsys.readouterr().out
    # --data naming the folder it trained on: still the 20 held out, never its training images
    assert evaluate.main([str(tmp_path / "last.npz"), "--data", str(folder / "train"), "--workers", "1"]) == 0
    assert "20 images of" in capsys.readouterr().out


def test_a_folder_smaller_than_four_batches_gets_a_smaller_batch(folder, tmp_path, capsys):
    assert train.main(["--data", str(folder / "val"), "--out", str(tmp_path), "--workers", "1", "--epochs", "1"]) == 0
    assert "batch 8: 44 training images are fewer than 4 batches of 64" in capsys.readouterr().out
    meta = checkpoint.load(tmp_path).record
    assert meta["config"]["batch_size"] == 8 and meta["config"]["plan"]["steps_per_epoch"] == 5


def test_refuses_to_overwrite_a_run_and_explains_a_bad_folder(folder, tmp_path):
    assert run(folder, tmp_path, "--epochs", "1") == 0
    with pytest.raises(SystemExit, match="already holds a run"):
        run(folder, tmp_path, "--epochs", "1")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="train.py: ImageFolder: .*empty.*expected the layout"):
        train.main(["--data", str(tmp_path / "empty"), "--out", str(tmp_path / "x")])
    # val/ with a class train/ does not have: refused, naming it; without one of train/'s: a warning.
    shutil.copytree(folder, tmp_path / "other")
    (tmp_path / "other" / "val" / "vertical").rename(tmp_path / "other" / "val" / "diagonal")
    with pytest.raises(SystemExit, match=r"other/val' has class folders \['diagonal'\] that are not among"):
        train.main(["--data", str(tmp_path / "other"), "--out", str(tmp_path / "y"), "--epochs", "1"])
    shutil.rmtree(tmp_path / "other" / "val" / "diagonal")
    with pytest.warns(UserWarning, match=r"other/val: no validation image of class\(es\) \['vertical'\]"):
        assert train.main(["--data", str(tmp_path / "other"), "--out", str(tmp_path / "z"), "--epochs", "1",
                           "--workers", "1"]) == 0


def test_quick_start_command_trains_on_the_embedded_synthetic_set(tmp_path):
    # README's first Quick start command, on a reduced synthetic set (the option only shrinks the set),
    # with the set's folder ($MINIGRAD_DATA, by default ~/.cache/minigrad) in the test's own, under a
    # umask that keeps the files from other users.
    result = subprocess.run([sys.executable, str(EXAMPLES / "train.py"), "--epochs", "1",
                             "--synthetic-per-class", "12"], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "MINIGRAD_DATA": str(tmp_path / "data")},
                            preexec_fn=lambda: os.umask(0o027))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "done in" in result.stdout
    assert f"synthetic set ready in {tmp_path / 'data' / 'synthetic-12'} (" in result.stdout
    assert (tmp_path / "data" / "synthetic-12" / "train" / "star").is_dir()
    [run_dir] = list((tmp_path / "runs").iterdir())
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"][0]["epoch"] == 1
    # Every file and folder the run wrote has the permissions the umask gives, neither more nor less
    # (a temporary file's 0600 must not survive its renaming).
    written = [path for top in (tmp_path / "data", tmp_path / "runs") for path in [top, *top.rglob("*")]]
    assert {"last.npz", "best.npz", "metrics.json", "curves.png", "00000.jpg"} <= {path.name for path in written}
    modes = {path.relative_to(tmp_path): path.stat().st_mode & 0o777 for path in written}
    assert modes == {path.relative_to(tmp_path): 0o750 if path.is_dir() else 0o640 for path in written}


def test_the_synthetic_set_has_one_absolute_place_whatever_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("MINIGRAD_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    places = set()
    for directory in (tmp_path / "here", tmp_path / "there"):
        directory.mkdir()
        monkeypatch.chdir(directory)
        places.add(train.make_config(train.parse_args(["--synthetic-per-class", "12"]))["data"])
    assert places == {str(tmp_path / "cache" / "minigrad" / "synthetic-12")}
    monkeypatch.setenv("MINIGRAD_DATA", str(tmp_path / "sets"))
    assert train.make_config(train.parse_args([]))["data"] == str(tmp_path / "sets" / "synthetic")


def test_resume_never_deletes_a_folder_that_a_checkpoint_names_as_its_synthetic_set(folder, tmp_path):
    """A checkpoint's config can name any folder as its synthetic set: --resume must refuse to generate
    into one that minigrad did not write, and leave every file in it as it was."""
    assert run(folder, tmp_path / "run", "--epochs", "1") == 0
    photos = tmp_path / "photos"
    shutil.copytree(folder, photos)
    before = {path: path.read_bytes() for path in photos.rglob("*") if path.is_file()}
    saved = checkpoint.load(tmp_path / "run")
    record = {**saved.record, "config": {**saved.config, "data": str(photos), "synthetic_per_class": 3}}
    model = saved.model()
    optimizer = mg.SGD(model.parameters(), lr=saved.config["lr"])
    scheduler = mg.ReduceLROnPlateau(optimizer)
    saved.restore(model, optimizer, scheduler)
    checkpoint.save(str(tmp_path / "run" / "last.npz"), model, optimizer, scheduler, saved.normalisation(), record)
    with pytest.raises(SystemExit, match=f"train.py: synthetic set: {photos} is not empty"):
        train.main(["--resume", str(tmp_path / "run"), "--workers", "1"])
    assert {path: path.read_bytes() for path in photos.rglob("*") if path.is_file()} == before


def test_names_that_are_not_utf8_train_and_are_predicted(folder, tmp_path, capsys):
    """A class folder and a file whose names are not valid UTF-8 (a Latin-1 é) train, and predict.py
    prints them with the byte escaped, where printing them raised UnicodeEncodeError."""
    latin1 = tmp_path / "latin1"
    shutil.copytree(folder, latin1)
    for split in ("train", "val"):
        os.rename(os.fsencode(latin1 / split / "vertical"), os.fsencode(latin1 / split) + b"/vertical \xe9")
    image = os.fsencode(latin1 / "val") + b"/vertical \xe9/caf\xe9.png"
    os.rename(os.fsencode(latin1 / "val") + b"/vertical \xe9/0.png", image)
    assert run(latin1, tmp_path / "run", "--epochs", "1") == 0
    assert checkpoint.load(tmp_path / "run").classes == ["horizontal", os.fsdecode(b"vertical \xe9")]
    capsys.readouterr()
    assert predict.main([os.fsdecode(image), "--checkpoint", str(tmp_path / "run")]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{latin1}/val/vertical \\xe9/caf\\xe9.png: ") and "vertical \\xe9 " in line


def test_a_residual_network_trains_evaluates_and_predicts(folder, tmp_path, capsys):
    assert run(folder, tmp_path, "--epochs", "3", "--arch", "resnet") == 0
    printed = capsys.readouterr().out
    assert "small residual network, " in printed
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["config"]["arch"] == "resnet" and metrics["epochs"][-1]["val_top1"] >= 0.9   # chance is 0.5
    assert evaluate.main([str(tmp_path / "best.npz"), "--data", str(folder / "val"), "--workers", "1"]) == 0
    assert "10 crops: top-1 error" in capsys.readouterr().out
    image = folder / "val" / "vertical" / "0.png"
    assert predict.main([str(image), "--checkpoint", str(tmp_path / "best.npz")]) == 0
    assert capsys.readouterr().out.startswith(f"{image}: vertical ")
    with pytest.raises(SystemExit, match="--model-parallel splits AlexNet's towers"):
        train.main(["--data", str(folder), "--arch", "inception", "--model-parallel", "2", "--out", str(tmp_path / "x")])
