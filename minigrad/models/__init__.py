"""Networks assembled from minigrad's layers: AlexNet (the paper's, and a small preset a CPU trains in
minutes)."""
from .alexnet import PRESETS, Preset, alexnet

__all__ = ["PRESETS", "Preset", "alexnet", "from_config"]


def from_config(config, num_classes):
    """The network a training run's config describes (examples/alexnet/train.py records it in every
    checkpoint): its architecture, input size and seed, in its dtype, with fresh weights."""
    preset = Preset.from_dict(config["architecture"]) if "architecture" in config else PRESETS[config["preset"]]
    return alexnet(preset, num_classes, image_size=config["image_size"], seed=config["seed"]).astype(
        config.get("dtype", "float32"))
