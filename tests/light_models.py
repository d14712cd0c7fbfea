"""The nine ImageNet models of onnx's backend suite (onnx/backend/test/data/light/light_*.onnx), with
seeded random weights: the files compute every weight as ConstantOfShape(0.02), which no comparison
can see through (every channel alike, activations that grow with the depth), so each becomes an
initializer drawn for its role: He-scaled weights, BatchNorm scales and variances near 1, small biases
and means. Used by tests/test_onnx.py and benchmarks/onnx_lineage.py."""
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
NAMES = ("bvlc_alexnet", "zfnet512", "vgg19", "inception_v1", "inception_v2", "resnet50", "squeezenet",
         "densenet121", "shufflenet")


def light_model(name, seed=0):
    """light_<name>.onnx, its ConstantOfShape weights replaced by initializers of random values, and its
    trailing Softmax left out: the model gives logits (as minigrad.onnx.load reads it), which show
    every difference that the probabilities of random weights (all on one class) would hide."""
    model = onnx.load(LIGHT / f"light_{name}.onnx")
    graph, rng = model.graph, np.random.default_rng(seed)
    if graph.node[-1].op_type == "Softmax":
        graph.output[0].name = graph.node[-1].input[0]
        del graph.node[-1]
    shapes = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    roles = {}                                      # tensor -> (the op that reads it, at which input)
    for node in graph.node:
        for slot, name_read in enumerate(node.input):
            roles.setdefault(name_read, (node.op_type, slot))
    weights = []
    for node in graph.node:
        if node.op_type == "ConstantOfShape":
            shape = tuple(int(d) for d in shapes[node.input[0]])
            weights.append(numpy_helper.from_array(_values(roles.get(node.output[0]), shape, rng), node.output[0]))
    nodes = [n for n in graph.node if n.op_type != "ConstantOfShape"]
    read = {name for n in nodes for name in n.input}
    kept = [t for t in graph.initializer if t.name in read] + weights       # (not the weights' shapes)
    inputs = [i for i in graph.input if i.name in read]
    for field, items in ((graph.node, nodes), (graph.initializer, kept), (graph.input, inputs)):
        del field[:]
        field.extend(items)
    graph.input.extend(helper.make_tensor_value_info(w.name, onnx.TensorProto.FLOAT, list(w.dims)) for w in weights)
    onnx.checker.check_model(model)
    return model


def _values(role, shape, rng):
    """Values for a tensor that `role` (op, input index) reads: weights He-scaled (std sqrt(2 / fan-in)),
    BatchNorm's scale and variance (and the scales that Unsqueeze shapes) in [0.5, 1.5], biases and
    means of std 0.1."""
    op, slot = role or ("", 0)
    if op in ("Conv", "Gemm") and slot == 1 or op == "Reshape" and len(shape) > 1:
        scale = np.sqrt(2 / max(1, int(np.prod(shape[1:]))))
    elif op == "BatchNormalization" and slot in (1, 4) or op == "Unsqueeze":
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    else:
        scale = 0.1
    values = rng.standard_normal(shape, dtype=np.float32)       # (VGG-19's 140 million, in float32 from the start)
    values *= np.float32(scale)
    return values


def imagenet_batch(batch=1, seed=1):
    """Images as these models take them: 224 x 224, values of a few units."""
    return np.random.default_rng(seed).standard_normal((batch, 3, 224, 224)).astype(np.float32)
