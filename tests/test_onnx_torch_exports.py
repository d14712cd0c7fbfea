"""minigrad.onnx on the graph families PyTorch's exporters write (opsets 11 and 17, and the dynamo
exporter): forward against ONNX Runtime and PyTorch, backward against PyTorch autograd on the same
weights, and a loaded graph trained beside PyTorch. Skipped without torch (an optional peer); the graphs
that need no PyTorch are in test_onnx_graphs.py."""
import contextlib
import io

import numpy as np
import pytest

import minigrad as mg

onnx = pytest.importorskip("onnx", reason="the ONNX tests need the onnx extra: pip install -e '.[onnx,test]'")
ort = pytest.importorskip("onnxruntime", reason="the ONNX tests need onnxruntime: pip install -e '.[test]'")
torch = pytest.importorskip("torch", reason="the PyTorch export tests need torch")
from minigrad import onnx as mg_onnx  # noqa: E402
from test_onnx import assert_agree, run_ort  # noqa: E402
from torch_families import INPUT, families  # noqa: E402

FAMILIES = families()
quiet_exporter = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning",
                                            "ignore::FutureWarning")


def torch_export(net, exporter, training=None):
    """The ModelProto of `net` exported at batch 2 with a free batch: exporter "legacy11", "legacy17"
    (the TorchScript exporter; training=PRESERVE keeps BatchNorm apart from the convolution, which EVAL
    folds into its weights) or "dynamo" (opset 18)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        if exporter == "dynamo":
            pytest.importorskip("onnxscript", reason="PyTorch's dynamo exporter needs onnxscript")
            return torch.onnx.export(net, (torch.zeros(2, *INPUT),), dynamo=True, external_data=False,
                                     dynamic_shapes=({0: torch.export.Dim("N", min=1)},)).model_proto
        file = io.BytesIO()
        torch.onnx.export(net, (torch.zeros(2, *INPUT),), file, dynamo=False, opset_version=int(exporter[-2:]),
                          input_names=["x"], dynamic_axes={"x": {0: "N"}},
                          training=training or torch.onnx.TrainingMode.EVAL)
        return onnx.load_from_string(file.getvalue())


def family_input(batch, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, *INPUT)).astype(np.float32)


@pytest.mark.parametrize("exporter", ["legacy11", "legacy17", "dynamo"])
@pytest.mark.parametrize("name", sorted(FAMILIES))
@quiet_exporter
def test_pytorch_exports_of_each_family_load_and_agree(name, exporter):
    """Against ONNX Runtime and PyTorch itself, at a batch other than the exported one."""
    net = FAMILIES[name]
    model = torch_export(net, exporter)
    graph = mg_onnx.load(model)
    assert isinstance(graph, mg.Graph)
    x = family_input(3)
    y = graph.forward(x)
    assert_agree(y, run_ort(model, x))
    with torch.no_grad():
        assert_agree(y, net(torch.from_numpy(x)).numpy())


def same_parameters(graph, net):
    """(PyTorch's name, its parameter, the loaded graph's parameter that holds the same values) for every
    parameter of net (the random weights tell them apart)."""
    pairs = []
    for name, theirs in net.named_parameters():
        value = theirs.detach().numpy()
        ours = [p for _, p in graph.named_parameters() if p.data.shape == value.shape and np.array_equal(p.data, value)]
        assert len(ours) == 1, f"{name}: {len(ours)} parameters of the loaded graph hold its values"
        pairs.append((name, theirs, ours[0]))
    assert len(pairs) == len(graph.parameters())
    return pairs


def assert_same_gradients(graph, net, pairs, x, dy):
    """The loaded graph's gradients (it in float64) against PyTorch autograd's on the same weights (pairs:
    same_parameters), with respect to the input and to every parameter: to 1e-9 of each, or 1e-10 of the
    largest (float64 sums taken in another order). Returns the graph's output."""
    graph.zero_grad()
    y = graph.forward(x)
    dx = graph.backward(dy)
    x = torch.from_numpy(x).requires_grad_()
    net.zero_grad()
    (net(x) * torch.from_numpy(dy)).sum().backward()
    np.testing.assert_allclose(dx, x.grad.numpy(), rtol=1e-9, atol=1e-10 * np.abs(dx).max())
    for name, theirs, ours in pairs:
        gradient = theirs.grad.numpy()
        np.testing.assert_allclose(ours.grad, gradient, rtol=1e-9, atol=1e-10 * np.abs(gradient).max(), err_msg=name)
    return y


@pytest.mark.parametrize("exporter", ["legacy11", "legacy17"])
@pytest.mark.parametrize("name", sorted(FAMILIES))
@quiet_exporter
def test_the_gradients_of_loaded_graphs_are_pytorchs(name, exporter):
    """The input gradient and every parameter gradient, in float64, the graph in eval mode (BatchNorm
    with its running statistics, its scale and shift trainable) against autograd through the network
    in eval mode. Exported with BatchNorm kept apart (PRESERVE), so that the weights are PyTorch's."""
    net = FAMILIES[name]
    graph = mg_onnx.load(torch_export(net, exporter, torch.onnx.TrainingMode.PRESERVE)).astype(np.float64)
    x = family_input(2, seed=1).astype(np.float64)
    dy = np.random.default_rng(2).standard_normal((2, 10))
    with torch.no_grad():
        expected = net.double()(torch.from_numpy(x)).numpy()
    try:
        y = assert_same_gradients(graph, net, same_parameters(graph, net), x, dy)
    finally:
        net.float()
    np.testing.assert_allclose(y, expected, rtol=1e-9, atol=1e-12)


@quiet_exporter
def test_a_loaded_graph_trains_as_pytorch_does():
    """In training mode (BatchNorm on the batch's statistics), two SGD steps: the gradients, the running
    statistics and the weights after each step are PyTorch's."""
    net = families()["densenet"].double()
    graph = mg_onnx.load(torch_export(net.float(), "legacy17", torch.onnx.TrainingMode.PRESERVE))
    graph.astype(np.float64).train()
    net.double().train()
    net.dropout.p = 0.0                                       # (PyTorch's exporter leaves the Dropout out)
    pairs = same_parameters(graph, net)
    torch_sgd = torch.optim.SGD(net.parameters(), lr=0.1)
    ours = mg.SGD(graph.parameters(), lr=0.1, momentum=0, weight_decay=0)
    for step in range(2):
        x = family_input(4, seed=step).astype(np.float64)
        dy = np.random.default_rng(10 + step).standard_normal((4, 10))
        assert_same_gradients(graph, net, pairs, x, dy)
        torch_sgd.step()
        ours.step()
    batch_norms = [layer for _, layer in graph.named_layers() if isinstance(layer, mg.BatchNorm2d)]
    torch_norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(batch_norms) == len(torch_norms) == 9
    for ours_norm, theirs in zip(batch_norms, torch_norms):      # (momentum 0.1 is 1 - ONNX's float32 0.9)
        np.testing.assert_allclose(ours_norm.running_var, theirs.running_var.numpy(), rtol=1e-6)
        np.testing.assert_allclose(ours_norm.weight.data, theirs.weight.detach().numpy(), rtol=1e-12)
