"""A small reference CNN trained well (PyTorch, an optional peer): what a folder allows, to compare
train.py's figures against.

The network is a standard modern small CNN (three stages of two 3 x 3 convolutions with batch norm and
ReLU, 16, 32 and 64 channels, max-pooling between stages, global average pooling, one linear layer:
73k parameters) trained with a standard modern recipe: SGD with Nesterov momentum 0.9, weight
decay 5e-4, a one-cycle learning rate peaking at 0.05, label smoothing 0.1, 30 epochs of batch 64,
random crops (4 pixels of padding) and, unless --no-flip, horizontal flips. Images are read with
minigrad's ImageFolder at 48 x 48 (the same decoding as train.py).

    python benchmarks/reference_cnn.py --data data/real/photos [--no-flip]

Results: benchmarks/results/real_folders.md.
"""
import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from minigrad import data  # noqa: E402

SIDE = 48


def network(classes):
    import torch.nn as nn

    def stage(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*stage(3, 16), nn.MaxPool2d(2), *stage(16, 32), nn.MaxPool2d(2), *stage(32, 64),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, classes))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="DIR/train/<class>/*, DIR/val/<class>/*")
    parser.add_argument("--no-flip", action="store_true")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        raise SystemExit("reference_cnn.py needs PyTorch (pip install torch); it is an optional peer")
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    train = data.ImageFolder(os.path.join(args.data, "train"), SIDE).preload()
    val = data.ImageFolder(os.path.join(args.data, "val"), SIDE, classes=train.classes).preload()
    mean = train.images.reshape(-1, 3).mean(0) / 255
    std = train.images.reshape(-1, 3).std(0) / 255 + 1e-3

    def tensor(images):
        x = torch.from_numpy(images).float().div(255).permute(0, 3, 1, 2)
        return (x - torch.tensor(mean)[:, None, None].float()) / torch.tensor(std)[:, None, None].float()

    x_train, y_train = tensor(train.images), torch.from_numpy(train.labels)
    x_val, y_val = tensor(val.images), torch.from_numpy(val.labels)
    model = network(len(train.classes))
    steps = args.epochs * (len(x_train) // 64)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.05, total_steps=steps)
    rng, start = np.random.default_rng(0), time.time()
    for epoch in range(args.epochs):
        model.train()
        order = torch.from_numpy(rng.permutation(len(x_train)))
        for first in range(0, len(order) - 63, 64):
            batch = order[first:first + 64]
            x = F.pad(x_train[batch], (4, 4, 4, 4), mode="reflect")
            top, left = rng.integers(0, 9, 2)
            x = x[:, :, top:top + SIDE, left:left + SIDE]
            if not args.no_flip:
                mirrored = torch.from_numpy(rng.random(len(x)) < 0.5)
                x[mirrored] = x[mirrored].flip(3)
            loss = F.cross_entropy(model(x), y_train[batch], label_smoothing=0.1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    model.eval()
    with torch.no_grad():
        top1 = float((model(x_val).argmax(1) == y_val).float().mean())
    print(f"reference CNN on {args.data}: val top-1 {top1:.1%} after {args.epochs} epochs "
          f"({steps} steps) in {time.time() - start:.0f}s")


if __name__ == "__main__":
    main()
