"""mg.diagnose: each failure mode built from scratch and named, healthy networks left alone, no state touched."""
import copy

import numpy as np
import pytest

import minigrad as mg
from minigrad.models import alexnet

CODES = {"vanishing_gradient", "exploding_gradient", "dead_relu", "constant_output", "saturated"}


def mlp(widths, activation=mg.ReLU, init=None, hidden_bias=0.0, batchnorm=False, seed=0):
    """Linear layers of the given widths with `activation` (and BatchNorm) between them."""
    mg.manual_seed(seed)
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        linear = mg.Linear(fan_in, fan_out)
        if init is not None:
            init(linear)
        layers.append((f"fc{i + 1}", linear))
        if i < len(widths) - 2:
            linear.bias.data[...] = hidden_bias
            if batchnorm:
                layers.append((f"bn{i + 1}", mg.BatchNorm1d(fan_out)))
            layers.append((f"act{i + 1}", activation()))
    return mg.Sequential(*layers)


def small_convnet(batchnorm=False, activation=mg.ReLU, seed=0):
    mg.manual_seed(seed)

    def block(c_in, c_out):
        norm = [mg.BatchNorm2d(c_out)] if batchnorm else []
        return mg.Sequential(mg.Conv2d(c_in, c_out, 3, padding=1), *norm, activation(), mg.MaxPool2d(2))
    return mg.Sequential(("block1", block(3, 8)), ("block2", block(8, 16)), ("flatten", mg.Flatten()),
                         ("fc", mg.Linear(16 * 4 * 4, 10)))


def batch(shape, classes=10, seed=0, positive=False):
    rng = np.random.default_rng(seed)
    x = rng.random(shape) if positive else rng.standard_normal(shape)
    return x.astype(np.float32), rng.integers(0, classes, shape[0])


def findings_text(report):
    return "\n".join(report.findings)


# --- each failure mode, produced from scratch --------------------------------------------------------------

def test_deep_sigmoid_with_tiny_init_has_a_vanishing_gradient_and_a_constant_output():
    net = mlp([20] + [64] * 8 + [10], mg.Sigmoid, init=lambda layer: mg.init.gaussian(layer, std=0.01))
    report = mg.diagnose(net, *batch((32, 20)))
    assert {"vanishing_gradient", "constant_output"} <= report.codes, findings_text(report)
    # sigmoid(~0) = 0.5: the units sit in the middle of the curve, not on its flat tails
    assert "saturated" not in report.codes and "exploding_gradient" not in report.codes
    assert report["fc1"].sensitivity < 1e-10 < report["fc9"].sensitivity == pytest.approx(1.0)


def test_deep_sigmoid_with_the_usual_init_still_vanishes_but_a_shallow_one_does_not():
    deep = mg.diagnose(mlp([20] + [64] * 6 + [10], mg.Sigmoid, init=mg.init.glorot_normal), *batch((32, 20)))
    shallow = mg.diagnose(mlp([20, 64, 10], mg.Sigmoid, init=mg.init.glorot_normal), *batch((32, 20)))
    assert "vanishing_gradient" in deep.codes, findings_text(deep)
    assert shallow.findings == [], findings_text(shallow)


@pytest.mark.parametrize("widths, std", [([20, 64, 64, 10], 1.0), ([20] + [64] * 4 + [10], 1.0),
                                         ([100] * 4 + [10], 0.3)])
def test_huge_init_explodes(widths, std):
    net = mlp(widths, init=lambda layer: mg.init.gaussian(layer, std=std))
    report = mg.diagnose(net, *batch((32, widths[0])))
    assert "exploding_gradient" in report.codes, findings_text(report)
    assert report.loss > 10 * np.log(10)


def test_non_finite_values_are_named_as_exploding():
    net = mlp([20, 32, 10])
    net["fc2"].weight.data[0, 0] = np.inf
    with np.errstate(invalid="ignore"):                # inf * 0 in fc2 is the point of the test
        report = mg.diagnose(net, *batch((8, 20)))
    assert report.codes == {"exploding_gradient"}
    assert "fc2" in report.findings[0] and "non-finite" in report.findings[0]


@pytest.mark.parametrize("bias", [-1.0, -3.0])
def test_negative_biases_kill_the_relus(bias):
    report = mg.diagnose(mlp([20] + [64] * 4 + [10], hidden_bias=bias), *batch((32, 20)))
    assert "dead_relu" in report.codes, findings_text(report)
    assert report["act4"].dead_fraction > 0.9
    assert "negative biases" in findings_text(report)


def test_a_large_learning_rate_kills_the_relus_and_a_small_one_does_not():
    def train(lr):
        net = mlp([20, 64, 64, 64, 10])
        x, y = batch((64, 20), positive=True)          # positive inputs, like pixels or ReLU outputs
        loss, optimiser = mg.SoftmaxCrossEntropy(), mg.SGD(net.parameters(), lr=lr)
        for _ in range(10):
            net.zero_grad()
            loss.forward(net.forward(x), y)
            net.backward(loss.backward())
            optimiser.step()
        return mg.diagnose(net, x, y)

    killed, trained = train(lr=3.0), train(lr=0.05)
    assert "dead_relu" in killed.codes, findings_text(killed)
    assert trained.findings == [], findings_text(trained)


def conv_with_dead_channels(channels, dead):
    mg.manual_seed(0)
    conv = mg.Conv2d(3, channels, 3, padding=1)
    conv.bias.data[:dead] = -100.0                     # these channels can never fire
    return mg.Sequential(("conv", conv), ("relu", mg.ReLU()), ("flatten", mg.Flatten()),
                         ("fc", mg.Linear(channels * 6 * 6, 4)))


def test_dead_units_are_counted_per_channel_and_judged_against_chance():
    x, y = batch((4, 3, 6, 6), classes=4)
    many = mg.diagnose(conv_with_dead_channels(32, 28), x, y)
    assert many["relu"].dead_fraction == 28 / 32       # over 1/2 + 1.5 / sqrt(32) = 77%: not chance
    assert "dead_relu" in many.codes and "88% of the 32 units of relu" in findings_text(many)
    # 6 of 8 dead happens by chance in 14% of zero-bias initialisations: too few units to tell
    few = mg.diagnose(conv_with_dead_channels(8, 6), x, y)
    assert few["relu"].dead_fraction == 6 / 8 and "dead_relu" not in few.codes


def test_an_output_that_ignores_the_input_is_constant():
    net = mlp([20, 64, 64, 10])
    net["fc2"].weight.data[...] = 0                    # fc3 sees relu(bias of fc2): the same for everyone
    net["fc2"].bias.data[...] = 0.5
    report = mg.diagnose(net, *batch((16, 20)))
    assert "constant_output" in report.codes, findings_text(report)
    assert report.output_spread < 1e-6


def test_a_class_that_wins_every_example_is_a_constant_output():
    net = mlp([20, 64, 10])
    net["fc2"].bias.data[3] = 100.0                    # logits still vary, the answer never does
    report = mg.diagnose(net, *batch((16, 20)))
    assert "constant_output" in report.codes, findings_text(report)


@pytest.mark.parametrize("activation", [mg.Tanh, mg.Sigmoid])
def test_huge_weights_saturate_tanh_and_sigmoid(activation):
    net = mlp([20] + [64] * 4 + [10], activation, init=lambda layer: mg.init.gaussian(layer, std=1.0))
    report = mg.diagnose(net, *batch((32, 20)))
    assert "saturated" in report.codes, findings_text(report)
    assert report["act2"].saturated_fraction > 0.3
    assert "exploding_gradient" not in report.codes    # saturation caps the activations


# --- healthy networks ----------------------------------------------------------------------------------------

HEALTHY = {
    "relu mlp, He, 3 layers": lambda: mlp([20, 64, 64, 10]),
    "relu mlp, He, 12 layers": lambda: mlp([20] + [64] * 11 + [10]),
    "wide relu mlp, He": lambda: mlp([784, 1024, 1024, 10]),
    "leaky relu mlp": lambda: mlp([20, 64, 64, 64, 10], mg.LeakyReLU),
    "tanh mlp, Glorot, 6 layers": lambda: mlp([20] + [64] * 5 + [10], mg.Tanh, init=mg.init.glorot_normal),
    "relu mlp with BatchNorm, tiny init": lambda: mlp([20] + [64] * 6 + [10], batchnorm=True,
                                                      init=lambda layer: mg.init.gaussian(layer, std=0.01)),
    "two-class relu mlp": lambda: mlp([20, 32, 2]),
    "convnet": lambda: small_convnet(),
    "convnet with BatchNorm": lambda: small_convnet(batchnorm=True),
    "tanh convnet": lambda: small_convnet(activation=mg.Tanh),
}


@pytest.mark.parametrize("name", sorted(HEALTHY))
@pytest.mark.parametrize("positive", [False, True], ids=["gaussian inputs", "uniform [0, 1) inputs"])
def test_healthy_networks_get_no_findings(name, positive):
    net = HEALTHY[name]()
    shape = (16, 3, 16, 16) if "conv" in name else (16, net[0].in_features)
    classes = net.layers[-1].out_features
    report = mg.diagnose(net, *batch(shape, classes, positive=positive))
    assert report.findings == [], f"{name}:\n{report}"


@pytest.mark.parametrize("seed", [0, 1])
def test_the_small_alexnet_with_he_init_is_healthy(seed):
    net = alexnet("small", num_classes=10, seed=seed)
    report = mg.diagnose(net, *batch((8, 3, 64, 64), seed=seed))
    assert report.findings == [], str(report)
    assert [row.name for row in report.layers][:4] == ["conv1", "relu1", "norm1", "pool1"]


# --- no state changes ------------------------------------------------------------------------------------------

def test_diagnose_changes_no_weight_gradient_buffer_generator_or_optimiser_state():
    mg.manual_seed(0)
    net = mg.Sequential(("conv", mg.Conv2d(3, 8, 3, padding=1)), ("bn", mg.BatchNorm2d(8)),
                        ("relu", mg.ReLU()), ("pool", mg.MaxPool2d(2)), ("flatten", mg.Flatten()),
                        ("drop", mg.Dropout(0.5, seed=3)), ("fc", mg.Linear(8 * 4 * 4, 5)))
    x, y = batch((6, 3, 8, 8), classes=5)
    loss, optimiser = mg.SoftmaxCrossEntropy(), mg.SGD(net.parameters(), lr=0.1)
    loss.forward(net.forward(x), y)                    # a step already taken: gradients, velocity and
    net.backward(loss.backward())                      # running statistics are all non-trivial
    optimiser.step()
    loss.forward(net.forward(x), y)                    # and the next forward, its backward still to come
    twin, twin_optimiser = copy.deepcopy((net, optimiser))

    mg.diagnose(net, x, y)

    assert all(np.array_equal(a, b) for a, b in zip(net.state_dict().values(), twin.state_dict().values()))
    assert all(np.array_equal(p.grad, q.grad) for p, q in zip(net.parameters(), twin.parameters()))
    assert all(np.array_equal(v, w) for v, w in zip(optimiser.velocity, twin_optimiser.velocity))
    assert net["drop"].get_rng_state() == twin["drop"].get_rng_state() and net.training
    assert all(np.array_equal(p.data, q.data) for p, q in zip(optimiser.params, net.parameters()))
    # the cached forward is still the caller's: backward continues where the caller left off
    np.testing.assert_array_equal(net.backward(loss.backward()), twin.backward(loss.backward()))
    # and the next training step is exactly the one the untouched twin takes
    for model, opt in ((net, optimiser), (twin, twin_optimiser)):
        model.zero_grad()
        loss.forward(model.forward(x), y)
        model.backward(loss.backward())
        opt.step()
    assert all(np.array_equal(a, b) for a, b in zip(net.state_dict().values(), twin.state_dict().values()))


def test_diagnose_measures_dropout_in_its_eval_form_and_batchnorm_as_the_model_is_set():
    net = mg.Sequential(("fc1", mg.Linear(10, 32)), ("bn", mg.BatchNorm1d(32)), ("relu", mg.ReLU()),
                        ("drop", mg.Dropout(0.5, seed=0)), ("fc2", mg.Linear(32, 3)))
    x, y = batch((8, 10), classes=3)
    train_report = mg.diagnose(net, x, y)
    assert train_report["bn"].mean == pytest.approx(0.0, abs=1e-5)        # batch statistics
    assert train_report["drop"].mean == pytest.approx(train_report["relu"].mean)   # no units dropped
    eval_report = mg.diagnose(net.eval(), x, y)
    assert eval_report["bn"].mean != pytest.approx(0.0, abs=1e-3)         # running statistics (fresh)


# --- the report ---------------------------------------------------------------------------------------------------

def test_report_table_and_findings_are_readable():
    report = mg.diagnose(mlp([20, 64, 64, 10], hidden_bias=-3.0), *batch((16, 20)))
    table = str(report)
    for word in ("layer", "mean", "std", "spread", "dead", "|dL/dW|/|W|", "fc1", "act2", "ln 10"):
        assert word in table
    assert "100%" in table.splitlines()[[r.name for r in report.layers].index("act2") + 2]
    assert len(report.findings) == len(report.codes)
    for text in report.findings:
        assert text.split(":")[0] in CODES and text.rstrip().endswith(".")
    assert report["fc1"].grad_to_weight == pytest.approx(report["fc1"].grad_norm / report["fc1"].weight_norm)
    assert report["act1"].grad_norm is None
    with pytest.raises(KeyError, match="no layer named"):
        report["conv9"]


def test_nested_sequentials_are_opened_and_a_single_layer_works():
    report = mg.diagnose(small_convnet(), *batch((4, 3, 16, 16)))
    assert [row.name for row in report.layers][:4] == ["block1.0", "block1.1", "block1.2", "block2.0"]
    single = mg.diagnose(mg.Linear(6, 3), *batch((5, 6), classes=3))
    assert [(row.name, row.output_shape) for row in single.layers] == [("Linear", (5, 3))]


def test_a_layer_in_front_of_one_that_computes_no_input_gradient_gets_no_sensitivity():
    """As the towers' SharedInput in front of AlexNet's conv1 (minigrad/distributed/towers.py)."""
    conv = mg.Conv2d(3, 4, 3)
    conv.needs_input_grad = False
    net = mg.Sequential(mg.ReLU(), conv, mg.Flatten(), mg.Linear(4 * 6 * 6, 10))
    report = mg.diagnose(net, *batch((4, 3, 8, 8)))
    assert np.isnan(report.layers[0].sensitivity) and report.layers[1].sensitivity > 0


def test_the_gradients_it_reports_are_those_of_one_backward_pass():
    net = mlp([12, 16, 5])
    x, y = batch((8, 12), classes=5)
    loss = mg.SoftmaxCrossEntropy()
    loss.forward(net.forward(x), y)
    net.backward(loss.backward())
    report = mg.diagnose(net, x, y)                    # the caller's accumulated gradient is ignored
    assert report["fc1"].grad_norm == pytest.approx(float(np.linalg.norm(net["fc1"].weight.grad)), rel=1e-5)
    assert report["fc2"].weight_norm == pytest.approx(float(np.linalg.norm(net["fc2"].weight.data)))


# --- input validation -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("model, x, y, match", [
    ("not a model", np.zeros((4, 3), np.float32), [0, 1, 2, 0], "model must be"),
    (mg.Linear(3, 2), [[0.0, 1.0, 2.0]] * 4, [0, 1, 1, 0], "floating-point array"),
    (mg.Linear(3, 2), np.zeros((4, 3), np.int64), [0, 1, 1, 0], "floating-point array"),
    (mg.Linear(3, 2), np.zeros((1, 3), np.float32), [0], "at least 2 examples"),
    (mg.Linear(3, 2), np.zeros((4, 3), np.float32), [0, 1, 1], "integer class labels"),
    (mg.Linear(3, 2), np.zeros((4, 3), np.float32), [0.0, 1.0, 1.0, 0.0], "integer class labels"),
    (mg.Linear(3, 2), np.zeros((4, 3), np.float32), [0, 1, 2, 0], "labels must be in"),
    (mg.Flatten(), np.zeros((4, 3, 2, 2), np.float32), [0, 1, 1, 0], None),
    (mg.Conv2d(3, 2, 1), np.zeros((4, 3, 2, 2), np.float32), [0, 1, 1, 0], "logits of shape"),
    (mg.Linear(3, 2), np.zeros((4, 5), np.float32), [0, 1, 1, 0], "expected 3 input features"),
])
def test_bad_inputs_raise_value_errors_that_say_what_is_wrong(model, x, y, match):
    if match is None:               # Flatten gives (4, 12) logits: a valid, if odd, model
        assert mg.diagnose(model, x, y).num_classes == 12
        return
    with pytest.raises(ValueError, match=match):
        mg.diagnose(model, x, y)
