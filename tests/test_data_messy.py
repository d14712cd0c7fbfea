"""Decoding what real folders hold (minigrad/data/folder.py), and a training run through a messy folder:
every file either trains or is skipped with one warning naming it, and the run goes on."""
import io
import json
import struct
import sys
import tracemalloc
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from minigrad import checkpoint, data

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "alexnet"))
import train  # noqa: E402


def grey_png(path, width, height, rows=None):
    """A black 8-bit grey PNG of width x height pixels, written by hand (zlib makes its rows a few hundred
    bytes), or only its first `rows` rows of data."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\0" * (width + 1) * (height if rows is None else rows))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))


def bomb_png(path, side=100_000):
    """A few hundred bytes that claim side x side pixels: PIL refuses it before decoding."""
    grey_png(path, side, side, rows=0)


def half_white(width=40, height=20):
    """White on the left half, black on the right."""
    image = Image.new("RGB", (width, height))
    image.paste((255, 255, 255), (0, 0, width // 2, height))
    return image


def test_modes_and_orientation_are_brought_to_upright_8_bit_rgb(tmp_path):
    Image.new("CMYK", (20, 20), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")          # pure red
    Image.new("L", (20, 20), 200).save(tmp_path / "grey.jpg")
    Image.new("RGBA", (20, 20), (255, 0, 0, 0)).save(tmp_path / "clear.png")           # invisible red
    ramp = np.tile(np.linspace(0, 65535, 20).astype(np.uint16), (20, 1))
    Image.fromarray(ramp).save(tmp_path / "deep.png")                                   # 16-bit grey
    palette = Image.new("P", (20, 20), 3)
    palette.putpalette([0, 0, 0] * 3 + [0, 0, 255] + [0, 0, 0] * 252)
    palette.save(tmp_path / "palette.png")
    for name in ("bmp", "tiff", "webp", "gif"):
        Image.new("RGB", (20, 20), (0, 200, 0)).save(tmp_path / f"green.{name}")
    exif = Image.Exif()
    exif[0x0112] = 6                     # "rotate 90 degrees clockwise to display"
    half_white().save(tmp_path / "phone.jpg", exif=exif, quality=95)

    def pixel(name, size=10):
        image = data.load_image(str(tmp_path / name), size)
        assert image.shape == (size, size, 3) and image.dtype == np.uint8, name
        return image

    Image.new("RGB", (10, 10), (9, 8, 7)).save(tmp_path / "exact.png")        # already the size: no resize
    assert np.array_equal(pixel("exact.png")[5, 5], (9, 8, 7))
    assert np.allclose(pixel("cmyk.jpg")[5, 5], (255, 0, 0), atol=3)
    assert np.allclose(pixel("grey.jpg")[5, 5], 200, atol=2)
    assert np.array_equal(pixel("clear.png")[5, 5], (255, 255, 255))                   # over white
    deep = pixel("deep.png", 20)[0, :, 0].astype(int)
    assert deep[0] <= 2 and deep[-1] >= 250 and np.all(np.diff(deep) >= 0)              # not clipped at 255
    assert np.array_equal(pixel("palette.png")[5, 5], (0, 0, 255))
    for name in ("bmp", "tiff", "webp", "gif"):
        assert np.allclose(pixel(f"green.{name}")[5, 5], (0, 200, 0), atol=4), name
    upright = pixel("phone.jpg", 20).mean(axis=(1, 2))          # 40 x 20 turned to 20 x 40: top is white
    assert upright[:8].mean() > 200 and upright[-8:].mean() < 50
    bomb_png(tmp_path / "bomb.png")
    with pytest.raises(Exception, match="decompression bomb|exceeds limit"):
        data.load_image(str(tmp_path / "bomb.png"), 10)


def test_extreme_sides_are_skipped_before_rescaling_makes_them_huge(tmp_path):
    """100,000 x 1 pixels is a PNG of a few hundred bytes within the pixel limit, which rescaling to a
    shorter side of 73 would turn into 7.3 million x 73 pixels (2 GB and more: a MemoryError that ended the
    run). Such files are skipped with one warning each, as every unreadable file is."""
    root = tmp_path / "folder"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        Image.new("RGB", (30, 20), (200, 0, 0)).save(root / name / "fine.png")
    grey_png(root / "a" / "wide.png", 100_000, 1)
    grey_png(root / "b" / "tall.png", 1, 100_000)
    assert (root / "a" / "wide.png").stat().st_size < 400
    folder = data.ImageFolder(str(root), 73)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folder.preload(workers=1)
    skips = sorted(str(w.message) for w in caught)
    assert len(skips) == 2 and len(folder) == 2, skips
    assert "wide.png: unreadable image (100000 x 1 pixels: its sides' ratio 100,000:1 is more than 32:1" in skips[0]
    assert "tall.png: unreadable image (1 x 100000 pixels" in skips[1]
    grey_png(tmp_path / "panorama.png", 3000, 200)                 # 15:1, a long panorama: it trains
    assert data.load_image(str(tmp_path / "panorama.png"), 73).shape == (73, 73, 3)
    with pytest.raises(ValueError, match="3000 x 200 pixels rescaled to a shorter side of 3000 would be "
                                         "135,000,000 pixels, more than 89,478,485"):
        data.load_image(str(tmp_path / "panorama.png"), 3000)


def test_a_chunk_that_lies_about_its_length_is_not_read_at_its_word(tmp_path):
    """A 51-byte PNG whose pixel chunk claims 4 GB: PIL reads the rest of a chunk in one read() of its
    declared length, which allocated 4 GB (a MemoryError wherever memory is bounded; found by
    fuzz/image_decoding.py). load_image's file never hands out more than it holds."""
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    (tmp_path / "lying.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))
        + struct.pack(">I", 0xFFFFFF00) + b"IDAT" + zlib.compress(b"\0\x80"))           # and nothing more
    tracemalloc.start()
    image = data.load_image(str(tmp_path / "lying.png"), 8)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert image.shape == (8, 8, 3) and peak < 2**24


def test_whatever_pil_raises_on_a_malformed_file_is_one_unreadable_error(tmp_path):
    """A TIFF whose strip offsets are written as fractions makes PIL raise TypeError (found by
    fuzz/image_decoding.py): the file is skipped like any unreadable one, with PIL's reason."""
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(buffer, format="TIFF")
    tiff = bytearray(buffer.getvalue())
    directory = struct.unpack("<I", tiff[4:8])[0]
    for at in range(directory + 2, directory + 2 + 12 * struct.unpack("<H", tiff[directory:directory + 2])[0], 12):
        if struct.unpack("<H", tiff[at:at + 2])[0] == 273:           # StripOffsets: type RATIONAL (5)
            tiff[at + 2:at + 4] = struct.pack("<H", 5)
    (tmp_path / "fraction.tif").write_bytes(bytes(tiff))
    with pytest.raises(ValueError, match=r"PIL cannot decode it \(TypeError: 'IFDRational' object"):
        data.load_image(str(tmp_path / "fraction.tif"), 8)


def test_a_file_is_decoded_only_as_a_documented_format_whatever_it_holds(tmp_path):
    Image.new("RGB", (20, 20)).save(tmp_path / "image.tga", format="TGA")
    Image.new("RGB", (20, 20)).save(tmp_path / "image.pcx", format="PCX")
    for name in ("image.tga", "image.pcx"):
        (tmp_path / name).rename(tmp_path / f"{name}.jpg")
        with pytest.raises(OSError, match="cannot identify image file"):
            data.load_image(str(tmp_path / f"{name}.jpg"), 10)


def messy_folder(root):
    """Every kind of file a real photo folder holds. Returns the names that must be skipped."""
    rng = np.random.default_rng(0)

    def photo(path, mode="RGB", **options):
        path.parent.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(rng.integers(0, 255, (24, 30, 3)).astype(np.uint8)).convert(mode)
        image.save(path, **options)

    cats, birds, empty = root / "train" / "cat photos", root / "train" / "ñandú", root / "train" / "empty class"
    photo(cats / "rgb.jpg")
    photo(cats / "grey.jpg", "L")
    photo(cats / "print.jpg", "CMYK")
    exif = Image.Exif()
    exif[0x0112] = 8
    photo(cats / "phone.jpg", exif=exif)
    photo(cats / "2019" / "summer" / "nested.png")                    # a sub-folder belongs to the class
    photo(cats / ".cache" / "thumbnail.jpg")                          # hidden folder: not data
    (cats / ".cache" / "garbage.jpg").write_bytes(b"\0" * 10)
    (cats / ".DS_Store").write_bytes(b"\0\0\0\1Bud1" * 20)
    (cats / "._rgb.jpg").write_bytes(b"\0\5\26\7 AppleDouble")
    (cats / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" * 30)
    (cats / "README.txt").write_text("photos of our cat")
    good = (cats / "rgb.jpg").read_bytes()
    (cats / "truncated.jpg").write_bytes(good[:len(good) // 3])
    (cats / "zero.jpg").write_bytes(b"")
    (cats / "notes.jpg").write_text("this is text, not a JPEG")
    photo(birds / "alpha.png", "RGBA")
    photo(birds / "palette.png", "P", transparency=0)
    photo(birds / "scan16.png", "I;16")
    photo(birds / "anim.gif", "P")
    photo(birds / "old.bmp")
    photo(birds / "scan.tiff")
    photo(birds / "web.webp")
    photo(birds / "big.jpg", quality=60)
    bomb_png(birds / "bomb.png")
    photo(root / "train" / "__MACOSX" / "cat photos" / "._rgb.jpg")     # a Mac's zip: not a class
    photo(root / "train" / ".ipynb_checkpoints" / "x.jpg")              # hidden: not a class
    empty.mkdir(parents=True)
    (empty / "broken.jpg").write_bytes(b"GIF89a but not really")
    for name in ("cat photos", "ñandú"):
        for i in range(3):
            photo(root / "val" / name / f"{i}.png")
    return ["Thumbs.db", "README.txt", "truncated.jpg", "zero.jpg", "notes.jpg", "bomb.png", "broken.jpg"]


def test_a_messy_folder_trains_and_skips_each_bad_file_with_one_warning(tmp_path):
    expected = messy_folder(tmp_path / "messy")
    out = tmp_path / "run"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")            # so that a repeated warning would show as two
        status = train.main(["--data", str(tmp_path / "messy"), "--out", str(out), "--epochs", "2",
                             "--batch-size", "4", "--workers", "1"])
    assert status == 0
    messages = [str(w.message) for w in caught if "ImageFolder" in str(w.message)]
    skips = [m for m in messages if "skipping" in m]
    for name in expected:
        assert sum(f"{name}:" in m for m in skips) == 1, (name, skips)
    assert [m for m in skips if "zero.jpg: unreadable image (the file is empty (0 bytes))" in m]
    assert len(skips) == len(expected), skips
    assert not [m for m in messages if ".cache" in m or ".DS_Store" in m or "._rgb" in m], messages
    assert [m for m in messages if "'empty class'" in m and "no readable image" in m]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["skipped"] == len(expected)
    assert sorted(Path(p).name for p in metrics["skipped_files"]) == sorted(expected)
    assert [row["epoch"] for row in metrics["epochs"]] == [1, 2]
    assert metrics["classes"] == ["cat photos", "empty class", "ñandú"]
    # 5 + 8 images train (the nested one included), in 3 batches of 4 per epoch.
    meta = checkpoint.load(out).record
    assert meta["config"]["plan"]["steps_per_epoch"] == 3
