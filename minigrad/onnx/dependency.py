"""The onnx package (the `onnx` extra), imported only when load or export runs: `import minigrad`,
and `import minigrad.onnx` itself, never import it."""
import re

# The first onnx release that refuses external data behind a symbolic link: onnx.load in 1.14.1 to 1.20.1
# follows a link in the model's folder to any file, which then becomes the model's weights; 1.21.0 refuses
# both a linked file and a linked folder (each release tested with tests/test_onnx_hostile.py's model).
OLDEST_ONNX = (1, 21)


def onnx_package():
    """The onnx module, with its helper, numpy_helper and reference submodules importable; a clear
    message where the extra is not installed, or is older than OLDEST_ONNX."""
    try:
        import onnx
        import onnx.external_data_helper
        import onnx.helper
        import onnx.numpy_helper
    except ImportError:
        raise RuntimeError("minigrad.onnx needs the onnx package: pip install 'minigrad[onnx]' "
                           "(or pip install onnx)") from None
    if tuple(int(part) for part in re.findall(r"\d+", onnx.__version__)[:2]) < OLDEST_ONNX:
        raise RuntimeError(f"minigrad.onnx needs onnx {'.'.join(map(str, OLDEST_ONNX))} or later, found "
                           f"{onnx.__version__}, which reads a model's external data through symbolic links (any "
                           f"file could become its weights): pip install -U 'minigrad[onnx]'")
    return onnx
