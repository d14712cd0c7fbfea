"""The paper's data pipeline (sections 2 and 4.1), on batches of uint8 images (N, H, W, 3).

    prepare   shorter side to S, central S x S crop (done once per image, folder.py)
    train     random s x s crop, horizontal flip with probability 1/2, PCA colour noise,
              minus the mean image, times `scale` -> float32 (N, 3, s, s)
    test      centre s x s crop, or the ten crops of footnote 5 (four corners and centre, and their
              mirror images), minus the mean image, times `scale`

Crops are taken from the uint8 batch by index arithmetic, one vectorised gather per batch, and the mean
image is cropped at the same place, so each crop is exactly (image - mean image) cropped, as the paper
subtracts the mean of the 256 x 256 training images before cropping 224 x 224 patches.
"""
import numpy as np
from PIL import Image


def resize_shorter_side(image, size):
    """A PIL image rescaled (bilinear, antialiased when shrinking) so that its shorter side is `size`."""
    width, height = image.size
    if min(width, height) == size:
        return image
    scale = size / min(width, height)
    new_size = (max(size, round(width * scale)), max(size, round(height * scale)))
    return image.resize(new_size, Image.Resampling.BILINEAR)


def center_crop(images, size):
    """The central size x size patch of (..., H, W, C) images; the extra pixel of an odd margin goes
    to the bottom and right."""
    height, width = images.shape[-3:-1]
    if size > height or size > width:
        raise ValueError(f"center_crop: crop size {size} is larger than the image ({height} x {width})")
    top, left = (height - size) // 2, (width - size) // 2
    return images[..., top:top + size, left:left + size, :]


def crop_at(images, tops, lefts, size):
    """Crop image i of (N, H, W, C) at (tops[i], lefts[i]), size x size, in one gather: (N, size, size, C)."""
    rows = np.asarray(tops)[:, None] + np.arange(size)          # (N, size)
    cols = np.asarray(lefts)[:, None] + np.arange(size)
    return images[np.arange(len(images))[:, None, None], rows[:, :, None], cols[:, None, :]]


def random_crop_offsets(rng, count, image_size, size):
    """(tops, lefts) of `count` crops drawn uniformly among all (image_size - size + 1)^2 positions."""
    if size > image_size:
        raise ValueError(f"random crop: crop size {size} is larger than the image side {image_size}")
    return rng.integers(0, image_size - size + 1, (2, count))


def ten_crop_offsets(image_size, size):
    """(tops, lefts) of the four corner crops and the centre crop (footnote 5), in that order:
    top-left, top-right, bottom-left, bottom-right, centre."""
    far, mid = image_size - size, (image_size - size) // 2
    return np.array([0, 0, far, far, mid]), np.array([0, far, 0, far, mid])


def mean_image(images, chunk=1024):
    """The per-pixel, per-channel mean of uint8 images (N, S, S, 3), as float32 (S, S, 3)."""
    total = np.zeros(images.shape[1:], np.float64)
    for start in range(0, len(images), chunk):
        total += images[start:start + chunk].sum(axis=0, dtype=np.float64)
    return (total / len(images)).astype(np.float32)


class PCAColor:
    """PCA colour augmentation (section 4.1): to every pixel of an image add

        [p1 p2 p3] [a1 s1, a2 s2, a3 s3]^T,   a_i ~ N(0, std^2), drawn once per image per presentation,

    where p_i are the eigenvectors of the 3 x 3 covariance of RGB values over the training set.

    s_i is the SQUARE ROOT of the eigenvalue lambda_i (the standard deviation of the pixels along p_i),
    as cuda-convnet2 does, where the paper prints lambda_i. Only the square root is consistent in units:
    the offset is a pixel value, and sqrt(lambda_i) is one, so std=0.1 always means "10% of the colour
    spread along p_i" whether pixels are 0..255 or 0..1; lambda_i is a squared pixel value, and a_i lambda_i
    would shift pixels by about +-300 on the 0..255 scale (garbage) and by about +-1 level on 0..1 (nothing).
    """

    def __init__(self, eigenvalues, eigenvectors, std=0.1):
        self.eigenvalues = np.asarray(eigenvalues, np.float64)
        self.eigenvectors = np.asarray(eigenvectors, np.float64)
        if self.eigenvalues.shape != (3,) or self.eigenvectors.shape != (3, 3):
            raise ValueError(f"PCAColor: expected 3 eigenvalues and a 3 x 3 eigenvector matrix (columns), got "
                             f"shapes {self.eigenvalues.shape} and {self.eigenvectors.shape}")
        self.std = std

    @classmethod
    def fit(cls, images, std=0.1, max_pixels=1_000_000, seed=0):
        """Eigen-decompose the covariance of the RGB values of uint8 images (N, H, W, 3), from at most
        `max_pixels` pixels drawn without replacement (the whole set when it is smaller)."""
        pixels = images.reshape(-1, 3)
        if len(pixels) > max_pixels:
            pixels = pixels[np.random.default_rng(seed).choice(len(pixels), max_pixels, replace=False)]
        eigenvalues, eigenvectors = np.linalg.eigh(np.cov(pixels.astype(np.float64), rowvar=False))
        return cls(np.clip(eigenvalues, 0, None), eigenvectors, std)

    def offsets(self, rng, count):
        """The RGB offset (count, 3) of `count` images: sum_i p_i a_i sqrt(lambda_i)."""
        alphas = rng.normal(0.0, self.std, (count, 3))
        return (alphas * np.sqrt(self.eigenvalues)) @ self.eigenvectors.T


def _to_network(crops, mean_crops, scale):
    """(crop - mean) * scale as float32, channels first: (N, s, s, 3) -> (N, 3, s, s)."""
    x = (crops.astype(np.float32) - mean_crops) * np.float32(scale)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


class TrainTransform:
    """Random crop, flip, PCA colour noise, mean-image subtraction and scaling of a uint8 batch (4.1).

    mean: the mean image (S, S, 3) of the prepared training images; pca: a PCAColor or None;
    scale: factor applied after the subtraction (1 keeps the paper's raw pixel values).
    part=(first, rows): `images` are rows first.. of a batch of `rows` (a data-parallel rank's slice):
    the random draws are made for the whole batch and this slice's are used.
    """

    def __init__(self, crop_size, mean, pca=None, scale=1.0, flip=True):
        self.crop_size, self.mean, self.pca, self.scale, self.flip = crop_size, mean, pca, scale, flip

    def __call__(self, images, rng, part=None):
        count, side, size = len(images), images.shape[1], self.crop_size
        first, rows = (0, count) if part is None else part
        mine = slice(first, first + count)
        # The draws, in a fixed order, for the whole batch of `rows`; this part's are used.
        tops, lefts = random_crop_offsets(rng, rows, side, size)[:, mine]
        mirrored = (rng.random(rows) < 0.5)[mine] if self.flip else np.zeros(count, bool)
        offsets = (self.pca.offsets(rng, rows)[mine] if self.pca is not None else np.zeros((count, 3))).astype(np.float32)
        # One image at a time, by slicing: a gather (crop_at) of 128 x 224 x 224 x 3 elements costs more
        # than decoding them (benchmarks/results/loader.md); slices are plain copies.
        x = np.empty((count, 3, size, size), np.float32)
        for i, (top, left) in enumerate(zip(tops, lefts)):
            crop = images[i, top:top + size, left:left + size].astype(np.float32)
            crop -= self.mean[top:top + size, left:left + size]
            if mirrored[i]:
                crop = crop[:, ::-1]
            crop += offsets[i]
            crop *= np.float32(self.scale)
            x[i] = crop.transpose(2, 0, 1)
        return x


class EvalTransform:
    """Test-time crops of a uint8 batch, minus the mean image, times `scale`.

    ten_crop=False: the centre crop, (N, 3, s, s). ten_crop=True: the four corner crops and the centre
    crop and their horizontal reflections (footnote 5), (N, 10, 3, s, s), in the order of
    ten_crop_offsets() and then the same five mirrored.
    """

    def __init__(self, crop_size, mean, scale=1.0, ten_crop=False):
        self.crop_size, self.mean, self.scale, self.ten_crop = crop_size, mean, scale, ten_crop

    def __call__(self, images, rng=None):
        if not self.ten_crop:
            return _to_network(center_crop(images, self.crop_size), center_crop(self.mean, self.crop_size),
                               self.scale)
        count, side = len(images), images.shape[1]
        tops, lefts = ten_crop_offsets(side, self.crop_size)
        five = [_to_network(crop_at(images, np.full(count, top), np.full(count, left), self.crop_size),
                            self.mean[top:top + self.crop_size, left:left + self.crop_size], self.scale)
                for top, left in zip(tops, lefts)]
        crops = np.stack(five + [c[..., ::-1] for c in five], axis=1)     # mirror: reverse the width axis
        return np.ascontiguousarray(crops)
