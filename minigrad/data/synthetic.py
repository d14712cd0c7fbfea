"""The embedded dataset: ten shape classes drawn on cluttered, noisy backgrounds, written as JPEG files.

Each image holds one bright shape (its class) at a random position, scale, rotation and colour, on a
random dark two-colour gradient with clutter (line segments and dots in random colours) and Gaussian pixel noise.
The class is the outline of the shape, never its colour or place, so a classifier must find edges and
corners wherever they are: what convolutions with shared weights (section 3) are for. Softmax
regression on the raw pixels stays well below 50% validation accuracy on it (tests/test_data.py checks
this on a reduced set; `python -m minigrad.data.synthetic --check` prints the figure for the full set).

The set is generated deterministically from its seed on first use, in the ImageFolder layout that any
real dataset uses (ROOT/train/<class>/*.jpg, ROOT/val/<class>/*.jpg), so the embedded default exercises
the same decoding pipeline as ImageNet does. ROOT is by default default_root(): an absolute path that
does not depend on the current directory, $MINIGRAD_DATA/synthetic, or ~/.cache/minigrad/synthetic
($XDG_CACHE_HOME/minigrad/synthetic) when MINIGRAD_DATA is not set.

minigrad never deletes what it did not write. Generation claims ROOT first by writing the file OWNER
in it, and only into a folder that is absent, empty, or already holds that file; any other folder is a
ValueError naming it, before anything in it is touched (a checkpoint's recorded config can name any
folder as its synthetic set). The file COMPLETE holding the generation parameters is written last: a
claimed folder without it (an interrupted generation) or with other parameters has its train/ and val/
regenerated.
"""
import json
import math
import os
import shutil
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASSES = ("crescent", "cross", "disc", "frame", "heart", "ring", "semicircle", "square", "star",
           "triangle")
DATA_HOME = "MINIGRAD_DATA"          # the environment variable naming the folder that holds the set
DEFAULT_TRAIN_PER_CLASS = 600
MARKER = "COMPLETE"                 # written last: the generation parameters of a finished set
OWNER = "GENERATED_BY_MINIGRAD"     # written first: the folder is minigrad's to regenerate
OWNER_TEXT = ("This folder was created by minigrad.data.synthetic, which deletes and rewrites its train/ and val/\n"
              "when the synthetic set is generated again with other parameters.\n")


def _polygon(center, radius, angle, points):
    """Vertices (x, y) of `points` given in polar form (relative radius, angle) about `center`."""
    cx, cy = center
    return [(cx + radius * r * math.cos(angle + a), cy + radius * r * math.sin(angle + a)) for r, a in points]


def _regular(n, inner=None):
    """A regular n-gon, or an n-pointed star when `inner` (the relative radius of the notches) is given."""
    if inner is None:
        return [(1.0, 2 * math.pi * k / n) for k in range(n)]
    return [(1.0 if k % 2 == 0 else inner, math.pi * k / n) for k in range(2 * n)]


def _heart(samples=40):
    """The heart curve x = 16 sin^3 t, y = 13 cos t - 5 cos 2t - 2 cos 3t - cos 4t, in polar form."""
    out = []
    for k in range(samples):
        t = 2 * math.pi * k / samples
        x = 16 * math.sin(t) ** 3
        y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
        out.append((math.hypot(x, y) / 17, math.atan2(y, x)))
    return out


SHAPES = {"triangle": _regular(3), "square": _regular(4), "star": _regular(5, inner=0.42), "heart": _heart()}


def _draw_shape(mask, name, center, radius, angle):
    """Draw the class's shape in white (255) on the L-mode `mask`."""
    draw = ImageDraw.Draw(mask)
    cx, cy = center
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    if name == "disc":
        draw.ellipse(box, fill=255)
    elif name == "ring":
        draw.ellipse(box, fill=255)
        inner = 0.55 * radius
        draw.ellipse((cx - inner, cy - inner, cx + inner, cy + inner), fill=0)
    elif name == "frame":                               # a square with a square hole
        draw.polygon(_polygon(center, radius, angle, _regular(4)), fill=255)
        draw.polygon(_polygon(center, 0.5 * radius, angle, _regular(4)), fill=0)
    elif name == "crescent":                            # a disc with an offset disc taken out
        draw.ellipse(box, fill=255)
        ox, oy = cx + 0.5 * radius * math.cos(angle), cy + 0.5 * radius * math.sin(angle)
        draw.ellipse((ox - 0.85 * radius, oy - 0.85 * radius, ox + 0.85 * radius, oy + 0.85 * radius), fill=0)
    elif name == "semicircle":
        draw.pieslice(box, math.degrees(angle), math.degrees(angle) + 180, fill=255)
    elif name == "cross":                               # two crossed bars, each 0.6 radius wide
        corner, half_width = math.hypot(1, 0.3), math.atan2(0.3, 1)
        for turn in (0, math.pi / 2):
            bar = [(corner, turn + a) for a in (half_width, -half_width, math.pi + half_width, math.pi - half_width)]
            draw.polygon(_polygon(center, radius, angle, bar), fill=255)
    else:
        draw.polygon(_polygon(center, radius, angle, SHAPES[name]), fill=255)


def _random_color(rng, low=0, high=140):
    return tuple(int(c) for c in rng.integers(low, high, 3))


def render(label, rng, size=64):
    """One image (size x size RGB, uint8 array) of class CLASSES[label], every nuisance drawn from `rng`."""
    # Background: a linear gradient between two random colours in a random direction.
    ys, xs = np.mgrid[0:size, 0:size] / (size - 1)
    theta = rng.uniform(0, 2 * np.pi)
    t = np.clip(0.5 + (xs - 0.5) * np.cos(theta) + (ys - 0.5) * np.sin(theta), 0, 1)[..., None]
    start, end = rng.integers(0, 110, (2, 3))          # dark: the shape is the bright thing
    image = Image.fromarray((start + t * (end - start)).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    # Clutter behind the shape: line segments and dots, none of them a class shape.
    for _ in range(rng.integers(2, 7)):
        x0, y0, x1, y1 = rng.uniform(0, size, 4)
        draw.line((x0, y0, x1, y1), fill=_random_color(rng), width=1)
    for _ in range(rng.integers(1, 5)):
        x, y, r = *rng.uniform(0, size, 2), rng.uniform(1, 3)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=_random_color(rng))
    # The shape: radius 22%..40% of the side, anywhere it fits entirely, any rotation, any bright colour.
    radius = rng.uniform(0.22, 0.40) * size
    center = tuple(rng.uniform(radius + 1, size - radius - 1, 2))
    mask = Image.new("L", (size, size), 0)
    _draw_shape(mask, CLASSES[label], center, radius, rng.uniform(0, 2 * np.pi))
    image.paste(_random_color(rng, 150, 256), (0, 0), mask.filter(ImageFilter.SMOOTH))
    # A few clutter strokes in front, partly occluding it, then sensor noise.
    for _ in range(rng.integers(0, 2)):
        x0, y0, x1, y1 = rng.uniform(0, size, 4)
        draw.line((x0, y0, x1, y1), fill=_random_color(rng), width=1)
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, rng.uniform(3, 10), (size, size, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _write_split(task):
    """Worker: render and save the images of one (split, class) pair. Each image has its own seed,
    so the files do not depend on how the work is divided between processes."""
    root, split, label, count, seed, size = task
    folder = os.path.join(root, split, CLASSES[label])
    os.makedirs(folder, exist_ok=True)
    split_id = 0 if split == "train" else 1
    for index in range(count):
        rng = np.random.default_rng([seed, split_id, label, index])
        Image.fromarray(render(label, rng, size)).save(os.path.join(folder, f"{index:05d}.jpg"), quality=90)


def default_root(train_per_class=DEFAULT_TRAIN_PER_CLASS):
    """Where the set of `train_per_class` training images per class goes unless told otherwise, as an
    absolute path: $MINIGRAD_DATA/synthetic, else $XDG_CACHE_HOME/minigrad/synthetic (by default
    ~/.cache/minigrad/synthetic); "synthetic-N" for a size N other than the default."""
    home = os.environ.get(DATA_HOME) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "minigrad")
    name = "synthetic" if train_per_class == DEFAULT_TRAIN_PER_CLASS else f"synthetic-{train_per_class}"
    return os.path.abspath(os.path.join(os.path.expanduser(home), name))


def generate(root=None, train_per_class=DEFAULT_TRAIN_PER_CLASS, val_per_class=120, size=64, seed=0, workers=None):
    """Generate the dataset into `root` (default: default_root(train_per_class)) unless a complete copy
    with the same parameters is there. Returns `root`. Deterministic: the same parameters always give the
    same files. ValueError, before anything is written or deleted, when `root` is a folder that neither is
    empty nor was generated by minigrad (module docstring)."""
    root = default_root(train_per_class) if root is None else root
    params = {"classes": list(CLASSES), "train_per_class": train_per_class, "val_per_class": val_per_class,
              "size": size, "seed": seed, "version": 3}
    if _read_json(os.path.join(root, MARKER)) == params:
        return root
    _claim(root)
    for split in ("train", "val"):
        shutil.rmtree(os.path.join(root, split), ignore_errors=True)
    tasks = [(root, split, label, count, seed, size) for split, count in (("train", train_per_class),
                                                                         ("val", val_per_class))
             for label in range(len(CLASSES))]
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        list(pool.map(_write_split, tasks))
    with open(os.path.join(root, MARKER), "w") as f:
        json.dump(params, f)
    return root


def _claim(root):
    """Make `root` minigrad's to write in: create it, or mark an empty folder with OWNER; a folder that
    already carries OWNER is minigrad's. Anything else is refused (ValueError naming the folder)."""
    try:
        os.makedirs(root, exist_ok=True)
        found = sorted(os.listdir(root))
        if OWNER in found and _read_text(os.path.join(root, OWNER), len(OWNER_TEXT)) == OWNER_TEXT:
            return
        if not found:
            with open(os.path.join(root, OWNER), "w") as f:
                f.write(OWNER_TEXT)
            return
    except OSError as error:
        raise ValueError(f"synthetic set: cannot generate it in {root} ({error})") from None
    raise ValueError(f"synthetic set: {root} is not empty ({', '.join(found[:5])}{', ...' if len(found) > 5 else ''}) "
                     f"and was not generated by minigrad (it has no {OWNER} file); minigrad generates its synthetic "
                     f"set only into an absent or empty folder, or one it generated, and never deletes what it did "
                     f"not write: choose another folder, or train on this one with --data")


def _read_text(path, characters):
    """At most `characters` + 1 characters of the text file `path` (enough to tell a marker from any other
    file), or None when it cannot be read as text."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read(characters + 1)
    except (OSError, ValueError):
        return None


def _read_json(path, characters=4096):
    """The JSON value in the small file `path`, or None when there is none."""
    try:
        return json.loads(_read_text(path, characters) or "null")
    except ValueError:
        return None


def softmax_regression_accuracy(root, epochs=30, lrs=(0.003, 0.01, 0.03), batch_size=128, seed=0):
    """The best validation accuracy that softmax regression on raw pixels reaches on the set at `root`
    (ROOT/train, ROOT/val), over the learning rates `lrs`, at the best epoch of each: a generous figure
    for how far a classifier without convolutions gets. Pixels are standardised with the training mean
    and standard deviation of each input; SGD with the paper's momentum and weight decay."""
    from .. import Linear, SGD, SoftmaxCrossEntropy, manual_seed
    from .folder import ImageFolder

    train = ImageFolder(os.path.join(root, "train"), size=_image_side(root)).preload()
    val = ImageFolder(os.path.join(root, "val"), size=train.size, classes=train.classes).preload()
    x_train = train.images.reshape(len(train), -1).astype(np.float32)
    x_val = val.images.reshape(len(val), -1).astype(np.float32)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-6
    x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
    best = 0.0
    for lr in lrs:
        manual_seed(seed)
        model, loss = Linear(x_train.shape[1], len(train.classes)), SoftmaxCrossEntropy()
        optimizer, rng = SGD(model.parameters(), lr=lr), np.random.default_rng(seed)
        for _ in range(epochs):
            order = rng.permutation(len(x_train))
            for start in range(0, len(order), batch_size):
                batch = order[start:start + batch_size]
                loss.forward(model.forward(x_train[batch]), train.labels[batch])
                optimizer.zero_grad()
                model.backward(loss.backward())
                optimizer.step()
            best = max(best, float((model.forward(x_val).argmax(axis=1) == val.labels).mean()))
    return best


def _image_side(root):
    """The side of the square images of a generated set (from its marker file)."""
    return _read_json(os.path.join(root, MARKER))["size"]


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description="Generate the synthetic set; --check: softmax regression on it")
    parser.add_argument("--root", help="default: default_root(), printed")
    parser.add_argument("--check", action="store_true", help="print the validation accuracy of softmax regression")
    args = parser.parse_args()
    args.root = generate(args.root)
    print(f"synthetic set ready in {args.root}")
    if args.check:
        print(f"softmax regression on raw pixels: {softmax_regression_accuracy(args.root):.1%} val accuracy")
