"""predict.py / evaluate.py --onnx: the BVLC AlexNet of the ONNX Model Zoo with its own preprocessing.
The zoo's file (233 MB) cannot be downloaded here: the same graph with seeded random weights stands in
(light_bvlc_alexnet.onnx from the onnx wheel, see test_onnx.py)."""
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "alexnet"
sys.path.insert(0, str(EXAMPLES))
onnx = pytest.importorskip("onnx", reason="needs the onnx extra: pip install -e '.[onnx,test]'")
pytest.importorskip("onnxruntime", reason="needs onnxruntime: pip install -e '.[test]'")
import evaluate  # noqa: E402
import predict  # noqa: E402
from test_onnx import light_alexnet_with_random_weights, run_ort  # noqa: E402

from minigrad import data, imagenet  # noqa: E402
from minigrad.models import bvlc  # noqa: E402


@pytest.fixture(scope="module")
def zoo_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("zoo") / "bvlcalexnet-random.onnx"
    onnx.save(light_alexnet_with_random_weights(seed=5), path)
    return path


def photo(path, seed, size=(300, 260)):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (*size, 3)).astype(np.uint8)).save(path)


def test_the_class_names_are_the_1000_synsets_in_order():
    names = imagenet.class_names()
    assert len(names) == 1000 and names[0] == "tench" and names[1] == "goldfish" and names[-1] == "toilet tissue"


def test_preprocessing_is_bgr_0_to_255_minus_the_mean_pixel_centre_224():
    images = np.random.default_rng(0).integers(0, 256, (2, 256, 256, 3)).astype(np.uint8)
    x = bvlc.Preprocess()(images)
    centre = images[:, 16:240, 16:240].astype(np.float32)
    expected = np.stack([centre[..., 2] - 104, centre[..., 1] - 117, centre[..., 0] - 123], axis=1)
    np.testing.assert_array_equal(x, expected)
    assert bvlc.Preprocess(ten_crop=True)(images).shape == (2, 10, 3, 224, 224)


def test_predict_gives_onnx_runtimes_top5_names_for_files_and_folders(zoo_file, tmp_path, capsys):
    photo(tmp_path / "a.jpg", 1)
    (tmp_path / "album").mkdir()
    photo(tmp_path / "album" / "b.png", 2)
    (tmp_path / "album" / "notes.txt").write_text("not an image")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.warns(UserWarning) as caught:
        status = predict.main(["--onnx", str(zoo_file), str(tmp_path / "a.jpg"), str(tmp_path / "album"),
                               str(tmp_path / "broken.jpg")])
    lines = capsys.readouterr().out.strip().splitlines()
    assert status == 1 and len(lines) == 3 and lines[2] == "2 file(s) skipped (each warned about above)"
    skips = [str(w.message) for w in caught if "skipping" in str(w.message)]
    assert len(skips) == 2 and "notes.txt: not an image" in skips[0] and "broken.jpg: unreadable image" in skips[1]
    # ONNX Runtime on the same ten crops, probabilities averaged (its graph ends with Softmax).
    crops = bvlc.Preprocess(ten_crop=True)(data.load_image(tmp_path / "a.jpg", bvlc.RESIZE)[None])[0]
    probs = np.mean([run_ort(onnx.load(zoo_file), crop[None])[0] for crop in crops], axis=0)
    names = imagenet.class_names()
    expected = ", ".join(f"{names[i]} {probs[i]:.1%}" for i in np.argsort(-probs)[:5])
    assert lines[0] == f"{tmp_path / 'a.jpg'}: {expected}"
    assert lines[1].startswith(f"{tmp_path / 'album' / 'b.png'}: ") and lines[1].count("%") == 5


def test_evaluate_on_a_folder_of_imagenet_classes(zoo_file, tmp_path, capsys):
    for seed, name in enumerate(["tench", "great_white_shark"]):
        (tmp_path / name).mkdir()
        for i in range(2):
            photo(tmp_path / name / f"{i}.jpg", 10 * seed + i)
    assert evaluate.main(["--onnx", str(zoo_file), "--data", str(tmp_path), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "4 images" in out and "centre crop: top-1 error" in out and "10 crops: top-1 error" in out
    (tmp_path / "not_a_class").mkdir()
    with pytest.raises(SystemExit, match=r"evaluate.py: --onnx: the class folders must be ImageNet class names "
                                         r".*\['not_a_class'\]"):
        evaluate.main(["--onnx", str(zoo_file), "--data", str(tmp_path)])
