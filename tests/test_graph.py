"""Graphs that fork and join (minigrad/layers/graph.py) and their joins (layers/join.py, scale.py, Clip):
forward against direct references, backward against gradcheck in float64, the gradients at a fork
adding up, the container's whole interface, and every malformed graph refused with its node named."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import minigrad as mg
import reference

rng = np.random.default_rng(7)


def normal(*shape):
    return rng.standard_normal(shape)


# --- the joins: forward against a reference, backward against gradcheck --------------------------------
broadcast_shapes = st.sampled_from([((2, 3, 4, 5), (2, 3, 4, 5)), ((2, 3, 4, 5), (1, 3, 1, 1)),
                                    ((2, 3, 4, 5), (3, 1, 1)), ((2, 3, 4, 5), ()), ((2, 1, 4, 1), (1, 3, 1, 5)),
                                    ((2, 6), (6,))])


@given(broadcast_shapes, st.integers(2, 3))
def test_add_broadcasts_and_sends_each_input_the_sum_over_where_it_was_stretched(shapes, count):
    xs = tuple(normal(*shapes[i % 2]) for i in range(count))
    y = mg.Add().forward(*xs)
    np.testing.assert_allclose(y, reference.broadcast_elementwise(list(xs), sum), rtol=1e-12)
    assert (result := mg.gradcheck(mg.Add(), xs)).passed, result


@given(broadcast_shapes)
def test_multiply_broadcasts_with_the_product_rule(shapes):
    xs = tuple(normal(*shape) for shape in shapes + shapes[:1])
    y = mg.Multiply().forward(*xs)
    np.testing.assert_allclose(y, reference.broadcast_elementwise(list(xs), np.prod), rtol=1e-12)
    assert (result := mg.gradcheck(mg.Multiply(), xs)).passed, result


@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.integers(1, 5), st.integers(1, 5))
def test_concat_along_the_channels(channels, h, w):
    xs = tuple(normal(2, c, h, w) for c in channels)
    np.testing.assert_array_equal(mg.Concat().forward(*xs), reference.concat_channels(list(xs)))
    assert (result := mg.gradcheck(mg.Concat(), xs if len(xs) > 1 else xs[0])).passed, result


@given(st.integers(0, 5), st.integers(1, 6), st.integers(1, 4))
def test_slice_keeps_its_part_and_sends_back_zeros_elsewhere(start, length, h):
    x = normal(2, 12, h, 3)
    layer = mg.Slice(start, start + length)
    np.testing.assert_array_equal(layer.forward(x), x[:, start:start + length])
    dx = layer.backward(np.ones((2, length, h, 3)))
    assert dx.sum() == 2 * length * h * 3 and not dx[:, :start].any() and not dx[:, start + length:].any()
    assert (result := mg.gradcheck(mg.Slice(start, start + length), x)).passed, result


@given(st.sampled_from([(1, 4), (2, 6), (3, 6), (4, 8), (6, 6)]), st.integers(1, 4))
def test_channel_shuffle_interleaves_the_groups(groups_channels, h):
    groups, channels = groups_channels
    x = normal(2, channels, h, 3)
    layer = mg.ChannelShuffle(groups)
    np.testing.assert_array_equal(layer.forward(x), reference.channel_shuffle(x, groups))
    np.testing.assert_array_equal(layer.backward(layer.forward(x)), x)      # a permutation: its inverse
    assert (result := mg.gradcheck(mg.ChannelShuffle(groups), x)).passed, result


@pytest.mark.parametrize("layer", [mg.Scale((3, 1, 1)), mg.Scale(()), mg.Bias((1, 3, 1, 1)), mg.Bias(5),
                                   mg.Identity(), mg.ReLU6(), mg.Clip(-0.5, None), mg.Clip(None, 0.3)])
def test_scale_bias_identity_and_clip(layer):
    x = normal(2, 3, 4, 5) * 4
    for p in layer.parameters():
        p.data[...] = rng.standard_normal(p.data.shape)
    layer = layer.astype(np.float64)
    y = layer.forward(x)
    if isinstance(layer, mg.Scale):
        np.testing.assert_allclose(y, reference.broadcast_elementwise([x, layer.weight.data], np.prod))
    elif isinstance(layer, mg.Bias):
        np.testing.assert_allclose(y, reference.broadcast_elementwise([x, layer.weight.data], sum))
    elif isinstance(layer, mg.Clip):
        low, high = -np.inf if layer.low is None else layer.low, np.inf if layer.high is None else layer.high
        np.testing.assert_array_equal(y, np.array([min(max(v, low), high) for v in x.ravel()]).reshape(x.shape))
    else:
        np.testing.assert_array_equal(y, x)
    assert (result := mg.gradcheck(layer, x)).passed, result


# --- the graph ------------------------------------------------------------------------------------------
def residual_block(channels, input_shape=None):
    """He et al.'s basic block: two 3x3 convolutions and the shortcut added before the last ReLU."""
    x = mg.Input(input_shape)
    h = mg.ReLU()(mg.Conv2d(channels, channels, 3, padding=1)(x, name="conv1"), name="relu1")
    h = mg.Conv2d(channels, channels, 3, padding=1)(h, name="conv2")
    return mg.Graph(x, mg.ReLU()(mg.Add()(h, x, name="add"), name="relu2"))


def inception(c_in):
    """An inception module (Szegedy et al. 2015, figure 2b) at toy widths: four branches, concatenated."""
    x = mg.Input()
    b1 = mg.ReLU()(mg.Conv2d(c_in, 2, 1)(x, name="b1"))
    b2 = mg.ReLU()(mg.Conv2d(3, 3, 3, padding=1)(mg.ReLU()(mg.Conv2d(c_in, 3, 1)(x, name="b2_reduce")), name="b2"))
    b3 = mg.ReLU()(mg.Conv2d(2, 2, 5, padding=2)(mg.ReLU()(mg.Conv2d(c_in, 2, 1)(x, name="b3_reduce")), name="b3"))
    b4 = mg.ReLU()(mg.Conv2d(c_in, 1, 1)(mg.MaxPool2d(3, 1, padding=1)(x, name="pool"), name="b4"))
    return mg.Graph(x, mg.Concat()(b1, b2, b3, b4, name="concat"))


def test_a_residual_block_and_an_inception_module_pass_gradcheck():
    x = normal(2, 4, 5, 6)
    assert (result := mg.gradcheck(residual_block(4).astype(np.float64), x)).passed, result
    assert (result := mg.gradcheck(inception(4).astype(np.float64), x)).passed, result
    assert inception(4).forward(x.astype(np.float32)).shape == (2, 8, 5, 6)


def test_the_gradient_at_a_fork_is_the_sum_of_what_each_reader_sends_back():
    """x feeds the convolutions and the shortcut: dL/dx = the convolution path's share + the shortcut's."""
    block = residual_block(3).astype(np.float64)
    x, dy = normal(2, 3, 4, 4), normal(2, 3, 4, 4)
    y = block.forward(x)
    after_add = dy * (y > 0)                              # through the last ReLU
    conv1, relu1, conv2 = block["conv1"], block["relu1"], block["conv2"]
    through_convolutions = conv1.backward(relu1.backward(conv2.backward(after_add)))
    dx = block.backward(dy)              # (after its layers' own: the graph's backward releases what they saved)
    np.testing.assert_allclose(dx, through_convolutions + after_add, rtol=1e-12)


def test_a_graph_is_a_container_like_sequential():
    block = residual_block(4)
    assert [name for name, _ in block.named_parameters()] == ["conv1.weight", "conv1.bias", "conv2.weight",
                                                              "conv2.bias"]
    net = mg.Sequential(("stem", mg.Conv2d(3, 4, 3, padding=1)), ("block", block), ("pool", mg.GlobalAvgPool2d()),
                        ("flat", mg.Flatten()), ("fc", mg.Linear(4, 3)), ("drop", mg.Dropout(0.5, seed=1)))
    assert "block.conv2.weight" in net.state_dict()
    assert [name for name, _ in net.named_leaves()][1:6] == ["block.conv1", "block.relu1", "block.conv2",
                                                             "block.add", "block.relu2"]
    other = mg.Sequential(("stem", mg.Conv2d(3, 4, 3, padding=1)), ("block", residual_block(4)),
                          ("pool", mg.GlobalAvgPool2d()), ("flat", mg.Flatten()), ("fc", mg.Linear(4, 3)),
                          ("drop", mg.Dropout(0.5, seed=1)))
    other.load_state_dict(net.state_dict())
    x = normal(2, 3, 6, 6).astype(np.float32)
    np.testing.assert_array_equal(net.eval().forward(x), other.eval().forward(x))
    assert not any(layer.training for _, layer in net.named_leaves())
    net.train().astype(np.float64).to("cpu")
    assert all(p.data.dtype == np.float64 for p in net.parameters())
    assert all(layer.training for _, layer in net.named_leaves())
    net.zero_grad()
    assert not any(p.grad.any() for p in net.parameters())
    assert net.output_shape((None, 3, 6, 6)) == (None, 3)
    assert "(add): Add <- conv2, input" in block.describe()
    assert (result := mg.gradcheck(net.eval(), normal(2, 3, 6, 6))).passed, result


def test_graphs_from_node_lists_read_several_inputs_and_write_several_outputs():
    graph = mg.Graph.from_nodes([("sum", mg.Add(), ["a", "b"]), ("prod", mg.Multiply(), ["sum", "a"]),
                                 ("same", mg.Scale(()), "sum")], inputs=["a", "b"], outputs=["prod", "same"])
    graph.astype(np.float64)
    a, b = normal(2, 3), normal(2, 3)
    prod, same = graph.forward(a, b)
    np.testing.assert_allclose(prod, (a + b) * a)
    np.testing.assert_allclose(same, a + b)
    da, db = graph.backward(np.ones((2, 3)), np.ones((2, 3)))
    # d/da [(a + b) a + (a + b)] = 2a + b + 1 ; d/db = a + 1
    np.testing.assert_allclose(da, 2 * a + b + 1, rtol=1e-6)
    np.testing.assert_allclose(db, a + 1, rtol=1e-6)


def test_an_input_no_gradient_reaches_gets_none():
    conv = mg.Conv2d(3, 4, 3)
    conv.needs_input_grad = False
    x = mg.Input()
    graph = mg.Graph(x, mg.Add()(conv(x), mg.Conv2d(3, 4, 3)(x)))
    graph.forward(normal(1, 3, 5, 5).astype(np.float32))
    assert graph.backward(np.ones((1, 4, 3, 3), np.float32)).shape == (1, 3, 5, 5)   # the second still sends one
    only = mg.Graph.from_nodes([("conv", conv, "input")])
    only.forward(normal(1, 3, 5, 5).astype(np.float32))
    assert only.backward(np.ones((1, 4, 3, 3), np.float32)) is None


# --- malformed graphs: refused, the node named ------------------------------------------------------------
def nodes_with(*extra):
    return [("conv", mg.Conv2d(3, 4, 3, padding=1), ["input"]), *extra]


@pytest.mark.parametrize("nodes, inputs, outputs, message", [
    (nodes_with(("relu", mg.ReLU(), ["nothing"])), ["input"], None,
     "graph node 'relu' reads 'nothing', which no node writes"),
    ([("a", mg.ReLU(), ["b"]), ("b", mg.ReLU(), ["a"])], ["input"], ["b"], "graph node 'a' reads 'b', which depends "
                                                                          "on this node's own output: a cycle"),
    ([("a", mg.ReLU(), ["b"]), ("b", mg.ReLU(), ["input"])], ["input"], ["a"],
     "graph node 'a' reads 'b', which node 1 writes later"),
    (nodes_with(("conv", mg.ReLU(), ["input"])), ["input"], None, "the value 'conv' is written twice"),
    (nodes_with(("input", mg.ReLU(), ["conv"])), ["input"], None, "the value 'input' is written twice"),
    (nodes_with(), ["input", "unused"], None, "the input 'unused' is read by no node"),
    (nodes_with(("dead", mg.ReLU(), ["input"]), ("out", mg.ReLU(), ["conv"])), ["input"], None,
     "graph node 'dead': its output is read by no node"),
    (nodes_with(("add", mg.ReLU(), ["conv", "input"])), ["input"], None, r"graph node 'add': ReLU reads 1 value"),
    (nodes_with(("a.b", mg.ReLU(), ["conv"])), ["input"], None, "a name is a non-empty string without '.'"),
    (nodes_with(), ["input"], ["missing"], "the output 'missing' is written by no node"),
])
def test_malformed_node_lists_are_refused_naming_the_node(nodes, inputs, outputs, message):
    with pytest.raises(ValueError, match=message):
        mg.Graph.from_nodes(nodes, inputs, outputs)


def test_a_layer_can_be_one_node_only():
    relu = mg.ReLU()
    x = mg.Input()
    with pytest.raises(ValueError, match="graph node 'relu_1': its layer is also node 'relu'"):
        mg.Graph(x, relu(relu(x)))


def test_shapes_that_do_not_join_are_refused_when_the_graph_is_written():
    x = mg.Input((None, 3, 8, 8))
    wide = mg.Conv2d(3, 5, 3, padding=1)(x)
    small = mg.MaxPool2d(2)(x)
    with pytest.raises(ValueError, match=r"graph node 'cat': .*Concat\(axis=1\): shapes \(None, 5, 8, 8\) and "
                                         r"\(None, 3, 4, 4\) differ"):
        mg.Concat()(wide, small, name="cat")
    with pytest.raises(ValueError, match=r"graph node 'sum': .*the shapes \(None, 5, 8, 8\), \(None, 3, 8, 8\) do "
                                         r"not broadcast"):
        mg.Add()(wide, x, name="sum")
    with pytest.raises(ValueError, match=r"graph node 'late': .*expected 5 input channels"):
        mg.Graph.from_nodes([("conv", mg.Conv2d(3, 4, 3), "input"), ("late", mg.Conv2d(5, 2, 1), "conv")],
                            input_shapes={"input": (None, 3, 8, 8)})
    graph = mg.Graph.from_nodes([("a", mg.Conv2d(3, 4, 1), "input"), ("b", mg.MaxPool2d(2), "input"),
                                 ("add", mg.Add(), ["a", "b"])])
    with pytest.raises(ValueError, match=r"Add: the shapes \(1, 4, 6, 6\), \(1, 3, 3, 3\) do not broadcast"):
        graph.forward(np.zeros((1, 3, 6, 6), np.float32))           # (known only when it runs)


def test_calling_a_layer_on_arrays_says_to_use_forward():
    with pytest.raises(TypeError, match="call its forward"):
        mg.ReLU()(np.zeros(3))


def test_diagnose_sees_inside_a_graph():
    net = mg.Sequential(("stem", mg.Conv2d(3, 4, 3, padding=1)), ("block", residual_block(4)),
                        ("flat", mg.Flatten()), ("fc", mg.Linear(4 * 5 * 5, 3)))
    report = mg.diagnose(net, normal(4, 3, 5, 5).astype(np.float32), np.array([0, 1, 2, 0]))
    assert [row.name for row in report.layers] == ["stem", "block.conv1", "block.relu1", "block.conv2", "block.add",
                                                   "block.relu2", "flat", "fc"]
    assert all(np.isfinite(row.sensitivity) for row in report.layers)


def test_a_layer_is_replaced_in_its_place():
    """What fine-tuning does to a classifier: the new layer reads and feeds what the old one did."""
    block, new = residual_block(3), mg.Conv2d(3, 3, 3, padding=1)
    block.replace("conv2", new)
    assert block["conv2"] is new and [name for name, _ in block.named_layers()][2] == "conv2"
    x = normal(2, 3, 4, 4).astype(np.float32)
    assert block.forward(x).shape == (2, 3, 4, 4)
    for name, layer in (("nothing", mg.ReLU()), ("add", mg.ReLU()), ("relu2", block["relu1"])):
        with pytest.raises(ValueError, match="Graph.replace: expected one of its nodes and a minigrad Layer of the "
                                             "same arity that is in no node yet"):
            block.replace(name, layer)
    chain = mg.Sequential(("fc", mg.Linear(3, 2)))
    chain.replace("fc", mg.Linear(3, 5))
    assert chain.output_shape((None, 3)) == (None, 5)
    with pytest.raises(ValueError, match=r"Sequential.replace: expected one of its layers \['fc'\]"):
        chain.replace("fc8", mg.ReLU())
