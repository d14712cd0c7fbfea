"""Central-difference gradient checking in float64, for the input and every parameter of a layer.

The hand-written backward is compared with what finite differences of the forward say:

    dL/dtheta_i  ~  (L(theta_i + eps) - L(theta_i - eps)) / (2 eps)

with L = sum(forward(x) * R) for a fixed random R (so every output element matters), or the loss
itself for a loss layer. The error of one element is |analytic - numeric| / max(|analytic|, |numeric|,
floor). The floor keeps elements whose gradient is ~0 from being magnified: it is the larger of a
thousandth of the tensor's largest gradient and the resolution of the difference quotient itself
(rounding of L, about 10 * machine epsilon * |L| / eps, divided by the tolerance), below which a
numerical derivative says nothing. The layer is deep-copied and cast to float64 first,
so the caller's layer, its gradients and its random generators are left exactly as they were.
"""
import copy
from dataclasses import dataclass, field

import numpy as np

from . import backend


@dataclass
class GradcheckResult:
    max_error: float                  # the worst relative error over everything checked
    where: str                        # where it occurred, e.g. "weight[3, 0, 1, 2]" or "input[0, 5]"
    tol: float
    errors: dict = field(default_factory=dict)   # tensor name -> its worst relative error

    @property
    def passed(self):
        return self.max_error <= self.tol

    def __bool__(self):
        return self.passed

    def __str__(self):
        verdict = "passed" if self.passed else "FAILED"
        per_tensor = ", ".join(f"{name} {err:.1e}" for name, err in self.errors.items())
        return (f"gradcheck {verdict}: worst relative error {self.max_error:.2e} at {self.where} "
                f"(tolerance {self.tol:.0e}); per tensor: {per_tensor}")


def gradcheck(layer, x, labels=None, *, eps=1e-6, tol=1e-5, samples=None, seed=0):
    """Check `layer.backward` against central differences of `layer.forward` at input `x` (or at the
    inputs of a layer that reads several, as Add or a graph with two inputs: a tuple of arrays, checked
    as "input0", "input1", ...).

    labels: for a loss layer (forward(x, labels) returns a float, backward() takes no gradient).
    samples: check this many randomly chosen elements per tensor instead of all (for big layers).
    Returns a GradcheckResult; it is truthy when the worst error is within `tol`. The input is checked
    unless the layer (or a Sequential's first layer) has needs_input_grad = False, as AlexNet's conv1.
    """
    layer = copy.deepcopy(layer).astype(np.float64)
    several = isinstance(x, tuple)
    xp = backend.array_module(x[0] if several else x)
    # C order: perturbing an input's reshape(-1) view perturbs the input itself
    xs = [xp.array(a, dtype=np.float64, order="C") for a in (x if several else [x])]
    rng = np.random.default_rng(seed)
    rng_state = layer.get_rng_state()          # replay the same dropout masks at every evaluation
    is_loss = labels is not None

    def evaluate():
        layer.set_rng_state(copy.deepcopy(rng_state))
        if is_loss:
            return layer.forward(*xs, labels)
        return float((layer.forward(*xs) * weights).sum())

    # The analytic gradients: one forward and one backward with dL/dy = R.
    layer.zero_grad()
    layer.set_rng_state(copy.deepcopy(rng_state))
    if is_loss:
        layer.forward(*xs, labels)
        dxs = layer.backward()
    else:
        y = layer.forward(*xs)
        weights = xp.asarray(rng.standard_normal(y.shape))
        dxs = layer.backward(weights)
    dxs = dxs if several else (dxs,)
    resolution = 10 * np.finfo(np.float64).eps * max(1.0, abs(evaluate())) / eps
    tensors = [(name, p.data, p.grad.copy()) for name, p in layer.named_parameters()]
    if not _skips_input_grad(layer):
        names = [f"input{i}" for i in range(len(xs))] if several else ["input"]
        for name, x_i, dx_i in reversed(list(zip(names, xs, dxs))):
            if dx_i is None:
                return GradcheckResult(float("inf"), f"{name} (backward returned None)", tol, {name: float("inf")})
            tensors.insert(0, (name, x_i, dx_i))

    worst, where, errors = 0.0, "nowhere", {}
    for name, values, analytic in tensors:
        analytic = backend.to_numpy(analytic)
        flat = values.reshape(-1)               # a view: writing it perturbs the tensor itself
        count = flat.shape[0]
        picks = range(count) if samples is None or samples >= count else rng.choice(count, samples, replace=False)
        numeric = {}
        for i in picks:
            original = float(flat[i])
            flat[i] = original + eps
            plus = evaluate()
            flat[i] = original - eps
            minus = evaluate()
            flat[i] = original
            numeric[i] = (plus - minus) / (2 * eps)
        picked = np.fromiter(numeric, dtype=np.int64)
        a = analytic.reshape(-1)[picked]
        n = np.fromiter(numeric.values(), dtype=np.float64)
        floor = max(1e-3 * max(np.abs(a).max(initial=0.0), np.abs(n).max(initial=0.0)), resolution / tol)
        rel = np.abs(a - n) / np.maximum(np.maximum(np.abs(a), np.abs(n)), floor)
        errors[name] = float(rel.max(initial=0.0))
        if errors[name] > worst or where == "nowhere":
            if rel.size:
                k = int(rel.argmax())
                index = np.unravel_index(picked[k], values.shape)
                where = f"{name}[{', '.join(map(str, index))}] (analytic {a[k]:.6g}, numeric {n[k]:.6g})"
            worst = max(worst, errors[name])
    return GradcheckResult(worst, where, tol, errors)


def _skips_input_grad(layer):
    layers = getattr(layer, "layers", None)          # a Sequential: ask its first layer
    if layers:
        return _skips_input_grad(layers[0])
    return getattr(layer, "needs_input_grad", True) is False
