"""The 1000 ILSVRC-2012 class names, in the canonical order of the synsets (sorted WordNet ids,
n01440764 "tench" first, n15075141 "toilet tissue" last): the order of the outputs of every
ImageNet classifier, the BVLC AlexNet's among them. The file is pytorch/hub's imagenet_classes.txt.
"""
from importlib import resources

NUM_CLASSES = 1000


def class_names():
    """The class names as a list, index = output unit."""
    text = resources.files(__package__).joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
    names = text.splitlines()
    if len(names) != NUM_CLASSES:
        raise ValueError(f"imagenet_classes.txt: expected {NUM_CLASSES} names, got {len(names)}")
    return names
