"""minigrad against PyTorch, an independent implementation, in float64: forward, input gradient and
every parameter gradient. PyTorch is optional (never a run-time dependency): without it these skip.
"""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import minigrad as mg

torch = pytest.importorskip("torch", reason="PyTorch is not installed (optional cross-check)")
nn = torch.nn


@pytest.fixture(autouse=True, scope="module")
def float64_modules():
    """PyTorch modules built here are float64; restore the default so that no other test sees it."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def compare(layer, module, x, rtol=1e-9):
    """Run both on x with the same upstream gradient; compare output, dx and each parameter's grad."""
    y = layer.forward(x)
    dy = np.random.default_rng(0).standard_normal(y.shape)
    dx = layer.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    ty = module(tx)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=rtol, atol=1e-12)
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, dict(module.named_parameters())[name].grad.numpy(), rtol=rtol, atol=1e-12)


def copy_weights(layer, module):
    with torch.no_grad():
        for name, p in layer.named_parameters():
            dict(module.named_parameters())[name].copy_(torch.tensor(p.data))


@given(groups=st.integers(1, 3), cin=st.integers(1, 2), cout=st.integers(1, 2), n=st.integers(1, 2),
       h=st.integers(1, 9), w=st.integers(1, 9), kh=st.integers(1, 4), kw=st.integers(1, 4),
       sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 2), pw=st.integers(0, 2))
def test_conv2d(groups, cin, cout, n, h, w, kh, kw, sh, sw, ph, pw):
    assume(h + 2 * ph >= kh and w + 2 * pw >= kw)
    layer = mg.Conv2d(groups * cin, groups * cout, (kh, kw), (sh, sw), (ph, pw), groups).astype(np.float64)
    module = nn.Conv2d(groups * cin, groups * cout, (kh, kw), (sh, sw), (ph, pw), groups=groups)
    copy_weights(layer, module)
    compare(layer, module, np.random.default_rng(1).standard_normal((n, groups * cin, h, w)))


@given(k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2), h=st.integers(1, 9), w=st.integers(1, 9))
def test_maxpool(k, s, p, h, w):
    assume(2 * p <= k and h + 2 * p >= k and w + 2 * p >= k)
    x = np.random.default_rng(2).permutation(2 * 3 * h * w).reshape(2, 3, h, w) * 0.1
    compare(mg.MaxPool2d(k, s, p), nn.MaxPool2d(k, s, p), x)


@pytest.mark.parametrize("size, alpha", [(5, 1e-4), (3, 0.7), (5, 1.0), (7, 0.2)])
def test_lrn_with_pytorch_alpha_times_size(size, alpha):
    """PyTorch divides alpha by n; the paper's formula does not, so PyTorch's alpha is ours times n."""
    x = np.random.default_rng(3).standard_normal((2, 9, 4, 3)) * 2
    compare(mg.LocalResponseNorm(size, alpha, 0.75, 2.0), nn.LocalResponseNorm(size, alpha * size, 0.75, 2.0), x)


class PerGroup(nn.Module):
    """PyTorch's LRN run on each of `groups` contiguous channel groups, its outputs concatenated."""

    def __init__(self, module, groups):
        super().__init__()
        self.module, self.groups = module, groups

    def forward(self, x):
        return torch.cat([self.module(part) for part in x.chunk(self.groups, dim=1)], dim=1)


@pytest.mark.parametrize("size, alpha, groups", [(5, 1.0, 2), (3, 0.7, 3), (7, 0.2, 2)])
def test_grouped_lrn_is_pytorch_lrn_per_group(size, alpha, groups):
    x = np.random.default_rng(3).standard_normal((2, 4 * groups, 4, 3)) * 2
    compare(mg.LocalResponseNorm(size, alpha, 0.75, 2.0, groups),
            PerGroup(nn.LocalResponseNorm(size, alpha * size, 0.75, 2.0), groups), x)


@pytest.mark.parametrize("make, module", [
    (mg.ReLU, nn.ReLU()), (lambda: mg.LeakyReLU(0.2), nn.LeakyReLU(0.2)), (mg.Sigmoid, nn.Sigmoid()),
    (mg.Tanh, nn.Tanh()), (mg.Flatten, nn.Flatten())])
def test_elementwise(make, module):
    compare(make(), module, np.random.default_rng(4).standard_normal((3, 2, 4, 5)))


def test_linear_batchnorm_and_eval_dropout():
    rng = np.random.default_rng(5)
    layer, module = mg.Linear(7, 5).astype(np.float64), nn.Linear(7, 5)
    copy_weights(layer, module)
    compare(layer, module, rng.standard_normal((4, 7)))
    for mine, theirs, shape in [(mg.BatchNorm1d(5), nn.BatchNorm1d(5), (6, 5)),
                                (mg.BatchNorm2d(3), nn.BatchNorm2d(3), (2, 3, 4, 5))]:
        mine = mine.astype(np.float64)
        mine.weight.data, mine.bias.data = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
        copy_weights(mine, theirs)
        compare(mine, theirs, rng.standard_normal(shape) * 2 + 1)
        np.testing.assert_allclose(mine.running_var, theirs.running_var.numpy(), rtol=1e-12)
        compare(mine.eval(), theirs.eval(), rng.standard_normal(shape))
    compare(mg.Dropout(0.5, mode="inverted").eval(), nn.Dropout(0.5).eval(), rng.standard_normal((3, 4)))


def test_cross_entropy():
    rng = np.random.default_rng(6)
    logits, labels = rng.standard_normal((8, 10)) * 5, rng.integers(0, 10, 8)
    ce = mg.SoftmaxCrossEntropy()
    tl = torch.tensor(logits, requires_grad=True)
    loss = nn.functional.cross_entropy(tl, torch.tensor(labels))
    loss.backward()
    assert ce.forward(logits, labels) == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(ce.backward(), tl.grad.numpy(), rtol=1e-10)


def test_sgd_equals_pytorch_while_the_rate_is_constant():
    rng = np.random.default_rng(7)
    w0 = rng.standard_normal((3, 4))
    p, tp = mg.Parameter(w0.copy()), torch.tensor(w0.copy(), requires_grad=True)
    opt = mg.SGD([p], lr=0.05, momentum=0.9, weight_decay=0.0005)
    topt = torch.optim.SGD([tp], lr=0.05, momentum=0.9, weight_decay=0.0005)
    for _ in range(5):
        g = rng.standard_normal((3, 4))
        p.grad[...] = g
        tp.grad = torch.tensor(g)
        opt.step()
        topt.step()
    np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-12)


def test_shrunken_alexnet_end_to_end():
    from minigrad.models import Preset, alexnet
    tiny = Preset(image_size=35, conv1_kernels=8, conv1_kernel_size=5, conv1_stride=2, channels=(8, 12, 12, 8),
                  conv2_kernel_size=3, hidden=16, init="he", dropout_mode="classic")
    net = alexnet(tiny, num_classes=7).astype(np.float64).eval()     # eval: dropout is deterministic
    for name in ("norm1", "norm2"):
        net[name].alpha = 0.3
    layers = []
    for name, layer in net.named_layers():
        kind = type(layer).__name__
        if kind == "Conv2d":
            m = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                          groups=layer.groups)
        elif kind == "Linear":
            m = nn.Linear(layer.in_features, layer.out_features)
        elif kind == "LocalResponseNorm":
            m = PerGroup(nn.LocalResponseNorm(layer.size, layer.alpha * layer.size, layer.beta, layer.k),
                         layer.groups)
        elif kind == "MaxPool2d":
            m = nn.MaxPool2d(layer.kernel_size, layer.stride)
        elif kind == "Dropout":
            m = nn.Identity()                  # the classic form at eval multiplies by 1 - p
            layers.append(m)
            layers.append(_Scale(1 - layer.p))
            continue
        else:
            m = {"ReLU": nn.ReLU, "Flatten": nn.Flatten}[kind]()
        if hasattr(layer, "weight"):
            copy_weights(layer, m)
        layers.append(m)
    module = nn.Sequential(*layers)
    x = np.random.default_rng(8).standard_normal((2, 3, 35, 35))
    y, ty = net.forward(x), module(torch.tensor(x, requires_grad=True))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-9, atol=1e-12)
    dy = np.random.default_rng(9).standard_normal(y.shape)
    net.backward(dy)
    ty.backward(torch.tensor(dy))
    torch_grads = [p.grad.numpy() for p in module.parameters()]
    for (name, p), g in zip(net.named_parameters(), torch_grads):
        np.testing.assert_allclose(p.grad, g, rtol=1e-8, atol=1e-12, err_msg=name)


class _Scale(nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


# --- joins and graphs: the gradients PyTorch's autograd finds at a fork ------------------------------------
def compare_join(layer, torch_function, xs, rtol=1e-9):
    """A layer that reads several arrays against the same function in PyTorch: output and every input's
    gradient, for one upstream gradient."""
    y = layer.forward(*xs)
    dy = np.random.default_rng(0).standard_normal(y.shape)
    dxs = layer.backward(dy)
    dxs = dxs if len(xs) > 1 else (dxs,)
    txs = [torch.tensor(x, requires_grad=True) for x in xs]
    ty = torch_function(*txs)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=rtol, atol=1e-12)
    for dx, tx in zip(dxs, txs):
        np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("shapes", [[(2, 3, 4, 5), (1, 3, 1, 1)], [(2, 3, 4, 5), (2, 3, 4, 5), (3, 1, 1)],
                                    [(2, 1, 4, 1), (1, 3, 1, 5)]])
def test_add_and_multiply_with_broadcasting(shapes):
    xs = [np.random.default_rng(i).standard_normal(shape) for i, shape in enumerate(shapes)]
    compare_join(mg.Add(), lambda *t: sum(t[1:], t[0]), xs)

    def product(*t):
        out = t[0]
        for other in t[1:]:
            out = out * other
        return out
    compare_join(mg.Multiply(), product, xs)


def test_concat_slice_and_channel_shuffle():
    xs = [np.random.default_rng(i).standard_normal((2, c, 3, 4)) for i, c in enumerate((1, 3, 2))]
    compare_join(mg.Concat(), lambda *t: torch.cat(t, dim=1), xs)
    x = np.random.default_rng(5).standard_normal((2, 6, 3, 4))
    compare(mg.Slice(2, 5), lambda t: t[:, 2:5], x)
    compare(mg.ChannelShuffle(3), nn.ChannelShuffle(3), x)
    compare(mg.ReLU6(), nn.ReLU6(), 4 * x)
    compare(mg.Clip(-0.5, 0.7), lambda t: torch.clamp(t, -0.5, 0.7), x)


def test_scale_and_bias_against_a_broadcast_product_and_sum():
    x = np.random.default_rng(6).standard_normal((2, 3, 4, 5))
    for layer, op in ((mg.Scale((3, 1, 1)), torch.mul), (mg.Bias((1, 3, 1, 1)), torch.add)):
        layer.astype(np.float64).weight.data[...] = np.random.default_rng(7).standard_normal(layer.weight.data.shape)
        weight = torch.tensor(layer.weight.data, requires_grad=True)
        compare_join(mg.Sequential(layer), lambda t: op(t, weight), [x])
        np.testing.assert_allclose(layer.weight.grad, weight.grad.numpy(), rtol=1e-9)


class TorchResidual(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(channels, channels, 3, padding=1), nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv2(torch.relu(self.conv1(x))) + x)


class TorchInception(nn.Module):
    def __init__(self, c_in):
        super().__init__()
        self.b1, self.b2_reduce, self.b2 = nn.Conv2d(c_in, 2, 1), nn.Conv2d(c_in, 3, 1), nn.Conv2d(3, 3, 3, padding=1)
        self.b3 = nn.Conv2d(c_in, 2, 1)

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(torch.relu(self.b2_reduce(x))),
                          self.b3(nn.functional.max_pool2d(x, 3, 1, padding=1))], dim=1)


def test_residual_block_and_inception_module_against_autograd():
    x = mg.Input()
    h = mg.ReLU()(mg.Conv2d(3, 3, 3, padding=1)(x, name="conv1"))
    residual = mg.Graph(x, mg.ReLU()(mg.Add()(mg.Conv2d(3, 3, 3, padding=1)(h, name="conv2"), x)))
    x = mg.Input()
    b2 = mg.Conv2d(3, 3, 3, padding=1)(mg.ReLU()(mg.Conv2d(4, 3, 1)(x, name="b2_reduce")), name="b2")
    b3 = mg.Conv2d(4, 2, 1)(mg.MaxPool2d(3, 1, padding=1)(x), name="b3")
    inception = mg.Graph(x, mg.Concat()(mg.Conv2d(4, 2, 1)(x, name="b1"), b2, b3))
    for graph, module, channels in ((residual, TorchResidual(3), 3), (inception, TorchInception(4), 4)):
        graph.astype(np.float64)
        copy_weights(graph, module)
        compare(graph, module, np.random.default_rng(8).standard_normal((2, channels, 5, 6)))
