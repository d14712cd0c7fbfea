"""The paper's data pipeline: image folders, the augmentations of section 4.1, a background loader and
the embedded synthetic dataset."""
from . import synthetic
from .datasets import Normalisation, decode_if_it_fits, make_loaders, open_datasets, resize_for, split_folder
from .folder import IMAGE_EXTENSIONS, NOT_AN_IMAGE, UNREADABLE, ImageFolder, class_files, load_image, warn_skipped
from .loader import DataLoader
from .transforms import (EvalTransform, PCAColor, TrainTransform, center_crop, crop_at, mean_image,
                         random_crop_offsets, resize_shorter_side, ten_crop_offsets)

__all__ = ["DataLoader", "Normalisation", "decode_if_it_fits", "make_loaders", "open_datasets", "resize_for",
           "split_folder", "EvalTransform", "IMAGE_EXTENSIONS", "ImageFolder", "NOT_AN_IMAGE", "PCAColor",
           "TrainTransform", "UNREADABLE", "center_crop", "class_files", "crop_at", "load_image", "mean_image",
           "random_crop_offsets", "resize_shorter_side", "synthetic", "ten_crop_offsets", "warn_skipped"]
