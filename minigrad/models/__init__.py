"""Networks assembled from minigrad's layers: AlexNet (the paper's, and a small preset a CPU trains in
minutes), two of its successors at the small size, written as graphs that fork and join: a residual
network and an inception network; and any classifier read from an ONNX file (imported.py)."""
from .alexnet import PRESETS, Preset, alexnet
from .imported import imported_classifier
from .inception import small_inception
from .resnet import small_resnet

ARCHITECTURES = ("alexnet", "resnet", "inception", "onnx")      # train.py --arch

__all__ = ["ARCHITECTURES", "PRESETS", "Preset", "alexnet", "from_config", "imported_classifier", "small_inception",
           "small_resnet"]


def from_config(config, num_classes):
    """The network a training run's config describes (examples/alexnet/train.py records it in every
    checkpoint): its architecture ("arch", AlexNet when absent), sizes and seed, in its dtype, with
    fresh weights (an ONNX file's network with its own, its classifier fresh)."""
    arch = config.get("arch", "alexnet")
    if arch == "alexnet":
        preset = Preset.from_dict(config["architecture"]) if "architecture" in config else PRESETS[config["preset"]]
        model = alexnet(preset, num_classes, image_size=config["image_size"], seed=config["seed"])
    elif arch == "resnet":
        model = small_resnet(num_classes, seed=config["seed"])
    elif arch == "inception":
        model = small_inception(num_classes, seed=config["seed"])
    elif arch == "onnx":
        model = imported_classifier(config.get("onnx"), num_classes, seed=config["seed"])
    else:
        raise ValueError(f"models: architecture {arch!r} is not one of {ARCHITECTURES}")
    return model.astype(config.get("dtype", "float32"))
