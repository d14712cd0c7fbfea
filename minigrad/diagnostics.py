"""Why will my network not learn? One forward and one backward pass, measured layer by layer.

    report = mg.diagnose(model, x, y)
    print(report)                 # a table: one row per layer
    report.findings               # what is wrong, each text starting with a code and ending in advice

The codes, and what each one measures (the thresholds below say why they sit where they do):

    vanishing_gradient   the learning signal reaching the early layers is orders of magnitude weaker
                         than at the output, or a layer's gradient is negligible next to its weights
    exploding_gradient   non-finite values, or the signal amplified layer after layer until the loss
                         is many times that of a uniform guess
    dead_relu            more of a ReLU layer's units are off for every example than any zero-bias
                         initialisation can produce
    constant_output      the predicted probabilities are (nearly) the same for every example: the
                         input does not matter
    saturated            most outputs of a sigmoid or tanh sit on a flat part of the curve

The model is deep-copied first and the copy is measured, so nothing of the caller's changes: weights,
gradient accumulators, BatchNorm running statistics, dropout generators and forward caches stay exactly
as they were, and an optimiser holding the parameters never sees the pass. The copy keeps the model's
train/eval mode (BatchNorm normalises as it would in the next training step), except that dropout is
switched to its eval form: its random masks make examples differ for reasons that have nothing to do
with their input, which would hide a network whose output ignores the input.
"""
import copy
import math
from dataclasses import dataclass, field

import numpy as np

from .backend import array_module
from .layers import Dropout, Layer, ReLU, Sigmoid, SoftmaxCrossEntropy, Tanh
from .layers.container import Container

# --- thresholds ---------------------------------------------------------------------------------------
# Sensitivity of a layer: |dL/dy| * |y| over the whole batch (y its output). It is the first-order change
# of the loss when y changes by 100% of its size in the steepest direction, so it does not depend on the
# scale of y (BatchNorm after a layer with tiny weights leaves it unchanged). Through layers that are
# positively homogeneous (Linear and Conv2d without bias, ReLU, max pooling) <dL/dy, y> is exactly the
# same at every depth; in healthy networks (ReLU, tanh, BatchNorm, conv and MLP, 2 to 30 layers) we
# measured ratios to the output's sensitivity between 0.3 and 50 (above 1 where large tensors make dL/dy
# and y less aligned). Below 1e-2, the early layers
# hear less than a hundredth of what the output hears: the signal died on the way back.
VANISHING_SENSITIVITY = 1e-2
# |dL/dW| / |W|: one step of the paper's learning rate 0.01 changes W by 0.01 times this, relative to its
# size; healthy training changes weights by about 1e-3 per step (ratios of 0.03 to 10 at initialisation).
# Below 1e-4 a step moves the weights by a millionth: they would need millions of steps to change.
VANISHING_GRAD_TO_WEIGHT = 1e-4
# A network at initialisation should be unsure: loss near ln(classes), the loss of a uniform guess
# (healthy He/Glorot networks start within 3x of it). Ten times ln(classes) means the correct class gets
# a probability of classes^-10: the logits are huge, because each layer amplified its input, and the
# gradients of the weights are as large as those activations.
EXPLODING_LOSS = 10.0
# Dead ReLU unit: one feature of a Linear layer, or one channel of a convolution (its kernel is shared by
# every position), whose input is <= 0 for every example and position of the batch. Such a unit passes no
# gradient, so its weights never change again. With zero biases and a weight distribution symmetric about
# 0 (every standard initialisation), a unit with weights w is dead on a batch only if -w is not, so each
# unit is dead with probability at most 1/2, independently of the others given the layer's input, however
# correlated the examples are. The dead fraction of n units is then at most 1/2 + 3 standard deviations
# = 1/2 + 1.5/sqrt(n) (false alarm < 0.2%); more than that needs negative biases or a step that pushed the
# units below zero.
DEAD_SIGMAS = 3.0
# Saturated sigmoid or tanh output: within 1% of the range from its asymptote (|tanh| > 0.99, sigmoid
# < 0.005 or > 0.995), where the derivative is below 2% of its peak, so the unit passes almost no
# gradient. Glorot-initialised layers keep pre-activations at unit scale, where about 1% of units
# saturate (tanh needs |x| > 2.65); a quarter of the layer saturated means Gaussian pre-activations with
# a std of 2.3 or more: the weights or the inputs are too large.
SATURATION_LEVEL = 0.99
SATURATED_FRACTION = 0.25
# Spread of the output: the std across the batch of the log-probability of each class, averaged over the
# classes weighted by their mean probability (see _output_spread). Below 1e-3 the probabilities the
# network gives differ from one example to the next by about 0.1% or less: every input gets the same
# answer. ReLU and tanh networks with He or Glorot initialisation measure 0.05 to 1 at initialisation,
# shallow sigmoid networks 0.004 to 0.05 (a sigmoid passes at most a quarter of its input's variation).
CONSTANT_SPREAD = 1e-3

CODES = ("vanishing_gradient", "exploding_gradient", "dead_relu", "constant_output", "saturated")


@dataclass
class LayerReport:
    """What one layer did on the batch. Gradient columns are None for layers without a weight matrix."""
    name: str
    kind: str
    output_shape: tuple
    mean: float                   # of the layer's output
    std: float
    spread: float                 # std across the batch of each output unit, averaged over the units
    sensitivity: float            # |dL/dy| |y|, relative to the same at the model's output
    dead_fraction: float = None   # ReLU: fraction of units (features or channels) off for every example
    saturated_fraction: float = None   # Sigmoid and Tanh: fraction of outputs on the flat tails
    grad_norm: float = None       # |dL/dW| for Linear and Conv2d (W the weight matrix or kernels)
    weight_norm: float = None

    @property
    def grad_to_weight(self):
        if self.grad_norm is None or not self.weight_norm:
            return None
        return self.grad_norm / self.weight_norm


@dataclass
class Report:
    """The result of `diagnose`: `layers` (LayerReport per layer, input to output), the batch's `loss`,
    `num_classes`, `output_spread` (see CONSTANT_SPREAD) and `findings` (strings, each naming a code)."""
    layers: list
    loss: float
    num_classes: int
    output_spread: float
    findings: list = field(default_factory=list)

    @property
    def codes(self):
        """The set of codes among the findings, e.g. {"dead_relu", "constant_output"}."""
        return {code for text in self.findings for code in CODES if text.startswith(code)}

    def __getitem__(self, name):
        return row_named(self.layers, name, "the report")

    def __str__(self):
        header = ("layer", "type", "output", "mean", "std", "spread", "dead", "satur.", "|dL/dW|",
                  "|dL/dW|/|W|", "sensitivity")
        rows = [header]
        for layer in self.layers:
            rows.append((layer.name, layer.kind, "x".join(map(str, layer.output_shape[1:])),
                         _num(layer.mean), _num(layer.std), _num(layer.spread),
                         _percent(layer.dead_fraction), _percent(layer.saturated_fraction),
                         _num(layer.grad_norm), _num(layer.grad_to_weight), _num(layer.sensitivity)))
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in
                           enumerate(zip(row, widths))) for row in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.append("")
        lines.append(f"loss {self.loss:.4g} (a uniform guess over {self.num_classes} classes: "
                     f"ln {self.num_classes} = {math.log(self.num_classes):.4g}); spread of the answer "
                     f"across the batch {self.output_spread:.3g} (std of log-probabilities)")
        if self.findings:
            lines.append(f"{len(self.findings)} finding(s):")
            lines.extend(f"  - {text}" for text in self.findings)
        else:
            lines.append("no findings: nothing here stops this network from learning")
        return "\n".join(lines)


def row_named(rows, name, where):
    """The row (of a Report, or of mg.summary's Summary) of the layer `name`; KeyError naming the others."""
    for row in rows:
        if row.name == name:
            return row
    raise KeyError(f"no layer named {name!r} in {where}; layers: {[row.name for row in rows]}")


def _num(value):
    return "-" if value is None else f"{value:.3g}"


def _percent(value):
    return "-" if value is None else f"{100 * value:.0f}%"


def weight_matrix(layer):
    """The weight of a Linear or Conv2d (2-D or more); None for layers without one (BatchNorm's gamma is
    a per-feature scale, not a weight matrix through which the signal is multiplied)."""
    weight = getattr(layer, "weight", None)
    return weight if weight is not None and getattr(weight.data, "ndim", 0) >= 2 else None


def diagnose(model, x, y):
    """Run one forward and backward pass of `model` on the batch (x, integer labels y), with softmax
    cross-entropy as the loss, without changing any state of `model`, and return a Report.

    model: any minigrad layer, typically a (nested) Sequential whose output is (N, classes) logits.
    x: a float array whose first axis is the batch (at least 2 examples, to see how they differ).
    """
    if not isinstance(model, Layer):
        raise ValueError(f"diagnose: model must be a minigrad Layer or Sequential, got {type(model).__name__}")
    if not hasattr(x, "shape") or not hasattr(x, "dtype") or x.ndim < 2 or x.dtype.kind != "f":
        raise ValueError(f"diagnose: x must be a floating-point array with a batch axis first, got "
                         f"{getattr(x, 'dtype', type(x).__name__)} of shape {getattr(x, 'shape', None)}")
    xp = array_module(x)
    if x.shape[0] < 2:
        raise ValueError(f"diagnose: needs a batch of at least 2 examples to tell whether the output "
                         f"depends on the input, got x of shape {tuple(x.shape)}")
    labels = xp.asarray(y)
    if labels.ndim != 1 or labels.shape[0] != x.shape[0] or labels.dtype.kind not in "iu":
        raise ValueError(f"diagnose: y must be {x.shape[0]} integer class labels (one per example of x), "
                         f"got {labels.dtype} of shape {tuple(labels.shape)}")

    net = copy.deepcopy(model)
    net.zero_grad()
    layers = net.named_leaves()
    for _, layer in layers:
        if isinstance(layer, Dropout):
            layer.eval()

    # One pass, watched: each layer's output, and the gradient that reaches it (a graph's: the sum over
    # the layers that read it). A plain layer is its own only leaf.
    outputs, gradients = {}, {}

    def watch(event, name, layer, array):
        (outputs if event == "forward" else gradients)[id(layer)] = array

    if isinstance(net, Container) and net.opens_up:
        net.observe(watch)
    h = net.forward(x)
    outputs.setdefault(id(net), h)
    if h.ndim != 2 or h.shape[0] != x.shape[0]:
        raise ValueError(f"diagnose: the model must output logits of shape (N, classes) = ({x.shape[0]}, "
                         f"classes), got {tuple(h.shape)}")
    num_classes = h.shape[1]
    if num_classes < 2:
        raise ValueError(f"diagnose: the model must output at least 2 classes, got {num_classes}")
    loss_layer = SoftmaxCrossEntropy()
    loss = loss_layer.forward(h, labels)
    dy = loss_layer.backward()
    output_sensitivity = _norm(dy) * _norm(h)
    gradients.setdefault(id(net), dy)
    net.backward(dy)

    # A layer in front of one that computes no input gradient (AlexNet's conv1) receives none: it has
    # no backward, and a nan sensitivity.
    reports = []
    for name, layer in layers:
        reports.append(_layer_report(name, layer, outputs[id(layer)], gradients.get(id(layer)), output_sensitivity))
        weight = weight_matrix(layer)
        if weight is not None and gradients.get(id(layer)) is not None:
            reports[-1].grad_norm, reports[-1].weight_norm = _norm(weight.grad), _norm(weight.data)

    report = Report(reports, loss, num_classes, _output_spread(loss_layer.probs))
    report.findings = _findings(report, layers)
    return report


def _output_spread(probs):
    """How much the network's answer changes from one example to the next: the std across the batch of
    each class's log-probability, averaged over classes weighted by their mean probability (so a class
    that wins every example with probability ~1 counts, and classes nobody predicts do not)."""
    xp = array_module(probs)
    probs = probs.astype(np.float64)
    log_probs = xp.log(xp.maximum(probs, np.finfo(np.float64).tiny))
    return float((probs.mean(axis=0) * log_probs.std(axis=0)).sum())


def _norm(a):
    return float(array_module(a).linalg.norm(a.ravel()))


def _layer_report(name, layer, y, dy, output_sensitivity):
    xp = array_module(y)
    y_float = y.astype(np.float64)       # statistics of float32 activations in float64
    spread = float(y_float.reshape(y.shape[0], -1).std(axis=0).mean())
    sensitivity = (_norm(dy) * _norm(y) / output_sensitivity if output_sensitivity > 0 and dy is not None
                   else float("nan"))
    report = LayerReport(name, type(layer).__name__, tuple(y.shape), float(y_float.mean()),
                         float(y_float.std()), spread, sensitivity)
    if isinstance(layer, ReLU):
        unit_axes = (0,) + tuple(range(2, y.ndim))       # a unit: a feature, or a channel at every position
        report.dead_fraction = float((~(y > 0).any(axis=unit_axes)).mean())
    elif isinstance(layer, (Sigmoid, Tanh)):
        centred = y if isinstance(layer, Tanh) else 2 * y - 1          # both in [-1, 1]
        report.saturated_fraction = float((xp.abs(centred) > SATURATION_LEVEL).mean())
    return report


def _findings(report, layers):
    findings = []
    rows = report.layers
    weighted = [row for row, (_, layer) in zip(rows, layers) if weight_matrix(layer) is not None]

    # Non-finite values first: everything measured after them is meaningless.
    broken = next((row for row in rows if not (math.isfinite(row.mean) and math.isfinite(row.std))), None)
    if broken is not None or not math.isfinite(report.loss):
        where = f"the output of {broken.name}" if broken is not None else "the loss"
        findings.append(f"exploding_gradient: non-finite values (inf or NaN) first appear in {where}. "
                        f"Lower the learning rate, clip gradients (mg.clip_grad_norm), and initialise "
                        f"with He (ReLU) or Glorot (tanh, sigmoid) scale.")
        return findings

    if report.loss > EXPLODING_LOSS * math.log(report.num_classes):
        first, last = rows[0], rows[-1]
        findings.append(f"exploding_gradient: the loss is {report.loss:.3g}, "
                        f"{report.loss / math.log(report.num_classes):.0f} times the ln {report.num_classes}"
                        f" = {math.log(report.num_classes):.3g} of a uniform guess: each layer amplifies its "
                        f"input (output std {first.std:.3g} after {first.name}, {last.std:.3g} after "
                        f"{last.name}), so the logits and the weight gradients are huge. Use He "
                        f"initialisation (ReLU) or Glorot (tanh, sigmoid), normalise the inputs, add "
                        f"BatchNorm; if it appeared during training, lower the learning rate or clip "
                        f"gradients (mg.clip_grad_norm).")

    dead = []
    for row in rows:
        if row.dead_fraction is not None:
            units = row.output_shape[1]
            limit = 0.5 + DEAD_SIGMAS * 0.5 / math.sqrt(units)
            if row.dead_fraction > limit:
                dead.append(f"{row.dead_fraction:.0%} of the {units} units of {row.name} (chance "
                            f"allows {limit:.0%})")
    if dead:
        findings.append(f"dead_relu: {'; '.join(dead)} are off for every example of the batch; a zero-bias "
                        f"initialisation leaves about half dead at most. They pass no gradient, so their "
                        f"weights stop learning. Check for negative biases (set them to 0 "
                        f"or a small positive value), lower the learning rate (one large step can push units "
                        f"below zero for good), use He initialisation, BatchNorm before the ReLU, or LeakyReLU.")
    saturated = [f"{row.saturated_fraction:.0%} of the outputs of {row.name} ({row.kind})" for row in rows
                 if row.saturated_fraction is not None and row.saturated_fraction > SATURATED_FRACTION]
    if saturated:
        findings.append(f"saturated: {'; '.join(saturated)} are within {1 - SATURATION_LEVEL:.0%} of the ends "
                        f"of their range, where the slope is under 2% of its peak, so little gradient passes. "
                        f"Scale the weights down (Glorot initialisation), normalise the inputs, add BatchNorm "
                        f"before the nonlinearity, or use ReLU.")

    weak = [row for row in weighted if row.sensitivity < VANISHING_SENSITIVITY]
    still = [row for row in weighted if row.grad_to_weight is not None
             and row.grad_to_weight < VANISHING_GRAD_TO_WEIGHT]
    if weak or still:
        parts = []
        if weak:
            parts.append(", ".join(f"{row.name} {row.sensitivity:.1e}" for row in weak)
                         + " of the output's sensitivity (|dL/dy| |y|) reaches "
                         + ("it" if len(weak) == 1 else "them"))
        if still:
            parts.append(", ".join(f"{row.name} {row.grad_to_weight:.1e}" for row in still)
                         + ": gradient norm / weight norm, so a step barely moves the weights")
        cause = ""
        if any(text.startswith(("dead_relu", "saturated")) for text in findings):
            cause = " The dead or saturated units above block the gradient."
        findings.append(f"vanishing_gradient: {'; '.join(parts)}.{cause} Use ReLU with He initialisation "
                        f"(or Glorot for tanh and sigmoid), BatchNorm, fewer layers or skip "
                        f"connections; weights of N(0, 0.01^2) shrink the gradient at every layer.")

    if report.output_spread < CONSTANT_SPREAD:
        findings.append(f"constant_output: the predicted log-probabilities differ across the batch by "
                        f"only {report.output_spread:.2g} (std): the network gives every example the "
                        f"same answer. The spread column shows where the examples stop differing: a layer "
                        f"of dead ReLUs, weights too small (or biases so large, like the paper's biases of "
                        f"1 with N(0, 0.01^2) weights, that they drown the input), or inputs that are all "
                        f"alike. Check the biases, use He initialisation, normalise the inputs.")
    return findings
