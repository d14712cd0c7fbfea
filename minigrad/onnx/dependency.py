"""The onnx package (the `onnx` extra), imported only when load or export runs: `import minigrad`,
and `import minigrad.onnx` itself, never import it."""


def onnx_package():
    """The onnx module, with its helper, numpy_helper and reference submodules importable; a clear
    message where the extra is not installed."""
    try:
        import onnx
        import onnx.helper
        import onnx.numpy_helper
    except ImportError:
        raise RuntimeError("minigrad.onnx needs the onnx package: pip install 'minigrad[onnx]' "
                           "(or pip install onnx)") from None
    return onnx
