"""Local response normalisation (section 3.3) and batch normalisation."""
import numpy as np

from .. import ops
from ..backend import array_module
from .base import Layer, Parameter


class LocalResponseNorm(Layer):
    """b_i = a_i / (k + alpha * sum_{j=max(0, i-n/2)}^{min(N-1, i+n/2)} a_j^2)^beta   (section 3.3)

    The sum runs over `size` = n neighbouring channels at the same (x, y). This is the paper's formula
    as printed: alpha is NOT divided by n. A unit with a strong response thereby damps its neighbours
    (lateral inhibition). Conversions: PyTorch's nn.LocalResponseNorm(n, alpha', beta, k) divides by n,
    so it equals LocalResponseNorm(n, alpha'/n, beta, k) here; Caffe's bvlc_alexnet uses alpha'/n and k=1.

    groups=G splits the N channels into G equal contiguous groups and clips the window at their
    boundaries, so no channel is normalised by another group's. That is the paper's two towers (section
    3.2): in the authors' cuda-convnet2 configuration (layers-imagenet-2gpu-model.cfg) rnorm1a normalises
    conv1a's 48 maps and rnorm1b conv1b's. groups=G equals G separate LRNs, one per group.
    """
    SAVED = ("a", "b", "scale")

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=2.0, groups=1):
        if not isinstance(size, (int, np.integer)) or size < 1 or size % 2 == 0:
            raise ValueError(f"LocalResponseNorm: size must be a positive odd int (a window centred on "
                             f"the channel), got {size!r}")
        if k <= 0 or alpha < 0:
            raise ValueError(f"LocalResponseNorm: expected k > 0 and alpha >= 0, got k={k}, alpha={alpha}")
        if not isinstance(groups, (int, np.integer)) or groups < 1:
            raise ValueError(f"LocalResponseNorm: groups must be a positive int, got {groups!r}")
        self.size, self.alpha, self.beta, self.k = int(size), float(alpha), float(beta), float(k)
        self.groups = int(groups)
        self.a = self.b = self.scale = None

    def describe(self):
        groups = f", groups={self.groups}" if self.groups > 1 else ""
        return f"LocalResponseNorm(size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}{groups})"

    def output_shape(self, input_shape):
        shape = self.check_shape(input_shape, 4, "(N, C, H, W)")
        if shape[1] is not None and shape[1] % self.groups:
            raise ValueError(f"{self.describe()}: groups={self.groups} must divide the channels, got input "
                             f"of shape {shape}")
        return shape

    def forward(self, a):
        self.check_input(a, 4, "(N, C, H, W)")
        self.output_shape(a.shape)
        self.b, self.scale = ops.lrn_forward(a, self.size, self.alpha, self.beta, self.k, self.groups)
        self.a = a
        return self.b

    def backward(self, dy):
        a, b, scale = self.saved(self.a, self.b, self.scale)
        self.check_grad(dy, a.shape)
        return ops.lrn_backward(dy, a, b, scale, self.size, self.alpha, self.beta, self.groups)


class _BatchNorm(Layer):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta over the batch (and spatial) axes.

    Training normalises with the batch's statistics and updates running estimates
    (running = (1 - momentum) * running + momentum * batch, the variance unbiased, as PyTorch);
    eval mode normalises with the running estimates.
    """
    SAVED = ("x_hat", "inv_std")

    buffers = ("running_mean", "running_var")
    ndim, layout, axes = None, None, None

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        if not isinstance(num_features, (int, np.integer)) or num_features < 1:
            raise ValueError(f"{type(self).__name__}: num_features must be a positive int, got {num_features!r}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = Parameter(np.ones(num_features, np.float32), "weight")     # gamma
        self.bias = Parameter(np.zeros(num_features, np.float32), "bias")        # beta
        self.running_mean = np.zeros(num_features, np.float32)
        self.running_var = np.ones(num_features, np.float32)
        self.x_hat = self.inv_std = None

    def describe(self):
        return f"{type(self).__name__}({self.num_features})"

    def _per_feature(self, v):
        """Shape a (C,) vector to broadcast against the input."""
        return v.reshape((1, -1) + (1,) * (self.ndim - 2))

    def output_shape(self, input_shape):
        shape = self.check_shape(input_shape, self.ndim, self.layout)
        if shape[1] not in (None, self.num_features):
            raise ValueError(f"{self.describe()}: expected {self.num_features} features on axis 1, "
                             f"got input of shape {shape}")
        return shape

    def forward(self, x):
        self.check_input(x, self.ndim, self.layout)
        self.output_shape(x.shape)
        if self.training:
            count = x.size // x.shape[1]
            if count < 2:
                raise ValueError(f"{self.describe()}: training needs more than one value per feature, "
                                 f"got input of shape {tuple(x.shape)}")
            mean, var = x.mean(axis=self.axes), x.var(axis=self.axes)
            m = self.momentum
            self.running_mean = (1 - m) * self.running_mean + m * mean
            self.running_var = (1 - m) * self.running_var + m * var * (count / (count - 1))
        else:
            mean, var = self.running_mean, self.running_var
        self.inv_std = 1 / array_module(x).sqrt(var + self.eps)
        self.x_hat = (x - self._per_feature(mean)) * self._per_feature(self.inv_std)
        return self._per_feature(self.weight.data) * self.x_hat + self._per_feature(self.bias.data)

    def backward(self, dy):
        x_hat, inv_std = self.saved(self.x_hat, self.inv_std)
        self.check_grad(dy, x_hat.shape)
        self.weight.grad += (dy * x_hat).sum(axis=self.axes)
        self.bias.grad += dy.sum(axis=self.axes)
        dx_hat = dy * self._per_feature(self.weight.data)
        if not self.training:                 # running statistics are constants
            return dx_hat * self._per_feature(inv_std)
        # The batch mean and variance depend on every x, which adds the two centring terms.
        mean_dx_hat = dx_hat.mean(axis=self.axes, keepdims=True)
        mean_dx_hat_x_hat = (dx_hat * x_hat).mean(axis=self.axes, keepdims=True)
        return (dx_hat - mean_dx_hat - x_hat * mean_dx_hat_x_hat) * self._per_feature(inv_std)


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, features) inputs."""
    ndim, layout, axes = 2, "(N, features)", (0,)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs, one mean and variance per channel."""
    ndim, layout, axes = 4, "(N, C, H, W)", (0, 2, 3)
