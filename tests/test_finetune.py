"""train.py --init: fine-tuning from an ONNX file (or a checkpoint), with frozen and slower layers."""
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "alexnet"
sys.path.insert(0, str(EXAMPLES))
pytest.importorskip("onnx", reason="fine-tuning from ONNX needs the onnx extra: pip install -e '.[onnx]'")
import train  # noqa: E402
from test_train import write_split  # noqa: E402

from minigrad import checkpoint, finetune  # noqa: E402
from minigrad import onnx as mg_onnx  # noqa: E402
from minigrad.models import PRESETS, alexnet  # noqa: E402


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A 'pretrained' small AlexNet with 7 classes, as an ONNX file."""
    root = tmp_path_factory.mktemp("pretrained")
    net = alexnet("small", 7, seed=123).eval()
    size = PRESETS["small"].image_size
    mg_onnx.export(net, root / "pretrained.onnx", (3, size, size))
    return root / "pretrained.onnx", net.state_dict()


def test_init_loads_matching_layers_freezes_and_resumes(tmp_path, pretrained):
    path, weights = pretrained
    folder = tmp_path / "bars"
    write_split(folder / "train", 16, 0)
    write_split(folder / "val", 4, 1)
    out = tmp_path / "run"
    common = ["--data", str(folder), "--out", str(out), "--workers", "1", "--batch-size", "16", "--lr", "0.005"]
    assert train.main(common + ["--epochs", "1", "--init", str(path), "--freeze", "conv1",
                                "--init-lr-mult", "0.1"]) == 0
    saved = checkpoint.load(str(out))
    meta, arrays = saved.record, saved.arrays()
    assert meta["config"]["init_loaded"] == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"]
    np.testing.assert_array_equal(arrays["model.conv1.weight"], weights["conv1.weight"])      # frozen
    moved = np.abs(arrays["model.conv2.weight"] - weights["conv2.weight"]).max()
    assert 0 < moved < 0.1 * np.abs(weights["conv2.weight"]).max()                           # loaded, trained
    assert arrays["model.fc8.weight"].shape[0] == 2                                            # the new classes
    assert train.main(["--resume", str(out), "--epochs", "2", "--workers", "1"]) == 0          # groups rebuilt
    arrays = checkpoint.load(str(out)).arrays()
    np.testing.assert_array_equal(arrays["model.conv1.weight"], weights["conv1.weight"])


def test_parameter_groups_follow_the_config():
    net = alexnet("small", 3)
    groups = finetune.parameter_groups(net, {"freeze": ["conv1"], "init_loaded": ["conv1", "conv2"],
                                             "init_lr_mult": 0.1})
    assert [g["lr_mult"] for g in groups] == [0.0, 0.1, 1, 1, 1, 1, 1, 1]
    assert [p for g in groups for p in g["params"]] == net.parameters()        # velocities line up
    with pytest.raises(ValueError, match=r"--freeze: no layer \['conv9'\]"):
        finetune.parameter_groups(net, {"freeze": ["conv9"]})


def test_init_refuses_a_missing_file(tmp_path):
    with pytest.raises(ValueError, match="--init: .* does not exist"):
        finetune.start_from(alexnet("small", 3), str(tmp_path / "nothing.onnx"))


def test_a_caffe_models_conv1_is_turned_from_bgr_to_rgb(tmp_path):
    """The BVLC graph (producer onnx-caffe2) loads into the paper preset, every layer but fc8, with
    conv1's input channels reversed."""
    import onnx
    from test_onnx import light_alexnet_with_random_weights

    path = tmp_path / "bvlc.onnx"
    onnx.save(light_alexnet_with_random_weights(seed=3), path)
    net = alexnet("paper", 5, image_size=224)
    assert finetune.start_from(net, str(path)) == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"]
    bgr = mg_onnx.load(path)["conv1"].weight.data
    np.testing.assert_array_equal(net["conv1"].weight.data, bgr[:, ::-1])
