"""One small function per ONNX operator, registered by @converter (registry.py), in modules named as
the layers' families are (minigrad/layers/). A new operator is one function in one of them, or a new
module imported here. The order of the imports is the order SUPPORTED_OPS lists the operators in."""
from . import conv, pool, activation, norm, linear, pad, join  # noqa: F401  (each registers its converters)
from .registry import CONVERTERS, converter, converter_for, supported_ops  # noqa: F401
