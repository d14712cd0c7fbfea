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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import minigrad as mg  # noqa: E402
from minigrad import data, imagenet  # noqa: E402
from train import load_checkpoint, model_from_checkpoint, one_line_warnings  # noqa: E402

import bvlc  # noqa: E402


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
    one_line_warnings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    model_file = parser.add_mutually_exclusive_group(required=True)
    model_file.add_argument("--checkpoint", help="a .npz written by train.py, or a run folder")
    model_file.add_argument("--onnx", metavar="FILE", help="the ONNX Model Zoo's bvlcalexnet-12.onnx, with its own "
                            "preprocessing and the ImageNet class names (bvlc.py)")
    parser.add_argument("--device", choices=mg.backend.DEVICES, default="cpu")
    args = parser.parse_args(argv)
    try:                                  # a model file or a folder that cannot be used: its message says why
        if args.onnx:
            model, classes = bvlc.load(args.onnx).to(args.device), imagenet.class_names()
            transform, resize = bvlc.Preprocess(ten_crop=True), bvlc.RESIZE
        else:
            meta, arrays = load_checkpoint(args.checkpoint)
            config, classes = meta["config"], meta["classes"]
            model, (mean, _, scale) = model_from_checkpoint(meta, arrays, args.device)
            transform, resize = data.EvalTransform(config["image_size"], mean, scale, ten_crop=True), config["resize"]
        paths, skipped = image_paths(args.images)
    except ValueError as error:
        raise SystemExit(f"predict.py: {error}") from None
    model.eval()
    loss_fn = mg.SoftmaxCrossEntropy()
    status = 0
    for path in paths:
        try:
            image = data.load_image(path, resize)
        except data.UNREADABLE as error:
            data.warn_skipped(path, f"unreadable image ({error})", stacklevel=2)
            skipped.append(path)
            status = 1
            continue
        crops = transform(image[None])[0]                           # (10, 3, s, s)
        logits = model.forward(mg.backend.to_device(crops, args.device))
        loss_fn.forward(logits, np.zeros(len(crops), np.int64))    # only for its softmax
        probs = mg.backend.to_numpy(loss_fn.probs).mean(axis=0)
        top = np.argsort(-probs)[:5]
        print(f"{path}: " + ", ".join(f"{classes[i]} {probs[i]:.1%}" for i in top))
    if skipped:
        print(f"{len(skipped)} file(s) skipped (each warned about above)")
    return status


if __name__ == "__main__":
    sys.exit(main())
