"""Sequential: the chain rule in reverse, names, modes, dtypes, state dicts."""
import numpy as np
import pytest

import minigrad as mg


def small_net():
    return mg.Sequential(("conv", mg.Conv2d(2, 4, 3, padding=1)), ("relu", mg.ReLU()),
                         ("pool", mg.MaxPool2d(2)), ("bn", mg.BatchNorm2d(4)), ("flat", mg.Flatten()),
                         ("drop", mg.Dropout(0.5, seed=0)), ("fc", mg.Linear(16, 3)), ("tanh", mg.Tanh()))


def test_backward_is_the_chain_rule_through_every_layer(rng):
    net = small_net().astype(np.float64)
    assert (result := mg.gradcheck(net, rng.standard_normal((3, 2, 4, 4)))).passed, result
    assert {"conv.weight", "conv.bias", "bn.weight", "bn.bias", "fc.weight", "fc.bias"} <= set(result.errors)


def test_names_parameters_and_indexing():
    net = small_net()
    assert [name for name, _ in net.named_parameters()] == [
        "conv.weight", "conv.bias", "bn.weight", "bn.bias", "fc.weight", "fc.bias"]
    assert net["fc"] is net[6] and len(net) == 8
    assert mg.Sequential(mg.ReLU(), mg.Linear(2, 2)).named_parameters()[0][0] == "1.weight"


def test_named_leaves_opens_nested_sequentials_and_names_their_layers_as_their_parameters():
    inner = mg.Sequential(("fc", mg.Linear(4, 4)), ("drop", mg.Dropout(0.5)))
    net = mg.Sequential(("relu", mg.ReLU()), ("block", inner), ("out", mg.Linear(4, 2)))
    walked = net.named_leaves()
    assert [name for name, _ in walked] == ["relu", "block.fc", "block.drop", "out"]
    assert [layer for _, layer in walked] == [net["relu"], inner["fc"], inner["drop"], net["out"]]
    assert {name for name, _ in net.named_parameters()} == {
        f"{name}.{p}" for name, layer in walked for p, _ in layer.named_parameters()}


def test_train_eval_and_astype_reach_every_layer():
    net = small_net().eval()
    assert not any(layer.training for layer in net)
    net.train()
    assert all(layer.training for layer in net)
    net.astype(np.float64)
    assert all(p.data.dtype == np.float64 and p.grad.dtype == np.float64 for p in net.parameters())
    assert net["bn"].running_mean.dtype == np.float64


def test_state_dict_round_trip(rng):
    source, target = small_net(), small_net()
    for p in source.parameters():
        p.data[...] = rng.standard_normal(p.data.shape)
    source["bn"].running_mean[...] = 3.0
    target.load_state_dict(source.state_dict())
    for key, value in source.state_dict().items():
        np.testing.assert_array_equal(target.state_dict()[key], value)
    x = rng.standard_normal((2, 2, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(source.eval().forward(x), target.eval().forward(x))


def test_state_dict_is_a_copy():
    net = small_net()
    state = net.state_dict()
    state["fc.weight"][...] = 99
    assert not (net["fc"].weight.data == 99).any()


def test_load_state_dict_errors():
    net = small_net()
    state = net.state_dict()
    del state["fc.bias"]
    with pytest.raises(ValueError, match=r"missing keys \['fc.bias'\]"):
        net.load_state_dict(state)
    state = net.state_dict()
    state["fc.weight"] = np.zeros((3, 17))
    with pytest.raises(ValueError, match=r"'weight' expected shape \(3, 16\), got \(3, 17\)"):
        net.load_state_dict(state)


def test_zero_grad_clears_every_parameter(rng):
    net = small_net()
    y = net.forward(rng.standard_normal((2, 2, 4, 4)).astype(np.float32))
    net.backward(np.ones_like(y))
    assert any(p.grad.any() for p in net.parameters())
    net.zero_grad()
    assert not any(p.grad.any() for p in net.parameters())


def test_construction_errors():
    with pytest.raises(ValueError, match="item 1 must be a minigrad Layer"):
        mg.Sequential(mg.ReLU(), lambda x: x)
    with pytest.raises(ValueError, match="'a' is used twice"):
        mg.Sequential(("a", mg.ReLU()), ("a", mg.Tanh()))
    with pytest.raises(ValueError, match="device: expected one of"):
        small_net().to("tpu")


def test_building_a_long_sequential_compares_each_name_with_few_others():
    """The check that names are unique takes a set, not a list: n layers cost about n comparisons of
    names, not n^2 / 2 (a chain of 20,000 layers read from ONNX took seconds to build)."""
    comparisons = 0

    class Name(str):
        def __eq__(self, other):
            nonlocal comparisons
            comparisons += 1
            return str.__eq__(self, other)

        __hash__ = str.__hash__

    layers = 2000
    net = mg.Sequential(*[(Name(f"relu{i}"), mg.ReLU()) for i in range(layers)])
    assert len(net) == layers and comparisons < layers
    with pytest.raises(ValueError, match="the name 'relu1' is used twice"):
        mg.Sequential(("relu1", mg.ReLU()), (Name("relu1"), mg.ReLU()))


def test_backward_releases_what_forward_saved_and_a_second_backward_says_so(rng):
    """After a container's backward no layer holds an array of the step (only its parameters and
    buffers), so a step's activations are freed as the backward pass goes; a second backward refuses."""
    x_in = mg.Input()
    h = mg.Conv2d(4, 4, 3, padding=1)(x_in)
    joined = mg.Multiply()(mg.Scale((4, 1, 1))(h), mg.Sigmoid()(h))
    block = mg.Graph(x_in, joined)
    net = mg.Sequential(mg.Conv2d(3, 4, 3, padding=1), mg.ReLU(), mg.LocalResponseNorm(3, groups=2),
                        mg.BatchNorm2d(4), mg.MaxPool2d(2), block, mg.LeakyReLU(0.1), mg.Tanh(),
                        mg.Clip(-0.5, 0.5), mg.Flatten(), mg.Dropout(0.5, seed=0), mg.Linear(36, 5), mg.Softmax(1))
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)

    def step_arrays(layer):
        kept = {id(p.data) for p in layer.parameters()} | {id(getattr(layer, b)) for b in layer.buffers}
        return [name for name, value in vars(layer).items()
                if isinstance(value, (np.ndarray, tuple)) and id(value) not in kept
                and any(isinstance(v, np.ndarray) for v in (value if isinstance(value, tuple) else (value,)))]

    net.forward(x)
    holding = {name for name, layer in net.named_leaves() if step_arrays(layer)}
    assert len(holding) >= 12                    # forward saved something in every layer that needs it
    net.backward(np.ones((2, 5), np.float32))
    assert {name: step_arrays(layer) for name, layer in net.named_leaves() if step_arrays(layer)} == {}
    with pytest.raises(RuntimeError, match="released what forward saved"):
        net.backward(np.ones((2, 5), np.float32))
    net.forward(x)                               # a new forward, a new backward
    net.backward(np.ones((2, 5), np.float32))
