"""Inference of the paper's AlexNet on the CPU: minigrad's eval forward against ONNX Runtime running the
same weights, exported with minigrad.onnx.export, side by side in one process.

    python benchmarks/onnx_inference.py [--batches 32 1] [--repeats 9] [--threads 2]

predict.py and evaluate.py run forward passes, and there the peer is ONNX Runtime, not PyTorch. Both
get the same number of threads (ONNX Runtime's intra-op pool; minigrad's workers follow the BLAS thread
count); their forwards are timed alternately (median of --repeats after warm-up) at each batch size.
The report is printed and written to benchmarks/results/onnx_inference_<host>.md.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 1])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    return parser.parse_args()


ARGS = parse()
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[variable] = str(ARGS.threads)
import numpy as np  # noqa: E402  (after the thread variables are set)
import onnxruntime  # noqa: E402

import minigrad as mg  # noqa: E402
from minigrad.models import alexnet  # noqa: E402
from timing import alternate, machine, write_report  # noqa: E402


def session(path, spinning):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = ARGS.threads, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def main():
    lines = ["# AlexNet (paper preset) inference on the CPU: minigrad against ONNX Runtime, float32", "",
             f"Machine: {machine(ARGS.threads, ONNX_Runtime=onnxruntime.__version__)}",
             f"Date: {time.strftime('%Y-%m-%d %H:%M')}", ""]
    print("\n".join(lines), flush=True)
    mg.keep_freed_memory()
    net = alexnet("paper").eval()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "alexnet.onnx")
        mg.onnx.export(net, path, (3, 224, 224))
        # ONNX Runtime's threads spin for a while after each run by default, and in one process they
        # then take the cores from minigrad's next forward (batch 1: 25 -> 34 ms). The alternated
        # session does not spin; its own time is compared with the default's, timed alone.
        quiet, default = (session(path, spinning) for spinning in ("0", "1"))
    name = quiet.get_inputs()[0].name
    lines += ["| batch | minigrad | ONNX Runtime | minigrad / ONNX Runtime | ONNX Runtime spinning, alone | "
              "largest difference / output scale |", "|---|---|---|---|---|---|"]
    for batch in ARGS.batches:
        x = np.random.default_rng(batch).standard_normal((batch, 3, 224, 224), dtype=np.float32)
        ours, theirs = net.forward(x), quiet.run(None, {name: x})[0]
        difference = float(np.abs(ours - theirs).max() / np.abs(theirs).max())
        times = alternate({"minigrad": lambda: net.forward(x), "ort": lambda: quiet.run(None, {name: x})},
                          ARGS.repeats)
        alone = alternate({"ort": lambda: default.run(None, {name: x})}, ARGS.repeats)["ort"]
        lines.append(f"| {batch} | {times['minigrad'] * 1e3:.1f} ms | {times['ort'] * 1e3:.1f} ms | "
                     f"{times['minigrad'] / times['ort']:.2f}x | {alone * 1e3:.1f} ms | {difference:.1e} |")
        print(lines[-1], flush=True)
    write_report("onnx_inference", lines)


if __name__ == "__main__":
    sys.exit(main())
