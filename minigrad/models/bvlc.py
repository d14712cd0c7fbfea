"""The trained AlexNet: BVLC's Caffe model (ILSVRC-2012), as the ONNX Model Zoo publishes it
(bvlcalexnet-12.onnx), run in minigrad with its own preprocessing. Used by predict.py and evaluate.py
with --onnx FILE.

What the model expects (Caffe's convention: BVLC/caffe models/bvlc_alexnet, whose graph went
Caffe -> Caffe2 -> ONNX for the zoo; the zoo's README gives the input as data_0: float[1, 3, 224, 224]):
- channels in BGR order (Caffe reads images with OpenCV), values 0..255, not scaled to 0..1;
- minus the mean pixel of the ILSVRC-2012 training images, (B, G, R) = (104, 117, 123) (Caffe's
  ilsvrc_2012_mean.npy averaged over its 256 x 256 pixels);
- the shorter side rescaled to 256 and the centre 224 x 224 cropped (Caffe's own deploy crops 227; the
  zoo's graph is fixed at 224, where its pool5 rounds up by the pads (0, 0, 1, 1) to keep 6 x 6).
Output: 1000 softmax probabilities in the synset order of minigrad.imagenet.class_names(); load()
drops the Softmax, so the model gives the logits. Published accuracy, ILSVRC-2012 validation, centre
crop: top-1 57.1%, top-5 80.2% (BVLC); 54.80% / 78.23% for bvlcalexnet-12.onnx as the zoo measures
it with its preprocessing.
"""
import numpy as np

from .. import data, imagenet

RESIZE, CROP = 256, 224
MEAN_BGR = (104.0, 117.0, 123.0)
ZOO_URL = "https://github.com/onnx/models/tree/main/validated/vision/classification/alexnet"


def load(path):
    """The zoo's model (or any 1000-class ImageNet graph with this preprocessing) as logits."""
    from .. import onnx as mg_onnx

    model = mg_onnx.load(path)
    fc = [layer for _, layer in model.named_layers() if hasattr(layer, "out_features")]     # (a chain or a graph)
    if not fc or fc[-1].out_features != imagenet.NUM_CLASSES:
        raise ValueError(f"--onnx {path}: expected an ImageNet classifier with {imagenet.NUM_CLASSES} outputs, "
                         f"got {fc[-1].out_features if fc else 'no Gemm layer'}")
    return model


class Preprocess:
    """uint8 RGB images (N, RESIZE, RESIZE, 3), as data.load_image and ImageFolder give them ->
    (N, 3, CROP, CROP) float32 BGR minus the mean pixel, or (N, 10, 3, CROP, CROP) with ten_crop."""

    def __init__(self, ten_crop=False):
        mean_rgb = np.broadcast_to(np.array(MEAN_BGR[::-1], np.float32), (RESIZE, RESIZE, 3))
        self.crops = data.EvalTransform(CROP, mean_rgb, 1.0, ten_crop=ten_crop)

    def __call__(self, images, rng=None):
        rgb = self.crops(images)
        return np.ascontiguousarray(rgb[..., ::-1, :, :])        # the channel axis: RGB -> BGR


def folder_classes(folders):
    """The ImageNet class names as an ImageFolder's `classes`, spelt as the folders are (with spaces or
    underscores), so that each folder's label is its ImageNet index."""
    names = imagenet.class_names()
    for spelling in (names, [name.replace(" ", "_") for name in names]):
        if set(folders) <= set(spelling):
            return spelling
    unknown = sorted(f for f in folders if f.replace("_", " ") not in names)[:5] or folders[:5]
    raise ValueError(f"--onnx: the class folders must be ImageNet class names (minigrad/imagenet_classes.txt, "
                     f"with spaces or underscores, one spelling throughout), got {unknown}")
