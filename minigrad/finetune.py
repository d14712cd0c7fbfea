"""Fine-tuning: a new network starts from trained weights instead of random ones (train.py --init FILE).

FILE is an ONNX graph (the ONNX Model Zoo's bvlcalexnet-12.onnx, or any export of minigrad.onnx) or a
minigrad checkpoint (.npz written by train.py). Every layer of the new network whose name and weight
shapes match a layer of FILE takes its weights; the classifier (the last layer with weights: AlexNet's
fc8, the residual and inception networks' fc) is always re-initialised, since
the folder's classes are not FILE's. With --arch onnx the new network is FILE's own (any classifier
minigrad.onnx loads, a chain or a graph: minigrad/models/imported.py), so every layer but the
classifier comes from FILE. Names: minigrad.onnx.load names a layer after the stem its
weights share, and the BVLC graph's initializers are conv1_w_0/conv1_b_0 ... fc8_w_0/fc8_b_0, so its
layers come in as conv1 ... fc8, the names of minigrad.models.alexnet; nothing else needs mapping.

A Caffe model (the graph's producer is Caffe or Caffe2, as the zoo's) was trained on BGR images:
its first convolution's weights (conv1's) are loaded with their input channels reversed, for
train.py's RGB batches. Its conv1 padding and LRN constants are not weights: the paper preset
(--preset paper, 224) keeps its own.

As in Caffe's fine-tuning recipe, the loaded layers can learn more slowly than the new one
(--init-lr-mult, Caffe's lr_mult, through SGD's parameter groups) or not at all (--freeze conv1,conv2).
"""
import os

import numpy as np

from .layers import Conv2d


def settings(init=None, freeze="", init_lr_mult=1.0):
    """A run's fine-tuning settings from train.py's --init, --freeze (comma-separated layer names) and
    --init-lr-mult, kept in its config so that --resume rebuilds the same parameter groups."""
    return {"init": os.path.abspath(init) if init else None, "freeze": [name for name in (freeze or "").split(",")
                                                                       if name], "init_lr_mult": init_lr_mult}


def pretrained_state(path):
    """name -> array of the weights in an ONNX file or a train.py checkpoint."""
    if not os.path.isfile(path):
        raise ValueError(f"--init: {path!r} does not exist; expected an .onnx file or a train.py checkpoint .npz")
    if path.endswith(".onnx"):
        from . import onnx as mg_onnx

        net = mg_onnx.load(path)
        state = net.state_dict()
        first = next((name for name, layer in net.named_layers() if isinstance(layer, Conv2d)), None)
        if _caffe_origin(path) and first is not None and state[f"{first}.weight"].shape[1] == 3:
            # Caffe models see BGR (bvlc.py); train.py feeds RGB, so conv1 reads its channels reversed.
            state[f"{first}.weight"] = np.ascontiguousarray(state[f"{first}.weight"][:, ::-1])
            print(f"--init {path}: a Caffe model (BGR input): {first}'s input channels reversed for RGB")
        return state
    from . import checkpoint

    return checkpoint.load(path).model().state_dict()


def _caffe_origin(path):
    import onnx

    return onnx.load(path, load_external_data=False).producer_name.lower().startswith(("caffe", "onnx-caffe"))


def layer_of(key):
    """The model's layer (a top-level name: "conv1", "stage2") that a state key belongs to."""
    return key.split(".", 1)[0]


def classifier(model):
    """The name of the model's last layer with weights: the one that maps features to classes."""
    return [name for name, layer in model.named_layers() if layer.parameters()][-1]


def start_from(model, path):
    """Copy into `model` every layer of `path` whose name and shapes match, except the new classifier.
    Returns the names of the loaded layers; prints which layers kept their random weights and why."""
    state, own = pretrained_state(path), model.state_dict()
    layers = {layer_of(key) for key in own}
    loaded, kept = [], []
    for layer in [name for name, _ in model.named_layers() if name in layers]:
        keys = [key for key in own if layer_of(key) == layer]
        if layer == classifier(model):
            kept.append(f"{layer} (the new classifier)")
        elif all(key in state and np.shape(state[key]) == own[key].shape for key in keys):
            loaded.append(layer)
        else:
            kept.append(f"{layer} (" + ", ".join(f"{key}: {own[key].shape} vs "
                                               f"{np.shape(state[key]) if key in state else 'absent'}"
                                               for key in keys) + ")")
    model.load_state_dict({key: state[key] if layer_of(key) in loaded else value for key, value in own.items()})
    print(f"--init {path}: loaded {', '.join(loaded) or 'no layer'}; "
          f"kept random: {', '.join(kept) or 'none'}")
    return loaded


def parameter_groups(model, config):
    """SGD groups, one per layer in the model's order (so a checkpoint's velocities line up): frozen
    layers lr_mult 0, the layers loaded by --init lr_mult config["init_lr_mult"], the others 1."""
    names = [name for name, _ in model.named_layers()]
    unknown = sorted(set(config.get("freeze", [])) - set(names))
    if unknown:
        raise ValueError(f"--freeze: no layer {unknown} in the model; its layers are {names}")
    groups = []
    for name, layer in model.named_layers():
        if not layer.parameters():
            continue
        if name in config.get("freeze", []):
            lr_mult = 0.0
        elif name in config.get("init_loaded", []):
            lr_mult = config.get("init_lr_mult", 1.0)
        else:
            lr_mult = 1.0
        groups.append({"params": layer.parameters(), "lr_mult": lr_mult})
    return groups
