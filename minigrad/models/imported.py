"""A classifier read from an ONNX file as the network of a training run (train.py --arch onnx --init
FILE.onnx): the network minigrad.onnx.load reads (a chain or a graph), its classifier new for the run's
classes: the last layer with weights, a Gemm (a Linear) or a 1x1 convolution to the classes (as
SqueezeNet's and DenseNet's classifiers are), re-initialised as a new layer of Caffe's fine-tuning
recipe, N(0, 0.01^2).

The file is the architecture, as a preset names AlexNet's sizes: a run records the file's path and
SHA-256 in its config (describe), and from_config builds the same network from them again on --resume
(and for evaluate.py and predict.py), refusing a file that is no longer there or has changed; the
weights are the checkpoint's, as for every architecture. (The other way, a copy of the network written
beside the checkpoints, would make a second file to keep in step with each checkpoint.)"""
import hashlib
import os

import numpy as np

import minigrad as mg


def describe(path):
    """A run's record of the ONNX file at `path`: {"file": its absolute path, "sha256": its hash,
    "image_size": the side of the square input it declares (None where it leaves the size free)}."""
    from ..onnx.dependency import onnx_package

    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"--init {path}: no such file")
    try:
        graph = onnx_package().load(path, load_external_data=False).graph
        declared = next(i for i in graph.input if i.name not in {t.name for t in graph.initializer})
        sizes = [d.dim_value if d.HasField("dim_value") else None for d in declared.type.tensor_type.shape.dim]
    except Exception as error:            # (minigrad.onnx.load says what is wrong with the file, when it reads it)
        raise ValueError(f"--init {path}: not an ONNX classifier of images ({type(error).__name__}: {error})") from None
    if len(sizes) != 4 or sizes[1] != 3 or sizes[2] != sizes[3]:
        raise ValueError(f"--init {path}: its input has the shape {sizes}; training takes square RGB images, "
                         f"(N, 3, S, S)")
    return {"file": path, "sha256": _sha256(path), "image_size": sizes[2]}


def imported_classifier(record, num_classes, seed=0):
    """The network of the ONNX file that `record` (describe) names, for `num_classes` classes: its
    classifier new (seeded), its output flattened to (N, classes), its dropout generators seeded."""
    from .. import onnx as mg_onnx
    from ..finetune import classifier

    path = record.get("file") if isinstance(record, dict) else None
    if not isinstance(path, str) or not os.path.isfile(path):
        raise ValueError(f"the ONNX file its network is read from, {path!r}, is not there")
    if _sha256(path) != record.get("sha256"):
        raise ValueError(f"the ONNX file its network is read from, {path}, has changed since (its SHA-256 is not "
                         f"the {record.get('sha256')!r} recorded)")
    net = mg_onnx.load(path)
    name = classifier(net)
    old = net[name]
    if not (isinstance(old, mg.Linear) or isinstance(old, mg.Conv2d) and old.kernel_size == (1, 1) and old.groups == 1):
        raise ValueError(f"{path}: its last layer with weights, {name!r}, is a {old.describe()}: not a classifier "
                         f"(a Linear, or a 1x1 convolution to the classes) that fine-tuning can replace")
    mg.manual_seed(seed)
    new = (mg.Linear(old.in_features, num_classes) if isinstance(old, mg.Linear)
           else mg.Conv2d(old.in_channels, num_classes, 1))
    net.replace(name, mg.init.gaussian(new, std=0.01))
    dropouts = [layer for _, layer in net.named_layers() if isinstance(layer, mg.Dropout)]
    for number, layer in enumerate(dropouts):
        layer.rng = np.random.default_rng([seed, number])
    return _flat_output(net)


def _flat_output(net):
    """The network, its output of shape (N, classes, 1, 1) (a 1x1 convolution's, pooled) flattened to the
    (N, classes) that SoftmaxCrossEntropy takes."""
    names = {name for name, _ in net.named_layers()}
    flatten = next(name for name in ("flatten", *(f"flatten_{k}" for k in range(2, len(names) + 3)))
                   if name not in names)
    if isinstance(net, mg.Sequential):
        return mg.Sequential(*net.named_layers(), (flatten, mg.Flatten()))
    if len(net.outputs) != 1:
        raise ValueError(f"its graph gives {len(net.outputs)} outputs; a classifier gives one")
    nodes = [(node.name, node.layer, node.inputs) for node in net.nodes]
    return mg.Graph.from_nodes(nodes + [(flatten, mg.Flatten(), net.outputs)], net.inputs, [flatten])


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
