"""The datasets and loaders a training run opens: a folder split into training and validation images,
decoded into memory when it fits, the normalisation fitted on the training images (section 4.1), and
the loaders that serve them (to one process, or to each rank its share).

A run's `config` (examples/alexnet/train.py records it in every checkpoint) holds what these need:
data (the folder), resize (S, the side images are prepared at), image_size (s, the crop), seed,
batch_size, scale ("raw" or "unit"), flip and dtype.
"""
import os
import time
import warnings
from dataclasses import dataclass

import numpy as np

from .folder import ImageFolder
from .loader import DataLoader
from .transforms import EvalTransform, PCAColor, TrainTransform, mean_image

HOLDOUT_FRACTION = 0.1              # of each class's training images, when a folder has no val/ split
NORMALISATION_SAMPLE = 2000         # training images the normalisation is fitted on when not decoded


def resize_for(crop_size):
    """S for a crop of side s, in the paper's ratio 256 / 224."""
    return round(crop_size * 256 / 224)


def split_folder(root, size, seed, log=print):
    """(train, val) ImageFolders of `root` at side `size`: root/train and root/val, or, without them, a
    fixed HOLDOUT_FRACTION of each class held out, chosen by `seed` (so evaluate.py finds the same split)."""
    train_dir, val_dir = os.path.join(root, "train"), os.path.join(root, "val")
    if os.path.isdir(train_dir) and os.path.isdir(val_dir):
        train = ImageFolder(train_dir, size)
        return train, ImageFolder(val_dir, size, classes=train.classes)
    whole = ImageFolder(train_dir if os.path.isdir(train_dir) else root, size)
    rng = np.random.default_rng([seed, 2])
    held_out = np.concatenate([rng.permutation(np.flatnonzero(whole.labels == label))[
        :max(1, round(HOLDOUT_FRACTION * np.sum(whole.labels == label)))] for label in range(len(whole.classes))])
    kept = np.setdiff1d(np.arange(len(whole)), held_out)
    log(f"{root}: no train/ and val/ folders; holding out {len(held_out)} of {len(whole)} images "
        f"({HOLDOUT_FRACTION:.0%} per class) for validation")
    return whole.subset(kept), whole.subset(np.sort(held_out))


def decode_if_it_fits(images, cache_bytes, workers, log=print):
    """Decode every image of the ImageFolder `images` into memory when they take at most `cache_bytes`
    (then training never waits on JPEG decoding); otherwise they are decoded batch by batch."""
    if len(images) * images.size ** 2 * 3 <= cache_bytes:
        start = time.time()
        images.preload(workers)
        log(f"decoded {len(images)} images of {images.root} into memory ({images.images.nbytes / 2**20:.0f} MB) "
            f"in {time.time() - start:.1f}s")
    return images


def open_datasets(config, cache_bytes, workers, log=print):
    """split_folder's (train, val) of config["data"], decoded into memory when they fit in `cache_bytes`;
    warns about a class that no validation image measures."""
    train, val = split_folder(config["data"], config["resize"], config["seed"], log)
    for split in (train, val):
        decode_if_it_fits(split, cache_bytes, workers, log)
    unmeasured = [name for label, name in enumerate(train.classes)      # (an empty folder: ImageFolder said so)
                  if not np.any(val.labels == label) and not os.path.isdir(os.path.join(val.root, name))]
    if unmeasured:
        warnings.warn(f"{val.root}: no validation image of class(es) {unmeasured}; the accuracy says nothing "
                      f"about them")
    return train, val


@dataclass
class Normalisation:
    """What a network's inputs are normalised with, fitted on the training images (section 4.1): the
    mean image (S, S, 3), the PCA of the RGB values for the colour noise, and the factor the centred
    pixels are multiplied by: 1 for the paper's raw 0..255 values ("raw"), or one over their standard
    deviation ("unit")."""
    mean: np.ndarray
    pca: PCAColor
    scale: float

    @classmethod
    def fit(cls, train, seed, scale="raw"):
        images = train.images if train.images is not None else train.batch(
            np.random.default_rng([seed, 3]).permutation(len(train))[:NORMALISATION_SAMPLE])[0]
        pca = PCAColor.fit(images, seed=seed)
        factor = 1.0 if scale == "raw" else float(1 / np.sqrt(pca.eigenvalues.sum() / 3))
        return cls(mean_image(images), pca, factor)


def make_loaders(train, val, config, normalisation, workers, comm=None):
    """The training loader serves this rank's slice of each global batch (`comm`: a communicator of
    minigrad.distributed; None for one process); the validation images are cut into one contiguous share
    per rank, so that each image is evaluated once. Batches come in config["dtype"]."""
    crop, dtype, mean, scale = config["image_size"], np.dtype(config["dtype"]), normalisation.mean, normalisation.scale
    rank, ranks = (comm.rank, comm.size) if comm is not None else (0, 1)

    def in_dtype(transform):
        return lambda *args, **kwargs: transform(*args, **kwargs).astype(dtype, copy=False)

    transform = TrainTransform(crop, mean, normalisation.pca, scale, flip=config.get("flip", True))
    train_loader = DataLoader(train, config["batch_size"], in_dtype(transform), shuffle=True, seed=config["seed"],
                              workers=workers, drop_last=True, shard=(rank, ranks) if ranks > 1 else None)
    val = val.subset(np.array_split(np.arange(len(val)), ranks)[rank]) if ranks > 1 else val
    val_loader = DataLoader(val, config["batch_size"], in_dtype(EvalTransform(crop, mean, scale)), workers=workers)
    return train_loader, val_loader
