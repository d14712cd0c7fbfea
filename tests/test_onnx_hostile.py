"""minigrad.onnx.load on hostile files (issue 25, items 3 and 4): what a small file can make load
allocate and compute, what load checks before the first forward, files that are no model, and external
data behind a symbolic link. The fuzzing harness over load is tests/test_fuzz.py."""
import configparser
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the ONNX tests need the onnx extra: pip install -e '.[onnx,test]'")
from minigrad import onnx as mg_onnx  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402
from test_onnx import written_out_lrn_graph  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
F32 = onnx.TensorProto.FLOAT
LIGHT_ALEXNET = Path(onnx.__file__).parent / "backend/test/data/light/light_bvlc_alexnet.onnx"


def graph_model(nodes, input_shape, initializers=(), opset=13, output=None):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F32, input_shape)],
                              [helper.make_tensor_value_info(output or nodes[-1].output[0], F32, None)],
                              list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


LOAD_WITH_LITTLE_MEMORY = """
import sys
import onnx
from fuzz.engine import limit_memory
from minigrad import onnx as mg_onnx
limit_memory(int(sys.argv[2]))
try:
    print("loaded", len(mg_onnx.load(sys.argv[1])))
except ValueError as error:
    print("ValueError:", error)
"""


def load_with_little_memory(path, extra_bytes=1 << 30):
    """load(path) in a fresh Python whose memory may grow by extra_bytes past its imports (RLIMIT_AS):
    what it printed ("loaded <layers>" or the ValueError); a MemoryError fails the test."""
    result = subprocess.run([sys.executable, "-c", LOAD_WITH_LITTLE_MEMORY, str(path), str(extra_bytes)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


# --- what a small file can make load allocate ---------------------------------------------------------
def constant_of_shape_model(used):
    """A ConstantOfShape of 2**31 float32 zeros (8 GiB), in about a hundred bytes."""
    shape = numpy_helper.from_array(np.array([2**31], np.int64), "s")
    nodes = [helper.make_node("ConstantOfShape", ["s"], ["z"], name="fill"), helper.make_node("Relu", ["x"], ["y"])]
    if used:
        nodes.append(helper.make_node("Add", ["y", "z"], ["out"], name="add"))
    return graph_model(nodes, ["N", 4], [shape], output="out" if used else "y")


def test_a_constant_that_nothing_uses_is_never_evaluated(tmp_path):
    path = tmp_path / "unused.onnx"
    onnx.save(constant_of_shape_model(used=False), path)
    assert path.stat().st_size < 120
    assert load_with_little_memory(path) == "loaded 1"


def test_a_constant_larger_than_the_budget_is_refused_naming_its_node_and_size(tmp_path):
    path = tmp_path / "used.onnx"
    onnx.save(constant_of_shape_model(used=True), path)
    assert load_with_little_memory(path).startswith(
        f"ValueError: ONNX model {path}: node 0 'fill' (ConstantOfShape): its output of shape (2147483648,) and "
        f"type float32 takes 8 GiB, more than load makes from a graph (max_bytes=1073741824")


def test_constants_that_double_past_the_budget_are_refused():
    """40 Concats of a value with itself: 2**40 values from one; each evaluated value counts."""
    nodes = [helper.make_node("Constant", [], ["c0"], value=numpy_helper.from_array(np.ones(1, np.float32)))]
    nodes += [helper.make_node("Concat", [f"c{k}", f"c{k}"], [f"c{k + 1}"], name=f"twice{k}", axis=0)
              for k in range(40)]
    nodes += [helper.make_node("Add", ["x", "c40"], ["y"])]
    with pytest.raises(ValueError, match=r"node \d+ 'twice\d+' \(Concat\): its output of shape \(\d+,\) .* more than "
                                         r"load makes from a graph"):
        mg_onnx.load(graph_model(nodes, ["N", 4]))


def test_the_budget_counts_every_evaluated_constant():
    """light_bvlc_alexnet computes its weights with ConstantOfShape, 244 MB in all: within the default,
    and refused at the weight that passes a smaller max_bytes."""
    assert mg_onnx.load(LIGHT_ALEXNET)["fc6"].weight.shape == (4096, 9216)
    with pytest.raises(ValueError, match=r"light_bvlc_alexnet.onnx: node \d+ .*\(ConstantOfShape\): its output of "
                                         r"shape \(4096, 9216\) .*max_bytes=100000000.* made already"):
        mg_onnx.load(LIGHT_ALEXNET, max_bytes=100_000_000)


def pads_model(op, pads, opset=13):
    weight = [numpy_helper.from_array(np.ones((2, 3, 3, 3), np.float32), "w")] if op == "Conv" else []
    if op == "Pad":
        weight = [numpy_helper.from_array(np.array(pads, np.int64), "pads")]
        node = helper.make_node("Pad", ["x", "pads"], ["y"], name="pad")
    else:
        node = helper.make_node(op, ["x"] + [w.name for w in weight], ["y"], name="n", kernel_shape=[3, 3], pads=pads)
    return graph_model([node], ["N", 3, "H", "W"], weight, opset)


@pytest.mark.parametrize("op, message", [
    ("Conv", r"node 0 'n' \(Conv\): pads \[1000000, 0, 0, 0\] for a kernel of \(3, 3\): only pads smaller than the "
             r"kernel"),
    ("MaxPool", r"node 0 'n' \(MaxPool\): MaxPool2d\(.*padding must be smaller than the window")],
    ids=["Conv", "MaxPool"])
def test_pads_of_a_million_are_refused_at_load(op, message):
    """Before, they loaded, and the first forward asked for terabytes."""
    with pytest.raises(ValueError, match=message):
        mg_onnx.load(pads_model(op, [10**6, 0, 0, 0]))


def test_zero_padding_of_a_million_is_refused_with_its_size():
    with pytest.raises(ValueError, match=r"node 0 'pad' \(Pad\): its output for one example of shape "
                                         r"\(3, 2000000, 2000000\) and type float32 takes 43.7 TiB"):
        mg_onnx.load(pads_model("Pad", [0, 0, 10**6, 10**6, 0, 0, 10**6, 10**6]))


def lrn_broadcast_at_the_division(model):
    """The written-out LRN's normaliser reshaped to (-1, 1, 1, 1, 1) before the Div: x / that broadcasts
    to (N*C*H*W, N, C, H, W), 150 GiB at (64, 56, 56)."""
    graph, div = model.graph, model.graph.node[-1]
    graph.initializer.append(numpy_helper.from_array(np.array([-1, 1, 1, 1, 1], np.int64), "column"))
    graph.node.insert(len(graph.node) - 1, helper.make_node("Reshape", [div.input[1], "column"], ["column_of"]))
    div.input[1] = "column_of"
    for dim, size in zip(graph.input[0].type.tensor_type.shape.dim[1:], (64, 56, 56)):
        dim.dim_value = size
    return model


@pytest.mark.parametrize("change, message", [
    (lambda model: written_out_lrn_graph(pads=(10**8, 10**8)), r"the output of its Pad of shape \(1, 1, 200000007, "
                                                                r"5, 6\) .* takes 22.4 GiB"),
    (lambda model: lrn_broadcast_at_the_division(model), r"the output of its Div of shape \(200704, 1, 64, 56, 56\) "
                                                         r".* takes 150 GiB")], ids=["pads", "broadcast"])
def test_the_check_of_an_lrn_written_out_makes_nothing_larger_than_the_budget(change, message):
    """load runs the nodes of a written-out LRN (onnx.reference) to check them: what they would make counts
    against the budget before it is made."""
    with pytest.raises(ValueError, match=r"node 1 'square' \(Mul\): the LRN written out could not be checked: "
                                         + message):
        mg_onnx.load(change(written_out_lrn_graph()))


def test_an_lrn_written_out_with_other_operators_is_refused():
    """Only the operators PyTorch's exporter writes an LRN with are run to check one (an Expand could
    make anything)."""
    model = written_out_lrn_graph()
    graph = model.graph
    graph.initializer.append(numpy_helper.from_array(np.array([1], np.int64), "ones"))
    graph.node.insert(2, helper.make_node("Expand", ["sq", "ones"], ["sq_expanded"]))
    graph.node[3].input[0] = "sq_expanded"
    with pytest.raises(ValueError, match=r"node 1 'square' \(Mul\): a Mul of 'r' by itself is supported only as the "
                                         r"start of an LRN written out"):
        mg_onnx.load(model)


# --- what load checks before the first forward --------------------------------------------------------
def conv_model(input_channels, weight_shape, group=1, strides=(1, 1)):
    weight = numpy_helper.from_array(np.ones(weight_shape, np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", group=group, strides=list(strides))
    return graph_model([node], ["N", input_channels, 8, 8], [weight])


def test_weight_channels_that_do_not_fit_the_input_are_refused_at_load():
    with pytest.raises(ValueError, match=r"node 0 'conv' \(Conv\): Conv2d\(3, 8, .*\): expected 3 input channels, "
                                         r"got input of shape \(None, 4, 8, 8\)"):
        mg_onnx.load(conv_model(4, (8, 3, 3, 3)))
    with pytest.raises(ValueError, match=r"node 0 'conv' \(Conv\): Conv2d\(6, 8\): groups=3 must divide in_channels=6 "
                                         r"and out_channels=8"):
        mg_onnx.load(conv_model(6, (8, 2, 3, 3), group=3))
    with pytest.raises(ValueError, match=r"node 0 'conv' \(Conv\): Conv2d\(0, 8\): in_channels must be a positive int"):
        mg_onnx.load(conv_model(6, (8, 2, 3, 3), group=0))
    assert mg_onnx.load(conv_model(6, (9, 2, 3, 3), group=3))["conv"].groups == 3          # what does fit


def test_sizes_the_graph_leaves_free_are_no_misfit():
    """Channels and features that the graph does not fix (every input size free) cannot be checked at
    load; the layers check them at the forward."""
    weight = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    statistics = [numpy_helper.from_array(np.ones(4, np.float32), name) for name in ("s", "b", "m", "v")]
    matrix = numpy_helper.from_array(np.ones((4, 2), np.float32), "fc")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"]),
             helper.make_node("LRN", ["n"], ["l"], size=3), helper.make_node("GlobalAveragePool", ["l"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]), helper.make_node("MatMul", ["f", "fc"], ["y"])]
    net = mg_onnx.load(graph_model(nodes, ["N", "C", "H", "W"], [weight, *statistics, matrix]))
    assert net.forward(np.ones((2, 3, 5, 4), np.float32)).shape == (2, 2)
    with pytest.raises(ValueError, match=r"Conv2d\(3, 4, .*expected 3 input channels, got input of shape \(2, 5, 5, 4"):
        net.forward(np.ones((2, 5, 5, 4), np.float32))


def test_strides_of_zero_or_beyond_any_size_are_refused_at_load():
    """A MaxPool of stride 0 was a ZeroDivisionError."""
    pool = helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 2], strides=[0, 0])
    with pytest.raises(ValueError, match=r"node 0 'pool' \(MaxPool\): strides \[0, 0\]: expected values from 1 to "):
        mg_onnx.load(graph_model([pool], ["N", 3, 8, 8]))
    with pytest.raises(ValueError, match=r"node 0 'conv' \(Conv\): strides \[0, 1\]: expected values from 1 to "):
        mg_onnx.load(conv_model(3, (8, 3, 3, 3), strides=(0, 1)))
    with pytest.raises(ValueError, match=r"\(Conv\): strides \[4611686018427387904, 1\]: expected values from 1 to "
                                         r"2\*\*31 - 1"):            # (numpy's strided views overflowed at the forward)
        mg_onnx.load(conv_model(3, (8, 3, 3, 3), strides=(2**62, 1)))


# --- files that are no model, or no model minigrad can read -------------------------------------------
def test_an_opset_newer_than_the_onnx_package_knows_is_refused():
    newest = onnx.defs.onnx_opset_version()
    model = graph_model([helper.make_node("Relu", ["x"], ["y"])], ["N", 4], opset=newest + 1)
    with pytest.raises(ValueError, match=rf"^ONNX model \(graph 'g'\): opset {newest + 1} is newer than the onnx "
                                         rf"package \({onnx.__version__}\) knows, {newest}"):
        mg_onnx.load(model)


def test_an_empty_graph_is_refused():
    graph = helper.make_graph([], "g", [helper.make_tensor_value_info("x", F32, ["N", 4])],
                              [helper.make_tensor_value_info("x", F32, ["N", 4])])
    with pytest.raises(ValueError, match=r"^ONNX model \(graph 'g'\): the graph has no nodes$"):
        mg_onnx.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))


def test_an_input_without_a_batch_axis_is_refused():
    model = graph_model([helper.make_node("Relu", ["x"], ["y"])], [])
    with pytest.raises(ValueError, match=r"^ONNX model \(graph 'g'\): its input 'x' has the shape \[\]; expected a "
                                         r"batch axis"):
        mg_onnx.load(model)


def test_an_empty_file_and_a_file_without_a_graph_are_named(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.onnx: the file is empty \(0 bytes\)"):
        mg_onnx.load(empty)
    no_graph = tmp_path / "no_graph.onnx"
    no_graph.write_bytes(onnx.ModelProto(ir_version=8).SerializeToString())      # protobuf reads it, ONNX has none
    with pytest.raises(ValueError, match=r"no_graph.onnx: no graph in its 2 bytes; not an ONNX model"):
        mg_onnx.load(no_graph)


# --- external data behind a symbolic link -------------------------------------------------------------
def external_data_model(folder, location):
    """A model whose weight is read from `location` (relative to folder) as external data."""
    weight = numpy_helper.from_array(np.zeros((4, 4), np.float32), "w")
    weight.ClearField("raw_data")
    weight.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "64")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    path = folder / "model.onnx"
    path.write_bytes(graph_model([helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")], ["N", 4],
                                 [weight]).SerializeToString())
    return path


def test_external_data_in_the_models_folder_loads(tmp_path):
    (tmp_path / "weights.bin").write_bytes(np.eye(4, dtype=np.float32).tobytes())
    net = mg_onnx.load(external_data_model(tmp_path, "weights.bin"))
    np.testing.assert_array_equal(net["fc"].weight.data, np.eye(4))


@pytest.mark.parametrize("link", ["file", "folder"])
def test_external_data_behind_a_symbolic_link_is_refused(tmp_path, link):
    """A model's folder with a link to a file (or a folder) elsewhere: onnx before 1.21 read it, so that
    any local file could become the model's weights."""
    secret = tmp_path / "elsewhere" / "secret.bin"
    secret.parent.mkdir()
    secret.write_bytes(np.arange(16, dtype=np.float32).tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    if link == "file":
        (folder / "weights.bin").symlink_to(secret)
    else:
        (folder / "data").symlink_to(secret.parent, target_is_directory=True)
    path = external_data_model(folder, "weights.bin" if link == "file" else "data/secret.bin")
    with pytest.raises(ValueError, match=rf"^ONNX model {path}: its external data cannot be read \(ValidationError: "
                                         rf".*(symbolic link|outside)"):
        mg_onnx.load(path)


def test_the_onnx_versions_that_follow_symbolic_links_are_not_accepted(monkeypatch):
    """setup.cfg requires onnx 1.21 (the first release that refuses a linked external-data file; 1.14.1 to
    1.20.1 follow it, tested), and load refuses an older onnx where one is installed anyway."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    extras = config["options.extras_require"]
    for extra in ("onnx", "test"):
        assert "onnx>=1.21" in extras[extra].split(), extra
    monkeypatch.setattr(onnx, "__version__", "1.20.1")
    with pytest.raises(RuntimeError, match=r"needs onnx 1.21 or later, found 1.20.1, which reads a model's external "
                                           r"data through symbolic links"):
        mg_onnx.load(LIGHT_ALEXNET)


# --- load is linear in the graph's size ---------------------------------------------------------------
def relu_chain(length):
    names = ["x"] + [f"t{k}" for k in range(length)]
    return graph_model([helper.make_node("Relu", [a], [b]) for a, b in zip(names, names[1:])], ["N", 4])


def calls_made_by_load(model):
    """The Python functions (and the built-in ones they call) that load(model) calls: a count that
    grows with the work done, the same on every run, whatever the machine's speed."""
    calls = 0

    def count(frame, event, arg):
        nonlocal calls
        calls += event in ("call", "c_call")

    sys.setprofile(count)
    try:
        mg_onnx.load(model)
    finally:
        sys.setprofile(None)
    return calls


def test_load_does_work_linear_in_the_number_of_nodes():
    """The Python functions load calls grow as the chain; the scans that ran in C for every node (a slice
    of the nodes after it, a list of the names so far: 80 s for a 20,000-node chain, before) are out of
    this count's sight: test_container.py counts the names Sequential compares, and 20,000 nodes of one
    name here must not make names of 20,000 characters."""
    calls_made_by_load(relu_chain(10))                           # (imports on first use)
    small, large = calls_made_by_load(relu_chain(1000)), calls_made_by_load(relu_chain(2000))
    assert large < 2.2 * small, (small, large)
    assert len(mg_onnx.load(relu_chain(20000))) == 20000
    names = ["x"] + [f"t{k}" for k in range(20000)]              # 20,000 nodes of one name: names stay short
    same_name = graph_model([helper.make_node("Relu", [a], [b], name="relu") for a, b in zip(names, names[1:])],
                            ["N", 4])
    assert mg_onnx.load(same_name).names[-1] == "relu_20000"


def shortcut_ladder(length):
    """x -> x + relu(x) -> ..., `length` times: a graph that forks and joins at every step."""
    nodes, x = [], "x"
    for k in range(length):
        nodes += [helper.make_node("Relu", [x], [f"r{k}"]), helper.make_node("Add", [x, f"r{k}"], [f"s{k}"])]
        x = f"s{k}"
    return graph_model(nodes, ["N", 4])


def test_load_of_a_graph_does_work_linear_in_its_size():
    """As for a chain: the Python functions load calls grow as the graph (the readers of each tensor, the
    layers the outputs need, the graph's checks, each counted once)."""
    calls_made_by_load(shortcut_ladder(10))
    small, large = calls_made_by_load(shortcut_ladder(500)), calls_made_by_load(shortcut_ladder(1000))
    assert large < 2.2 * small, (small, large)
    assert len(mg_onnx.load(shortcut_ladder(10000))) == 20000
    np.testing.assert_array_equal(mg_onnx.load(shortcut_ladder(30)).forward(np.ones((1, 4), np.float32)), 2.0**30)


def test_a_constant_behind_a_long_chain_of_nodes_is_evaluated_without_recursion():
    names = [f"c{k}" for k in range(20001)]
    nodes = [helper.make_node("Constant", [], [names[0]], value=numpy_helper.from_array(np.float32(0.5)))]
    nodes += [helper.make_node("Identity", [a], [b]) for a, b in zip(names, names[1:])]
    nodes += [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Mul", ["r", names[-1]], ["y"])]
    net = mg_onnx.load(graph_model(nodes, ["N", 4]))          # a Mul by 0.5: a Scale
    assert [type(layer).__name__ for layer in net] == ["ReLU", "Scale"] and net[1].weight.data == np.float32(0.5)


def test_each_tensor_is_made_once():
    """A node that makes a tensor again (here a constant reading itself) could not be evaluated."""
    nodes = [helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.float32(1))),
             helper.make_node("Identity", ["c"], ["c"], name="again"), helper.make_node("Add", ["x", "c"], ["y"])]
    with pytest.raises(ValueError, match=r"node 1 'again' \(Identity\): its output 'c' is made by an earlier node"):
        mg_onnx.load(graph_model(nodes, ["N", 4]))


def test_a_node_that_breaks_its_operators_definition_is_refused_naming_it():
    """ONNX's definition of each operator is checked before a converter reads the node: the count of
    inputs and outputs, attributes of the declared types, required attributes."""
    for node, message in [
            (helper.make_node("MatMul", ["r"], ["y"], name="n"), r"1 inputs; MatMul at opset 13 has 2 to 2"),
            (helper.make_node("LRN", ["r"], ["y"], name="n"), r"needs the attribute\(s\) \['size'\]"),
            (helper.make_node("Flatten", ["r"], ["y"], name="n", axis=1.5), r"attribute 'axis' is FLOAT; Flatten "
                                                                               r"takes INT"),
            # (AveragePool has dilations from opset 19 on; the converter reads them at any opset)
            (helper.make_node("AveragePool", ["r"], ["y"], name="n", kernel_shape=[2, 2], dilations=1.5),
             r"attribute 'dilations' is FLOAT; AveragePool takes INTS")]:
        with pytest.raises(ValueError, match=r"node 1 'n' \(\w+\): " + message):
            mg_onnx.load(graph_model([helper.make_node("Relu", ["x"], ["r"]), node], ["N", 4, 3, 3]))
