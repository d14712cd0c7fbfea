"""The GPU backend (ops/gpu.py and kernels/*.cu) against the CPU.

The kernel tests run ops/gpu.py on two devices:
- "cuda": CuPy arrays on a GPU, the real thing; skipped, with backend.gpu_unavailable_reason(), where
  there is none.
- "emulated": NumPy arrays, each launch run by tests/cuda_emulator.py (the same .cu files compiled for
  the CPU by g++, given ops/gpu.py's own grid, block and typed arguments). It checks the kernels' index
  arithmetic and the host code on any machine; it is no substitute for a GPU.
Each kernel is compared with its CPU twin (minigrad.ops on NumPy arrays) on shapes drawn by hypothesis:
odd and non-square sizes, kernels, strides and paddings, batch 1, float32 and float64, inputs that are
not contiguous. Every output is poisoned (NaN, or -1 for argmax) before the launch, so an element a
kernel forgets to write fails the comparison.

An AlexNet training step also runs with every op sent to ops/gpu.py on the emulated kernels (the
wiring between layers and kernels). The layer, AlexNet and checkpoint tests on CuPy arrays need a GPU.
The launch-geometry, kernel-lookup and benchmark-helper tests need neither.
"""
import importlib.util
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import minigrad as mg
from minigrad import backend, ops
from minigrad.ops import gpu

import cuda_emulator
from minigrad.models import alexnet

GPU_REASON = backend.gpu_unavailable_reason()
needs_gpu = pytest.mark.skipif(GPU_REASON is not None, reason=f"no GPU: {GPU_REASON}")
# float32 kernels against float32 NumPy: the sums run in another order, nothing more.
TOLERANCE = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


class Device:
    """How a test puts arrays on the device under test and takes them back."""

    def __init__(self, name, xp):
        self.name, self.xp = name, xp

    def put(self, a):
        return self.xp.asarray(a)

    def get(self, a):
        return backend.to_numpy(a)


def poisoned_empty(xp):
    def empty(shape, dtype):
        fill = np.nan if np.dtype(dtype).kind == "f" else -1
        return xp.full(shape, fill, dtype=dtype)
    return empty


@pytest.fixture(scope="module", params=["emulated", "cuda"])
def device(request, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "cuda":
            if GPU_REASON is not None:
                pytest.skip(f"no GPU: {GPU_REASON}")
            import cupy
            patch.setattr(gpu, "empty", poisoned_empty(cupy))
            yield Device("cuda", cupy)
        else:
            if cuda_emulator.unavailable_reason() is not None:
                pytest.skip(cuda_emulator.unavailable_reason())
            emulator = cuda_emulator.Emulator(tmp_path_factory.mktemp("emulator"))
            patch.setattr(gpu, "_run", emulator.run)
            patch.setattr(gpu, "_contiguous", lambda *arrays: [np.ascontiguousarray(a) for a in arrays])
            patch.setattr(gpu, "empty", poisoned_empty(np))
            yield Device("emulated", np)


def scattered(device, a, how):
    """`a` on the device as a non-contiguous view: a transpose or a strided slice of a larger array."""
    if how == "transposed":
        return device.put(np.ascontiguousarray(a.swapaxes(-1, -2))).swapaxes(-1, -2)
    if how == "strided":
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        big[..., ::2] = a
        return device.put(big)[..., ::2]
    return device.put(a)


def assert_close(actual, expected, dtype):
    np.testing.assert_allclose(actual, expected, **TOLERANCE[dtype])


LAYOUTS = st.sampled_from(["contiguous", "transposed", "strided"])
DTYPES = st.sampled_from([np.float32, np.float64])
KERNEL_SETTINGS = settings(max_examples=40, deadline=None,
                           suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def windows(draw, pooling=False):
    """(x shape, kernel_size, stride, padding) with at least one output position."""
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    H, W = draw(st.integers(1, 11)), draw(st.integers(1, 11))
    kernel = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    limit = [k // 2 if pooling else 2 for k in kernel]     # a pooling window is at most half padding
    padding = (draw(st.integers(0, limit[0])), draw(st.integers(0, limit[1])))
    assume(H + 2 * padding[0] >= kernel[0] and W + 2 * padding[1] >= kernel[1])
    return (N, C, H, W), kernel, stride, padding


# --- each kernel against its CPU twin ---------------------------------------------------------------
@KERNEL_SETTINGS
@given(data=st.data(), case=windows(), dtype=DTYPES, layout=LAYOUTS)
def test_im2col_and_col2im_match_the_cpu(device, data, case, dtype, layout):
    shape, kernel, stride, padding = case
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal(shape).astype(dtype)
    cols = ops.im2col(x, kernel, stride, padding)
    np.testing.assert_array_equal(device.get(gpu.im2col(scattered(device, x, layout), kernel, stride, padding)), cols)
    dcols = rng.standard_normal(cols.shape).astype(dtype)
    expected = ops.col2im(dcols, shape, kernel, stride, padding)
    actual = gpu.col2im(scattered(device, dcols, layout), shape, kernel, stride, padding)
    assert_close(device.get(actual), expected, dtype)


@KERNEL_SETTINGS
@given(data=st.data(), case=windows(pooling=True), dtype=DTYPES, layout=LAYOUTS,
       ties=st.booleans())
def test_maxpool_forward_and_backward_match_the_cpu(device, data, case, dtype, layout, ties):
    shape, kernel, stride, padding = case
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    # With ties (few distinct values, zeros as after a ReLU) the first maximum must win, as on the CPU;
    # a window of -inf alone (in part padding) keeps its first position inside the input.
    x = (rng.choice(np.array([-np.inf, 0, 1, 2]), shape) if ties else rng.standard_normal(shape)).astype(dtype)
    y, argmax = ops.maxpool_forward(x, kernel, stride, padding)
    y_gpu, argmax_gpu = gpu.maxpool_forward(scattered(device, x, layout), kernel, stride, padding)
    np.testing.assert_array_equal(device.get(y_gpu), y)
    np.testing.assert_array_equal(device.get(argmax_gpu), argmax)
    assert argmax_gpu.dtype == np.int32
    dy = rng.standard_normal(y.shape).astype(dtype)
    expected = ops.maxpool_backward(dy, argmax, shape, kernel, stride, padding)
    actual = gpu.maxpool_backward(scattered(device, dy, layout), device.put(argmax), shape, kernel, stride, padding)
    assert_close(device.get(actual), expected, dtype)


@KERNEL_SETTINGS
@given(data=st.data(), case=windows(pooling=True), dtype=DTYPES, share=st.floats(0.05, 0.6))
def test_maxpool_nan_windows_match_the_cpu(device, data, case, dtype, share):
    """A window holding NaN gives NaN and routes its gradient to its last NaN, as on the CPU."""
    shape, kernel, stride, padding = case
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal(shape).astype(dtype)
    x[rng.random(shape) < share] = np.nan
    y, argmax = ops.maxpool_forward(x, kernel, stride, padding)
    y_gpu, argmax_gpu = gpu.maxpool_forward(device.put(x), kernel, stride, padding)
    np.testing.assert_array_equal(device.get(y_gpu), y)
    np.testing.assert_array_equal(device.get(argmax_gpu), argmax)
    dy = rng.standard_normal(y.shape).astype(dtype)
    expected = ops.maxpool_backward(dy, argmax, shape, kernel, stride, padding)
    assert_close(device.get(gpu.maxpool_backward(device.put(dy), device.put(argmax), shape, kernel, stride, padding)),
                 expected, dtype)


@KERNEL_SETTINGS
@given(data=st.data(), case=windows(pooling=True), dtype=DTYPES, ceil_mode=st.booleans())
def test_maxpool_asymmetric_pads_and_ceil_mode_match_the_cpu(device, data, case, dtype, ceil_mode):
    """The ONNX/Caffe forms: pads (top, left, bottom, right), output sizes rounded up."""
    shape, kernel, stride, _ = case
    pads = tuple(data.draw(st.integers(0, k // 2)) for k in kernel * 2)
    assume(shape[2] + pads[0] + pads[2] >= kernel[0] and shape[3] + pads[1] + pads[3] >= kernel[1])
    x = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).standard_normal(shape).astype(dtype)
    y, argmax = ops.maxpool_forward(x, kernel, stride, pads, ceil_mode)
    y_gpu, argmax_gpu = gpu.maxpool_forward(device.put(x), kernel, stride, pads, ceil_mode)
    np.testing.assert_array_equal(device.get(y_gpu), y)
    np.testing.assert_array_equal(device.get(argmax_gpu), argmax)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    expected = ops.maxpool_backward(dy, argmax, shape, kernel, stride, pads, ceil_mode)
    actual = gpu.maxpool_backward(device.put(dy), device.put(argmax), shape, kernel, stride, pads, ceil_mode)
    assert_close(device.get(actual), expected, dtype)


@KERNEL_SETTINGS
@given(data=st.data(), shape=st.tuples(st.integers(1, 3), st.integers(1, 12), st.integers(1, 6), st.integers(1, 7)),
       size=st.sampled_from([1, 3, 5, 7]), alpha=st.sampled_from([1e-4, 0.3, 1.0]),
       beta=st.sampled_from([0.75, 0.5]), k=st.sampled_from([2.0, 1.0]), groups=st.sampled_from([1, 2, 3]),
       dtype=DTYPES, layout=LAYOUTS)
def test_lrn_forward_and_backward_match_the_cpu(device, data, shape, size, alpha, beta, k, groups, dtype, layout):
    # alpha near 1 too: at the paper's 1e-4 a wrong channel window hides below the tolerance.
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    shape = (shape[0], groups * -(-shape[1] // groups)) + shape[2:]      # channels a multiple of groups
    a = rng.standard_normal(shape).astype(dtype)
    b, scale = ops.lrn_forward(a, size, alpha, beta, k, groups)
    b_gpu, scale_gpu = gpu.lrn_forward(scattered(device, a, layout), size, alpha, beta, k, groups)
    assert_close(device.get(scale_gpu), scale, dtype)
    assert_close(device.get(b_gpu), b, dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    expected = ops.lrn_backward(dy, a, b, scale, size, alpha, beta, groups)
    actual = gpu.lrn_backward(scattered(device, dy, layout), device.put(a), device.put(b), device.put(scale),
                              size, alpha, beta, groups)
    assert_close(device.get(actual), expected, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_sgd_update_matches_the_cpu(device, dtype):
    rng = np.random.default_rng(0)
    w, v, g = (rng.standard_normal((37, 29)).astype(dtype) for _ in range(3))
    lr, momentum, weight_decay = 0.1, 0.9, 0.5      # large enough that every term shows above the tolerance
    w_gpu, v_gpu = device.put(w.copy()), device.put(v.copy())
    gpu.sgd_update(w_gpu, v_gpu, scattered(device, g, "transposed"), lr, momentum, weight_decay)
    ops.sgd_update(w, v, g, lr, momentum, weight_decay)
    assert_close(device.get(v_gpu), v, dtype)
    assert_close(device.get(w_gpu), w, dtype)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), M=st.integers(1, 140), N=st.integers(1, 140), K=st.integers(1, 90),
       batches=st.sampled_from([(None, None), (2, 2), (None, 3), (3, None), (1, 2)]), layout=LAYOUTS)
def test_custom_sgemm_matches_the_vendor_gemm(device, data, M, N, K, batches, layout):
    """Against cuBLAS (cupy.matmul) on a GPU, against NumPy's BLAS when emulated."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    a_shape = (M, K) if batches[0] is None else (batches[0], M, K)
    b_shape = (K, N) if batches[1] is None else (batches[1], K, N)
    a = scattered(device, rng.standard_normal(a_shape).astype(np.float32), layout)
    b = device.put(rng.standard_normal(b_shape).astype(np.float32))
    c = device.get(gpu.sgemm(a, b))
    expected = device.get(device.xp.matmul(a, b))
    assert c.shape == expected.shape
    np.testing.assert_allclose(c, expected, rtol=1e-4, atol=1e-4 * np.sqrt(K))


def test_the_flag_sends_matmul_to_the_custom_sgemm(device, monkeypatch):
    calls = []
    monkeypatch.setattr(gpu, "sgemm", lambda a, b: calls.append((a, b)) or "custom")
    gpu.use_custom_sgemm(True)
    try:
        a = device.put(np.ones((3, 4), np.float32))
        assert gpu.matmul(a, a.T) == "custom" and len(calls) == 1
        if device.name == "cuda":     # off again, cuBLAS (and float64 never takes the custom kernel)
            gpu.use_custom_sgemm(False)
            assert gpu.matmul(a, a.T).shape == (3, 3) and len(calls) == 1
    finally:
        gpu.use_custom_sgemm(False)


@needs_gpu
def test_tf32_is_opt_in():
    linalg = importlib.import_module("cupy._core._routines_linalg")
    if int(importlib.import_module("cupy").cuda.Device().compute_capability) < 80:
        pytest.skip("TF32 needs compute capability 8.0 or later")
    if os.environ.get("CUPY_TF32", "0") == "0":
        assert linalg.get_compute_type(np.float32) != linalg.COMPUTE_TYPE_TF32
    gpu.use_tf32(True)
    try:
        assert linalg.get_compute_type(np.float32) == linalg.COMPUTE_TYPE_TF32
    finally:
        gpu.use_tf32(False)
    assert linalg.get_compute_type(np.float32) == linalg.COMPUTE_TYPE_DEFAULT


# --- launch geometry and arguments, without a GPU ------------------------------------------------------
def test_launches_cover_every_element_and_type_every_scalar():
    shape, kernel, stride, padding = (2, 3, 9, 7), (3, 2), (2, 1), (1, 0)
    OH, OW = 5, 6
    cases = [
        (gpu.im2col_launch(shape, np.float32, kernel, stride, padding), 3 * 2 * OH * OW, "im2col<float>"),
        (gpu.col2im_launch(shape, np.float64, kernel, stride, padding), 2 * 3 * 9 * 7, "col2im<double>"),
        (gpu.maxpool_forward_launch(shape, np.float32, kernel, stride, padding), 2 * 3 * OH * OW,
         "maxpool_forward<float>"),
        (gpu.maxpool_backward_launch(shape, np.float32, kernel, stride, padding), 2 * 3 * 9 * 7,
         "maxpool_backward<float>"),
        (gpu.lrn_forward_launch(shape, np.float64, 5, 1e-4, 0.75, 2.0), 2 * 9 * 7, "lrn_forward<double>"),
        (gpu.lrn_backward_launch(shape, np.float32, 5, 1e-4, 0.75), 2 * 9 * 7, "lrn_backward<float>"),
        (gpu.sgd_update_launch(1000, np.float32, 0.01, 0.9, 5e-4), 1000, "sgd_update<float>"),
    ]
    for launch, total, kernel_name in cases:
        assert launch.kernel == kernel_name and launch.kernel in gpu.KERNELS[launch.file]
        assert launch.block == (gpu.BLOCK,)
        assert launch.grid[0] * gpu.BLOCK >= total > (launch.grid[0] - 1) * gpu.BLOCK
        assert type(launch.scalars[0]) is np.int32 and launch.scalars[0] == total
        float_type = np.float64 if "double" in kernel_name else np.float32
        assert all(type(s) in (np.int32, float_type) for s in launch.scalars), launch.scalars
    im2col = cases[0][0]
    assert [int(s) for s in im2col.scalars] == [3 * 2 * OH * OW, 2, 3, 9, 7, 3, 2, 2, 1, 1, 0, OH, OW]
    lrn = cases[4][0]
    assert [type(s) for s in lrn.scalars[-3:]] == [np.float64] * 3 and lrn.scalars[-3] == 1e-4


def test_launches_refuse_what_the_kernels_cannot_index():
    with pytest.raises(TypeError, match="float32 or float64"):
        gpu.im2col_launch((1, 1, 4, 4), np.int64, (2, 2), (1, 1), (0, 0))
    with pytest.raises(ValueError, match="32-bit"):        # 2**31 column entries
        gpu.im2col_launch((2**15, 2, 256, 256), np.float32, (1, 1), (1, 1), (0, 0))
    with pytest.raises(ValueError, match="do not multiply"):
        gpu.sgemm_launch((3, 4), (5, 6))


def test_sgemm_launch_tiles_the_output_and_broadcasts_a_matrix():
    launch, out_shape = gpu.sgemm_launch((3, 130, 70), (70, 65))
    assert out_shape == (3, 130, 65)
    assert launch.grid == (2, 3, 3) and launch.block == (16, 16, 1)     # 65 columns, 130 rows, 3 matrices
    assert [type(s) for s in launch.scalars] == [np.int32] * 3 + [np.int64] * 3
    assert [int(s) for s in launch.scalars] == [130, 65, 70, 130 * 70, 0, 130 * 65]
    assert gpu.sgemm_launch((8, 9), (9, 10))[1] == (8, 10)


# --- finding the kernels -----------------------------------------------------------------------------
def test_find_kernel_dir_takes_the_first_directory_holding_every_file(tmp_path):
    partial, full = tmp_path / "partial", tmp_path / "full"
    partial.mkdir()
    full.mkdir()
    (partial / "im2col.cu").write_text("")
    for name in gpu.KERNELS:
        (full / name).write_text("")
    assert gpu.find_kernel_dir([tmp_path / "missing", partial, full]) == full
    with pytest.raises(FileNotFoundError, match="MINIGRAD_KERNEL_DIR"):
        gpu.find_kernel_dir([partial])


def test_kernel_dir_candidates_cover_a_checkout_an_install_and_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(gpu.KERNEL_DIR_VARIABLE, str(tmp_path))
    candidates = gpu.kernel_dir_candidates()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(gpu.__file__))))
    assert candidates[0] == tmp_path
    assert candidates[1].as_posix() == os.path.join(root, "kernels")
    # pip install --target DIR puts the data files at DIR/share/minigrad/kernels, beside the package.
    assert any(c.as_posix() == os.path.join(root, "share", "minigrad", "kernels") for c in candidates)
    monkeypatch.delenv(gpu.KERNEL_DIR_VARIABLE)
    assert gpu.find_kernel_dir().name == "kernels"          # this checkout's own kernels/


# --- layers, AlexNet and checkpoints on the GPU against the CPU --------------------------------------
def _layer_cases():
    return [
        ("conv", lambda: mg.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), groups=2), (2, 4, 9, 7)),
        ("conv batch 1", lambda: mg.Conv2d(3, 5, 5, stride=1, padding=2, algorithm="im2col"), (1, 3, 8, 11)),
        ("maxpool", lambda: mg.MaxPool2d(3, 2), (2, 3, 9, 8)),
        ("avgpool", lambda: mg.AvgPool2d(3, 2, (1, 0, 0, 1), ceil_mode=True), (2, 3, 9, 8)),
        ("global avgpool", lambda: mg.GlobalAvgPool2d(), (2, 3, 5, 4)),
        ("zero pad", lambda: mg.ZeroPad2d((1, 0, 2, 1)), (2, 3, 5, 4)),
        ("lrn", lambda: mg.LocalResponseNorm(5, alpha=0.5, beta=0.75, k=2.0), (2, 7, 4, 5)),
        ("lrn groups", lambda: mg.LocalResponseNorm(5, alpha=0.5, beta=0.75, k=2.0, groups=2), (2, 8, 4, 5)),
        ("relu", lambda: mg.ReLU(), (3, 5, 4, 4)),
        ("dropout", lambda: mg.Dropout(0.5, seed=3), (4, 10)),
        ("linear", lambda: mg.Linear(10, 7), (4, 10)),
        ("batchnorm", lambda: mg.BatchNorm2d(3), (2, 3, 5, 4)),
    ]


@needs_gpu
@pytest.mark.parametrize("name,make,shape", _layer_cases(), ids=[c[0] for c in _layer_cases()])
def test_layer_forward_and_backward_on_the_gpu_match_the_cpu(name, make, shape):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(np.float32)
    cpu_layer, gpu_layer = make(), make()
    gpu_layer.load_state_dict(cpu_layer.state_dict())
    gpu_layer.to("cuda")
    y = cpu_layer.forward(x)
    y_gpu = gpu_layer.forward(backend.to_device(x, "cuda"))
    assert backend.is_gpu_array(y_gpu)
    assert_close(backend.to_numpy(y_gpu), y, np.float32)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, dx_gpu = cpu_layer.backward(dy), gpu_layer.backward(backend.to_device(dy, "cuda"))
    assert_close(backend.to_numpy(dx_gpu), dx, np.float32)
    for (pname, p), (_, p_gpu) in zip(cpu_layer.named_parameters(), gpu_layer.named_parameters()):
        np.testing.assert_allclose(backend.to_numpy(p_gpu.grad), p.grad, rtol=1e-4, atol=1e-4, err_msg=pname)


def _alexnet_step(net, x, labels, device):
    """Two SGD steps. Every convolution through im2col, the GPU's algorithm, so that the CPU is the twin
    of the GPU kernels (the CPU's Winograd path has tests of its own, tests/test_winograd.py)."""
    for layer in net.layers:
        if isinstance(layer, mg.Conv2d):
            layer.algorithm = "im2col"
    net.to(device)
    loss_fn = mg.SoftmaxCrossEntropy()
    optimiser = mg.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=0.0005)
    x, labels = backend.to_device(x, device), backend.to_device(labels, device)
    losses = []
    for _ in range(2):                  # two steps, so the velocity of the first one is used
        optimiser.zero_grad()
        losses.append(loss_fn.forward(net.forward(x), labels))
        net.backward(loss_fn.backward())
        optimiser.step()
    return losses, net.state_dict()


def test_alexnet_steps_through_the_emulated_kernels_match_the_cpu(device, monkeypatch):
    """Every op of a training step (im2col, col2im, pooling, LRN, the SGD update) through ops/gpu.py
    as the layers call it, on the emulated kernels: the wiring between the layers and the kernels."""
    if device.name != "emulated":
        pytest.skip("on a GPU this is test_alexnet_training_steps_on_the_gpu_match_the_cpu")
    rng = np.random.default_rng(6)
    x, labels = rng.standard_normal((2, 3, 64, 64)).astype(np.float32), rng.integers(0, 10, 2)
    cpu_losses, cpu_state = _alexnet_step(alexnet("small", num_classes=10, seed=5), x, labels, "cpu")
    monkeypatch.setattr(ops, "_impl", lambda array: gpu)
    monkeypatch.setattr(gpu, "matmul", np.matmul)     # cuBLAS's part: the emulator has no GEMM library
    gpu_losses, gpu_state = _alexnet_step(alexnet("small", num_classes=10, seed=5), x, labels, "cpu")
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-5)
    for name, value in cpu_state.items():
        np.testing.assert_allclose(gpu_state[name], value, rtol=1e-4, atol=1e-6, err_msg=name)


@needs_gpu
@pytest.mark.parametrize("preset,batch,image_size", [("small", 4, 64), ("paper", 2, 224)])
def test_alexnet_training_steps_on_the_gpu_match_the_cpu(preset, batch, image_size):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((batch, 3, image_size, image_size)).astype(np.float32)
    labels = rng.integers(0, 10, batch)
    cpu_losses, cpu_state = _alexnet_step(alexnet(preset, num_classes=10, seed=5), x, labels, "cpu")
    gpu_losses, gpu_state = _alexnet_step(alexnet(preset, num_classes=10, seed=5), x, labels, "cuda")
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-4)
    for name, value in cpu_state.items():
        np.testing.assert_allclose(gpu_state[name], value, rtol=1e-3, atol=1e-5, err_msg=name)


@needs_gpu
def test_checkpoints_load_on_either_device():
    source = alexnet("small", num_classes=10, seed=1)
    x = np.random.default_rng(3).standard_normal((2, 3, 64, 64)).astype(np.float32)
    expected = source.eval().forward(x)
    on_gpu = alexnet("small", num_classes=10, seed=2).to("cuda")
    on_gpu.load_state_dict(source.state_dict())
    assert all(backend.is_gpu_array(p.data) for p in on_gpu.parameters())
    assert_close(backend.to_numpy(on_gpu.eval().forward(backend.to_device(x, "cuda"))), expected, np.float32)
    back_on_cpu = alexnet("small", num_classes=10, seed=3)
    back_on_cpu.load_state_dict(on_gpu.state_dict())
    assert_close(back_on_cpu.eval().forward(x), expected, np.float32)


@needs_gpu
def test_sgd_on_gpu_params_uses_the_fused_kernel_and_matches_the_cpu(monkeypatch):
    rng = np.random.default_rng(4)
    w, g = rng.standard_normal((5, 7)).astype(np.float32), rng.standard_normal((5, 7)).astype(np.float32)
    params = [mg.Parameter(w.copy(), "w"), mg.Parameter(backend.to_device(w, "cuda"), "w")]
    for p in params:
        p.grad[...] = backend.to_device(g, backend.device_of(p.data))
    calls = []
    fused = gpu.sgd_update
    monkeypatch.setattr(gpu, "sgd_update", lambda *args: calls.append(1) or fused(*args))
    optimisers = [mg.SGD([p], lr=0.1) for p in params]
    for _ in range(3):
        for optimiser in optimisers:
            optimiser.step()
    assert len(calls) == 3
    assert_close(backend.to_numpy(params[1].data), params[0].data, np.float32)


# --- the GPU benchmark's CPU-independent parts -------------------------------------------------------
def _benchmark():
    path = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "gpu_alexnet.py")
    spec = importlib.util.spec_from_file_location("gpu_alexnet", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_measures_the_paper_shapes_and_their_bytes():
    bench, net = _benchmark(), alexnet("paper")
    shapes = bench.layer_input_shapes(net, 256)
    assert shapes["conv1"] == (256, 3, 224, 224) and shapes["pool1"] == (256, 96, 55, 55)
    assert shapes["norm2"] == (256, 256, 27, 27) and shapes["pool5"] == (256, 256, 13, 13)
    assert shapes["fc6"] == (256, 9216)
    cases = {label: (op, moved) for label, op, _, moved in bench.kernel_cases(net, shapes)}
    assert "conv1 col2im" not in cases                  # the first layer needs no input gradient
    assert cases["conv1 im2col"] == ("im2col", (256 * 3 * 224 * 224 + 363 * 256 * 55 * 55) * 4)
    assert cases["norm1 backward"] == ("lrn_backward", 5 * 256 * 96 * 55 * 55 * 4)
    assert cases["pool2 forward"] == ("maxpool_forward", (256 * 256 * 27 * 27 + 256 * 256 * 13 * 13 * 2) * 4)
    gemms = {label: (a, b) for label, a, b in bench.gemm_cases(net, shapes)}
    assert gemms["conv2"] == ((2, 128, 1200), (2, 1200, 256 * 27 * 27))
    assert gemms["fc6"] == ((256, 9216), (9216, 4096))


def test_benchmark_pytorch_twin_computes_what_minigrad_computes():
    torch = pytest.importorskip("torch")
    bench, net = _benchmark(), alexnet("small", num_classes=10, seed=4)
    for layer in net:
        if isinstance(layer, mg.LocalResponseNorm):
            layer.alpha = 0.5       # at the paper's 1e-4 a wrong alpha conversion would not show
    twin = bench.torch_twin(net, torch.nn, torch).eval()
    x = np.random.default_rng(5).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(net.eval().forward(x), expected, rtol=1e-4, atol=1e-5)


@needs_gpu
def test_winograd_is_refused_on_the_gpu_and_auto_falls_back_to_im2col():
    x = backend.to_device(np.zeros((1, 2, 6, 6), np.float32), "cuda")
    auto = mg.Conv2d(2, 3, 3, padding=1).to("cuda")
    assert backend.is_gpu_array(auto.forward(x)) and auto.tile is None
    with pytest.raises(ValueError, match="CPU only"):
        mg.Conv2d(2, 3, 3, padding=1, algorithm="winograd").to("cuda").forward(x)
