"""Learning from real images small enough for CI: scikit-learn's UCI handwritten digits (scans, 8 x 8,
shipped inside its wheel: nothing is downloaded), written as JPEG files into class folders and trained
through train.py's main with --no-flip. Chance is 10%."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "alexnet"))
import train  # noqa: E402


def digit_folder(root, train_per_class=40, val_per_class=12):
    datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn (the test extra) ships the digits")
    digits = datasets.load_digits()
    rng = np.random.default_rng(0)
    for label in range(10):
        picks = rng.permutation(np.flatnonzero(digits.target == label))[:train_per_class + val_per_class]
        for rank, index in enumerate(picks):
            split = "train" if rank < train_per_class else "val"
            (root / split / str(label)).mkdir(parents=True, exist_ok=True)
            scan = Image.fromarray((digits.images[index] * (255 / 16)).astype(np.uint8), "L")
            scan.resize((16, 16), Image.Resampling.BILINEAR).save(root / split / str(label) / f"{index}.jpg")


def test_the_small_preset_learns_real_digit_scans_far_above_chance(tmp_path):
    digit_folder(tmp_path / "digits")
    out = tmp_path / "run"
    assert train.main(["--data", str(tmp_path / "digits"), "--out", str(out), "--no-flip", "--epochs", "12",
                       "--batch-size", "32", "--workers", "1"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["flip"] is False and metrics["skipped"] == 0
    assert metrics["best"]["val_top1"] >= 0.6, metrics["epochs"]      # chance: 0.1
