"""AlexNet training on one GPU: minigrad (CuPy + kernels/*.cu) against PyTorch + cuDNN, in one script.

    python benchmarks/gpu_alexnet.py [--batch 256] [--rounds 5] [--steps 5] [--out benchmarks/results]

1. Throughput: the paper preset, float32, --batch images per step (forward, loss, backward, the paper's
   SGD). The two frameworks get the same weights and the same batch, live on the same GPU, and are
   timed alternately, --rounds times --steps steps each after warm-up; the median round of each gives
   images per second and the ratio minigrad / PyTorch (the issue's target: at least 0.8). TF32 is off
   on both sides (PyTorch's cuDNN convolutions would use it by default); cudnn.benchmark is on.
2. Bandwidth: each of minigrad's memory-bound kernels (im2col, col2im, max-pool forward/backward, LRN
   forward/backward) on the shapes it sees in AlexNet at this batch, as effective bandwidth = the bytes
   it must read and write / its time, against the device's copy bandwidth (a device-to-device copy
   of 1 GiB, read + write). Target: each at least 70% of the copy.
3. GEMM: the teaching SGEMM of kernels/sgemm.cu against cuBLAS (cupy.matmul) on AlexNet's GEMMs.

GPU times are CUDA events recorded on the stream around the work, read after synchronising (a host
clock around asynchronous launches measures only the launches, chainer #2192). The report is printed
and, with --out, written as gpu_alexnet_<device>.md. The functions above `main` need no GPU.
"""
import argparse
import statistics
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import minigrad as mg  # noqa: E402
from minigrad.ops import output_size  # noqa: E402
from minigrad.models import alexnet
from torch_twin import torch_twin  # noqa: E402,F401  (also used by tests/test_gpu.py)


# --- what the benchmark measures, computed without a GPU -------------------------------------------------
def layer_input_shapes(net, batch, image_size=224):
    """name -> the shape of the input each layer of `net` receives for a (batch, 3, size, size) input."""
    shapes, shape = OrderedDict(), (batch, 3, image_size, image_size)
    for name, layer in net.named_layers():
        shapes[name] = shape
        if isinstance(layer, mg.Conv2d):
            shape = layer.output_shape(shape)
        elif isinstance(layer, mg.MaxPool2d):
            N, C, H, W = shape
            shape = (N, C) + tuple(output_size(s, k, st, p) for s, k, st, p in
                                   zip((H, W), layer.kernel_size, layer.stride, layer.padding))
        elif isinstance(layer, mg.Flatten):
            shape = (shape[0], int(np.prod(shape[1:])))
        elif isinstance(layer, mg.Linear):
            shape = (shape[0], layer.out_features)
    return shapes


def kernel_cases(net, shapes, itemsize=4):
    """(label, op, arguments, bytes moved) for every memory-bound kernel call of one training step.

    Bytes moved are the least the op must read plus write: im2col reads x once and writes the column
    matrix; col2im the reverse; max-pool forward reads x and writes y and the int32 argmax, backward
    reads dy and argmax and writes dx; LRN forward reads a and writes b and scale, backward reads dy,
    a, b, scale and writes da.
    """
    cases = []
    for name, layer in net.named_layers():
        if isinstance(layer, (mg.Conv2d, mg.MaxPool2d, mg.LocalResponseNorm)):
            N, C, H, W = shapes[name]
        if isinstance(layer, mg.Conv2d):
            (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
            geometry = (layer.kernel_size, layer.stride, layer.padding)
            cols = C * kh * kw * N * output_size(H, kh, sh, ph) * output_size(W, kw, sw, pw)
            moved = (N * C * H * W + cols) * itemsize
            cases.append((f"{name} im2col", "im2col", (shapes[name],) + geometry, moved))
            if name != "conv1":                 # the first layer needs no input gradient
                cases.append((f"{name} col2im", "col2im", (shapes[name],) + geometry, moved))
        elif isinstance(layer, mg.MaxPool2d):
            geometry = (layer.kernel_size, layer.stride, layer.padding)
            outputs = N * C * output_size(H, layer.kernel_size[0], layer.stride[0], layer.padding[0]) \
                * output_size(W, layer.kernel_size[1], layer.stride[1], layer.padding[1])
            moved = N * C * H * W * itemsize + outputs * (itemsize + 4)
            cases.append((f"{name} forward", "maxpool_forward", (shapes[name],) + geometry, moved))
            cases.append((f"{name} backward", "maxpool_backward", (shapes[name],) + geometry, moved))
        elif isinstance(layer, mg.LocalResponseNorm):
            params = (layer.size, layer.alpha, layer.beta, layer.k, layer.groups)
            cases.append((f"{name} forward", "lrn_forward", (shapes[name],) + params, 3 * N * C * H * W * itemsize))
            cases.append((f"{name} backward", "lrn_backward", (shapes[name],) + params, 5 * N * C * H * W * itemsize))
    return cases


def gemm_cases(net, shapes):
    """(label, shape of A, shape of B) of the forward GEMM of every conv (batched over groups) and fc."""
    cases = []
    for name, layer in net.named_layers():
        if isinstance(layer, mg.Conv2d):
            N, OC, OH, OW = layer.output_shape(shapes[name])
            G, K = layer.groups, layer.weight.data[0].size
            cases.append((name, (G, OC // G, K), (G, K, N * OH * OW)))
        elif isinstance(layer, mg.Linear):
            cases.append((name, (shapes[name][0], layer.in_features), (layer.in_features, layer.out_features)))
    return cases


# --- timing on the GPU --------------------------------------------------------------------------------
def seconds_per_call(events, elapsed_ms, fn, repeats):
    """Seconds per call of fn from two CUDA events recorded around `repeats` calls on the current
    stream; `events()` makes an event (CuPy's or PyTorch's), `elapsed_ms(start, end)` reads them."""
    start, end = events(), events()
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    end.synchronize()
    return elapsed_ms(start, end) / 1e3 / repeats


def cupy_seconds(cupy, fn, repeats):
    return seconds_per_call(cupy.cuda.Event, cupy.cuda.get_elapsed_time, fn, repeats)


def torch_seconds(torch, fn, repeats):
    return seconds_per_call(lambda: torch.cuda.Event(enable_timing=True),
                            lambda start, end: start.elapsed_time(end), fn, repeats)


def copy_bandwidth(cupy, nbytes=1 << 30, repeats=10):
    """Bytes per second of a device-to-device copy, counting its read and its write."""
    src, dst = cupy.ones(nbytes // 4, np.float32), cupy.empty(nbytes // 4, np.float32)
    copy = lambda: dst.data.copy_from_device_async(src.data, nbytes)    # noqa: E731  (cudaMemcpyAsync)
    copy()                                                               # warm-up
    return 2 * nbytes / cupy_seconds(cupy, copy, repeats)


def kernel_call(cupy, gpu, op, args):
    """A no-argument function running one op on random data of the case's shape."""
    shape, rest = args[0], args[1:]
    rng = cupy.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    if op == "im2col":
        return lambda: gpu.im2col(x, *rest)
    if op == "col2im":
        cols = gpu.im2col(x, *rest)
        return lambda: gpu.col2im(cols, shape, *rest)
    if op == "maxpool_forward":
        return lambda: gpu.maxpool_forward(x, *rest)
    if op == "maxpool_backward":
        y, argmax = gpu.maxpool_forward(x, *rest)
        return lambda: gpu.maxpool_backward(y, argmax, shape, *rest)
    size, alpha, beta, k, groups = rest
    if op == "lrn_forward":
        return lambda: gpu.lrn_forward(x, size, alpha, beta, k, groups)
    b, scale = gpu.lrn_forward(x, size, alpha, beta, k, groups)
    return lambda: gpu.lrn_backward(x, x, b, scale, size, alpha, beta, groups)


def device_description(cupy, torch):
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    driver, runtime = cupy.cuda.runtime.driverGetVersion(), cupy.cuda.runtime.runtimeGetVersion()
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return (name, f"{name}; CUDA driver {driver // 1000}.{driver % 1000 // 10}, runtime "
                  f"{runtime // 1000}.{runtime % 1000 // 10}; CuPy {cupy.__version__}; PyTorch {torch.__version__}, "
                  f"cuDNN {torch.backends.cudnn.version()}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5, help="steps per timed round")
    parser.add_argument("--out", type=Path, help="directory to write gpu_alexnet_<device>.md into")
    args = parser.parse_args()
    reason = mg.backend.gpu_unavailable_reason()
    if reason is not None:
        sys.exit(f"gpu_alexnet.py needs a GPU: {reason}")

    import cupy
    import torch
    import torch.nn as nn
    from minigrad.ops import gpu

    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device_name, device = device_description(cupy, torch)
    lines = [f"# AlexNet (paper preset, float32, batch {args.batch}) on {device_name}", "", device, ""]

    def report(line=""):
        print(line, flush=True)
        lines.append(line)

    # 1. Throughput, alternating.
    net = alexnet("paper", num_classes=1000, seed=0)
    twin = torch_twin(net, nn, torch).cuda()
    net.to("cuda")
    rng = np.random.default_rng(0)
    x_host = rng.standard_normal((args.batch, 3, 224, 224)).astype(np.float32)
    labels_host = rng.integers(0, 1000, args.batch)
    x, labels = cupy.asarray(x_host), cupy.asarray(labels_host)
    x_torch, labels_torch = torch.from_numpy(x_host).cuda(), torch.from_numpy(labels_host).cuda()
    loss_fn, optimiser = mg.SoftmaxCrossEntropy(), mg.SGD(net.parameters(), lr=0.01)
    torch_optimiser = torch.optim.SGD(twin.parameters(), lr=0.01, momentum=0.9, weight_decay=0.0005)

    def minigrad_step():
        optimiser.zero_grad()
        loss_fn.forward(net.forward(x), labels)
        net.backward(loss_fn.backward())
        optimiser.step()

    def torch_step():
        torch_optimiser.zero_grad()
        torch.nn.functional.cross_entropy(twin(x_torch), labels_torch).backward()
        torch_optimiser.step()

    timers = {"minigrad": lambda: cupy_seconds(cupy, minigrad_step, args.steps),
              "torch": lambda: torch_seconds(torch, torch_step, args.steps)}

    for step in (minigrad_step, torch_step, minigrad_step, torch_step):     # warm-up, cuDNN autotuning
        step()
    times = {name: [] for name in timers}
    for _ in range(args.rounds):
        for name, timer in timers.items():
            # Drain the device first, so that one framework's queued work is not in the other's time.
            cupy.cuda.Device().synchronize()
            torch.cuda.synchronize()
            times[name].append(timer())
    rates = {name: args.batch / statistics.median(t) for name, t in times.items()}
    report("## Training throughput")
    report("")
    report("| framework | images/s | step (ms) |")
    report("|---|---|---|")
    for name, rate in rates.items():
        report(f"| {name} | {rate:.0f} | {1e3 * args.batch / rate:.1f} |")
    report("")
    report(f"minigrad / PyTorch+cuDNN: **{rates['minigrad'] / rates['torch']:.2f}x** "
           f"(median of {args.rounds} alternating rounds of {args.steps} steps)")
    del twin, torch_optimiser, x_torch
    torch.cuda.empty_cache()

    # 2. Bandwidth of the memory-bound kernels.
    copy = copy_bandwidth(cupy)
    shapes = layer_input_shapes(net, args.batch)
    report("")
    report(f"## Kernel bandwidth (device-to-device copy: {copy / 1e9:.0f} GB/s)")
    report("")
    report("| kernel | shape | ms | GB/s | of copy |")
    report("|---|---|---|---|---|")
    for label, op, case_args, moved in kernel_cases(net, shapes):
        call = kernel_call(cupy, gpu, op, case_args)
        call()
        seconds = cupy_seconds(cupy, call, 10)
        report(f"| {label} ({op}) | {case_args[0]} | {1e3 * seconds:.2f} | {moved / seconds / 1e9:.0f} | "
               f"{moved / seconds / copy:.0%} |")

    # 3. The teaching SGEMM against cuBLAS.
    report("")
    report("## GEMM: kernels/sgemm.cu against cuBLAS (float32, forward GEMM of each layer)")
    report("")
    report("| layer | A | B | cuBLAS GFLOP/s | sgemm.cu GFLOP/s | ratio |")
    report("|---|---|---|---|---|---|")
    for label, a_shape, b_shape in gemm_cases(net, shapes):
        generator = cupy.random.default_rng(1)
        a = generator.standard_normal(a_shape, dtype=np.float32)
        b = generator.standard_normal(b_shape, dtype=np.float32)
        flops = 2 * np.prod(a_shape) * b_shape[-1]
        gflops = []
        for fn in (lambda: cupy.matmul(a, b), lambda: gpu.sgemm(a, b)):
            fn()
            gflops.append(flops / cupy_seconds(cupy, fn, 10) / 1e9)
        report(f"| {label} | {a_shape} | {b_shape} | {gflops[0]:.0f} | {gflops[1]:.0f} | "
               f"{gflops[1] / gflops[0]:.2f} |")

    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"gpu_alexnet_{device_name.replace(' ', '_')}.md"
        path.write_text("\n".join(lines) + "\n")
        print(f"written to {path}")


if __name__ == "__main__":
    main()
