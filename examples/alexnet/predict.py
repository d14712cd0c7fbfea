"""The five most likely classes of each image, with their probabilities (the ten-crop average).

    python examples/alexnet/predict.py photo1.jpg photo2.png --checkpoint runs/small-20260101-120000/best.npz
    python examples/alexnet/predict.py photos/ --onnx bvlcalexnet-12.onnx     # the trained BVLC AlexNet

IMAGE may be a file or a folder: its image files, sub-folders included, read as train.py reads a class
folder (hidden files and folders are left out; any other file that is not a readable image is skipped
with one warning naming it). The exit status is 1 when an image could not be read.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

import minigrad as mg
from minigrad import checkpoint, console, data, imagenet, scoring
from minigrad.models import bvlc


def image_paths(items):
    """(paths to predict, files skipped): files as given; folders expanded as a class folder is
    (data.class_files), their files without an image extension warned about and skipped."""
    paths, skipped = [], []
    for item in items:
        if Path(item).is_dir():
            images, others = data.class_files(item)
            for path in others:
                data.warn_skipped(path, data.NOT_AN_IMAGE)
            paths, skipped = paths + images, skipped + others
        else:
            paths.append(item)
    return paths, skipped


def main(argv=None):
    console.one_line_warnings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    model_file = parser.add_mutually_exclusive_group(required=True)
    model_file.add_argument("--checkpoint", help="a .npz written by train.py, or a run folder")
    model_file.add_argument("--onnx", metavar="FILE", help="the ONNX Model Zoo's bvlcalexnet-12.onnx, with its own "
                            "preprocessing and the ImageNet class names (minigrad/models/bvlc.py)")
    parser.add_argument("--device", choices=mg.backend.DEVICES, default="cpu")
    args = parser.parse_args(argv)
    try:                                  # a model file or a folder that cannot be used: its message says why
        if args.onnx:
            model, classes = bvlc.load(args.onnx).to(args.device), imagenet.class_names()
            transform, resize = bvlc.Preprocess(ten_crop=True), bvlc.RESIZE
        else:
            saved = checkpoint.load(args.checkpoint)
            config, classes, normalisation = saved.config, saved.classes, saved.normalisation()
            model = saved.model(args.device)
            transform = data.EvalTransform(config["image_size"], normalisation.mean, normalisation.scale,
                                           ten_crop=True)
            resize = config["resize"]
        paths, skipped = image_paths(args.images)
    except ValueError as error:
        raise SystemExit(f"predict.py: {error}") from None
    model.eval()
    status = 0
    for path in paths:
        try:
            image = data.load_image(path, resize)
        except data.UNREADABLE as error:
            data.warn_skipped(path, f"unreadable image ({error})", stacklevel=2)
            skipped.append(path)
            status = 1
            continue
        probabilities = scoring.class_probabilities(model, transform(image[None]), args.device)[0]  # 10 crops averaged
        top = np.argsort(-probabilities)[:5]
        print(console.printable(f"{path}: " + ", ".join(f"{classes[i]} {probabilities[i]:.1%}" for i in top)))
    if skipped:
        print(console.skipped_summary(skipped))
    return status


if __name__ == "__main__":
    sys.exit(main())
