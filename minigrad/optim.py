"""Optimisers and learning-rate schedules.

SGD is the paper's rule (section 5), with the learning rate eps inside the velocity:

    v <- momentum * v - weight_decay * eps * w - eps * dL/dw
    w <- w + v

With a constant eps this equals PyTorch's SGD; once eps changes they differ, because here the
velocity already accumulated keeps the old eps while PyTorch rescales it with the new one.
"""
import math
import numbers

from . import ops
from .backend import array_module, device_of, to_device


def _check_params(params, who):
    params = list(params)
    if not params:
        raise ValueError(f"{who}: got an empty parameter list")
    for p in params:
        if not hasattr(p, "data") or not hasattr(p, "grad"):
            raise ValueError(f"{who}: expected minigrad Parameters, got {type(p).__name__}")
    return params


def _check_nonnegative(who, **values):
    """Each value a finite real number >= 0 (a Python or NumPy number; not a bool)."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{who}: {name} must be a non-negative number and finite, got {value!r}")


def _check_momentum(who, momentum):
    """Momentum in [0, 1): at 1 or more the velocity never decays and the step grows without bound."""
    _check_nonnegative(who, momentum=momentum)
    if momentum >= 1:
        raise ValueError(f"{who}: momentum must be in [0, 1), got {momentum!r}")


def _load_arrays(who, name, arrays, params):
    if len(arrays) != len(params):
        raise ValueError(f"{who}.load_state_dict: expected {len(params)} {name} arrays, got {len(arrays)}")
    loaded = []
    for value, p in zip(arrays, params):
        if tuple(value.shape) != tuple(p.data.shape):
            raise ValueError(f"{who}.load_state_dict: a {name} array has shape {tuple(value.shape)}, "
                             f"its parameter {p.name!r} has {tuple(p.data.shape)}")
        loaded.append(to_device(value, device_of(p.data)).astype(p.data.dtype))
    return loaded


def _parameter_groups(params, who):
    """Parameters, or groups {"params": [...], "lr_mult": m, "decay_mult": d} as Caffe's lr_mult and
    decay_mult (default 1): (parameters, lr_mults, decay_mults), one multiplier per parameter."""
    params = list(params)
    if not params or not isinstance(params[0], dict):
        params = _check_params(params, who)
        return params, [1.0] * len(params), [1.0] * len(params)
    flat, lr_mults, decay_mults = [], [], []
    for index, group in enumerate(params):
        if not isinstance(group, dict) or "params" not in group or set(group) - {"params", "lr_mult", "decay_mult"}:
            raise ValueError(f"{who}: group {index} must be a dict with 'params' and optionally 'lr_mult', "
                             f"'decay_mult', got {group!r}")
        members = _check_params(group["params"], f"{who} group {index}")
        lr_mult, decay_mult = group.get("lr_mult", 1.0), group.get("decay_mult", 1.0)
        _check_nonnegative(f"{who} group {index}", lr_mult=lr_mult, decay_mult=decay_mult)
        flat += members
        lr_mults += [float(lr_mult)] * len(members)
        decay_mults += [float(decay_mult)] * len(members)
    if len({id(p) for p in flat}) != len(flat):
        raise ValueError(f"{who}: a parameter appears in more than one group")
    return flat, lr_mults, decay_mults


class SGD:
    """Stochastic gradient descent with momentum and weight decay, as the paper writes it.

    params: Parameters, or groups {"params": [...], "lr_mult": m, "decay_mult": d}: each parameter
    steps with the learning rate lr * lr_mult and the weight decay weight_decay * decay_mult, as in
    Caffe's fine-tuning recipe; lr_mult=0 freezes a group (its step is skipped). `lr` stays the one
    rate that schedules change.
    """

    def __init__(self, params, lr, momentum=0.9, weight_decay=0.0005):
        self.params, self.lr_mults, self.decay_mults = _parameter_groups(params, "SGD")
        _check_nonnegative("SGD", lr=lr, weight_decay=weight_decay)
        _check_momentum("SGD", momentum)
        self.lr, self.momentum, self.weight_decay = float(lr), float(momentum), float(weight_decay)
        self.velocity = [array_module(p.data).zeros_like(p.data) for p in self.params]

    def step(self):
        # The rule above as one fused pass per parameter: ops.cpu.sgd_update_reference spells it out
        # in NumPy; the CPU (Numba) and GPU (kernels/sgd.cu) kernels are tested against it.
        for p, v, lr_mult, decay_mult in zip(self.params, self.velocity, self.lr_mults, self.decay_mults):
            if lr_mult:
                ops.sgd_update(p.data, v, p.grad, self.lr * lr_mult, self.momentum, self.weight_decay * decay_mult)

    def zero_grad(self):
        for p in self.params:
            p.zero_grad()

    def state_dict(self):
        return {"lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay,
                "velocity": [to_device(v, "cpu").copy() for v in self.velocity]}

    def load_state_dict(self, state):
        _check_nonnegative("SGD.load_state_dict", lr=state["lr"], weight_decay=state["weight_decay"])
        _check_momentum("SGD.load_state_dict", state["momentum"])
        self.velocity = _load_arrays("SGD", "velocity", state["velocity"], self.params)
        self.lr, self.momentum, self.weight_decay = state["lr"], state["momentum"], state["weight_decay"]


class Adam:
    """Adam (Kingma and Ba 2015): moving averages of g and g^2 with bias correction. Not the paper's
    optimiser; here for comparison. weight_decay adds weight_decay * w to the gradient (L2)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.params = _check_params(params, "Adam")
        _check_nonnegative("Adam", lr=lr, eps=eps, weight_decay=weight_decay)
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"Adam: betas must be in [0, 1), got {betas!r}")
        self.lr, self.betas, self.eps, self.weight_decay = lr, tuple(betas), eps, weight_decay
        self.m = [array_module(p.data).zeros_like(p.data) for p in self.params]
        self.v = [array_module(p.data).zeros_like(p.data) for p in self.params]
        self.t = 0

    def step(self):
        self.t += 1
        b1, b2 = self.betas
        for p, m, v in zip(self.params, self.m, self.v):
            g = p.grad + self.weight_decay * p.data if self.weight_decay else p.grad
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            m_hat, v_hat = m / (1 - b1 ** self.t), v / (1 - b2 ** self.t)
            p.data -= self.lr * m_hat / (array_module(v_hat).sqrt(v_hat) + self.eps)

    zero_grad = SGD.zero_grad

    def state_dict(self):
        return {"lr": self.lr, "betas": self.betas, "eps": self.eps, "weight_decay": self.weight_decay,
                "t": self.t, "m": [to_device(a, "cpu").copy() for a in self.m],
                "v": [to_device(a, "cpu").copy() for a in self.v]}

    def load_state_dict(self, state):
        self.m = _load_arrays("Adam", "m", state["m"], self.params)
        self.v = _load_arrays("Adam", "v", state["v"], self.params)
        self.lr, self.betas, self.eps = state["lr"], tuple(state["betas"]), state["eps"]
        self.weight_decay, self.t = state["weight_decay"], int(state["t"])


class ReduceLROnPlateau:
    """Divide the learning rate by 10 when a watched metric stops improving (section 5: "divided by
    10 when the validation error rate stopped improving with the current learning rate").

    `step(metric)` once per epoch; returns True when it lowered the rate. mode="min" for an error or a
    loss, "max" for an accuracy. `patience` epochs without an improvement larger than `threshold`
    (relative) trigger a reduction; at most `max_reductions` (the paper: 3), never below `min_lr`.
    """

    def __init__(self, optimizer, mode="min", factor=0.1, patience=1, threshold=1e-4,
                 max_reductions=None, min_lr=0.0):
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau: mode must be 'min' or 'max', got {mode!r}")
        if not 0 < factor < 1:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor!r}")
        _check_nonnegative("ReduceLROnPlateau", patience=patience, threshold=threshold, min_lr=min_lr)
        self.optimizer, self.mode, self.factor, self.patience = optimizer, mode, factor, patience
        self.threshold, self.max_reductions, self.min_lr = threshold, max_reductions, min_lr
        self.best, self.bad_epochs, self.reductions = None, 0, 0

    def _improved(self, metric):
        if self.best is None:
            return True
        margin = self.threshold * abs(self.best)
        return metric < self.best - margin if self.mode == "min" else metric > self.best + margin

    def step(self, metric):
        metric = float(metric)
        if self._improved(metric):
            self.best, self.bad_epochs = metric, 0
            return False
        self.bad_epochs += 1
        return self.bad_epochs > self.patience and self.reduce()

    def reduce(self):
        """Lower the rate now (a plateau, or a caller's own reason), unless max_reductions are done or
        the rate is at min_lr; returns True when it did. The count of bad epochs starts again."""
        exhausted = self.max_reductions is not None and self.reductions >= self.max_reductions
        if exhausted or self.optimizer.lr <= self.min_lr:
            return False
        self.optimizer.lr = max(self.optimizer.lr * self.factor, self.min_lr)
        self.reductions, self.bad_epochs = self.reductions + 1, 0
        return True

    def state_dict(self):
        return {"best": self.best, "bad_epochs": self.bad_epochs, "reductions": self.reductions}

    def load_state_dict(self, state):
        best, bad_epochs, reductions = state["best"], state["bad_epochs"], state["reductions"]
        if best is not None and (isinstance(best, bool) or not isinstance(best, numbers.Real) or math.isnan(best)):
            raise ValueError(f"ReduceLROnPlateau.load_state_dict: best must be a number or None, got {best!r}")
        for name, count in (("bad_epochs", bad_epochs), ("reductions", reductions)):
            if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 0:
                raise ValueError(f"ReduceLROnPlateau.load_state_dict: {name} must be an int >= 0, got {count!r}")
        self.best, self.bad_epochs, self.reductions = best, bad_epochs, reductions


class StepLR:
    """Multiply the learning rate by `gamma` every `step_size` epochs; `step()` once per epoch."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        if not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"StepLR: step_size must be a positive int, got {step_size!r}")
        self.optimizer, self.step_size, self.gamma, self.epoch = optimizer, step_size, gamma, 0

    def step(self, metric=None):
        self.epoch += 1
        if self.epoch % self.step_size == 0:
            self.optimizer.lr *= self.gamma
            return True
        return False

    def state_dict(self):
        return {"epoch": self.epoch}

    def load_state_dict(self, state):
        self.epoch = state["epoch"]


def clip_grad_norm(params, max_norm):
    """Scale all gradients together so that their global L2 norm is at most max_norm.
    Returns the norm before clipping, as a float."""
    params = _check_params(params, "clip_grad_norm")
    _check_nonnegative("clip_grad_norm", max_norm=max_norm)
    total = math.sqrt(sum(float((p.grad.astype("float64") ** 2).sum()) for p in params))
    if total > max_norm:
        for p in params:
            p.grad *= max_norm / (total + 1e-12)
    return total
