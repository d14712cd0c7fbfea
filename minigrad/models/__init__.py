"""Networks assembled from minigrad's layers: AlexNet (the paper's, and a small preset a CPU trains in
minutes)."""
from .alexnet import PRESETS, Preset, alexnet

__all__ = ["PRESETS", "Preset", "alexnet", "from_config", "preset_of"]


def from_config(config, num_classes):
    """The network a training run's config describes (examples/alexnet/train.py records it in every
    checkpoint): its architecture, input size and seed, in its dtype, with fresh weights."""
    return alexnet(preset_of(config), num_classes, image_size=config["image_size"], seed=config["seed"]).astype(
        config.get("dtype", "float32"))


def preset_of(config):
    """The Preset a run's config records: its architecture, or a preset by name."""
    return Preset.from_dict(config["architecture"]) if "architecture" in config else PRESETS[config["preset"]]
