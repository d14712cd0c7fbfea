"""Write photo-like JPEGs for benchmarks/loader.py: 500 x 375 (ImageNet's typical size), quality 90,
in the ImageFolder layout OUT/<class>/<n>.jpg.

Their content has a photograph's statistics where it matters to a JPEG decoder: 1/f ("pink") noise
over several octaves with colour correlated between channels, plus hard-edged shapes and pixel-level grain, so
the files have about a photo's entropy (about 80 KB each; ImageNet's average about 110 KB) rather
than a flat image's few KB.

    python benchmarks/make_jpegs.py --out data/jpegs --count 2000
"""
import argparse
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image, ImageDraw

WIDTH, HEIGHT = 500, 375


def photo_like(rng):
    """One (HEIGHT, WIDTH, 3) uint8 image: pink noise in a random colour basis, plus a few shapes."""
    field = np.zeros((HEIGHT, WIDTH, 3), np.float32)
    for octave in range(1, 8):
        cells = 2 ** octave
        coarse = rng.normal(0, 1, (cells * 3 // 4 + 1, cells + 1, 3)).astype(np.float32)
        layer = np.stack([np.asarray(Image.fromarray(coarse[..., c]).resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC))
                          for c in range(3)], axis=-1)
        field += layer / octave                                  # amplitude ~ 1/frequency
    mixing = rng.normal(0, 1, (3, 3)) + 2 * np.eye(3)             # correlated channels, as in photos
    field = field @ mixing.T.astype(np.float32)
    field = (field - field.mean()) / (field.std() + 1e-6) * 45 + rng.uniform(80, 170, 3)
    field += rng.normal(0, 14, field.shape).astype(np.float32)    # fine texture and sensor grain
    image = Image.fromarray(np.clip(field, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(2, 6)):
        x, y = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)
        r = rng.uniform(10, 90)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x - r, y - r, x + r, y + r * 0.7), fill=colour)
    return image


def write(task):
    out, classes, index = task
    rng = np.random.default_rng([7, index])
    folder = os.path.join(out, f"class{index % classes:02d}")
    os.makedirs(folder, exist_ok=True)
    photo_like(rng).save(os.path.join(folder, f"{index:05d}.jpg"), quality=90)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join("data", "jpegs"))
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args()
    with ProcessPoolExecutor() as pool:
        list(pool.map(write, [(args.out, args.classes, i) for i in range(args.count)], chunksize=50))
    sizes = [os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(args.out) for f in fs]
    print(f"{len(sizes)} JPEGs in {args.out}, {np.mean(sizes) / 1024:.0f} KB each on average")
