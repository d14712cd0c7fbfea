"""Which array module an array lives in, and moving arrays between the CPU and the GPU.

Layers never import CuPy: they ask `array_module(x)` and get NumPy or CuPy back. CuPy is imported
only when a CuPy array is seen or a GPU is asked for, so CPU users pay nothing for it.
"""
import importlib

import numpy as np

DEVICES = ("cpu", "cuda")


def gpu_unavailable_reason():
    """None when a GPU is usable through CuPy; otherwise a sentence saying why not."""
    try:
        cupy = importlib.import_module("cupy")
    except ImportError:
        return "CuPy is not installed (pip install -e '.[gpu]')"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CUDA driver missing, no device, ...
        return f"CuPy cannot reach a GPU: {error}"
    return None if count > 0 else "CuPy sees no CUDA device"


def is_gpu_array(x):
    return type(x).__module__.split(".")[0] == "cupy"


def array_module(x):
    """NumPy for NumPy arrays (and anything else), CuPy for CuPy arrays."""
    if is_gpu_array(x):
        return importlib.import_module("cupy")
    return np


def device_of(x):
    return "cuda" if is_gpu_array(x) else "cpu"


def check_device(device):
    if device not in DEVICES:
        raise ValueError(f"device: expected one of {DEVICES}, got {device!r}")
    if device == "cuda":
        reason = gpu_unavailable_reason()
        if reason is not None:
            raise RuntimeError(f"device 'cuda' is not available: {reason}")
    return device


def to_device(x, device):
    """Return `x` on `device` ("cpu" or "cuda"); the same object when it is already there."""
    check_device(device)
    if device == device_of(x):
        return x
    if device == "cpu":
        return x.get()
    return importlib.import_module("cupy").asarray(x)


def to_numpy(x):
    return to_device(x, "cpu") if is_gpu_array(x) else np.asarray(x)
