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

import minigrad as mg  # noqa: E402
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


# --- --arch onnx: the network of the ONNX file itself, a graph ---------------------------------------------
@pytest.fixture(scope="module")
def pytorch_graph(tmp_path_factory):
    """A SqueezeNet (fire modules: forks and joins; its classifier a 1x1 convolution before the global
    average pool) exported by PyTorch at 32 x 32, BatchNorm-free; and the network."""
    torch = pytest.importorskip("torch", reason="the PyTorch export needs torch")
    from torch_families import SqueezeNet

    torch.manual_seed(5)
    net = SqueezeNet().eval()
    path = tmp_path_factory.mktemp("squeezenet") / "squeezenet.onnx"
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(2, 3, 32, 32),), str(path), dynamo=False, opset_version=17,
                          input_names=["x"], dynamic_axes={"x": {0: "N"}})
    return path, net


def test_arch_onnx_fine_tunes_a_loaded_graph_and_resumes_it(tmp_path, pytorch_graph, capsys):
    """train.py --arch onnx --init FILE.onnx: the graph itself, its 1x1 classifier new for the 2 classes,
    the first convolution frozen, the others loaded at a tenth of the rate; the run resumes from its
    checkpoint (which records the file and its hash) and refuses the file once it has changed."""
    path = tmp_path / "squeezenet.onnx"
    path.write_bytes(pytorch_graph[0].read_bytes())
    loaded = mg_onnx.load(path)
    weighted = [name for name, layer in loaded.named_layers() if layer.parameters()]
    first, classifier = weighted[0], weighted[-1]
    folder = tmp_path / "bars"
    write_split(folder / "train", 16, 0)
    write_split(folder / "val", 4, 1)
    out = tmp_path / "run"
    common = ["--data", str(folder), "--out", str(out), "--workers", "1", "--batch-size", "16", "--lr", "0.01"]
    assert train.main(common + ["--epochs", "1", "--arch", "onnx", "--init", str(path), "--freeze", first,
                                "--init-lr-mult", "0.1"]) == 0
    saved = checkpoint.load(str(out))
    config, arrays = saved.config, saved.arrays()
    assert config["arch"] == "onnx" and config["onnx"]["file"] == str(path) and config["image_size"] == 32
    assert config["init_loaded"] == weighted[:-1]
    np.testing.assert_array_equal(arrays[f"model.{first}.weight"], loaded[first].weight.data)       # frozen
    second = weighted[1]
    assert 0 < np.abs(arrays[f"model.{second}.weight"] - loaded[second].weight.data).max()          # loaded, trained
    assert arrays[f"model.{classifier}.weight"].shape == (2, loaded[classifier].in_channels, 1, 1)  # new classes
    assert isinstance(saved.model(), mg.Graph) and saved.model().output_shape((None, 3, 32, 32)) == (None, 2)
    assert train.main(["--resume", str(out), "--epochs", "2", "--workers", "1"]) == 0
    np.testing.assert_array_equal(checkpoint.load(str(out)).arrays()[f"model.{first}.weight"], loaded[first].weight.data)
    with open(path, "ab") as file:
        file.write(b"\0")
    capsys.readouterr()
    with pytest.raises(SystemExit, match=r"--resume: checkpoint .*: its config does not build a network: the ONNX "
                                         r"file its network is read from, .*squeezenet.onnx, has changed since"):
        train.main(["--resume", str(out), "--epochs", "3", "--workers", "1"])


def test_the_fine_tuned_graphs_gradients_are_pytorchs(pytorch_graph):
    """The network --arch onnx trains (the file's graph, its classifier new), in float64: its gradients with
    respect to the input and to every parameter are PyTorch autograd's through the same network with the
    same new classifier."""
    torch = pytest.importorskip("torch", reason="the comparison needs torch")
    from test_onnx_torch_exports import assert_same_gradients, same_parameters
    from minigrad.models import imported

    path, net = pytorch_graph
    record = imported.describe(path)
    assert record["image_size"] == 32
    graph = imported.imported_classifier(record, 3, seed=1)
    theirs = type(net)().double().eval()
    theirs.load_state_dict(net.state_dict())
    new = graph["classifier_1"]
    theirs.classifier[1] = torch.nn.Conv2d(new.in_channels, 3, 1).double()
    with torch.no_grad():
        theirs.classifier[1].weight.copy_(torch.from_numpy(new.weight.data.astype(np.float64)))
        theirs.classifier[1].bias.copy_(torch.from_numpy(new.bias.data.astype(np.float64)))
    graph.astype(np.float64)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32))
    y = assert_same_gradients(graph, theirs, same_parameters(graph, theirs), x, np.ones((2, 3)))
    assert y.shape == (2, 3)


def test_arch_onnx_refuses_what_it_cannot_fine_tune(tmp_path):
    import onnx
    from onnx import helper

    with pytest.raises(SystemExit, match="--arch onnx fine-tunes the network of an ONNX file: give it with --init"):
        train.parse_args(["--arch", "onnx"])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 3, 8, 6])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)])
    onnx.save(helper.make_model(graph), tmp_path / "relu.onnx")
    with pytest.raises(SystemExit, match=r"relu.onnx: its input has the shape \[None, 3, 8, 6\]; training takes "
                                         r"square RGB images"):
        train.main(["--arch", "onnx", "--init", str(tmp_path / "relu.onnx"), "--out", str(tmp_path / "run")])
