"""Networks assembled from minigrad's layers: AlexNet (the paper's, and a small preset a CPU trains in
minutes)."""
from .alexnet import PRESETS, Preset, alexnet

__all__ = ["PRESETS", "Preset", "alexnet"]
