"""ImageFolder: a directory of class folders (ROOT/<class>/<image>), the layout of ImageNet's training set.

Every image is prepared as the paper prepares ImageNet (section 2): rescaled so that its shorter side is
`size`, then the central size x size patch is cropped, and kept as a uint8 array (size, size, 3). The
random crops, flips and colour noise of section 4.1 are applied later, per batch (transforms.py).
"""
import copy
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from .transforms import center_crop, resize_shorter_side

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".tif", ".tiff", ".webp")
LAYOUT = "ROOT/<class name>/<image>.jpg|.jpeg|.png|... (one sub-folder per class, images inside)"


def load_image(path, size):
    """Decode `path` as RGB, rescale its shorter side to `size`, crop the centre: (size, size, 3) uint8.
    Raises OSError (or ValueError) when the file is not a readable image."""
    with Image.open(path) as image:
        image.draft("RGB", (size, size))        # JPEG: decode at a reduced scale when it can (faster)
        image = resize_shorter_side(image.convert("RGB"), size)
    return center_crop(np.asarray(image), size)


class ImageFolder:
    """The images under ROOT/<class>/, classes sorted by name and numbered from 0.

    size: the side S of the prepared images (shorter side rescaled to S, centre S x S crop).
    classes: a list of class names to number the folders by (a validation set must use the training
    set's numbering); default: the sorted sub-folder names of ROOT.

    An unreadable or corrupt file is skipped with one warning naming it; `skipped` lists them.
    `preload()` decodes every image once into `images` (N, S, S, 3) uint8, so that training never waits
    on JPEG decoding; without it, `batch()` decodes on demand (for sets too large for memory).
    """

    def __init__(self, root, size, classes=None):
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"ImageFolder: size must be a positive int, got {size!r}")
        if not os.path.isdir(root):
            raise ValueError(f"ImageFolder: {root!r} is not a directory; expected the layout {LAYOUT}")
        folders = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))
        if not folders:
            found = sorted(os.listdir(root))[:5]
            raise ValueError(f"ImageFolder: no class sub-folders in {root!r} (found {found or 'nothing'}); "
                             f"expected the layout {LAYOUT}")
        self.classes = folders if classes is None else list(classes)
        unknown = sorted(set(folders) - set(self.classes))
        if unknown:
            raise ValueError(f"ImageFolder: {root!r} has class folders {unknown} that are not among the "
                             f"expected classes {self.classes}")
        self.root, self.size = root, size
        self.samples = []                      # (path, label)
        for name in folders:
            folder = os.path.join(root, name)
            files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
            self.samples += [(os.path.join(folder, f), self.classes.index(name)) for f in files]
        if not self.samples:
            raise ValueError(f"ImageFolder: the class folders of {root!r} ({', '.join(folders[:5])}"
                             f"{', ...' if len(folders) > 5 else ''}) hold no image files with an extension "
                             f"in {IMAGE_EXTENSIONS}; expected the layout {LAYOUT}")
        self.labels = np.array([label for _, label in self.samples], dtype=np.int64)
        self.images = None
        self.skipped = []                       # paths of unreadable files, each warned about once

    def __len__(self):
        return len(self.samples)

    def load(self, index):
        """The prepared image `index` as (size, size, 3) uint8, or None if the file cannot be read."""
        path = self.samples[index][0]
        try:
            return load_image(path, self.size)
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            if path not in self.skipped:
                self.skipped.append(path)
                warnings.warn(f"ImageFolder: skipping unreadable image {path}: {error}", stacklevel=2)
            return None

    def preload(self, workers=2):
        """Decode every image once (PIL releases the GIL, so threads decode in parallel), drop the
        unreadable ones and keep the rest in memory as `images`. Returns self."""
        with ThreadPoolExecutor(max(1, workers)) as pool:
            decoded = list(pool.map(self.load, range(len(self.samples))))
        keep = [i for i, image in enumerate(decoded) if image is not None]
        if not keep:
            raise ValueError(f"ImageFolder: none of the {len(self.samples)} files under {self.root!r} "
                             f"could be read as an image")
        self.samples = [self.samples[i] for i in keep]
        self.labels = self.labels[keep]
        self.images = np.stack([decoded[i] for i in keep])
        return self

    def subset(self, indices):
        """A new ImageFolder over the samples `indices` of this one (sharing its decoded images)."""
        part = copy.copy(self)
        part.samples = [self.samples[i] for i in indices]
        part.labels = self.labels[indices]
        part.images = None if self.images is None else self.images[indices]
        part.skipped = []
        return part

    def batch(self, indices):
        """(images (n, size, size, 3) uint8, labels (n,) int64) for `indices`, without the unreadable."""
        if self.images is not None:
            return self.images[indices], self.labels[indices]
        decoded = [(self.load(i), self.labels[i]) for i in indices]
        decoded = [(image, label) for image, label in decoded if image is not None]
        if not decoded:
            return np.zeros((0, self.size, self.size, 3), np.uint8), np.zeros(0, np.int64)
        images, labels = zip(*decoded)
        return np.stack(images), np.array(labels, dtype=np.int64)
