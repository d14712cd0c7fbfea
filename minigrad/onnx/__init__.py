"""Models in and out of minigrad as ONNX graphs: export(model, path, input_shape) and load(path).

Conventions converted (SPEC.md, "Exchanging models"):
- LRN: ONNX divides alpha by the window, the paper (and minigrad) does not: export alpha * size, load
  alpha / size. Caffe's bvlc_alexnet (alpha 1e-4, size 5, bias 1) loads as alpha=2e-5, k=1. PyTorch
  writes nn.LocalResponseNorm out as operators, alpha times an average over the window: the same alpha.
- Dropout: ONNX inference Dropout is the identity (the inverted form). The paper's classic dropout
  scales by 1 - p at test time, so export folds 1 - p into the next Conv/Gemm weights (classic dropout
  on W is inverted dropout on (1 - p) W, in training as in eval), or writes Dropout + Mul(1 - p) when
  no linear layer follows; load reads that pair back as a classic Dropout.
- MaxPool: minigrad's padding (top, left, bottom, right) is ONNX's pads. ceil_mode is written as the
  trailing pads that give its windows at the graph's input size, in floor mode, as graphs older than
  opset 10 imitate Caffe's round-up (onnx's shape inference keeps a last window that starts in the
  trailing padding, which ONNX Runtime and minigrad drop). load reads pads and ceil_mode as they are.
- AveragePool: count_include_pad is AvgPool2d's (ONNX's default 0, PyTorch's 1). Where no padding is
  counted, ceil_mode is written as MaxPool's is; where it is, as ceil_mode, and a pool whose last window
  would start past the input is refused (shape inference would keep it). load reads both as they are,
  and cuts trailing pads as large as the window (PyTorch's imitation of ceil_mode before opset 10) to
  what the last window reaches. Pad with zeros around the maps is ZeroPad2d, and so is the part of a
  Conv's asymmetric pads (TensorFlow's SAME at stride 2) that Conv2d's symmetric padding cannot hold.
- Transpose (TensorFlow's NHWC input, and its NHWC flatten before a Dense layer) is a Transpose layer,
  so that a graph converted by tf2onnx takes the NHWC input it was exported with.
- Gemm with transB=1 takes Linear's (out, in) weight; Conv with group takes Conv2d's.

Where the code is:
- loader.py: load(), the loop that reads the graph one node at a time; network.py, what it holds meanwhile;
  budget.py, what a file may make it compute (MAX_BYTES);
- constants.py: the nodes evaluated when loading (constants, and shapes with a symbolic batch);
- converters/: one small function per ONNX operator, registered by @converter("Conv");
- patterns.py: several nodes read as one layer (a grouped LRN, PyTorch's LRN written out);
- exporter.py: export(), a table from layer type to the function that writes it.
SUPPORTED_OPS and SUPPORTED_LAYERS are read from those registries. The onnx package (the `onnx` extra)
is imported only when load or export runs.
"""
from .budget import MAX_BYTES
from .exporter import IR_VERSION, OPSET, WRITERS, export
from .loader import OLDEST_OPSET, SUPPORTED_OPS, load

SUPPORTED_LAYERS = tuple(kind.__name__ for kind in WRITERS)

__all__ = ["load", "export", "SUPPORTED_OPS", "SUPPORTED_LAYERS", "OPSET", "IR_VERSION", "OLDEST_OPSET", "MAX_BYTES"]
