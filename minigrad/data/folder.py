"""ImageFolder: a directory of class folders (ROOT/<class>/<image>), the layout of ImageNet's training set.

Every image is prepared as the paper prepares ImageNet (section 2): rescaled so that its shorter side is
`size`, then the central size x size patch is cropped, and kept as a uint8 array (size, size, 3). The
random crops, flips and colour noise of section 4.1 are applied later, per batch (transforms.py).

An image file is input from anywhere, so what a small file can make minigrad allocate is bounded before
any pixel is decoded, from the size its header declares: at most MAX_PIXELS pixels decoded (PIL's own
decompression-bomb limit), a longer side at most MAX_ASPECT_RATIO times the shorter, and at most
MAX_PIXELS pixels once rescaled to the shorter side `size`. Decoding and rescaling then allocate at most
about 24 bytes per pixel of these bounds, 2.1 GB at MAX_PIXELS (measured: 4 for RGB, 11 to 13 for 16-bit
grey and transparency, 16 to 21 for WebP; a JPEG is decoded at a reduced scale), per image being decoded
(ImageFolder.preload decodes `workers` at once), and PIL is handed a file that never reads past its end
whatever length a chunk declares. A file is opened only as one of FORMATS, whatever its name says: none
of PIL's other decoders is reached. A file outside these bounds, and any exception PIL raises on a
malformed file, are one of the UNREADABLE errors, which ImageFolder skips with one warning. (PIL warns
on its own about an image of 1 to 2 times MAX_PIXELS, without naming the file; the scripts leave that
warning out, console.one_line_warnings.) fuzz/image_decoding.py holds load_image to this.
"""
import copy
import io
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, ImageOps

from .transforms import center_crop, resize_shorter_side

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".tif", ".tiff", ".webp")
LAYOUT = "ROOT/<class name>/<image>.jpg|.jpeg|.png|... (one sub-folder per class, images inside)"
ORIENTATION = 0x0112             # the EXIF tag of how the camera was held
UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)   # what a bad file raises
NOT_AN_IMAGE = "not an image file (its extension is none of IMAGE_EXTENSIONS)"
MAX_PIXELS = 89_478_485          # PIL's own limit (Image.MAX_IMAGE_PIXELS): a larger "image" is refused
MAX_ASPECT_RATIO = 32            # of the longer side to the shorter: its centre crop would keep 1/32 of it
FORMATS = ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP", "PPM")     # the decoders a file may reach


def load_image(path, size):
    """Decode `path` as RGB, rescale its shorter side to `size`, crop the centre: (size, size, 3) uint8.

    What real folders hold is brought to 8-bit RGB: the EXIF orientation is applied (a phone photo
    stands the right way up), grey, CMYK and palette images are converted, 16-bit grey is scaled to
    8 bits (PIL's convert would clip it), and transparency is composited over white. Only the first
    frame of a GIF or TIFF is read. Raises OSError or ValueError when the file is not a readable image,
    and ValueError for an image outside the bounds of the module docstring (check_size)."""
    try:
        return _prepared(path, size)
    except (*UNREADABLE, MemoryError):      # (within the bounds, a MemoryError is the machine's, not the file's)
        raise
    except Exception as error:
        # PIL's decoders raise whatever a malformed file leads them to (a TIFF whose strip offset is a
        # fraction: TypeError, found by fuzz/image_decoding.py): the file is unreadable, and says why.
        raise ValueError(f"PIL cannot decode it ({type(error).__name__}: {error})") from None


def _prepared(path, size):
    """load_image's work, raising what PIL raises."""
    with _ImageFile(path) as file:
        if file.size == 0:
            raise ValueError("the file is empty (0 bytes)")
        with Image.open(file, formats=FORMATS) as image:
            check_size(*image.size, size)
            image.draft("RGB", (size, size))        # JPEG: decode at a reduced scale when it can (faster)
            if image.getexif().get(ORIENTATION, 1) != 1:    # exif_transpose copies even an upright image
                image = ImageOps.exif_transpose(image)
            image = _to_rgb(image)
            pixels = np.asarray(resize_shorter_side(image, size))     # decoded before the file closes
    return center_crop(pixels, size)


class _ImageFile(io.BufferedReader):
    """The file at `path`, opened for PIL, whose read(n) asks for no more than the file has left: PIL
    reads some chunks whole by the length their header declares (a PNG's IDAT, as fuzz/image_decoding.py
    found), and a 132-byte PNG that declares 4 GB made it allocate 4 GB."""

    def __init__(self, path):
        super().__init__(io.FileIO(path))
        self.path, self.size = path, os.fstat(self.fileno()).st_size

    def read(self, size=-1):
        if size is not None and size > 0:
            size = min(size, max(0, self.size - self.tell()))
        return super().read(size)

    def __repr__(self):                   # (PIL names the file by it: "cannot identify image file '...'")
        return repr(self.path)


def check_size(width, height, size):
    """ValueError unless an image of width x height pixels, and the same rescaled to the shorter side
    `size`, fit the bounds of the module docstring."""
    shorter, longer = sorted((width, height))
    if shorter < 1:
        raise ValueError(f"{width} x {height} pixels: the image is empty")
    if width * height > MAX_PIXELS:
        raise ValueError(f"{width} x {height} pixels is more than {MAX_PIXELS:,}: refused as a "
                         f"possible decompression bomb")
    if longer > MAX_ASPECT_RATIO * shorter:
        raise ValueError(f"{width} x {height} pixels: its sides' ratio {longer / shorter:,.0f}:1 is more than "
                         f"{MAX_ASPECT_RATIO}:1 (its centre crop would keep less than 1/{MAX_ASPECT_RATIO} of it)")
    rescaled = size * max(size, round(longer * size / shorter))        # (transforms.resize_shorter_side)
    if rescaled > MAX_PIXELS:
        raise ValueError(f"{width} x {height} pixels rescaled to a shorter side of {size} would be {rescaled:,} "
                         f"pixels, more than {MAX_PIXELS:,}")


def _to_rgb(image):
    """An 8-bit RGB copy of a decoded PIL image of any mode."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):           # 16-bit (or 32-bit) grey: keep the top bits
        grey = np.array(image)                                  # (a copy of its own, scaled in place)
        top = 65535 if image.mode.startswith("I;16") or grey.max() > 255 else 255
        grey = np.clip(grey, 0, top, out=grey).astype(np.uint32)
        grey *= 255                                             # round(grey * 255 / top), in integers
        grey += top // 2
        grey //= top
        image = Image.fromarray(grey.astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        image = Image.new("RGB", rgba.size, (255, 255, 255))
        image.paste(rgba, mask=rgba.getchannel("A"))
    return image if image.mode == "RGB" else image.convert("RGB")


def _is_hidden(name):
    """Files and folders the system or a tool made (.DS_Store, .cache/, ._photo.jpg): not data."""
    return name.startswith(".") or name.startswith("__MACOSX")


def warn_skipped(path, why, stacklevel=3):
    """The one warning a file that does not train (or is not predicted) gets: its path and why."""
    warnings.warn(f"ImageFolder: skipping {path}: {why}", stacklevel=stacklevel)


def class_files(folder):
    """(image paths, other paths) under a class `folder`, sub-folders included, sorted; hidden files
    and folders are left out of both.

    Symbolic links are followed, to folders and files alike, wherever they point, as they are for the
    class folders themselves (so a subset of ImageNet made of links to its folders trains; torchvision's
    ImageFolder follows them too). A folder reached a second time (a link to a folder above it, or two
    links to one folder) is read once, and the other path is warned about."""
    images, others, seen = [], [], set()
    _first_visit(folder, seen)
    for directory, subdirectories, files in os.walk(folder, followlinks=True):
        subdirectories[:] = [d for d in sorted(subdirectories)
                             if not _is_hidden(d) and _first_visit(os.path.join(directory, d), seen)]
        for name in sorted(files):
            if not _is_hidden(name):
                (images if name.lower().endswith(IMAGE_EXTENSIONS) else others).append(os.path.join(directory, name))
    return images, others


def _first_visit(folder, seen):
    """False, with a warning, when `folder` is one of the folders `seen` (by device and inode: the same
    folder under another path); True otherwise, and it is added to them."""
    try:
        status = os.stat(folder)
    except OSError:
        return True                     # (os.walk cannot list it either)
    if (status.st_dev, status.st_ino) in seen:
        warnings.warn(f"ImageFolder: not reading {folder}: a link to a folder that is read under another path "
                      f"already", stacklevel=4)
        return False
    seen.add((status.st_dev, status.st_ino))
    return True


class ImageFolder:
    """The images under ROOT/<class>/, classes sorted by name and numbered from 0.

    size: the side S of the prepared images (shorter side rescaled to S, centre S x S crop).
    classes: a list of class names to number the folders by (a validation set must use the training
    set's numbering); default: the sorted sub-folder names of ROOT.

    Images in sub-folders of a class folder belong to the class; hidden files and folders (.DS_Store,
    .cache/) are not looked at. Symbolic links are followed, to class folders, folders inside them and
    files alike (class_files says how a link loop is read). Every other file either trains or is
    skipped with one warning naming it and why: a file without an image extension (Thumbs.db,
    README.txt) when the folder is scanned, an unreadable, truncated or refused image when it is decoded.
    `skipped` lists them all. A class left with no readable image is warned about by name (it keeps its
    number, so that the validation set and checkpoints agree, but the network never sees it).
    `preload()` decodes every image once into `images` (N, S, S, 3) uint8, so that training never waits
    on JPEG decoding; without it, `batch()` decodes on demand (for sets too large for memory).
    """

    def __init__(self, root, size, classes=None):
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"ImageFolder: size must be a positive int, got {size!r}")
        if not os.path.isdir(root):
            raise ValueError(f"ImageFolder: {root!r} is not a directory; expected the layout {LAYOUT}")
        folders = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not _is_hidden(entry.name))
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
        self.skipped = []                       # paths of files that do not train, each warned about once
        for name in folders:
            images, others = class_files(os.path.join(root, name))
            for path in others:
                self._skip(path, NOT_AN_IMAGE)
            if not images:
                warnings.warn(f"ImageFolder: class {name!r} ({os.path.join(root, name)}) holds no image file: "
                              f"the network will never see it", stacklevel=2)
            self.samples += [(path, self.classes.index(name)) for path in images]
        if not self.samples:
            raise ValueError(f"ImageFolder: the class folders of {root!r} ({', '.join(folders[:5])}"
                             f"{', ...' if len(folders) > 5 else ''}) hold no image files with an extension "
                             f"in {IMAGE_EXTENSIONS}; expected the layout {LAYOUT}")
        self.labels = np.array([label for _, label in self.samples], dtype=np.int64)
        self.images = None

    def _skip(self, path, why):
        if path not in self.skipped:
            self.skipped.append(path)
            warn_skipped(path, why, stacklevel=4)

    def __len__(self):
        return len(self.samples)

    def load(self, index):
        """The prepared image `index` as (size, size, 3) uint8, or None if the file cannot be read."""
        path = self.samples[index][0]
        try:
            return load_image(path, self.size)
        except UNREADABLE as error:
            self._skip(path, f"unreadable image ({error})")
            return None

    def preload(self, workers=2):
        """Decode every image once (PIL releases the GIL, so threads decode in parallel), drop the
        unreadable ones and keep the rest in memory as `images`. Returns self."""
        with ThreadPoolExecutor(max(1, workers)) as pool:
            decoded = list(pool.map(self.load, range(len(self.samples))))
        keep = [i for i, image in enumerate(decoded) if image is not None]
        before = self.labels
        if not keep:
            raise ValueError(f"ImageFolder: none of the {len(self.samples)} files under {self.root!r} "
                             f"could be read as an image")
        self.samples = [self.samples[i] for i in keep]
        self.labels = self.labels[keep]
        self.images = np.stack([decoded[i] for i in keep])
        for label in sorted(set(np.unique(before)) - set(np.unique(self.labels))):
            warnings.warn(f"ImageFolder: class {self.classes[label]!r} ({os.path.join(self.root, self.classes[label])}) "
                          f"has no readable image: the network will never see it", stacklevel=2)
        return self

    def subset(self, indices):
        """A new ImageFolder over the samples `indices` of this one (sharing its decoded images)."""
        part = copy.copy(self)
        part.samples = [self.samples[i] for i in indices]
        part.labels = self.labels[indices]
        part.images = None if self.images is None else self.images[indices]
        part.skipped = list(self.skipped)          # the files skipped when the folder was scanned
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
