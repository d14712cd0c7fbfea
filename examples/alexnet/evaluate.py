"""Top-1 and top-5 error of a trained AlexNet on an image folder: the centre crop, and the paper's ten
crops (the four corners and the centre and their reflections, softmax outputs averaged; footnote 5).

    python examples/alexnet/evaluate.py runs/small-20260101-120000/best.npz --data ~/.cache/minigrad/synthetic/val
    python examples/alexnet/evaluate.py --onnx bvlcalexnet-12.onnx --data imagenet/val   # class folders
                                                                  # named as minigrad/imagenet_classes.txt
"""
import argparse
import os
import sys
from pathlib import Path

import minigrad as mg
from minigrad import checkpoint, console, data, scoring
from minigrad.models import bvlc


def onnx_run(args):
    """The BVLC AlexNet of the ONNX Model Zoo on --data, with its own preprocessing (minigrad/models/bvlc.py)."""
    if not args.data:
        raise SystemExit("evaluate.py: --onnx needs --data DIR (class folders named by ImageNet class)")
    folders = sorted(p.name for p in Path(args.data).iterdir() if p.is_dir()) if Path(args.data).is_dir() else []
    images = data.ImageFolder(args.data, bvlc.RESIZE, classes=bvlc.folder_classes(folders))
    model = bvlc.load(args.onnx).to(args.device)
    print(f"{len(images)} images of {args.data}; {args.onnx}")
    return images, model, lambda ten_crop: bvlc.Preprocess(ten_crop)


def images_to_score(folder, config, classes):
    """The images of --data: the run's own held-out images when it is the folder the run trained on
    (its DIR/val, or the 10% it held out: never its training images), DIR/val of any folder laid out
    as train.py reads it, else the class folders of DIR."""
    if os.path.realpath(folder) == os.path.realpath(config["data"]):
        print(f"{folder} is the folder the run trained on: evaluating on its validation images")
        return held_out_images(config)
    if os.path.isdir(os.path.join(folder, "train")) and os.path.isdir(os.path.join(folder, "val")):
        print(f"{folder} holds train/ and val/: evaluating on val/")
        folder = os.path.join(folder, "val")
    return data.ImageFolder(folder, config["resize"], classes=classes)


def held_out_images(config):
    """The validation images of the run's own folder, held out as it held them."""
    return data.split_folder(config["data"], config["resize"], config["seed"])[1]


def main(argv=None):
    console.one_line_warnings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", nargs="?", help="a .npz written by train.py, or a run folder (its last.npz)")
    parser.add_argument("--onnx", metavar="FILE", help="instead: the ONNX Model Zoo's bvlcalexnet-12.onnx "
                        "(minigrad/models/bvlc.py)")
    parser.add_argument("--data", help="folder of class folders, or of train/ and val/ (then val/); default: "
                        "the run's validation images (its DIR/val, or the 10%% it held out)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", choices=mg.backend.DEVICES, default="cpu")
    args = parser.parse_args(argv)
    if (args.checkpoint is None) == (args.onnx is None):
        parser.error("give a checkpoint or --onnx FILE")
    try:                                  # a model file or a folder that cannot be used: its message says why
        if args.onnx:
            images, model, transform = onnx_run(args)
        else:
            saved = checkpoint.load(args.checkpoint)
            config, model, normalisation = saved.config, saved.model(args.device), saved.normalisation()
            images = images_to_score(args.data, config, saved.classes) if args.data else held_out_images(config)
            print(f"{len(images)} images of {args.data or config['data']} in {len(saved.classes)} classes; "
                  f"checkpoint of epoch {saved.epoch}")

            def transform(ten_crop):
                return data.EvalTransform(config["image_size"], normalisation.mean, normalisation.scale,
                                          ten_crop=ten_crop)
    except ValueError as error:
        raise SystemExit(f"evaluate.py: {error}") from None
    data.decode_if_it_fits(images, 4 * 2**30, args.workers, log=lambda line: None)
    for name, ten_crop in (("centre crop", False), ("10 crops", True)):
        loader = data.DataLoader(images, args.batch_size, transform(ten_crop), workers=args.workers)
        _, top1, top5 = scoring.evaluate(model, loader, args.device, desc=name)
        print(f"{name:>11}: top-1 error {1 - top1:.2%}, top-5 error {1 - top5:.2%}")
    if images.skipped:
        print(console.skipped_summary(images.skipped))
    return 0


if __name__ == "__main__":
    sys.exit(main())
