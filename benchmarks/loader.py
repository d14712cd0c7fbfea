"""Loader throughput: minigrad's DataLoader against PyTorch's DataLoader with torchvision's transforms,
side by side in one process, on the same JPEG files and the same number of workers; then the training
step's own rate, so the two can be compared (the loader must never be what a step waits for).

The training transform is the paper preset's (sections 2 and 4.1): shorter side to 256, central
256 x 256, random 224 x 224 crop, horizontal flip, PCA colour noise, minus the mean. The small
preset's (S = 73, s = 64) is measured too. Files are decoded batch by batch (a folder too big to
preload), as train.py does when a folder does not fit in --cache-gb.

    python benchmarks/make_jpegs.py --out data/jpegs --count 2000
    /work/venv-tv/bin/python benchmarks/loader.py --data data/jpegs     # torch + torchvision installed there

torchvision is an optional peer: without it only minigrad's figures are printed.
Results: benchmarks/results/loader.md.
"""
import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import minigrad as mg  # noqa: E402
from minigrad import data  # noqa: E402

PRESETS = {"paper": (256, 224, 128), "small": (73, 64, 64)}     # S, s, batch


def normalisation(folder, seed=0):
    """The mean image and PCA of a sample of 200 images, as train.py fits them on an unpreloaded folder."""
    sample = folder.batch(np.random.default_rng(seed).permutation(len(folder))[:200])[0]
    return data.mean_image(sample), data.PCAColor.fit(sample)


def minigrad_rate(root, preset, workers, limit):
    size, crop, batch = PRESETS[preset]
    folder = data.ImageFolder(root, size)
    folder = folder.subset(np.arange(min(limit, len(folder))))
    mean, pca = normalisation(folder)
    loader = data.DataLoader(folder, batch, data.TrainTransform(crop, mean, pca), shuffle=True, seed=0,
                             workers=workers, drop_last=True)
    start, seen = time.perf_counter(), 0
    for x, y in loader.epoch(1):
        assert x.shape == (len(y), 3, crop, crop) and x.dtype == np.float32
        seen += len(y)
    return seen / (time.perf_counter() - start)


def torchvision_rate(root, preset, workers, limit):
    import torch
    from torchvision import datasets, transforms

    size, crop, batch = PRESETS[preset]
    folder = data.ImageFolder(root, size)
    mean, pca = normalisation(folder.subset(np.arange(min(limit, len(folder)))))
    eigenvalues = torch.tensor(pca.eigenvalues, dtype=torch.float32)
    eigenvectors = torch.tensor(pca.eigenvectors, dtype=torch.float32)
    mean_image = torch.from_numpy(np.ascontiguousarray(mean.transpose(2, 0, 1)))

    def pca_noise(image):                           # AlexNet's "lighting" noise, as in fb.resnet.torch
        alphas = torch.randn(3) * 0.1
        return image + (eigenvectors @ (alphas * eigenvalues.sqrt()))[:, None, None]

    # Mean subtraction at the crop's place needs the offsets: torchvision's pipeline has no such step, so
    # it subtracts the mean image's centre (the usual per-pixel approximation; the same arithmetic).
    centre = transforms.CenterCrop(crop)(mean_image)
    pipeline = transforms.Compose([
        transforms.Resize(size), transforms.CenterCrop(size), transforms.RandomCrop(crop),
        transforms.RandomHorizontalFlip(), transforms.PILToTensor(),
        transforms.Lambda(lambda t: t.float()), transforms.Lambda(pca_noise),
        transforms.Lambda(lambda t: t - centre)])
    dataset = datasets.ImageFolder(root, pipeline)
    dataset = torch.utils.data.Subset(dataset, range(min(limit, len(dataset))))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers,
                                         drop_last=True)
    start, seen = time.perf_counter(), 0
    for x, y in loader:
        seen += len(y)
    return seen / (time.perf_counter() - start)


def step_rate(preset, steps=3):
    """Images per second of one SGD step (forward, backward, update) of the preset's network."""
    from minigrad.models import alexnet

    _, crop, batch = PRESETS[preset]
    batch = 32 if preset == "paper" else batch       # the paper's 128 takes ~4 s a step here: 32 suffices
    model = alexnet(preset, 1000 if preset == "paper" else 10, seed=0)
    loss_fn, optimizer = mg.SoftmaxCrossEntropy(), mg.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, 3, crop, crop)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    times = []
    for _ in range(steps + 1):                      # the first step compiles Numba kernels: not timed
        start = time.perf_counter()
        loss_fn.forward(model.forward(x), y)
        optimizer.zero_grad()
        model.backward(loss_fn.backward())
        optimizer.step()
        times.append(time.perf_counter() - start)
    return batch / min(times[1:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join("data", "jpegs"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--images", type=int, default=2000, help="images per measurement (default 2000)")
    parser.add_argument("--presets", nargs="+", default=["paper", "small"])
    parser.add_argument("--repeats", type=int, default=5, help="alternating runs of each loader (default 5): "
                        "one pass over a few thousand files takes seconds and varies by 10-20%% from run to run")
    args = parser.parse_args()
    try:
        import torchvision
        print(f"peer: torch {__import__('torch').__version__}, torchvision {torchvision.__version__}")
    except ImportError:
        torchvision = None
        print("torchvision is not installed: minigrad's figures only (pip install torch torchvision)")
    print(f"{os.cpu_count()} cores, {args.workers} workers each, {args.images} JPEGs from {args.data}")
    print(f"medians of {args.repeats} alternating runs (all runs in brackets)")
    for preset in args.presets:
        ours, theirs = [], []
        for _ in range(args.repeats):
            ours.append(minigrad_rate(args.data, preset, args.workers, args.images))
            if torchvision is not None:
                theirs.append(torchvision_rate(args.data, preset, args.workers, args.images))
        line = f"{preset:5s}  minigrad loader {np.median(ours):6.0f} img/s {sorted(round(r) for r in ours)}"
        if theirs:
            line += (f" | torchvision {np.median(theirs):6.0f} img/s {sorted(round(r) for r in theirs)} | ratio "
                     f"{np.median(ours) / np.median(theirs):.2f}x")
        step = step_rate(preset)
        print(f"{line} | training step {step:5.0f} img/s (loader/step {np.median(ours) / step:.1f}x)", flush=True)


if __name__ == "__main__":
    main()
