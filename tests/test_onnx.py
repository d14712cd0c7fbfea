"""minigrad.onnx against ONNX Runtime (an independent implementation of every operator), the real Caffe
AlexNet graph shipped in the onnx wheel, and onnx's own backend test cases.

Not onnx.reference: its LRN sums over the wrong axis when N != C (SPEC.md).
"""
from pathlib import Path

import numpy as np
import pytest

import minigrad as mg

onnx = pytest.importorskip("onnx", reason="the ONNX tests need the onnx extra: pip install -e '.[onnx,test]'")
ort = pytest.importorskip("onnxruntime", reason="the ONNX tests need onnxruntime: pip install -e '.[test]'")
from minigrad import onnx as mg_onnx  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402

LIGHT_ALEXNET = Path(onnx.__file__).parent / "backend/test/data/light/light_bvlc_alexnet.onnx"


def run_ort(model, x):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL   # the plain operators
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def assert_agree(actual, expected, rtol=1e-5):
    """Relative to the output's scale: float32 sums taken in another order, nothing more."""
    assert actual.shape == expected.shape
    assert np.abs(actual - expected).max() <= rtol * np.abs(expected).max(), np.abs(actual - expected).max()


def alexnet_like(lrn_alpha=1e-4, dropout="classic", lrn_groups=1):
    """AlexNet's layer types at a small size: groups=2, LRN after ReLU (per tower with lrn_groups=2, as
    the presets), overlapping pools rounded down and up, classic dropout before a Linear and before a
    ReLU (the fold and the Mul)."""
    mg.manual_seed(0)
    return mg.Sequential(
        ("conv1", mg.Conv2d(3, 16, 5, stride=2, padding=2)), ("relu1", mg.ReLU()),
        ("norm1", mg.LocalResponseNorm(5, alpha=lrn_alpha, beta=0.75, k=2.0, groups=lrn_groups)),
        ("pool1", mg.MaxPool2d(3, 2, ceil_mode=True)),
        ("conv2", mg.Conv2d(16, 24, 3, padding=1, groups=2)), ("relu2", mg.ReLU()),
        ("norm2", mg.LocalResponseNorm(5, alpha=2e-5, beta=0.75, k=1.0, groups=lrn_groups)),
        ("pool2", mg.MaxPool2d(3, 2, (0, 0, 1, 1))), ("flatten", mg.Flatten()),
        ("fc6", mg.Linear(24 * 3 * 3, 32)), ("relu6", mg.ReLU()), ("drop6", mg.Dropout(0.5, dropout)),
        ("fc7", mg.Linear(32, 32)), ("drop7", mg.Dropout(0.3, dropout)), ("relu7", mg.LeakyReLU(0.1)),
        ("fc8", mg.Linear(32, 10))).eval()


def batchnorm_net():
    mg.manual_seed(1)
    net = mg.Sequential(
        ("conv", mg.Conv2d(3, 6, 3, bias=False)), ("bn2", mg.BatchNorm2d(6)), ("sig", mg.Sigmoid()),
        ("pool", mg.MaxPool2d(2, padding=(1, 0, 0, 1))), ("flat", mg.Flatten()), ("fc", mg.Linear(6 * 4 * 4, 8)),
        ("bn1", mg.BatchNorm1d(8)), ("tanh", mg.Tanh()), ("drop", mg.Dropout(0.4)), ("out", mg.Linear(8, 4)),
        ("softmax", mg.Softmax(axis=1)))
    rng = np.random.default_rng(2)
    for layer in (net["bn2"], net["bn1"]):
        layer.running_mean[...] = rng.standard_normal(layer.num_features)
        layer.running_var[...] = rng.uniform(0.5, 2, layer.num_features)
        layer.weight.data[...] = rng.uniform(0.5, 2, layer.num_features)
        layer.bias.data[...] = rng.standard_normal(layer.num_features)
    return net.eval()


def large_input(shape, seed=0):
    """Values ~20: sum a^2 over 5 channels reaches 1e4-1e5, so alpha 1e-4 changes the output, and
    every wrong convention would show."""
    return (20 * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


# --- export -> ONNX Runtime ---------------------------------------------------------------------------
@pytest.mark.parametrize("dropout, lrn_groups", [("classic", 1), ("inverted", 1), ("classic", 2)])
def test_alexnet_like_export_agrees_with_onnx_runtime(tmp_path, dropout, lrn_groups):
    net = alexnet_like(dropout=dropout, lrn_groups=lrn_groups)
    x = large_input((5, 3, 23, 23))                    # batch 5 != 3 channels
    model = mg_onnx.export(net, tmp_path / "net.onnx", (3, 23, 23))
    assert model.opset_import[0].version == mg_onnx.OPSET and model.ir_version == mg_onnx.IR_VERSION
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert {t.name for t in model.graph.initializer} >= {"conv1.weight", "conv2.weight", "fc8.bias"}
    expected = net.forward(x)
    assert_agree(expected, run_ort(onnx.load(tmp_path / "net.onnx"), x))
    assert_agree(net.forward(x[:2]), run_ort(model, x[:2]))          # the batch axis is symbolic



def test_the_small_alexnet_preset_exports_with_its_towers_lrn(tmp_path):
    """The network train.py trains (LRN per tower, inverted dropout) runs in ONNX Runtime as in minigrad."""
    from minigrad.models import PRESETS, alexnet

    net, size = alexnet("small", 10).eval(), PRESETS["small"].image_size
    x = large_input((3, 3, size, size), seed=4)
    assert_agree(net.forward(x), run_ort(mg_onnx.export(net, tmp_path / "small.onnx", (3, size, size)), x))

def test_the_conventions_matter_at_these_values(tmp_path):
    """The test above could not miss a convention bug: each one changes the output by far more than
    its tolerance (an LRN alpha not multiplied by the window; classic dropout's 1 - p left out)."""
    x = large_input((5, 3, 23, 23))
    reference = alexnet_like().forward(x)
    wrong_alpha = alexnet_like(lrn_alpha=1e-4 / 5).forward(x)
    no_scaling = alexnet_like(dropout="inverted").forward(x)
    window_across_groups = alexnet_like(lrn_groups=2).forward(x)
    for wrong in (wrong_alpha, no_scaling, window_across_groups):
        assert np.abs(wrong - reference).max() > 100 * 1e-5 * np.abs(reference).max()


def test_batchnorm_sigmoid_tanh_softmax_export_agrees_with_onnx_runtime(tmp_path):
    net = batchnorm_net()
    x = large_input((7, 3, 10, 10), seed=3) / 10
    assert_agree(net.forward(x), run_ort(mg_onnx.export(net, tmp_path / "bn.onnx", (3, 10, 10)), x))


@pytest.mark.parametrize("kernel, stride, pads, ceil_mode, size", [
    (3, 2, (0, 0, 0, 0), True, 14), (3, 2, (1, 1, 0, 0), True, 13), (2, 2, (0, 1, 1, 0), True, 7),
    (3, 3, (1, 0, 1, 1), False, 8), (3, 2, (1, 1, 1, 1), True, 6), (2, 3, (1, 0, 0, 1), True, 10)])
def test_maxpool_pads_and_ceil_mode_agree_with_onnx_runtime(tmp_path, kernel, stride, pads, ceil_mode, size):
    pool = mg.Sequential(("pool", mg.MaxPool2d(kernel, stride, pads, ceil_mode=ceil_mode)))
    x = large_input((2, 3, size, size + 1))
    np.testing.assert_array_equal(pool.forward(x), run_ort(mg_onnx.export(pool, tmp_path / "p.onnx", x.shape[1:]), x))


def test_ceil_mode_exports_so_that_shape_inference_agrees_with_onnx_runtime(tmp_path):
    """Over 6 rows with the bottom pad, ceil_mode's last window would start in the padding, which ONNX
    Runtime and minigrad drop and onnx's shape inference keeps (3 rows against 4); over 7 columns it adds
    a window (4, floor mode gives 3). The Linear after it checks that shape inference reaches 3 x 4."""
    mg.manual_seed(3)
    net = mg.Sequential(("pool", mg.MaxPool2d(2, 2, (0, 0, 1, 0), ceil_mode=True)), ("flat", mg.Flatten()),
                        ("fc", mg.Linear(2 * 3 * 4, 3)))
    model = mg_onnx.export(net, tmp_path / "ceil.onnx", (2, 6, 7))
    assert [d.dim_value for d in model.graph.value_info[0].type.tensor_type.shape.dim][1:] == [2, 3, 4]
    x = large_input((3, 2, 6, 7))
    assert_agree(net.forward(x), run_ort(model, x))


@pytest.mark.parametrize("pool", [
    mg.AvgPool2d(3, 2, 1), mg.AvgPool2d(3, 2, 1, count_include_pad=False), mg.AvgPool2d(2, 2, (0, 1, 1, 0)),
    mg.AvgPool2d(3, 2, 1, ceil_mode=True), mg.AvgPool2d(3, 2, (1, 0, 0, 1), ceil_mode=True, count_include_pad=False),
    mg.AvgPool2d(2, 2, ceil_mode=True), mg.GlobalAvgPool2d()], ids=repr)
def test_average_pools_export_agree_with_onnx_runtime_and_come_back(tmp_path, pool):
    """With a Linear after it, so that shape inference must reach the pool's true output size."""
    x = large_input((2, 3, 8, 7))
    mg.manual_seed(0)
    features = int(np.prod(pool.forward(x).shape[1:]))
    net = mg.Sequential(("pool", pool), ("flat", mg.Flatten()), ("fc", mg.Linear(features, 4)))
    model = mg_onnx.export(net, tmp_path / "pool.onnx", (3, 8, 7))
    assert_agree(net.forward(x), run_ort(model, x), rtol=1e-6)
    loaded = mg_onnx.load(model)
    if not getattr(pool, "ceil_mode", False):      # (ceil_mode may come back as the pads that imitate it)
        assert loaded["pool"].describe() == pool.describe()
    assert_agree(loaded.forward(x), net.forward(x), rtol=1e-6)


def test_an_average_pool_that_shape_inference_would_size_wrongly_is_refused(tmp_path):
    """ceil_mode with counted padding, whose last window would start past the input: onnx's shape
    inference keeps that window, ONNX Runtime and minigrad drop it, and no other form is exact."""
    pool = mg.Sequential(("pool", mg.AvgPool2d(2, 2, 1, ceil_mode=True)))
    with pytest.raises(ValueError, match=r"export: layer 0 'pool' is a AvgPool2d\(kernel_size=\(2, 2\).*last window "
                                         r"over a \(5, 5\) input starts past the input.*\(\(3, 3\) against \(4, 4\)\)"):
        mg_onnx.export(pool, tmp_path / "p.onnx", (1, 5, 5))


def test_export_refuses_what_it_cannot_write(tmp_path):
    with pytest.raises(ValueError, match=r"layer 1 'loss' is a SoftmaxCrossEntropy.*supported: Conv2d"):
        mg_onnx.export(mg.Sequential(("fc", mg.Linear(2, 2)), ("loss", mg.SoftmaxCrossEntropy())),
                       tmp_path / "x.onnx", (2,))

    class DoubledReLU(mg.ReLU):                # not what ONNX's Relu computes
        def forward(self, x):
            return 2 * super().forward(x)
    with pytest.raises(ValueError, match=r"layer 0 'relu' is a DoubledReLU.*no ONNX form"):
        mg_onnx.export(mg.Sequential(("relu", DoubledReLU())), tmp_path / "x.onnx", (2,))
    with pytest.raises(ValueError, match=r"export: input_shape \(3,\) does not fit layer 0 'fc': Linear\(2, 2\)"):
        mg_onnx.export(mg.Sequential(("fc", mg.Linear(2, 2))), tmp_path / "x.onnx", (3,))


def test_export_leaves_the_model_as_it_was(tmp_path):
    """Exporting between a forward and its backward (as a notebook might) changes nothing the backward
    needs, nor the dropout streams."""
    net = alexnet_like(dropout="inverted").train()
    x = large_input((5, 3, 23, 23))
    y = net.forward(x)
    state = net.get_rng_state()
    mg_onnx.export(net, tmp_path / "net.onnx", (3, 23, 23))
    assert net.training and repr(net.get_rng_state()) == repr(state)
    net.backward(np.ones_like(y))                            # still the batch of 5 it saved
    with pytest.raises(ValueError, match="input_shape must be one example's shape"):
        mg_onnx.export(mg.Sequential(mg.ReLU()), tmp_path / "x.onnx", (0, 3))
    with pytest.raises(ValueError, match="export: the model has no layers"):
        mg_onnx.export(mg.Sequential(), tmp_path / "x.onnx", (3,))


# --- round trip ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("lrn_groups", [1, 2])
def test_round_trip_gives_identical_arrays(tmp_path, lrn_groups):
    """Weights, names and outputs come back bit for bit, a grouped LRN (written as Split, LRN, Concat)
    as one LocalResponseNorm(groups=2) again. (The LRN alphas here, 1e-3 and 2e-5, survive ONNX's
    float32 attribute times and over the window exactly; 1e-4 comes back one ulp off, as ONNX Runtime
    reads it too.)"""
    net = alexnet_like(lrn_alpha=1e-3, dropout="inverted", lrn_groups=lrn_groups)
    # algorithm="auto": the algorithm the original's Conv2d layers chose, for outputs bit for bit.
    loaded = mg_onnx.load(mg_onnx.export(net, tmp_path / "net.onnx", (3, 23, 23)), algorithm="auto")
    assert loaded.names == [n for n in net.names]
    assert loaded["norm1"].groups == loaded["norm2"].groups == lrn_groups
    state, loaded_state = net.state_dict(), loaded.state_dict()
    assert state.keys() == loaded_state.keys()
    for name in state:
        np.testing.assert_array_equal(loaded_state[name], state[name])
    x = large_input((4, 3, 23, 23))
    np.testing.assert_array_equal(loaded.forward(x), net.forward(x))
    classic = alexnet_like(lrn_alpha=1e-3)          # 1 - p folded into fc7/fc8, or read back from the Mul
    loaded = mg_onnx.load(mg_onnx.export(classic, tmp_path / "classic.onnx", (3, 23, 23)), algorithm="auto")
    assert_agree(loaded.forward(x), classic.forward(x), rtol=1e-6)


def test_loaded_convolutions_compute_as_onnx_runtime_does(tmp_path):
    """A conv3-sized layer (256 -> 384 maps, 3 x 3, 13 x 13), where Conv2d's "auto" would take Winograd:
    loaded with the default im2col, it agrees with ONNX Runtime to float32 summation order."""
    conv = mg.Conv2d(256, 384, 3, padding=1)
    mg.init.he_normal(conv)
    path = tmp_path / "conv3.onnx"
    mg_onnx.export(mg.Sequential(("conv3", conv)), path, (256, 13, 13))
    loaded = mg_onnx.load(path)
    assert loaded["conv3"].algorithm == "im2col" and mg_onnx.load(path, algorithm="auto")["conv3"].algorithm == "auto"
    x = np.random.default_rng(0).standard_normal((2, 256, 13, 13)).astype(np.float32)
    assert_agree(loaded.forward(x), run_ort(onnx.load(path), x), rtol=2e-6)
    with pytest.raises(ValueError, match="algorithm must be 'im2col' or 'auto', got 'winograd'"):
        mg_onnx.load(path, algorithm="winograd")


def test_classic_dropout_without_a_following_linear_layer_comes_back_classic(tmp_path):
    net = mg.Sequential(("fc", mg.Linear(4, 4)), ("drop", mg.Dropout(0.25, "classic")), ("relu", mg.ReLU())).eval()
    loaded = mg_onnx.load(mg_onnx.export(net, tmp_path / "d.onnx", (4,)))
    assert loaded["drop"].mode == "classic" and loaded["drop"].p == 0.25
    x = large_input((3, 4))
    np.testing.assert_array_equal(loaded.forward(x), net.forward(x))


# --- import: the real Caffe AlexNet graph ------------------------------------------------------------
def light_alexnet_with_random_weights(seed=0):
    """light_bvlc_alexnet.onnx computes its weights as ConstantOfShape(0.02); make them initializers
    of seeded random values (std 0.01 weights, as the paper, biases around 0.1)."""
    model = onnx.load(LIGHT_ALEXNET)
    graph = model.graph
    shapes = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    rng = np.random.default_rng(seed)
    weights = []
    for node in graph.node:
        if node.op_type == "ConstantOfShape":
            shape = tuple(int(d) for d in shapes[node.input[0]])
            scale = 0.01 if len(shape) > 1 else 0.1
            weights.append(numpy_helper.from_array((scale * rng.standard_normal(shape) + (0 if len(shape) > 1 else 0.1))
                                                   .astype(np.float32), node.output[0]))
    nodes = [n for n in graph.node if n.op_type != "ConstantOfShape"]
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(weights)
    graph.input.extend(helper.make_tensor_value_info(w.name, onnx.TensorProto.FLOAT, list(w.dims)) for w in weights)
    onnx.checker.check_model(model)
    return model


def test_light_bvlc_alexnet_with_random_weights_gives_onnx_runtimes_outputs():
    model = light_alexnet_with_random_weights()
    assert model.opset_import[0].version == 9
    x = (np.random.default_rng(1).uniform(0, 255, (1, 3, 224, 224)) - 117).astype(np.float32)  # Caffe's scale
    expected = run_ort(model, x)                     # probabilities (the graph ends with Softmax)
    probabilities = mg_onnx.load(model, keep_softmax=True)
    assert_agree(probabilities.forward(x), expected)
    logits = mg_onnx.load(model)                     # the trailing Softmax dropped
    assert [name for name, l in logits.named_layers() if l.parameters()] == [
        "conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
    assert logits["conv2"].groups == 2 and logits["conv5"].groups == 2
    norm = [l for l in logits if isinstance(l, mg.LocalResponseNorm)][0]
    assert norm.k == 1.0 and norm.alpha == pytest.approx(2e-5)          # Caffe's 1e-4 / 5, bias 1
    pool5 = [l for l in logits if isinstance(l, mg.MaxPool2d)][-1]
    assert pool5.padding == (0, 0, 1, 1)
    z = logits.forward(x)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    assert_agree(p / p.sum(axis=1, keepdims=True), expected)
    # Any batch size: the fixed Reshape [1, 9216] became a Flatten.
    batch = np.concatenate([x, x[:, :, ::-1]])
    z2 = logits.forward(batch)
    assert_agree(z2[0:1], z)
    assert_agree(z2[1:2], logits.forward(np.ascontiguousarray(x[:, :, ::-1])))


def test_the_bvlc_graph_at_opset_12_gives_onnx_runtimes_outputs():
    """The zoo publishes the same graph at opsets 7, 8, 9 and 12 (bvlcalexnet-12.onnx, the one the README
    names): onnx's version converter writes what opset 12 changes (Dropout's ratio, Softmax's axis)."""
    from onnx import version_converter

    model = version_converter.convert_version(light_alexnet_with_random_weights(seed=6), 12)
    x = (np.random.default_rng(3).uniform(0, 255, (2, 3, 224, 224)) - 117).astype(np.float32)
    assert_agree(mg_onnx.load(model, keep_softmax=True).forward(x[:1]), run_ort(model, x[:1]))
    assert mg_onnx.load(model).forward(x).shape == (2, 1000)


def test_shapes_come_from_the_layers_where_shape_inference_fails():
    """IR version 3 wants initializers listed as inputs; without them shape inference cannot type the
    weights and gives no shape for pool5's output, which the Reshape's check then takes from the
    layers before it (their output_shape)."""
    model = light_alexnet_with_random_weights(seed=4)
    x = (np.random.default_rng(2).uniform(0, 255, (1, 3, 224, 224)) - 117).astype(np.float32)
    expected = mg_onnx.load(model).forward(x)
    del model.graph.input[1:]
    inferred = onnx.shape_inference.infer_shapes(model).graph
    assert not any(info.name == "r14" and info.type.tensor_type.HasField("shape")       # pool5's output
                   for info in [*inferred.value_info, *inferred.input, *inferred.output])
    np.testing.assert_array_equal(mg_onnx.load(model).forward(x), expected)


def test_light_bvlc_alexnet_as_shipped_loads_its_constant_weights():
    """Its weights are ConstantOfShape nodes: load folds them (every weight 0.02)."""
    model = mg_onnx.load(LIGHT_ALEXNET)
    assert np.all(model["conv1"].weight.data == np.float32(0.02)) and model["fc8"].weight.shape == (1000, 4096)


def test_an_unsupported_node_is_a_clear_error():
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 3, 8, 8])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["r"], name="relu"),
                               helper.make_node("Softplus", ["r"], ["y"], name="softplus")],
                              "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(ValueError, match=r"node 1 'softplus' \(Softplus\): operator not supported; "
                                         r"supported: Conv, MaxPool"):
        mg_onnx.load(model)
    model.graph.node[1].CopyFrom(helper.make_node("ReduceMean", ["r"], ["y"], name="mean", axes=[1]))
    with pytest.raises(ValueError, match=r"node 1 'mean' \(ReduceMean\): ReduceMean over axes \[1\] of a rank-4 "
                                         r"input: only the mean over H and W"):
        mg_onnx.load(model)
    model.graph.node[1].CopyFrom(helper.make_node("AveragePool", ["r"], ["y"], name="avg", kernel_shape=[3, 3],
                                                  pads=[3, 0, 0, 0]))
    with pytest.raises(ValueError, match=r"node 1 'avg' \(AveragePool\): AvgPool2d\(.*padding must be smaller"):
        mg_onnx.load(model)
    model.graph.node[1].CopyFrom(helper.make_node("MaxPool", ["r"], ["y"], name="pool", kernel_shape=[2, 2],
                                            dilations=[2, 2]))
    with pytest.raises(ValueError, match=r"node 1 'pool' \(MaxPool\): dilations \[2, 2\] not supported"):
        mg_onnx.load(model)
    model.graph.node[1].CopyFrom(helper.make_node("LRN", ["r"], ["y"], name="lrn", size=5, gamma=1.0))
    with pytest.raises(ValueError, match=r"'lrn' \(LRN\): attribute\(s\) \['gamma'\] not supported"):
        mg_onnx.load(model)
    model.graph.node[1].CopyFrom(helper.make_node("Relu", ["r"], ["y"], name="custom", domain="com.example"))
    with pytest.raises(ValueError, match=r"'custom' \(Relu\): operator domain 'com.example' not supported"):
        mg_onnx.load(model)                      # not read as the ONNX Relu it is named after
    model.graph.node[1].CopyFrom(helper.make_node("Split", ["r"], ["y"], name="split", axis=0))
    with pytest.raises(ValueError, match=r"'split' \(Split\): Split along axis 0 of an input of shape \[None, 3, 8, 8\]: "
                                         r"only an axis after the batch"):
        mg_onnx.load(model)
    model.graph.initializer.extend([numpy_helper.from_array(np.ones(3, np.int8), "w_int8"),    # an int8 model's
                                    numpy_helper.from_array(np.float32(0.1), "scale")])
    model.graph.node.insert(0, helper.make_node("DequantizeLinear", ["w_int8", "scale"], ["w"], name="weights"))
    with pytest.raises(ValueError, match=r"node 0 'weights' \(DequantizeLinear\): computes from constants only, "
                                         r"with an operator minigrad does not evaluate when loading; it evaluates "
                                         r"Constant"):
        mg_onnx.load(model)
    model.opset_import[0].version = 6
    with pytest.raises(ValueError, match=r"^ONNX model \(graph 'g'\): opset 6 is not supported, only 7 and later$"):
        mg_onnx.load(model)                      # the graph named, not printed


def test_a_download_gone_wrong_is_named(tmp_path):
    """What a user who fetched a model zoo file with the wrong link holds: a Git LFS pointer, or a
    truncated file."""
    pointer = tmp_path / "bvlcalexnet-12.onnx"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 243867106\n")
    with pytest.raises(ValueError, match=r"bvlcalexnet-12.onnx: this is a Git LFS pointer \(\d+ bytes\), not the model"):
        mg_onnx.load(pointer)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(LIGHT_ALEXNET.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"truncated.onnx: not a readable ONNX file \(1000 bytes.*download complete"):
        mg_onnx.load(truncated)
    with pytest.raises(ValueError, match=r"missing.onnx: no such file"):
        mg_onnx.load(tmp_path / "missing.onnx")


def test_a_grouped_lrn_needs_the_same_lrn_on_every_part():
    """Split -> LRN, LRN -> Concat loads as LocalResponseNorm(groups=2) only when it is one: a part
    normalised differently from the other is no grouped LRN, and is read as what it is, a graph of two
    Slices, two LRNs and a Concat, rather than misread."""
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 4, 3, 3])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    nodes = [helper.make_node("Split", ["x"], ["a", "b"], name="split", axis=1),
             helper.make_node("LRN", ["a"], ["la"], size=3, alpha=0.3),
             helper.make_node("LRN", ["b"], ["lb"], size=3, alpha=0.3),
             helper.make_node("Concat", ["la", "lb"], ["y"], name="norm", axis=1)]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 13)])
    loaded = mg_onnx.load(model)
    assert loaded.names == ["norm"] and loaded["norm"].groups == 2
    inputs = large_input((2, 4, 3, 3)) / 10
    assert_agree(loaded.forward(inputs), run_ort(model, inputs))
    model.graph.node[2].CopyFrom(helper.make_node("LRN", ["b"], ["lb"], size=3, alpha=0.2))
    graph = mg_onnx.load(model)
    assert isinstance(graph, mg.Graph) and [type(layer).__name__ for layer in graph.layers] == [
        "Slice", "Slice", "LocalResponseNorm", "LocalResponseNorm", "Concat"]
    assert_agree(graph.forward(inputs), run_ort(model, inputs))
    assert np.abs(graph.forward(inputs) - loaded.forward(inputs)).max() > 1e-3 * np.abs(loaded.forward(inputs)).max()


# --- import: graphs as other exporters write them (onnx.helper; no torch needed) ---------------------
def exporter_style_graph(opset):
    """Conv -> Relu -> Dropout (with its mask) -> Identity -> MaxPool -> x.view(x.size(0), -1) ->
    Gemm (transB=0, alpha, beta) -> MatMul by a Transposed weight -> Add with the bias first, written as
    exporters do: weights in Constant nodes, the flatten's shape computed from Shape/Gather/Unsqueeze/
    Concat, and up to opset 8 (IR 3) the initializers listed as inputs and integers as Cast floats."""
    rng = np.random.default_rng(opset)
    f32 = onnx.TensorProto.FLOAT
    w_conv, b_conv = rng.standard_normal((4, 3, 3, 3)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    gemm_b, gemm_c = rng.standard_normal((64, 5)).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    w2, b2 = rng.standard_normal((6, 5)).astype(np.float32), rng.standard_normal(6).astype(np.float32)
    initializers = [numpy_helper.from_array(a, n) for a, n in [(gemm_b, "gemm_b"), (gemm_c, "gemm_c"), (w2, "w2")]]
    bias = (helper.make_node("Constant", [], ["b_conv"], value_floats=list(b_conv)) if opset >= 12 else
            helper.make_node("Constant", [], ["b_conv"], value=numpy_helper.from_array(b_conv)))
    def int_constant(name, value):          # before opset 9 a Constant is float: Cast it, as PyTorch does
        if opset >= 9:
            return [helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.array(value)))]
        as_float = numpy_helper.from_array(np.array(value, np.float32))
        return [helper.make_node("Constant", [], [f"{name}_f"], value=as_float),
                helper.make_node("Cast", [f"{name}_f"], [name], to=onnx.TensorProto.INT64)]

    unsqueeze = (helper.make_node("Unsqueeze", ["n", "zero_axis"], ["n1"]) if opset >= 13 else
                 helper.make_node("Unsqueeze", ["n"], ["n1"], axes=[0]))
    nodes = [
        helper.make_node("Constant", [], ["w_conv"], value=numpy_helper.from_array(w_conv)), bias,
        helper.make_node("Conv", ["x", "w_conv", "b_conv"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Dropout", ["r"], ["d", "mask"], **({"ratio": 0.3} if opset < 12 else {})),
        helper.make_node("Identity", ["d"], ["i"]),
        helper.make_node("MaxPool", ["i"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Shape", ["p"], ["s"]),
        *int_constant("zero", 0),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        *int_constant("zero_axis", [0]),
        unsqueeze,
        *int_constant("minus_one", [-1]),
        helper.make_node("Concat", ["n1", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["p", "target"], ["f"]),
        helper.make_node("Gemm", ["f", "gemm_b", "gemm_c"], ["g"], alpha=0.5, beta=2.0),
        helper.make_node("Transpose", ["w2"], ["w2_t"], perm=[1, 0]),
        helper.make_node("MatMul", ["g", "w2_t"], ["m"]),
        helper.make_node("Constant", [], ["b2"], value=numpy_helper.from_array(b2)),
        helper.make_node("Add", ["b2", "m"], ["y"]),
    ]
    inputs = [helper.make_tensor_value_info("x", f32, ["N", 3, 8, 8])]
    if opset < 9:
        inputs += [helper.make_tensor_value_info(t.name, f32, list(t.dims)) for t in initializers]
    graph = helper.make_graph(nodes, "exporter_style", inputs, [helper.make_tensor_value_info("y", f32, ["N", 6])],
                              initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=3 if opset < 9 else 7)
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.mark.parametrize("opset", [7, 9, 12, 13, 17, 21])
def test_weights_and_shapes_computed_by_the_graph_load_for_any_batch(opset):
    model = exporter_style_graph(opset)
    net = mg_onnx.load(model)
    assert [type(layer).__name__ for layer in net] == ["Conv2d", "ReLU", "Dropout", "MaxPool2d", "Flatten",
                                                       "Linear", "Linear"]
    for batch in (1, 3, 5):
        x = large_input((batch, 3, 8, 8), seed=batch)
        assert_agree(net.forward(x), run_ort(model, x))


@pytest.mark.parametrize("to", [0, 10**9])
def test_a_cast_to_no_tensor_type_is_refused_naming_the_node(to):
    """The Cast of a shape computed by the graph (opset 7 writes integer constants as floats and Casts
    them) to 0 (UNDEFINED) or to no type at all: found by the fuzzer, a KeyError from onnx before."""
    model = exporter_style_graph(7)
    cast = next(node for node in model.graph.node if node.op_type == "Cast")
    cast.attribute[0].i = to
    with pytest.raises(ValueError, match=rf"\(Cast\): Cast to {to}: not an ONNX tensor type"):
        mg_onnx.load(model)


def single_node_graph(op, inputs, shape, opset=14, initializers=(), **attributes):
    f32 = onnx.TensorProto.FLOAT
    graph = helper.make_graph([helper.make_node(op, ["x"] + list(inputs), ["y"], name="n", **attributes)], "g",
                              [helper.make_tensor_value_info("x", f32, shape)],
                              [helper.make_tensor_value_info("y", f32, None)], list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_a_reshape_loads_only_as_a_flatten_that_keeps_the_batch():
    target = [numpy_helper.from_array(np.array([0, -1], np.int64), "t")]
    x = large_input((3, 2, 3, 4))
    model = single_node_graph("Reshape", ["t"], ["N", 2, 3, 4], initializers=target)
    assert_agree(mg_onnx.load(model).forward(x), run_ort(model, x))          # 0 copies the batch
    with pytest.raises(ValueError, match=r"node 0 'n' \(Reshape\): Reshape from \[None, 2, 3, 4\] to \[0, -1\] "
                                         r"\(allowzero=1\): only a flatten"):
        mg_onnx.load(single_node_graph("Reshape", ["t"], ["N", 2, 3, 4], initializers=target, allowzero=1))
    for wrong in ([-1, -1], [2, -1], [-1, 12], [0, 3, 8]):
        target = [numpy_helper.from_array(np.array(wrong, np.int64), "t")]
        with pytest.raises(ValueError, match=r"\(Reshape\): Reshape from .* only a flatten to \(batch, features\)"):
            mg_onnx.load(single_node_graph("Reshape", ["t"], ["N", 2, 3, 4], initializers=target))
    with pytest.raises(ValueError, match=r"\(Flatten\): axis 2: only flattening everything after the batch"):
        mg_onnx.load(single_node_graph("Flatten", [], ["N", 2, 3, 4], axis=2))
    model = single_node_graph("Flatten", [], ["N", 2, 3, 4], axis=-3)             # axis 1, counted from the end
    assert_agree(mg_onnx.load(model).forward(x), run_ort(model, x))


@pytest.mark.parametrize("attributes", [
    dict(kernel_shape=[1, 1], strides=[1, 1]),                   # torchvision's AdaptiveAvgPool2d((6, 6)) at 224
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1),
    dict(kernel_shape=[2, 3], strides=[2, 1], pads=[0, 1, 1, 0], ceil_mode=1),
    dict(kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1, count_include_pad=1),
    dict(kernel_shape=[3, 3], auto_pad="SAME_UPPER", strides=[2, 2]), dict(kernel_shape=[2, 2], auto_pad="SAME_LOWER"),
    dict(kernel_shape=[2, 2], auto_pad="VALID", strides=[2, 2])])
def test_average_pools_agree_with_onnx_runtime(attributes):
    """Each divisor (count_include_pad 0, ONNX's default, and 1), asymmetric pads, ceil_mode, SAME."""
    model = single_node_graph("AveragePool", [], ["N", 2, 7, 6], **attributes)
    net = mg_onnx.load(model)
    assert [type(layer).__name__ for layer in net] == ["AvgPool2d"]
    x = large_input((3, 2, 7, 6))
    assert_agree(net.forward(x), run_ort(model, x), rtol=1e-6)


@pytest.mark.parametrize("op, opset, attributes, axes_input", [
    ("GlobalAveragePool", 9, {}, None), ("ReduceMean", 13, dict(axes=[2, 3]), None),
    ("ReduceMean", 13, dict(axes=[-1, -2], keepdims=0), None), ("ReduceMean", 18, dict(keepdims=0), [2, 3]),
    ("ReduceMean", 18, {}, [3, 2])])
def test_global_average_pools_load_for_any_input_size(op, opset, attributes, axes_input):
    """x.mean((2, 3)) exports as ReduceMean (keepdims=0 leaves (N, C)); AdaptiveAvgPool2d(1) as
    GlobalAveragePool. The graph's H and W are symbolic: one model, any size."""
    axes = [numpy_helper.from_array(np.array(axes_input, np.int64), "axes")] if axes_input else []
    model = single_node_graph(op, ["axes"] if axes else [], ["N", 3, "H", "W"], opset, axes, **attributes)
    net = mg_onnx.load(model)
    for shape in ((2, 3, 5, 4), (1, 3, 9, 9)):
        x = large_input(shape)
        assert_agree(net.forward(x), run_ort(model, x), rtol=1e-6)


@pytest.mark.parametrize("opset, pads, axes", [(7, [0, 0, 1, 2, 0, 0, 3, 0], None), (11, [0, 0, 0, 1, 0, 0, 2, 0], None),
                                               (18, [1, 0, 2, 3], [2, 3]), (13, [0] * 8, None)])
def test_zero_padding_loads_and_agrees_with_onnx_runtime(tmp_path, opset, pads, axes):
    """Pads an attribute up to opset 10, an input from 11, of the listed axes from 18; none at all (as
    PyTorch writes before an average pool at opset 9) is no layer."""
    if opset < 11:
        model = single_node_graph("Pad", [], ["N", 2, 5, 4], opset, pads=pads)
    else:
        constants = [numpy_helper.from_array(np.array(pads, np.int64), "pads"),
                     numpy_helper.from_array(np.float32(0), "value")]
        constants += [numpy_helper.from_array(np.array(axes, np.int64), "axes")] if axes else []
        model = single_node_graph("Pad", ["pads", "value"] + (["axes"] if axes else []), ["N", 2, 5, 4], opset,
                                  constants)
    net = mg_onnx.load(model)
    assert [type(layer).__name__ for layer in net] == (["ZeroPad2d"] if any(pads) else [])
    x = large_input((3, 2, 5, 4))
    np.testing.assert_array_equal(net.forward(x), run_ort(model, x))
    if any(pads):
        round_trip = mg_onnx.load(mg_onnx.export(net, tmp_path / "pad.onnx", (2, 5, 4)))
        np.testing.assert_array_equal(round_trip.forward(x), net.forward(x))


@pytest.mark.parametrize("attributes, message", [
    (dict(pads=[0, 0, 1, 1, 0, 0, 1, 1], mode="reflect"), r"mode 'reflect'"),
    (dict(pads=[0, 0, 1, 1, 0, 0, 1, 1], value=1.0), r"value 1.0"),
    (dict(pads=[0, 1, 0, 1, 0, 0, 0, 0]), r"pads \[0, 1, 0, 1, 0, 0, 0, 0\]"),      # C and W of NCHW
    (dict(pads=[1, 0, 0, 0, 0, 0, 0, 0]), r"pads \[1, 0, 0, 0, 0, 0, 0, 0\]")])     # the batch
def test_padding_other_than_zeros_around_the_maps_is_refused(attributes, message):
    with pytest.raises(ValueError, match=r"node 0 'n' \(Pad\): .*" + message + r".*only zeros added around the maps"):
        mg_onnx.load(single_node_graph("Pad", [], ["N", 2, 5, 4], 9, **attributes))


def test_a_convolutions_bias_added_after_it_loads_as_its_bias():
    """As the ONNX Model Zoo's mnist-8 (converted from CNTK) writes a CNN: Conv without a bias, SAME
    padding, then Add of a (C, 1, 1) constant; MatMul then Add of a (1, classes) one."""
    f32, rng = onnx.TensorProto.FLOAT, np.random.default_rng(5)
    constants = {"w1": rng.standard_normal((8, 1, 5, 5)) / 5, "b1": rng.standard_normal((8, 1, 1)),
                 "w2": rng.standard_normal((8 * 7 * 7, 10)) / 20, "b2": rng.standard_normal((1, 10)),
                 "shape": np.array([-1, 8 * 7 * 7])}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c"], kernel_shape=[5, 5], auto_pad="SAME_UPPER"),
             helper.make_node("Add", ["c", "b1"], ["cb"]), helper.make_node("Relu", ["cb"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Reshape", ["p", "shape"], ["f"]), helper.make_node("MatMul", ["f", "w2"], ["m"]),
             helper.make_node("Add", ["m", "b2"], ["y"])]
    initializers = [numpy_helper.from_array(v.astype(np.int64 if k == "shape" else np.float32), k)
                    for k, v in constants.items()]
    graph = helper.make_graph(nodes, "mnist_like", [helper.make_tensor_value_info("x", f32, [1, 1, 14, 14])],
                              [helper.make_tensor_value_info("y", f32, None)], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)])
    net = mg_onnx.load(model)
    assert [type(layer).__name__ for layer in net] == ["Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear"]
    assert net[0].bias is not None and net[-1].bias is not None
    x = large_input((1, 1, 14, 14))
    assert_agree(net.forward(x), run_ort(model, x))
    model.graph.initializer[1].CopyFrom(numpy_helper.from_array(np.ones(8, np.float32), "b1"))   # adds along W
    with pytest.raises(ValueError, match=r"node 1 \(Add\): Bias\(\(8,\)\): the shapes \(1, 8, 14, 14\), \(8,\) do "
                                         r"not broadcast"):     # (no bias of the Conv, nor a Bias of its maps)
        mg_onnx.load(model)


def test_same_padding_loads_where_the_input_size_is_known():
    for op, attributes in (("MaxPool", dict(kernel_shape=[3, 2], strides=[2, 2], auto_pad="SAME_UPPER")),
                           ("MaxPool", dict(kernel_shape=[2, 2], auto_pad="SAME_LOWER"))):
        model = single_node_graph(op, [], ["N", 2, 7, 6], **attributes)
        x = large_input((3, 2, 7, 6))
        np.testing.assert_array_equal(mg_onnx.load(model).forward(x), run_ort(model, x))
    weight = [numpy_helper.from_array(large_input((4, 2, 3, 3)) / 20, "w")]
    model = single_node_graph("Conv", ["w"], ["N", 2, 7, 6], initializers=weight, auto_pad="SAME_UPPER")
    x = large_input((3, 2, 7, 6))
    assert_agree(mg_onnx.load(model).forward(x), run_ort(model, x), rtol=1e-6)
    with pytest.raises(ValueError, match=r"node 0 'n' \(MaxPool\): auto_pad SAME_UPPER needs the input's height "
                                         r"and width, which the graph does not fix"):
        mg_onnx.load(single_node_graph("MaxPool", [], ["N", 2, "H", "W"], kernel_shape=[2, 2], auto_pad="SAME_UPPER"))


def test_a_softmax_followed_by_identities_is_the_trailing_softmax():
    f32 = onnx.TensorProto.FLOAT
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"), helper.make_node("Softmax", ["r"], ["p"]),
             helper.make_node("Identity", ["p"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", f32, ["N", 4])],
                              [helper.make_tensor_value_info("y", f32, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    assert mg_onnx.load(model).names == ["relu"]
    x = large_input((3, 4))
    assert_agree(mg_onnx.load(model, keep_softmax=True).forward(x), run_ort(model, x))


def test_a_shape_that_computes_with_the_batch_is_named():
    f32 = onnx.TensorProto.FLOAT
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape"),
             helper.make_node("ConstantOfShape", ["s"], ["zeros"], name="fill"),
             helper.make_node("Add", ["x", "zeros"], ["y"], name="add")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", f32, ["N", 4])],
                              [helper.make_tensor_value_info("y", f32, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(ValueError, match=r"node 1 'fill' \(ConstantOfShape\): cannot be evaluated when loading: "
                                         r".*computes with the batch size"):
        mg_onnx.load(model)


def written_out_lrn_graph(size=5, alpha=1e-4, beta=0.75, k=2.0, pads=None, opset=13):
    """PyTorch's F.local_response_norm as operators: x / (k + alpha * AvgPool3d(pad(x^2)))^beta, the pool
    over `size` channels (pads: where the channel window starts and ends around each channel)."""
    f32 = onnx.TensorProto.FLOAT
    before, after = pads or (size // 2, (size - 1) // 2)
    constants = [numpy_helper.from_array(np.array(v, dtype), n) for v, dtype, n in [
        ([1], np.int64, "axis1"), ([0, 0, before, 0, 0, 0, 0, after, 0, 0], np.int64, "pads"),
        (alpha, np.float32, "alpha"), (k, np.float32, "k"), (beta, np.float32, "beta")]]
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Mul", ["r", "r"], ["sq"], name="square"),
             helper.make_node("Unsqueeze", ["sq", "axis1"], ["sq5"]),
             helper.make_node("Pad", ["sq5", "pads"], ["padded"]),
             helper.make_node("AveragePool", ["padded"], ["avg"], kernel_shape=[size, 1, 1], strides=[1, 1, 1]),
             helper.make_node("Squeeze", ["avg", "axis1"], ["avg4"]),
             helper.make_node("Mul", ["avg4", "alpha"], ["scaled"]),
             helper.make_node("Add", ["scaled", "k"], ["shifted"]),
             helper.make_node("Pow", ["shifted", "beta"], ["denominator"]),
             helper.make_node("Div", ["r", "denominator"], ["y"], name="norm")]
    graph = helper.make_graph(nodes, "lrn", [helper.make_tensor_value_info("x", f32, ["N", 7, 5, 6])],
                              [helper.make_tensor_value_info("y", f32, None)], constants)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_an_lrn_written_out_as_pytorch_exports_it_loads_as_one_layer():
    model = written_out_lrn_graph()
    net = mg_onnx.load(model)
    assert net.names == ["relu", "norm"]
    norm = net["norm"]
    assert (norm.size, norm.beta, norm.k) == (5, 0.75, 2.0) and norm.alpha == pytest.approx(1e-4 / 5)
    x = large_input((3, 7, 5, 6))                          # alpha matters at these values
    assert_agree(net.forward(x), run_ort(model, x))
    assert np.abs(net.forward(x) - x.clip(0)).max() > 0.1 * np.abs(x).max()


@pytest.mark.parametrize("change", [dict(pads=(1, 3)), dict(size=4)])
def test_an_lrn_written_out_that_computes_something_else_is_refused(change):
    """A window that is not centred on its channel (pads 1 and 3 around a window of 5), or an even
    one: the structure is an LRN's, the computation is not minigrad's LocalResponseNorm."""
    with pytest.raises(ValueError, match=r"node 1 'square' \(Mul\)|\(Div\): size 4"):
        mg_onnx.load(written_out_lrn_graph(**change))


def test_a_square_that_starts_no_lrn_is_refused():
    model = written_out_lrn_graph()
    del model.graph.node[-1]                             # no Div by the normaliser: y is the denominator
    model.graph.output[0].name = "denominator"
    with pytest.raises(ValueError, match=r"node 1 'square' \(Mul\): a Mul of 'r' by itself is supported only "
                                         r"as the start of an LRN written out"):
        mg_onnx.load(model)


# --- import: PyTorch's exporters (skipped without torch) ---------------------------------------------
def torch_nets():
    """AlexNet's layer types as a PyTorch user writes them, and torchvision's AlexNet shape."""
    torch = pytest.importorskip("torch", reason="the PyTorch export tests need torch")
    nn = torch.nn

    class View(nn.Module):
        def forward(self, x):
            return x.view(x.size(0), -1)

    class TorchvisionStyle(nn.Module):
        """torchvision.models.alexnet at a small width: AdaptiveAvgPool2d((6, 6)), torch.flatten."""

        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 8, 11, 4, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
                nn.Conv2d(8, 12, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
                nn.Conv2d(12, 16, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))
            self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
            self.classifier = nn.Sequential(nn.Dropout(), nn.Linear(16 * 36, 32), nn.ReLU(inplace=True),
                                            nn.Linear(32, 10))

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    torch.manual_seed(0)
    alexnet_like = nn.Sequential(
        nn.Conv2d(3, 16, 5, stride=2, padding=2), nn.ReLU(), nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0),
        nn.MaxPool2d(3, 2), nn.Conv2d(16, 24, 3, padding=1, groups=2), nn.ReLU(),
        nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0), nn.MaxPool2d(3, 2), View(), nn.Dropout(),
        nn.Linear(24 * 9, 32), nn.ReLU(), nn.Dropout(), nn.Linear(32, 10))
    batchnorm = nn.Sequential(
        nn.Conv2d(3, 6, 3, bias=False), nn.BatchNorm2d(6), nn.LeakyReLU(0.1),
        nn.MaxPool2d(3, 2, padding=1, ceil_mode=True), nn.Flatten(), nn.Linear(6 * 5 * 5, 8), nn.BatchNorm1d(8),
        nn.Sigmoid(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 4), nn.Softmax(dim=1))
    class MeanOverMaps(nn.Module):
        def forward(self, x):
            return x.mean((2, 3))

    def pooled_head(last_pool):
        """The pooling of networks after AlexNet: average pools, a global average before the classifier."""
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.AvgPool2d(3, 2, padding=1, ceil_mode=True, count_include_pad=False),
            nn.Conv2d(8, 16, 3), nn.ReLU(), nn.AvgPool2d(2), last_pool, nn.Flatten(), nn.Linear(16, 10))

    with torch.no_grad():
        for m in batchnorm:
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2), m.weight.uniform_(0.5, 2)
    return torch, {"alexnet_like": (alexnet_like, (3, 31, 31)), "batchnorm": (batchnorm, (3, 10, 10)),
                   "torchvision_style": (TorchvisionStyle(), (3, 224, 224)),
                   "global_average": (pooled_head(nn.AdaptiveAvgPool2d(1)), (3, 20, 18)),
                   "mean": (pooled_head(MeanOverMaps()), (3, 20, 18))}


# The exporters' own warnings (constant folding, tracing F.local_response_norm, the TorchScript
# exporter's deprecation) say nothing about minigrad.
quiet_exporter = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning",
                                            "ignore:Converting a tensor to a Python boolean")


@pytest.mark.parametrize("name, opset, dynamic", [
    ("alexnet_like", 7, True), ("alexnet_like", 9, False), ("alexnet_like", 11, True), ("alexnet_like", 13, True),
    ("alexnet_like", 17, False), ("alexnet_like", 20, True), ("torchvision_style", 9, True),
    ("torchvision_style", 17, False), ("batchnorm", 11, True), ("batchnorm", 17, True), ("global_average", 10, True),
    ("global_average", 17, False), ("mean", 13, True), ("mean", 18, True)])
@quiet_exporter
def test_pytorch_exports_load_and_agree_with_onnx_runtime(tmp_path, name, opset, dynamic):
    """torch.onnx.export (the TorchScript exporter) writes LRN as operators, x.view(x.size(0), -1) as
    Shape/Gather/Unsqueeze/Concat/Reshape (a constant Reshape without dynamic axes), Linear as Gemm,
    AdaptiveAvgPool2d((6, 6)) on 6 x 6 maps as a 1 x 1 AveragePool, ceil_mode from opset 10 on,
    AdaptiveAvgPool2d(1) as GlobalAveragePool, x.mean((2, 3)) as ReduceMean (its axes an input from 18)."""
    torch, nets = torch_nets()
    net, shape = nets[name]
    net.eval()
    export_batch = 2
    dynamic_axes = {"x": {0: "N"}} if dynamic else None
    torch.onnx.export(net, (torch.zeros(export_batch, *shape),), str(tmp_path / "net.onnx"), dynamo=False,
                      opset_version=opset, input_names=["x"], dynamic_axes=dynamic_axes)
    model = onnx.load(tmp_path / "net.onnx")
    loaded = mg_onnx.load(model, keep_softmax=True)
    x = large_input((3 if dynamic else export_batch, *shape), seed=opset)
    assert_agree(loaded.forward(x), run_ort(model, x))
    x = large_input((5, *shape), seed=opset + 1)                     # any batch, against PyTorch itself
    with torch.no_grad():
        assert_agree(loaded.forward(x), net(torch.from_numpy(x)).numpy())


@quiet_exporter
def test_a_pytorch_export_that_onnx_runtime_refuses_loads_and_agrees_with_pytorch(tmp_path):
    """At opset 9 (no ceil_mode) PyTorch imitates AvgPool2d's ceil_mode with trailing pads as large as
    the window, which ONNX Runtime refuses; no window reaches them in full, so load cuts them."""
    torch, nets = torch_nets()
    net, shape = nets["global_average"]
    torch.onnx.export(net.eval(), (torch.zeros(2, *shape),), str(tmp_path / "net.onnx"), dynamo=False,
                      opset_version=9, input_names=["x"], dynamic_axes={"x": {0: "N"}})
    pool = next(layer for layer in mg_onnx.load(tmp_path / "net.onnx") if isinstance(layer, mg.AvgPool2d))
    assert pool.pads == (1, 1, 2, 2) and not pool.ceil_mode
    x = large_input((3, *shape))
    with torch.no_grad():
        assert_agree(mg_onnx.load(tmp_path / "net.onnx").forward(x), net(torch.from_numpy(x)).numpy())


TF2ONNX = Path(__file__).parent / "data" / "tf2onnx"


@pytest.mark.parametrize("name", ["alexnet_like_9", "alexnet_like_17", "global_average_13"])
def test_tensorflow_models_converted_by_tf2onnx_load_and_agree(tmp_path, name):
    """A second exporter (tests/data/tf2onnx/export.py): Keras's NHWC input and flatten as Transposes,
    its ZeroPadding2D as a Pad of the NHWC input, SAME padding at stride 2 as asymmetric Conv pads, Dense
    as MatMul + Add, GlobalAveragePooling2D as GlobalAveragePool + Squeeze. Against ONNX Runtime and
    Keras's own outputs; exported again, against ONNX Runtime."""
    model = onnx.load(TF2ONNX / f"{name}.onnx")
    keras = name.rsplit("_", 1)[0]
    x, keras_y = np.load(TF2ONNX / f"{keras}_x.npy"), np.load(TF2ONNX / f"{keras}_y.npy")
    net = mg_onnx.load(model, keep_softmax=True)
    assert isinstance(net[0 if keras == "global_average" else 1], mg.Transpose)
    y = net.forward(x)
    assert_agree(y, run_ort(model, x))
    assert_agree(y, keras_y)
    again = mg_onnx.export(net, tmp_path / "again.onnx", x.shape[1:])
    assert_agree(run_ort(again, x), y)


@quiet_exporter
def test_pytorchs_dynamo_export_loads_and_agrees_with_onnx_runtime(tmp_path):
    """torch.onnx.export's default exporter (needs onnxscript): opset 18 on, Reshape with allowzero=1."""
    torch, nets = torch_nets()
    pytest.importorskip("onnxscript", reason="PyTorch's dynamo exporter needs onnxscript")
    net, shape = nets["alexnet_like"]
    program = torch.onnx.export(net.eval(), (torch.zeros(2, *shape),), dynamo=True, external_data=False,
                                dynamic_shapes=({0: torch.export.Dim("N", min=1)},))
    model = program.model_proto
    x = large_input((3, *shape), seed=3)
    assert_agree(mg_onnx.load(model).forward(x), run_ort(model, x))


# --- onnx's backend test cases for the supported operators --------------------------------------------
SUPPORTED_OPS = {"Conv", "MaxPool", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "LRN", "Dropout", "Gemm", "MatMul",
                 "BatchNormalization", "Flatten", "Identity", "Softmax", "Reshape", "AveragePool",
                 "GlobalAveragePool", "ReduceMean"}
# The cases of those operators that minigrad refuses, each with the ValueError that names why: other
# dtypes, other ranks, dilations, training mode, batch-dependent shapes and biases, means over other axes.
REFUSED = {
    "test_maxpool_2d_uint8", "test_maxpool_1d_default", "test_maxpool_3d_default", "test_maxpool_2d_dilations",
    "test_maxpool_3d_dilations", "test_maxpool_3d_dilations_use_ref_impl",
    "test_maxpool_3d_dilations_use_ref_impl_large", "test_maxpool_with_argmax_2d_precomputed_pads",
    "test_maxpool_with_argmax_2d_precomputed_strides", "test_averagepool_1d_default", "test_averagepool_3d_default",
    "test_averagepool_2d_dilations", "test_averagepool_3d_dilations_small",
    *(f"test_averagepool_3d_dilations_large_count_include_pad_is_{c}_ceil_mode_is_{m}" for c in (0, 1)
      for m in (True, False)),
    *(f"test_reduce_mean_{axes}keepdims_{data}" for axes in ("do_not_", "", "default_axes_", "negative_axes_")
      for data in ("example", "random")),
    "test_batchnorm_example_training_mode", "test_batchnorm_epsilon_training_mode",
    "test_training_dropout_default", "test_training_dropout_default_mask", "test_training_dropout",
    "test_training_dropout_mask", "test_training_dropout_zero_ratio", "test_training_dropout_zero_ratio_mask",
    "test_dropout_default_mask", "test_dropout_default_mask_ratio", "test_clip_default_int8_inbounds_expanded",
    "test_identity_sequence", "test_identity_opt", "test_gemm_default_matrix_bias", "test_gemm_transposeA",
    "test_gemm_all_attributes", "test_matmul_3d", "test_matmul_4d", "test_matmul_bcast", "test_matmul_1d_3d",
    "test_matmul_4d_1d", "test_matmul_1d_1d", "test_flatten_axis0", "test_flatten_axis2", "test_flatten_axis3",
    "test_flatten_negative_axis4", "test_flatten_negative_axis2", "test_flatten_negative_axis1",
    "test_reshape_reordered_all_dims", "test_reshape_reordered_last_dims",
    "test_reshape_extended_dims", "test_reshape_one_dim", "test_reshape_negative_dim",
    "test_reshape_negative_extended_dims", "test_reshape_zero_dim", "test_reshape_zero_and_negative_dim",
    "test_reshape_allowzero_reordered",
}
# Cases whose expected output is printed to fewer digits than float32 computes (0.1511 for 1.3595 / 9).
TOLERANCE = {"test_averagepool_2d_ceil_last_window_starts_on_pad": 1e-3}


def backend_cases(ops=SUPPORTED_OPS):
    """onnx's backend test cases of nodes of `ops` alone."""
    from onnx.backend.test.case.node import collect_testcases
    with np.errstate(all="ignore"):
        cases = collect_testcases()
    return [c for c in cases if c.model.graph.node and {n.op_type for n in c.model.graph.node} <= ops]


def as_single_input(case):
    """The node tests feed weights as graph inputs; make every input after the first an initializer."""
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    inputs, outputs = case.data_sets[0]
    graph = model.graph
    for info, value in zip(list(graph.input[1:]), inputs[1:]):
        graph.initializer.append(numpy_helper.from_array(np.asarray(value), info.name))
    return model, inputs[0], outputs[0]


def test_onnx_backend_node_cases():
    cases = backend_cases()
    assert len(cases) > 80
    matched, refused = [], []
    for case in cases:
        model, x, expected = as_single_input(case)
        if case.name in REFUSED:
            with pytest.raises(ValueError, match=r"ONNX (node|model)"):
                mg_onnx.load(model).forward(x)
            refused.append(case.name)
            continue
        actual = mg_onnx.load(model, keep_softmax=True).forward(np.asarray(x))
        np.testing.assert_allclose(actual, expected, rtol=TOLERANCE.get(case.name, 1e-5), atol=1e-6, err_msg=case.name)
        matched.append(case.name)
    assert {"test_lrn", "test_lrn_default", "test_maxpool_2d_ceil", "test_maxpool_2d_pads",
            "test_maxpool_2d_precomputed_pads", "test_conv_with_strides_padding", "test_gemm_transposeB",
            "test_gemm_alpha", "test_gemm_beta", "test_batchnorm_epsilon", "test_dropout_default_ratio",
            "test_maxpool_2d_ceil_output_size_reduce_by_one", "test_conv_with_strides_and_asymmetric_padding",
            "test_softmax_axis_0", "test_flatten_negative_axis3", "test_reshape_reduced_dims",
            "test_averagepool_2d_ceil", "test_averagepool_2d_pads_count_include_pad", "test_averagepool_2d_same_lower",
            "test_globalaveragepool", "test_maxpool_2d_same_upper", "test_conv_with_autopad_same"} <= set(matched)
