"""minigrad.data: transforms against hand-computed crops, flips and PCA statistics; ImageFolder on bad
folders and files; the loader's determinism; the synthetic set's determinism and difficulty."""
import os

import numpy as np
import pytest
from PIL import Image

from minigrad import data
from minigrad.data import synthetic


def numbered_images(count=2, side=6):
    """uint8 images whose pixel (n, y, x, c) holds a value that names its place: 100 n + 10 y + x (+ c)."""
    n, y, x, c = np.meshgrid(np.arange(count), np.arange(side), np.arange(side), np.arange(3), indexing="ij")
    return (100 * n + 10 * y + x + c).astype(np.uint8)


def test_crop_at_takes_each_image_at_its_own_offset():
    images = numbered_images(2, 6)
    crops = data.crop_at(images, np.array([1, 3]), np.array([2, 0]), 3)
    assert crops.shape == (2, 3, 3, 3)
    assert crops[0, 0, 0, 0] == 12 and crops[0, 2, 2, 0] == 34      # image 0 from row 1, column 2
    assert crops[1, 0, 0, 0] == 130 and crops[1, 2, 2, 0] == 152    # image 1 from row 3, column 0


def test_center_crop_and_non_square_resize():
    images = numbered_images(1, 7)
    assert data.center_crop(images, 3)[0, 0, 0, 0] == 22          # (7 - 3) // 2 = 2
    image = Image.new("RGB", (90, 30))                              # width 90, height 30
    assert data.resize_shorter_side(image, 12).size == (36, 12)
    with pytest.raises(ValueError, match="larger than the image"):
        data.center_crop(images, 8)


def test_random_crops_cover_every_position_uniformly():
    rng = np.random.default_rng(0)
    tops, lefts = data.random_crop_offsets(rng, 20000, 8, 5)
    assert tops.min() == 0 and tops.max() == 3 and lefts.max() == 3
    counts = np.bincount(tops * 4 + lefts, minlength=16) / 20000
    assert np.allclose(counts, 1 / 16, atol=0.01)


def test_ten_crop_geometry_and_mirrors():
    images = numbered_images(1, 6)
    mean = np.zeros((6, 6, 3), np.float32)
    crops = data.EvalTransform(4, mean, ten_crop=True)(images)            # (1, 10, 3, 4, 4)
    assert crops.shape == (1, 10, 3, 4, 4)
    corners = crops[0, :5, 0, 0, 0]                                        # top-left pixel, channel 0
    assert list(corners) == [0, 2, 20, 22, 11]                             # TL, TR, BL, BR, centre
    assert np.array_equal(crops[0, 5:], crops[0, :5, :, :, ::-1])          # the same five, mirrored
    centre = data.EvalTransform(4, mean)(images)
    assert np.array_equal(centre[0], crops[0, 4])


def test_train_transform_subtracts_the_mean_at_the_crop_and_flips_half():
    images = numbered_images(2, 6)[[0, 1] * 50]
    mean = numbered_images(1, 6)[0].astype(np.float32)        # the mean image equal to image 0
    x = data.TrainTransform(4, mean, pca=None, scale=0.5)(images, np.random.default_rng(1))
    assert x.shape == (100, 3, 4, 4) and x.dtype == np.float32
    # image n minus the mean is 100 n everywhere: any crop, flipped or not, of that is constant.
    assert np.all(x == 0.5 * np.array([0, 100] * 50)[:, None, None, None])
    # Flips: a horizontal ramp crop is increasing along the width unless it was mirrored.
    ramp = np.tile(np.arange(6, dtype=np.uint8)[None, :, None], (6, 1, 3))[None].repeat(2000, axis=0)
    crops = data.TrainTransform(4, np.zeros((6, 6, 3), np.float32))(ramp, np.random.default_rng(2))
    mirrored = crops[:, 0, 0, 0] > crops[:, 0, 0, 3]
    assert abs(mirrored.mean() - 0.5) < 0.04
    assert np.all(np.diff(crops[~mirrored, 0, 0], axis=1) == 1) and np.all(np.diff(crops[mirrored, 0, 0], axis=1) == -1)


def test_pca_color_noise_has_the_documented_statistics():
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.normal(size=(3, 3)))                   # orthonormal eigenvectors
    stds = np.array([40.0, 10.0, 2.0])
    pixels = (rng.normal(size=(200000, 3)) * stds) @ basis.T + 128
    pca = data.PCAColor.fit(pixels.reshape(1, -1, 1, 3), std=0.1, max_pixels=200000)
    assert np.allclose(np.sort(pca.eigenvalues), np.sort(stds ** 2), rtol=0.02)
    offsets = pca.offsets(np.random.default_rng(1), 100000)           # (n, 3)
    # Along eigenvector p_i, the offset is a_i sqrt(lambda_i): standard deviation 0.1 * std_i.
    along = offsets @ pca.eigenvectors
    assert np.allclose(along.std(axis=0), 0.1 * np.sqrt(pca.eigenvalues), rtol=0.02)
    assert np.allclose(along.mean(axis=0), 0, atol=0.05)
    # The same offset is added to every pixel of an image.
    image = np.full((1, 4, 4, 3), 100, np.uint8)
    x = data.TrainTransform(4, np.zeros((4, 4, 3), np.float32), pca, flip=False)(image, np.random.default_rng(3))
    assert np.allclose(x[0] - 100, (x[0] - 100)[:, :1, :1])
    assert not np.allclose(x[0], 100)


def write_folder(root, classes=("a", "b"), per_class=3, size=(10, 8)):
    for label, name in enumerate(classes):
        os.makedirs(root / name, exist_ok=True)
        for i in range(per_class):
            Image.new("RGB", size, (40 * label, 10 * i, 0)).save(root / name / f"{i}.png")


def test_image_folder_reads_sorted_classes_and_prepares_squares(tmp_path):
    write_folder(tmp_path, classes=("zebra", "ant"))
    folder = data.ImageFolder(str(tmp_path), 6).preload()
    assert folder.classes == ["ant", "zebra"]
    assert folder.images.shape == (6, 6, 6, 3) and list(folder.labels) == [0, 0, 0, 1, 1, 1]
    assert folder.images[0, 0, 0, 0] == 40 and folder.images[3, 0, 0, 0] == 0    # ant was drawn with red 40
    assert folder.images[1, 0, 0, 1] == 10


def test_corrupt_and_truncated_images_are_skipped_with_one_warning_each(tmp_path):
    write_folder(tmp_path)
    (tmp_path / "a" / "broken.jpg").write_bytes(b"not an image at all")
    good = (tmp_path / "b" / "0.png").read_bytes()
    (tmp_path / "b" / "truncated.png").write_bytes(good[:len(good) // 2])
    folder = data.ImageFolder(str(tmp_path), 6)
    with pytest.warns(UserWarning) as caught:
        folder.preload()
        folder.load(0)                       # a readable file: no new warning
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2
    assert any("broken.jpg" in m for m in messages) and any("truncated.png" in m for m in messages)
    assert len(folder) == 6 and len(folder.skipped) == 2


def test_streaming_batches_skip_unreadable_files_and_warn_once(tmp_path):
    write_folder(tmp_path)
    (tmp_path / "a" / "broken.jpg").write_bytes(b"garbage")
    folder = data.ImageFolder(str(tmp_path), 6)
    broken = [i for i, (path, _) in enumerate(folder.samples) if path.endswith("broken.jpg")]
    with pytest.warns(UserWarning, match="broken.jpg"):
        images, labels = folder.batch(np.arange(len(folder)))
    assert images.shape == (6, 6, 6, 3) and len(labels) == 6
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")                      # a second read does not warn again
        folder.batch(np.array(broken))


def test_bad_layouts_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="not a directory"):
        data.ImageFolder(str(tmp_path / "missing"), 8)
    with pytest.raises(ValueError, match="no class sub-folders"):
        data.ImageFolder(str(tmp_path), 8)
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="hold no image files"):
        data.ImageFolder(str(tmp_path), 8)
    write_folder(tmp_path, classes=("cats", "dogs"))
    with pytest.raises(ValueError, match="not among the expected classes"):
        data.ImageFolder(str(tmp_path), 8, classes=["cats"])


def test_symbolic_links_are_followed_everywhere_and_a_loop_is_read_once(tmp_path):
    """One rule: a link is followed, whether it is a class folder, a folder inside a class or a file, and
    wherever it points; a folder reached again through a link is read once and warned about."""
    elsewhere = tmp_path / "elsewhere"
    write_folder(elsewhere, classes=("dogs", "more cats"), per_class=2)
    root = tmp_path / "root"
    write_folder(root, classes=("cats",), per_class=2)
    (root / "dogs").symlink_to(elsewhere / "dogs")                      # a class folder outside the root
    (root / "cats" / "more").symlink_to(elsewhere / "more cats")       # a folder inside a class
    (root / "cats" / "linked.png").symlink_to(elsewhere / "dogs" / "0.png")
    (root / "cats" / "loop").symlink_to(root / "cats")                 # a folder above it
    (root / "cats" / "same again").symlink_to(elsewhere / "more cats")   # a second link to one folder
    with pytest.warns(UserWarning) as caught:
        folder = data.ImageFolder(str(root), 6)
    assert folder.classes == ["cats", "dogs"]
    cats = sorted(os.path.relpath(path, root / "cats") for path, label in folder.samples if label == 0)
    assert cats == ["0.png", "1.png", "linked.png", "more/0.png", "more/1.png"]
    assert len(folder.samples) == 7 and not folder.skipped
    warned = sorted(str(w.message) for w in caught)
    assert len(warned) == 2 and all("a link to a folder that is read under another path already" in m for m in warned)
    assert f"not reading {root / 'cats' / 'loop'}:" in warned[0]
    assert f"not reading {root / 'cats' / 'same again'}:" in warned[1]


def test_loader_is_deterministic_per_epoch_and_independent_of_workers(tmp_path):
    write_folder(tmp_path, per_class=10, size=(12, 12))
    folder = data.ImageFolder(str(tmp_path), 10).preload()
    mean = data.mean_image(folder.images)
    transform = data.TrainTransform(8, mean, data.PCAColor.fit(folder.images))

    def epoch(workers, number):
        loader = data.DataLoader(folder, 6, transform, shuffle=True, seed=3, workers=workers)
        return list(loader.epoch(number))

    threaded, inline = epoch(2, 5), epoch(0, 5)
    assert len(threaded) == 4
    for (x1, y1), (x2, y2) in zip(threaded, inline):
        assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert not np.array_equal(epoch(0, 6)[0][0], inline[0][0])            # another epoch, other batches
    assert sorted(np.concatenate([y for _, y in inline])) == sorted(folder.labels)


def test_synthetic_set_is_deterministic_and_complete(tmp_path):
    root = str(tmp_path / "syn")
    synthetic.generate(root, train_per_class=3, val_per_class=2, size=32, workers=1)
    train = data.ImageFolder(os.path.join(root, "train"), 32)
    assert train.classes == sorted(synthetic.CLASSES) and len(train) == 30
    first = (tmp_path / "syn" / "train" / "star" / "00001.jpg").read_bytes()
    os.remove(os.path.join(root, synthetic.MARKER))                          # as if interrupted
    synthetic.generate(root, train_per_class=3, val_per_class=2, size=32, workers=2)
    assert (tmp_path / "syn" / "train" / "star" / "00001.jpg").read_bytes() == first
    assert len(data.ImageFolder(os.path.join(root, "val"), 32)) == 20


def test_generation_never_touches_a_folder_minigrad_did_not_write(tmp_path):
    photos = tmp_path / "photos"                       # someone's images, laid out as the synthetic set is
    write_folder(photos / "train")
    write_folder(photos / "val")
    (photos / "notes.txt").write_text("my labels")
    before = {path: path.read_bytes() for path in photos.rglob("*") if path.is_file()}
    with pytest.raises(ValueError, match=f"{photos} is not empty .* was not generated by minigrad"):
        synthetic.generate(str(photos), train_per_class=2, val_per_class=1, size=16, workers=1)
    assert {path: path.read_bytes() for path in photos.rglob("*") if path.is_file()} == before
    (photos / synthetic.OWNER).write_text("not the marker minigrad writes")    # a look-alike is not enough
    with pytest.raises(ValueError, match="was not generated by minigrad"):
        synthetic.generate(str(photos), train_per_class=2, val_per_class=1, size=16, workers=1)
    assert all(path.read_bytes() == content for path, content in before.items())
    # An empty folder and an absent one are claimed; a claimed one is regenerated with other parameters.
    (tmp_path / "empty").mkdir()
    for root in (tmp_path / "empty", tmp_path / "absent" / "deeper"):
        synthetic.generate(str(root), train_per_class=2, val_per_class=1, size=16, workers=1)
        assert (root / synthetic.OWNER).is_file() and len(data.ImageFolder(str(root / "train"), 16)) == 20
    synthetic.generate(str(tmp_path / "empty"), train_per_class=3, val_per_class=1, size=16, workers=1)
    assert len(data.ImageFolder(str(tmp_path / "empty" / "train"), 16)) == 30


def test_softmax_regression_on_raw_pixels_stays_far_below_50_percent(tmp_path):
    # A reduced set (100 training images per class instead of 600, 32 x 32 instead of 64 x 64): fewer
    # inputs per parameter makes a linear model's job easier, not harder, so this is a conservative check.
    root = str(tmp_path / "syn")
    synthetic.generate(root, train_per_class=100, val_per_class=30, size=32)
    assert synthetic.softmax_regression_accuracy(root, epochs=15) < 0.5
