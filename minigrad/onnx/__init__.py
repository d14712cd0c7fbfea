"""Models in and out of minigrad as ONNX graphs: export(model, path, input_shape) and load(path), chains
(a Sequential) and graphs that fork and join (an mg.Graph).

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

Graphs (load returns an mg.Graph where the layers fork and join, a Sequential for a chain; export writes
both, in a topological order):
- Add, Sum and Mul of tensors the graph computes are Add and Multiply layers (broadcast as ONNX does),
  Concat a Concat, Split one Slice per part (each reading the tensor split), Slice a Slice. An Add or Mul
  by a constant (an initializer, or one made by Unsqueeze of one: Caffe's Scale layer after its
  BatchNorm, as DenseNet-121 and Inception-v2 are written) is a trainable Bias or Scale, the same for
  every example;
  an Add right after a MatMul, or after a Conv without a bias, whose output nothing else reads, is that
  layer's bias, and a Mul by 1 - p right after a Dropout its classic form (both as before graphs).
- Clip is a Clip layer (Clip(0, 6): MobileNet's ReLU6); its bounds are attributes up to opset 10, inputs
  from 11. BatchNormalization loads in its inference form with its scale and shift trainable.
- ShuffleNet's channel shuffle, Reshape to (N, g, C/g, H, W), Transpose of the two channel axes, Reshape
  back (to constants, or to shapes computed from the input's, as PyTorch writes x.view(...)), is one
  ChannelShuffle(g); export writes it so.
- export writes Add of two as Add, of more as Sum; a Multiply of more than two as a chain of Mul (load
  reads them back as one Multiply each); Scale and Bias as Mul and Add by their weight; classic dropout's
  1 - p folded into the Conv or Gemm that alone reads the Dropout, else a Mul after it.

Where the code is:
- loader.py: load(), the loop that reads the graph one node at a time; network.py, what it holds meanwhile;
  budget.py, what a file may make it compute (MAX_BYTES);
- constants.py: the nodes evaluated when loading (constants, and shapes with a symbolic batch);
- converters/: one small function per ONNX operator, registered by @converter("Conv") (join.py: the
  joins, splits and the Add and Mul by constants);
- patterns.py: several nodes read as one layer (a grouped LRN, a channel shuffle, PyTorch's LRN written out);
- exporter.py: export(), a table from layer type to the function that writes it (each layer's inputs
  from Container.wired_leaves).
SUPPORTED_OPS and SUPPORTED_LAYERS are read from those registries. The onnx package (the `onnx` extra)
is imported only when load or export runs.
"""
from .budget import MAX_BYTES
from .exporter import IR_VERSION, OPSET, WRITERS, export
from .loader import OLDEST_OPSET, SUPPORTED_OPS, load

SUPPORTED_LAYERS = tuple(kind.__name__ for kind in WRITERS)

__all__ = ["load", "export", "SUPPORTED_OPS", "SUPPORTED_LAYERS", "OPSET", "IR_VERSION", "OLDEST_OPSET", "MAX_BYTES"]
