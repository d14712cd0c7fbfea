"""The lineage after AlexNet on the CPU: a forward pass of each of the nine ImageNet models of onnx's
backend suite (AlexNet, ZFNet, VGG-19, GoogLeNet, Inception-v2, ResNet-50, SqueezeNet, DenseNet-121,
ShuffleNet; tests/light_models.py gives them random weights) loaded by minigrad.onnx.load, beside ONNX
Runtime running the same file, in one process.

    python benchmarks/onnx_lineage.py [--repeats 5] [--threads 2] [--models resnet50 shufflenet]

Batch 1 (the files fix it). Both get the same number of threads (ONNX Runtime's intra-op pool, with its
graph optimisations, as a user runs it; minigrad's workers follow the BLAS thread count); their forwards
are timed alternately (median of --repeats after warm-up). Beside each: the largest difference over the
output's scale, the part of minigrad's forward spent in depthwise convolutions (groups equal to the
channels, which Conv2d runs as grouped im2col + GEMM), and the kinds of layers that take most of it. The machine's load average before and after is
recorded: on a shared machine the times are indicative. The report is printed and written to
benchmarks/results/onnx_lineage.md.
"""
import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", nargs="+", help="some of the nine (default: all)")
    return parser.parse_args()


ARGS = parse()
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[variable] = str(ARGS.threads)
sys.path.insert(0, str(ROOT / "tests"))
import numpy as np  # noqa: E402  (after the thread variables are set)
import onnxruntime  # noqa: E402

import minigrad as mg  # noqa: E402
from light_models import NAMES, imagenet_batch, light_model  # noqa: E402
from timing import alternate, machine  # noqa: E402


def time_by_kind(net, x):
    """The part of one forward pass of `net` that each kind of layer takes (a depthwise convolution, with
    groups equal to its channels, counted apart from the others), from the container's observer: each
    layer's time is the time since the report of the layer before it."""
    spent, last = {}, [0.0]

    def observe(event, name, layer, output):
        now = time.perf_counter()
        kind = "depthwise Conv2d" if isinstance(layer, mg.Conv2d) and 1 < layer.groups == layer.in_channels else \
            type(layer).__name__
        spent[kind] = spent.get(kind, 0.0) + now - last[0]
        last[0] = now

    net.observe(observe)
    last[0] = time.perf_counter()
    net.forward(x)
    net.observe(None)
    total = sum(spent.values())
    return {kind: seconds / total for kind, seconds in sorted(spent.items(), key=lambda item: -item[1])}


def measure(name, options):
    """The table's row of one light model."""
    model = light_model(name)
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    net = mg.onnx.load(model)
    x, given = imagenet_batch(), session.get_inputs()[0].name
    ours, theirs = net.forward(x), session.run(None, {given: x})[0]
    difference = float(np.abs(ours - theirs).max() / np.abs(theirs).max())
    times = alternate({"minigrad": lambda: net.forward(x), "ort": lambda: session.run(None, {given: x})}, ARGS.repeats)
    parts = time_by_kind(net, x)
    largest = ", ".join(f"{kind} {part:.0%}" for kind, part in list(parts.items())[:3])
    return (f"| {name} | {type(net).__name__} | {len(net.named_layers())} | {times['minigrad'] * 1e3:.1f} ms | "
            f"{times['ort'] * 1e3:.1f} ms | {times['minigrad'] / times['ort']:.2f}x | {difference:.1e} | "
            f"{parts.get('depthwise Conv2d', 0):.0%} | {largest} |")


def main():
    names = ARGS.models or NAMES
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        raise SystemExit(f"onnx_lineage.py: no model {unknown}; the nine are {', '.join(NAMES)}")
    lines = ["# The lineage after AlexNet: a forward pass in minigrad beside ONNX Runtime, CPU, float32, batch 1",
             "", f"Machine: {machine(ARGS.threads, ONNX_Runtime=onnxruntime.__version__)}",
             f"Date: {time.strftime('%Y-%m-%d %H:%M')}; load average before: "
             f"{', '.join(f'{v:.2f}' for v in os.getloadavg())} (1, 5, 15 min)", ""]
    print("\n".join(lines), flush=True)
    mg.keep_freed_memory()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = ARGS.threads, 1
    options.log_severity_level = 3
    lines += ["| model | minigrad reads it as | layers | minigrad | ONNX Runtime | minigrad / ONNX Runtime | "
              "largest difference / output scale | depthwise convolutions' part of minigrad's time | "
              "minigrad's time by layer (the largest parts) |", "|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        lines.append(measure(name, options))
        print(lines[-1], flush=True)
    lines += ["", f"Load average after: {', '.join(f'{v:.2f}' for v in os.getloadavg())} (1, 5, 15 min)"]
    out = ROOT / "benchmarks" / "results" / "onnx_lineage.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"{lines[-1]}\nwritten to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
