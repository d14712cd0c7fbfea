"""Fuzz minigrad's image decoding (minigrad/data/folder.py: ImageFolder, load_image; fuzz/FILES.md).

    python fuzz/image_decoding.py --seconds 600 --save-failures fuzz/corpus/images    # by hand
    python fuzz/image_decoding.py --replay-only                                       # the corpus alone

The contract, for any bytes in a file named like an image: ImageFolder.load either returns the prepared
(SIZE, SIZE, 3) uint8 image without a warning of its own, or returns None after exactly one warning
"ImageFolder: skipping <path>: unreadable image (<why>)" (load_image raised one of data.UNREADABLE with
a message); no other exception, no crash, and at most MEMORY_BOUND of resident memory per input
(folder.py's bounds: about 24 bytes per pixel of MAX_PIXELS). PIL's own warnings about a file it still
reads (corrupt EXIF, a decompression-bomb size that folder.py then refuses) are PIL's and not counted.

Seeds: small images that Pillow writes in every format and many modes minigrad documents (JPEG RGB,
grey, CMYK, progressive, with an EXIF orientation; PNG RGB, RGBA, palette with transparency, 16-bit
grey, 1-bit, interlaced; GIF, animated; BMP; TIFF RGB, CMYK, 16-bit, float, deflate, multi-page; WebP
lossy and lossless with alpha; PPM, PGM). Structured mutations: declared sizes (huge, zero, extreme
aspect ratios) written into each format's header, PNG chunks with their CRCs recomputed after a byte
mutation (so that a change reaches the decoder instead of the checksum), and EXIF orientations.
"""
import io
import os
import re
import struct
import sys
import tempfile
import warnings
import zlib

import numpy as np
from PIL import Image

import file_mutations
from file_mutations import Broken
from minigrad import data
from minigrad.data import folder

SIZE = data.resize_for(64)           # 73: the side the small preset prepares its images at
MEMORY_BOUND = 24 * folder.MAX_PIXELS + 64 * 2**20
CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "images")
DECLARED_SIZES = ((100_000, 1), (1, 100_000), (65_535, 65_535), (0, 16), (16, 0), (9_000, 9_000), (2**31 - 1, 1),
                  (40_000, 1_200), (3_000, 94), (1, 1), (2**32 - 1, 2**32 - 1))


# --- seeds -------------------------------------------------------------------------------------------
def seeds():
    """Valid files of every documented format, 24 x 16 pixels of noise, as bytes."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (16, 24, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    cases = [
        (rgb, "JPEG", {}), (rgb.convert("L"), "JPEG", {}), (rgb.convert("CMYK"), "JPEG", {}),
        (rgb, "JPEG", {"progressive": True, "exif": exif}),
        (rgb, "PNG", {}), (rgb.convert("RGBA"), "PNG", {}), (rgb.convert("LA"), "PNG", {}),
        (rgb.convert("P"), "PNG", {"transparency": 0}), (rgb.convert("1"), "PNG", {}),
        (Image.fromarray(rng.integers(0, 65536, (16, 24), dtype=np.uint16)), "PNG", {}),
        (rgb, "PNG", {"exif": exif}),
        (rgb.convert("P"), "GIF", {}),
        (rgb.convert("P"), "GIF", {"save_all": True, "append_images": [rgb.rotate(90).convert("P")]}),
        (rgb, "BMP", {}), (rgb.convert("P"), "BMP", {}), (rgb.convert("1"), "BMP", {}),
        (rgb, "TIFF", {}), (rgb.convert("CMYK"), "TIFF", {"compression": "tiff_deflate"}),
        (Image.fromarray(rng.integers(0, 65536, (16, 24), dtype=np.uint16)), "TIFF", {}),
        (Image.fromarray(rng.random((16, 24), dtype=np.float32)), "TIFF", {}),
        (rgb, "TIFF", {"compression": "packbits", "save_all": True, "append_images": [rgb.rotate(90)], "exif": exif}),
        (rgb, "WEBP", {"quality": 50}), (rgb.convert("RGBA"), "WEBP", {"lossless": True}),
        (rgb, "PPM", {}), (rgb.convert("L"), "PPM", {}),
    ]
    written = []
    for image, format, options in cases:
        buffer = io.BytesIO()
        image.save(buffer, format=format, **options)
        written.append(buffer.getvalue())
    return written


# --- structured mutations ----------------------------------------------------------------------------
def _png_chunks(data):
    """(offset, length) of each whole chunk of a PNG after its signature."""
    at, chunks = 8, []
    while at + 12 <= len(data):
        length = struct.unpack(">I", data[at:at + 4])[0]
        if at + 12 + length > len(data):
            break
        chunks.append((at, length))
        at += 12 + length
    return chunks


def _with_png_crcs(data):
    data = bytearray(data)
    for at, length in _png_chunks(data):
        data[at + 8 + length:at + 12 + length] = struct.pack(">I", zlib.crc32(data[at + 4:at + 8 + length]))
    return bytes(data)


def png_with_crcs(rng, data, seeds):
    """A byte mutation inside a PNG's chunks, with every chunk's CRC made right again."""
    if not data.startswith(b"\x89PNG"):
        return data
    return _with_png_crcs(rng.choice(file_mutations.BYTE_MUTATIONS[:6])(rng, data, seeds))


def _put(data, at, packed):
    return data[:at] + packed + data[at + len(packed):] if at + len(packed) <= len(data) else data


def _tiff_sizes(data, width, height):
    """ImageWidth (256) and ImageLength (257) of the first directory, rewritten as LONGs."""
    order = "<" if data.startswith(b"II") else ">"
    directory = struct.unpack(order + "I", data[4:8])[0] if len(data) >= 8 else len(data)
    count = struct.unpack(order + "H", data[directory:directory + 2])[0] if directory + 2 <= len(data) else 0
    for at in range(directory + 2, min(len(data) - 11, directory + 2 + 12 * count), 12):
        tag = struct.unpack(order + "H", data[at:at + 2])[0]
        if tag in (256, 257):
            data = _put(data, at + 2, struct.pack(order + "HII", 4, 1, (width if tag == 256 else height) & 0xFFFFFFFF))
    return data


def _webp_sizes(data, width, height):
    kind = data[12:16]
    if kind == b"VP8X":
        canvas = [struct.pack("<I", (side - 1) & 0xFFFFFF)[:3] for side in (width, height)]   # 24 bits each
        return _put(data, 24, b"".join(canvas))
    if kind == b"VP8L" and len(data) >= 25:        # 14 bits each of width - 1 and height - 1, then alpha, version
        kept = struct.unpack("<I", data[21:25])[0] & 0xF0000000
        return _put(data, 21, struct.pack("<I", kept | ((width - 1) & 0x3FFF) | ((height - 1) & 0x3FFF) << 14))
    return _put(data, 26, struct.pack("<HH", width & 0x3FFF, height & 0x3FFF))       # VP8: after the start code


def _jpeg_sizes(data, width, height):
    match = re.search(rb"\xff[\xc0-\xc3]", data)
    return _put(data, match.start() + 5, struct.pack(">HH", height & 0xFFFF, width & 0xFFFF)) if match else data


def _gif_sizes(data, width, height):
    data = _put(data, 6, struct.pack("<HH", width & 0xFFFF, height & 0xFFFF))
    descriptor = data.find(b",", 13)
    return _put(data, descriptor + 5, struct.pack("<HH", width & 0xFFFF, height & 0xFFFF)) if descriptor > 0 else data


def _ppm_sizes(data, width, height):
    return re.sub(rb"^(P[1-6]\s+)\d+\s+\d+", lambda m: m.group(1) + b"%d %d" % (width, height), data, count=1)


SIZE_FIELDS = (
    (b"\x89PNG", lambda data, w, h: _with_png_crcs(_put(data, 16, struct.pack(">II", w & 0xFFFFFFFF, h & 0xFFFFFFFF)))),
    (b"GIF", _gif_sizes),
    (b"BM", lambda data, w, h: _put(data, 18, struct.pack("<ii", min(w, 2**31 - 1), min(h, 2**31 - 1)))),
    (b"\xff\xd8", _jpeg_sizes),
    (b"II*\x00", _tiff_sizes), (b"MM\x00*", _tiff_sizes),
    (b"RIFF", _webp_sizes),
    (b"P", _ppm_sizes),
)


def declared_size(rng, data, seeds):
    """The file's header made to declare another size: huge, empty, or of an extreme aspect ratio."""
    width, height = rng.choice(DECLARED_SIZES)
    for signature, edit in SIZE_FIELDS:
        if data.startswith(signature):
            return edit(data, width, height)
    return data


def exif_orientation(rng, data, seeds):
    """Another value in the EXIF orientation tag (0x0112, SHORT, count 1), either byte order."""
    value = rng.choice((0, 1, 3, 5, 8, 9, 0xFFFF))
    for entry, order in ((b"\x12\x01\x03\x00\x01\x00\x00\x00", "<H"), (b"\x01\x12\x00\x03\x00\x00\x00\x01", ">H")):
        at = data.find(entry)
        if at >= 0:
            return _put(data, at + len(entry), struct.pack(order, value))
    return data


STRUCTURED = (declared_size, declared_size, png_with_crcs, exif_orientation)


# --- the check ---------------------------------------------------------------------------------------
def make_check(workdir):
    """check(data): the file `data` as the one image of a class folder, read by ImageFolder.load."""
    path = os.path.join(workdir, "class", "input.jpg")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    skipping = f"ImageFolder: skipping {path}: unreadable image ("

    def check(content):
        with open(path, "wb") as f:
            f.write(content)
        images = data.ImageFolder(workdir, SIZE)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            image = images.load(0)
        ours = [str(w.message) for w in caught if str(w.message).startswith("ImageFolder")]
        if image is None:
            if len(ours) != 1 or not ours[0].startswith(skipping) or not ours[0].endswith(")") \
                    or len(ours[0]) <= len(skipping) + 1:
                raise Broken(f"a skipped file must give one warning naming it and why, got {ours}")
            return "skipped: " + file_mutations.label(ours[0][len(skipping):])
        if ours:
            raise Broken(f"an image that loads gave warnings {ours}")
        if image.shape != (SIZE, SIZE, 3) or image.dtype != np.uint8:
            raise Broken(f"load returned {image.dtype} {image.shape}, expected uint8 ({SIZE}, {SIZE}, 3)")
        return "loaded"
    return check


def main(argv=None):
    with tempfile.TemporaryDirectory(prefix="fuzz-images-") as workdir:
        return file_mutations.fuzz("image decoding", make_check(workdir), seeds(), STRUCTURED,
                                   lambda data: MEMORY_BOUND, CORPUS, argv)


if __name__ == "__main__":
    sys.exit(main())
