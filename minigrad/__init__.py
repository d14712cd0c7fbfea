"""minigrad: AlexNet from scratch, with a hand-written forward and backward for every layer.

`import minigrad as mg` loads NumPy, Numba and the layers, and nothing optional: the submodules that
need an extra (mg.onnx needs onnx, mg.distributed mpi4py under a launcher) and those a training script
opens (mg.data, ...) are imported on first use, as numpy's and torch's submodules are, so that
`mg.onnx.load(...)` works without an import of its own.
"""
import importlib

from . import backend, init, ops
from .diagnostics import diagnose
from .feature_maps import feature_maps, mosaic
from .gradcheck import GradcheckResult, gradcheck
from .init import manual_seed
from .layers import (Add, AllGather, AvgPool2d, BatchNorm1d, BatchNorm2d, Bias, ChannelShuffle, Clip, Concat, Container,
                     Conv2d, Dropout, Flatten, GatherOutput, GlobalAvgPool2d, Graph, Identity, Input, Layer, LeakyReLU,
                     Linear, LocalResponseNorm, MaxPool2d, Multiply, Parameter, ReLU, ReLU6, Scale, Sequential,
                     SharedInput, Sigmoid, Slice, Softmax, SoftmaxCrossEntropy, Tanh, Transpose, Value, ZeroPad2d)
from .occlusion import occlusion
from .ops.cpu_runtime import keep_freed_memory
from .optim import SGD, Adam, ReduceLROnPlateau, StepLR, clip_grad_norm
from .saliency import deconvnet, guided_backprop, saliency
from .summary import summary

__version__ = "0.1.0"

_ON_FIRST_USE = ("checkpoint", "console", "data", "distributed", "finetune", "imagenet", "models", "onnx", "recipe",
                 "reports", "scoring")


def __getattr__(name):
    """mg.onnx and the others of _ON_FIRST_USE: imported when first named (PEP 562)."""
    if name in _ON_FIRST_USE:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'minigrad' has no attribute {name!r}")
