from .activation import Clip, LeakyReLU, ReLU, ReLU6, Sigmoid, Softmax, Tanh
from .base import Layer, Parameter
from .collective import AllGather, GatherOutput, SharedInput
from .container import Container, Sequential
from .conv import Conv2d
from .dropout import Dropout
from .graph import Graph, Input, Value
from .join import Add, ChannelShuffle, Concat, Identity, Multiply, Slice
from .linear import Flatten, Linear, Transpose
from .loss import SoftmaxCrossEntropy
from .norm import BatchNorm1d, BatchNorm2d, LocalResponseNorm
from .pad import ZeroPad2d
from .pool import AvgPool2d, GlobalAvgPool2d, MaxPool2d
from .scale import Bias, Scale
