"""minigrad.onnx on graphs that fork and join: the nine ImageNet models of onnx's backend suite, forward
against ONNX Runtime; graphs exported, ONNX Runtime-exact and round-trip exact; and the graphs that cannot
be, refused with their node and shapes named. The families PyTorch's exporters write are in
test_onnx_torch_exports.py (they need torch; these tests do not)."""
import collections

import numpy as np
import pytest

import minigrad as mg

onnx = pytest.importorskip("onnx", reason="the ONNX tests need the onnx extra: pip install -e '.[onnx,test]'")
ort = pytest.importorskip("onnxruntime", reason="the ONNX tests need onnxruntime: pip install -e '.[test]'")
from minigrad import onnx as mg_onnx  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402
from light_models import NAMES, imagenet_batch, light_model  # noqa: E402
from test_onnx import assert_agree, run_ort  # noqa: E402

F32 = onnx.TensorProto.FLOAT


# --- the nine ImageNet models of onnx's backend suite ------------------------------------------------
# What each is read as: the layers that make its forks and joins (the chains: none).
JOINS = {
    "bvlc_alexnet": {}, "zfnet512": {}, "vgg19": {},
    "inception_v1": {"Concat": 9},
    "inception_v2": {"Concat": 10, "Scale": 69, "Bias": 69},           # BatchNorm, then Mul and Add by constants
    "resnet50": {"Add": 16},                                           # Sum of the shortcut and the block
    "squeezenet": {"Concat": 8},
    "densenet121": {"Concat": 58, "Scale": 121, "Bias": 121},
    "shufflenet": {"Add": 13, "Concat": 3, "ChannelShuffle": 16},      # Reshape, Transpose, Reshape
}


@pytest.mark.parametrize("name", NAMES)
def test_the_light_models_load_and_agree_with_onnx_runtime(name):
    """Each at batch 1 (the graphs fix it), its trailing Softmax left out so that the logits are compared:
    to 1e-4 of the output's scale (float32 sums in another order give about 1e-6)."""
    model = light_model(name)
    net = mg_onnx.load(model)
    kinds = collections.Counter(type(layer).__name__ for _, layer in net.named_layers())
    assert {kind: kinds[kind] for kind in JOINS[name]} == JOINS[name]
    assert isinstance(net, mg.Graph if JOINS[name] else mg.Sequential)
    x = imagenet_batch()
    assert_agree(net.forward(x), run_ort(model, x), rtol=1e-4)


# --- graphs exported ---------------------------------------------------------------------------------------
def every_join(seed=0):
    """A graph of every layer that forks, joins, cuts or moves channels, and of the layers that graphs
    write as operators (Scale and Bias as Mul and Add by a constant, ReLU6 as Clip), random weights."""
    x = mg.Input((None, 8, 6, 5))
    h = mg.Bias((8, 1, 1))(mg.Conv2d(8, 8, 3, padding=1, bias=False)(x, name="conv"), name="shift")
    h = mg.ReLU6()(h, name="relu6")
    left, right = mg.Slice(0, 3)(h, name="left"), mg.Slice(3, 8)(h, name="right")
    right = mg.Scale((5, 1, 1))(mg.Conv2d(5, 5, 3, padding=1, groups=5)(right, name="depthwise"), name="scale")
    h = mg.ChannelShuffle(2)(mg.Concat()(left, right, name="cat"), name="shuffle")
    h = mg.Add()(h, x, mg.Clip(-1.0, None)(h, name="floor"), name="sum")
    h = mg.Multiply()(h, mg.Sigmoid()(h, name="gate"), mg.Scale(())(h, name="half"), name="gated")
    h = mg.Dropout(0.25, "classic")(mg.Identity()(mg.Add()(h, h, name="twice"), name="same"), name="drop")
    y = mg.Linear(8 * 6 * 5, 10)(mg.Flatten()(h, name="flat"), name="fc")
    graph = mg.Graph(x, [y, mg.Clip(None, 40.0)(h, name="ceiling")])
    for conv in (graph["conv"], graph["depthwise"]):
        conv.algorithm = "im2col"             # (what ONNX Runtime computes, to float32 summation order)
    rng = np.random.default_rng(seed)
    for p in graph.parameters():
        p.data[...] = rng.uniform(0.5, 1.5, p.data.shape) * rng.choice([-1, 1], p.data.shape) / np.sqrt(p.data.size ** 0.5)
    return graph.eval()


def exported(graph, tmp_path, shape):
    model = mg_onnx.export(graph, tmp_path / "graph.onnx", shape)
    assert model == onnx.load(tmp_path / "graph.onnx")
    return model


def test_a_graph_of_every_join_exports_exactly_and_comes_back(tmp_path):
    """Two outputs, a value read three times (the graph adds their gradients), classic dropout before a
    Flatten (written as Dropout and its Mul): ONNX Runtime computes what minigrad does, and the graph
    loaded back is the same graph, its outputs bit for bit."""
    graph = every_join()
    model = exported(graph, tmp_path, (8, 6, 5))
    assert [o.name for o in model.graph.output] == ["fc", "ceiling"]
    assert collections.Counter(n.op_type for n in model.graph.node) == {
        "Conv": 2, "Add": 2, "Clip": 3, "Slice": 2, "Mul": 5, "Concat": 1, "Reshape": 2, "Transpose": 1, "Sum": 1,
        "Sigmoid": 1, "Identity": 1, "Dropout": 1, "Flatten": 1, "Gemm": 1}
    x = large_input((3, 8, 6, 5))
    y, ceiling = graph.forward(x)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected_y, expected_ceiling = session.run(None, {"input": x})
    assert_agree(y, expected_y)
    assert_agree(ceiling, expected_ceiling)
    back = mg_onnx.load(model)
    names = [name for name, _ in graph.named_layers() if name not in ("shift", "same")]   # into conv's bias; none
    names.insert(names.index("gated"), "gated_product1")         # (ONNX's Mul takes two: a product of three, two)
    assert isinstance(back, mg.Graph) and [name for name, _ in back.named_layers()] == names
    assert back["drop"].mode == "classic" and back["conv"].bias is not None
    for ours, theirs in zip(back.forward(x), (y, ceiling)):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("build", ["small_resnet", "small_inception"])
def test_the_graph_models_export_exactly_and_come_back(tmp_path, build):
    """minigrad.models' residual and inception networks (Graphs nested in a Sequential)."""
    from minigrad import models

    net = getattr(models, build)(10, seed=3).eval()
    for layer in [layer for _, layer in net.named_leaves() if isinstance(layer, mg.BatchNorm2d)]:
        layer.running_var[...] = np.random.default_rng(1).uniform(0.5, 2, layer.num_features)
    model = exported(net, tmp_path, (3, 32, 30))
    x = large_input((2, 3, 32, 30)) / 20
    y = net.forward(x)
    assert_agree(y, run_ort(model, x))
    back = mg_onnx.load(model, algorithm="auto")
    assert isinstance(back, mg.Graph) and sorted(back.state_dict()) == sorted(
        key.replace(".", "_", key.count(".") - 1) for key in net.state_dict())
    np.testing.assert_array_equal(back.forward(x), y)


@pytest.mark.parametrize("name", ["densenet121", "shufflenet"])
def test_loaded_light_models_export_again_and_agree_with_onnx_runtime(tmp_path, name):
    net = mg_onnx.load(light_model(name))
    model = exported(net, tmp_path, (3, 224, 224))
    x = imagenet_batch(2)
    assert_agree(run_ort(model, x), net.forward(x))


def test_export_refuses_a_graph_of_two_inputs(tmp_path):
    graph = mg.Graph.from_nodes([("sum", mg.Add(), ["a", "b"])], inputs=["a", "b"])
    with pytest.raises(ValueError, match="export: the model reads 2 inputs; an export has one"):
        mg_onnx.export(graph, tmp_path / "x.onnx", (4,))


def large_input(shape, seed=0):
    return (4 * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


# --- graphs that cannot be: refused at load, the node and the shapes named ----------------------------
def fork(*nodes, shape=("N", 4, 6, 6), output="y"):
    """x -> Conv (4 -> 4, 3x3, same size) "a" and MaxPool 2x2 "p", then `nodes`."""
    weight = numpy_helper.from_array(np.ones((4, 4, 3, 3), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["a"], name="conv", pads=[1, 1, 1, 1]),
                               helper.make_node("MaxPool", ["x"], ["p"], name="pool", kernel_shape=[2, 2],
                                                strides=[2, 2]), *nodes], "g",
                              [helper.make_tensor_value_info("x", F32, list(shape))],
                              [helper.make_tensor_value_info(output, F32, None)], [weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("nodes, message", [
    ([helper.make_node("Concat", ["a", "p"], ["y"], name="cat", axis=1)],
     r"node 2 'cat' \(Concat\): Concat\(axis=1\): shapes \(None, 4, 6, 6\) and \(None, 4, 3, 3\) differ on an axis "
     r"other than 1"),
    ([helper.make_node("Conv", ["x", "w2"], ["b"], name="wide", pads=[1, 1, 1, 1]),
      helper.make_node("Add", ["a", "b"], ["y"], name="sum")],
     r"node 3 'sum' \(Add\): Add: the shapes \(None, 4, 6, 6\), \(None, 5, 6, 6\) do not broadcast"),
    ([helper.make_node("Relu", ["b"], ["y"], name="early"), helper.make_node("Relu", ["a"], ["b"], name="late")],
     r"node 2 'early' \(Relu\): reads 'b', which node 3 makes later: the nodes are not in the topological order"),
    ([helper.make_node("Add", ["a", "c"], ["b"], name="first"), helper.make_node("Relu", ["b"], ["c"], name="loop"),
      helper.make_node("Relu", ["c"], ["y"])],
     r"node 2 'first' \(Add\): reads 'c', which node 3 makes later: .* or they form a cycle"),
    ([helper.make_node("Add", ["a", "missing"], ["y"], name="sum")],
     r"node 2 'sum' \(Add\): reads 'missing', which no node makes and which is not an input of the graph"),
    ([helper.make_node("Relu", ["a"], ["b"]), helper.make_node("Sigmoid", ["p"], ["b"], name="again"),
      helper.make_node("Relu", ["b"], ["y"])],
     r"node 3 'again' \(Sigmoid\): its output 'b' is made by an earlier node"),
    ([helper.make_node("Dropout", ["a"], ["d", "mask"]), helper.make_node("Add", ["d", "mask"], ["y"], name="sum")],
     r"node 3 'sum' \(Add\): reads 'mask', an output of node 2 \(Dropout\) that minigrad does not compute"),
    ([helper.make_node("Split", ["a"], ["s1", "s2"], name="split", axis=1, split=[3, 2]),
      helper.make_node("Add", ["s1", "s2"], ["y"])],
     r"node 2 'split' \(Split\): sizes \[3, 2\] for 2 outputs along axis 1 of size 4"),
])
def test_graphs_that_cannot_be_are_refused_naming_the_node_and_the_shapes(nodes, message):
    model = fork(*nodes)
    model.graph.initializer.append(numpy_helper.from_array(np.ones((5, 4, 3, 3), np.float32), "w2"))
    with pytest.raises(ValueError, match=r"^ONNX model \(graph 'g'\): " + message):
        mg_onnx.load(model)


@pytest.mark.parametrize("opset", [13, 18])
def test_a_split_of_a_free_axis_is_refused_naming_it(opset):
    """Equal parts of a height the graph leaves free (found by the fuzzer: a TypeError before)."""
    model = fork(helper.make_node("Split", ["a"], ["s1", "s2"], name="halves", axis=2,
                                  **({"num_outputs": 2} if opset >= 18 else {})),
                 helper.make_node("Add", ["s1", "s2"], ["y"]), shape=("N", 4, "H", 6))
    model.opset_import[0].version = opset
    with pytest.raises(ValueError, match=r"node 2 'halves' \(Split\): Split along axis 2 of an input of shape "
                                         r"\[None, 4, None, 6\]: only an axis of a known size is supported"):
        mg_onnx.load(model)


def test_an_output_the_graph_does_not_compute_is_refused():
    model = fork(helper.make_node("Add", ["a", "a"], ["y"]), output="w")
    with pytest.raises(ValueError, match=r"expected the graph's outputs to be computed from its input, got \['w'\]"):
        mg_onnx.load(model)


def test_a_branch_no_output_needs_is_left_out_and_a_chain_is_a_sequential():
    """x -> conv -> y, with a pool of x read by nothing: a chain (Sequential); a value read twice by one
    node (Add(a, a)) sends back both gradients."""
    chain = mg_onnx.load(fork(helper.make_node("Relu", ["a"], ["y"], name="relu")))
    assert isinstance(chain, mg.Sequential) and chain.names == ["conv", "relu"]
    doubled = mg_onnx.load(fork(helper.make_node("Add", ["a", "a"], ["y"], name="twice")))
    assert isinstance(doubled, mg.Graph) and [name for name, _ in doubled.named_layers()] == ["conv", "twice"]
    x = large_input((2, 4, 6, 6))
    np.testing.assert_array_equal(doubled.forward(x), 2 * chain["conv"].forward(x))
    assert (result := mg.gradcheck(doubled.astype(np.float64), x.astype(np.float64))).passed, result


@pytest.mark.parametrize("opset", [9, 13])
def test_a_slice_of_several_axes_is_one_slice_layer_per_axis(opset):
    """A crop of channels and width in one node, as tf2onnx writes a strided slice: Slice layers in
    turn, agreeing with ONNX Runtime, their gradients checked. Starts and ends from the end and past it."""
    starts, ends, axes = [1, -5], [3, 100], [1, 3]
    limits = [numpy_helper.from_array(np.array(v, np.int64), name) for v, name in
              ((starts, "starts"), (ends, "ends"), (axes, "axes"))]
    slicer = (helper.make_node("Slice", ["a"], ["y"], name="crop", starts=starts, ends=ends, axes=axes) if opset < 10
              else helper.make_node("Slice", ["a", "starts", "ends", "axes"], ["y"], name="crop"))
    model = fork(slicer)
    model.opset_import[0].version = opset
    model.graph.initializer.extend(limits if opset >= 10 else [])
    chain = mg_onnx.load(model)
    assert [type(layer).__name__ for layer in chain] == ["Conv2d", "Slice", "Slice"]
    x = large_input((2, 4, 6, 6))
    y = chain.forward(x)
    assert y.shape == (2, 2, 6, 5)
    assert_agree(y, run_ort(model, x))
    assert (result := mg.gradcheck(chain.astype(np.float64), x.astype(np.float64))).passed, result


def test_a_slice_naming_an_axis_twice_is_refused():
    model = fork(helper.make_node("Slice", ["a"], ["y"], name="crop", starts=[1, 2], ends=[3, 5], axes=[2, -2]))
    model.opset_import[0].version = 9
    with pytest.raises(ValueError, match=r"node 2 'crop' \(Slice\): starts \[1, 2\], ends \[3, 5\], axes \[2, -2\].* "
                                         r"each axis once"):
        mg_onnx.load(model)


# --- onnx's backend test cases of the operators graphs add ---------------------------------------------
JOIN_OPS = {"Add", "Sum", "Mul", "Concat", "Split", "Slice", "Clip", "Identity"}
# The node tests give every operand as a graph input; minigrad reads the first as the input and the others
# as constants. Refused, each with the ValueError that names why: other dtypes, constants that differ
# along the batch axis (the first), the batch axis split or sliced, joins of constants, an empty slice.
JOIN_REFUSED = {
    *(f"test_{op}_{kind}" for op in ("add", "mul") for kind in ("int8", "int16", "uint8", "uint16", "uint32", "uint64")),
    *(f"test_clip_default_int8_{kind}" for kind in ("min", "max", "inbounds")),
    "test_add", "test_mul", "test_mul_example", "test_sum_example", "test_sum_two_inputs",
    *(f"test_concat_{rank}d_axis_{axis}" for rank, axes in ((1, ("0", "negative_1")), (2, ("0", "1", "negative_1",
                                                                                       "negative_2")),
                                                            (3, ("0", "1", "2", "negative_1", "negative_2",
                                                                 "negative_3"))) for axis in axes),
    *(f"test_split_{kind}_opset{opset}" for opset in (13, 18) for kind in (
        "equal_parts_1d", "variable_parts_1d", "equal_parts_default_axis", "variable_parts_default_axis",
        "zero_size_splits")), "test_split_1d_uneven_split_opset18",
    "test_slice", "test_slice_default_axes", "test_slice_default_steps", "test_slice_neg_steps",
    "test_slice_negative_axes", "test_slice_start_out_of_bounds", "test_clip_min_greater_than_max",
}


def test_onnx_backend_cases_of_the_join_operators():
    from test_onnx import as_single_input, backend_cases

    matched = []
    for case in backend_cases(JOIN_OPS):
        if not {n.op_type for n in case.model.graph.node} & (JOIN_OPS - {"Identity"}):
            continue
        model, x, _ = as_single_input(case)
        if case.name in JOIN_REFUSED:
            with pytest.raises(ValueError, match=r"^ONNX model \(graph '\w+'\): "):
                mg_onnx.load(model).forward(np.asarray(x))
            continue
        actual = mg_onnx.load(model).forward(np.asarray(x))
        expected = case.data_sets[0][1]
        actual = actual if isinstance(actual, tuple) else (actual,)
        assert len(actual) == len(expected), case.name
        for ours, theirs in zip(actual, expected):
            np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7, err_msg=case.name)
        matched.append(case.name)
    assert {"test_add_bcast", "test_mul_bcast", "test_sum_one_input", "test_clip", "test_clip_default_min",
            "test_clip_default_max", "test_clip_splitbounds", "test_slice_neg", "test_slice_end_out_of_bounds",
            "test_split_equal_parts_2d", "test_split_equal_parts_2d_opset13", "test_split_variable_parts_2d_opset13",
            "test_split_variable_parts_2d_opset18", "test_split_2d_uneven_split_opset18"} <= set(matched)


def joins_at(opset):
    """A graph of the joins as an exporter writes them at `opset`: Clip's bounds as attributes up to 10,
    inputs from 11; Split's sizes as an attribute up to 12, an input from 13; Unsqueeze's axes likewise."""
    rng = np.random.default_rng(opset)
    constants = {"w": rng.standard_normal((6, 6, 3, 3)) / 5, "scale": rng.uniform(0.5, 2, 2),
                 "shift": rng.standard_normal((1, 6, 1, 1)), "low": np.array(-0.5), "high": np.array(1.5)}
    initializers = [numpy_helper.from_array(value.astype(np.float32), name) for name, value in constants.items()]
    initializers += [numpy_helper.from_array(np.array(value, np.int64), name) for name, value in
                     (("sizes", [2, 4]), ("axes", [1, 2]))]
    clip = (helper.make_node("Clip", ["a"], ["clipped"], min=-0.5, max=1.5) if opset < 11 else
            helper.make_node("Clip", ["a", "low", "high"], ["clipped"]))
    split = (helper.make_node("Split", ["clipped"], ["s1", "s2"], axis=1, split=[2, 4]) if opset < 13 else
             helper.make_node("Split", ["clipped", "sizes"], ["s1", "s2"], axis=1))
    unsqueeze = (helper.make_node("Unsqueeze", ["scale"], ["scale3"], axes=[1, 2]) if opset < 13 else
                 helper.make_node("Unsqueeze", ["scale", "axes"], ["scale3"]))
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], pads=[1, 1, 1, 1]), clip, split, unsqueeze,
             helper.make_node("Mul", ["scale3", "s1"], ["scaled"]), helper.make_node("Relu", ["s2"], ["r"]),
             helper.make_node("Concat", ["r", "scaled"], ["c"], axis=-3), helper.make_node("Sum", ["c", "x", "a"], ["t"]),
             helper.make_node("Add", ["t", "shift"], ["y"])]
    graph = helper.make_graph(nodes, "joins", [helper.make_tensor_value_info("x", F32, ["N", 6, 5, 4])],
                              [helper.make_tensor_value_info("y", F32, ["N", 6, 5, 4])], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("opset", [7, 9, 11, 13, 17, 18, onnx.defs.onnx_opset_version()])
def test_the_joins_load_from_opset_7_to_the_newest(opset):
    model = joins_at(opset)
    onnx.checker.check_model(model)
    graph = mg_onnx.load(model)
    assert [type(layer).__name__ for layer in graph.layers] == [
        "Conv2d", "Clip", "Slice", "Slice", "Scale", "ReLU", "Concat", "Add", "Bias"]
    x = large_input((3, 6, 5, 4))
    assert_agree(graph.forward(x), run_ort(model, x))
