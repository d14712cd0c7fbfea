"""Top-1 and top-5 error of a trained AlexNet on an image folder: the centre crop, and the paper's ten
crops (the four corners and the centre and their reflections, softmax outputs averaged; footnote 5).

    python examples/alexnet/evaluate.py runs/small-20260101-120000/best.npz --data data/synthetic/val
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import minigrad as mg  # noqa: E402
from minigrad import data  # noqa: E402
from train import evaluate, load_checkpoint, model_from_checkpoint  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a .npz written by train.py, or a run folder (its last.npz)")
    parser.add_argument("--data", help="folder of class folders (default: the run's validation folder)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", choices=mg.backend.DEVICES, default="cpu")
    args = parser.parse_args(argv)
    meta, arrays = load_checkpoint(args.checkpoint)
    config = meta["config"]
    model, (mean, _, scale) = model_from_checkpoint(meta, arrays, args.device)
    folder = args.data or str(Path(config["data"]) / "val")
    images = data.ImageFolder(folder, config["resize"], classes=meta["classes"])
    if len(images) * config["resize"] ** 2 * 3 <= 4 * 2**30:
        images.preload(args.workers)
    print(f"{len(images)} images of {folder} in {len(meta['classes'])} classes; checkpoint of epoch "
          f"{meta['history'][-1]['epoch']}")
    for name, ten_crop in (("centre crop", False), ("10 crops", True)):
        loader = data.DataLoader(images, args.batch_size,
                                 data.EvalTransform(config["image_size"], mean, scale, ten_crop=ten_crop),
                                 workers=args.workers)
        _, top1, top5 = evaluate(model, loader, args.device, desc=name)
        print(f"{name:>11}: top-1 error {1 - top1:.2%}, top-5 error {1 - top5:.2%}")
    if images.skipped:
        print(f"skipped {len(images.skipped)} unreadable image(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
