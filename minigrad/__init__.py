"""minigrad: AlexNet from scratch, with a hand-written forward and backward for every layer."""
from . import backend, init, ops
from .diagnostics import diagnose
from .gradcheck import GradcheckResult, gradcheck
from .init import manual_seed
from .layers import (AllGather, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Flatten, GlobalAvgPool2d,
                     Layer, LeakyReLU, Linear, LocalResponseNorm, MaxPool2d, Parameter, ReLU, Sequential, Sigmoid,
                     Softmax, SoftmaxCrossEntropy, Tanh, GatherOutput, SharedInput, Transpose, ZeroPad2d)
from .ops.cpu_runtime import keep_freed_memory
from .optim import SGD, Adam, ReduceLROnPlateau, StepLR, clip_grad_norm

__version__ = "0.1.0"
