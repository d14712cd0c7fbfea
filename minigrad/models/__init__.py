"""Networks assembled from minigrad's layers: AlexNet (the paper's, and a small preset a CPU trains in
minutes), two of its successors at the small size, written as graphs that fork and join: a residual
network and an inception network; and any classifier read from an ONNX file (imported.py)."""
from .alexnet import PRESETS, Preset, alexnet
from .imported import imported_classifier
from .inception import small_inception
from .resnet import small_resnet

ARCHITECTURES = ("alexnet", "resnet", "inception", "onnx")      # train.py --arch

__all__ = ["ARCHITECTURES", "PRESETS", "Preset", "alexnet", "from_config", "imported_classifier", "parameter_count",
           "preset_of", "small_inception", "small_resnet"]


def from_config(config, num_classes):
    """The network a training run's config describes (examples/alexnet/train.py records it in every
    checkpoint): its architecture ("arch", AlexNet when absent), sizes and seed, in its dtype, with
    fresh weights (an ONNX file's network with its own, its classifier fresh)."""
    arch = config.get("arch", "alexnet")
    if arch == "alexnet":
        model = alexnet(preset_of(config), num_classes, image_size=config["image_size"], seed=config["seed"])
    elif arch == "resnet":
        model = small_resnet(num_classes, seed=config["seed"])
    elif arch == "inception":
        model = small_inception(num_classes, seed=config["seed"])
    elif arch == "onnx":
        model = imported_classifier(config.get("onnx"), num_classes, seed=config["seed"])
    else:
        raise ValueError(f"models: architecture {arch!r} is not one of {ARCHITECTURES}")
    return model.astype(config.get("dtype", "float32"))


def preset_of(config):
    """The Preset a run's config records: its architecture, or a preset by name."""
    return Preset.from_dict(config["architecture"]) if "architecture" in config else PRESETS[config["preset"]]


def parameter_count(config, num_classes):
    """How many weights and biases from_config(config, num_classes) makes, from the config's numbers alone,
    without building anything as large as the network (checkpoint.py compares it with the file first).
    AlexNet's sizes are the config's; the other networks' are fixed (the residual and inception networks) or
    the ONNX file's (which its load bounds), and only their classifier grows with the classes."""
    if config.get("arch", "alexnet") == "alexnet":
        return preset_of(config).parameter_count(num_classes, config["image_size"])
    two = from_config({**config, "dtype": "float32"}, 2)
    classifier = [layer for _, layer in two.named_leaves() if layer.parameters()][-1]
    per_class = sum(p.data.size for p in classifier.parameters()) // 2        # a row of weights and a bias
    return sum(p.data.size for p in two.parameters()) + per_class * (num_classes - 2)
