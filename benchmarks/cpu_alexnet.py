"""One training step of the paper's AlexNet on the CPU, minigrad and PyTorch side by side.

    python benchmarks/cpu_alexnet.py [--batch 32] [--repeats 7] [--threads 2] [--memory-batch 128]
                                     [--no-layers] [--glibc-malloc]

Both frameworks get the same weights, the same batch and the same number of threads; their steps are
timed alternately in this one process (median of --repeats after warm-up), then the forward pass alone
(eval mode), then each layer's forward and backward in isolation. The GEMM floor is the step's
multiply-add count divided by the rate NumPy's float32 GEMM reaches on large square matrices here.
Peak memory of a --memory-batch step is measured in two fresh subprocesses (peak RSS, VmHWM).
minigrad's side runs as train.py does, with mg.keep_freed_memory() (malloc keeps freed blocks for the
next step); --glibc-malloc leaves glibc's default instead. PyTorch's subprocess always has the default.
The report is printed and written to benchmarks/results/cpu_alexnet_<host>.md. PyTorch is optional
for this script only: without it minigrad's numbers are printed alone.
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def set_threads(n):
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(n)


def parse():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-batch", type=int, default=128)
    parser.add_argument("--no-layers", action="store_true", help="skip the per-layer table")
    parser.add_argument("--glibc-malloc", action="store_true",
                        help="do not call mg.keep_freed_memory(): glibc's default malloc policy")
    parser.add_argument("--peak-memory-of", choices=["minigrad", "torch"], help=argparse.SUPPRESS)
    return parser.parse_args()


ARGS = parse()
set_threads(ARGS.threads)
import numba  # noqa: E402
import numpy as np  # noqa: E402  (after the thread variables are set)

sys.path.insert(0, str(ROOT / "benchmarks"))
import minigrad as mg  # noqa: E402
from minigrad.models import alexnet
from timing import alternate, machine, timed, write_report  # noqa: E402
from torch_twin import torch_twin  # noqa: E402

try:
    import torch
    import torch.nn as nn
    torch.set_num_threads(ARGS.threads)
except ImportError:
    torch = None


def multiply_adds_per_image(net, size=224):
    """Multiply-adds of one forward pass of one image, from the layer shapes."""
    total, x = 0, np.zeros((1, 3, size, size), np.float32)
    net.eval()
    for layer in net:
        y = layer.forward(x)
        if isinstance(layer, mg.Conv2d):
            total += y.size * layer.weight.data[0].size
        elif isinstance(layer, mg.Linear):
            total += layer.weight.data.size
        x = y
    net.train()
    return total


def gemm_rate(n=4096, repeats=5):
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = a.copy()
    a @ b
    best = min(timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n ** 3 / best


def minigrad_step(net, opt, ce, x, y):
    opt.zero_grad()
    ce.forward(net.forward(x), y)
    net.backward(ce.backward())
    opt.step()


def torch_step(net, opt, x, y):
    opt.zero_grad()
    torch.nn.functional.cross_entropy(net(x), y).backward()
    opt.step()


def layer_times(net, tnet, x, repeats=3):
    """Forward and backward time of each layer in isolation, on the input it sees in the network."""
    rows = []
    mx, tx = x, torch.from_numpy(x) if torch else None
    for (name, layer), tlayer in zip(net.named_layers(), tnet if torch else [None] * len(net)):
        forward = min(timed(lambda: layer.forward(mx)) for _ in range(repeats))
        y = layer.forward(mx)            # (a layer's own backward keeps what its forward saved: only
        dy = np.ones_like(y)             # containers release it, so it can be timed again and again)
        # zero_grad first, as in a step: the weight gradient is then written, not added to a temporary
        backward = min(timed(lambda: (layer.zero_grad(), layer.backward(dy))) for _ in range(repeats))
        row = [name, forward, backward]
        if torch:
            tin = tx.detach().requires_grad_(name != "conv1")
            tdy = torch.ones(tuple(y.shape))
            tforward = min(timed(lambda: tlayer(tin)) for _ in range(repeats))
            out = tlayer(tin)
            tbackward = min(timed(lambda: (tlayer.zero_grad(), out.backward(tdy, retain_graph=True)))
                            for _ in range(repeats))
            row += [tforward, tbackward]
            tx = tlayer(tin).detach()
        rows.append(row)
        mx = y
    return rows


def peak_memory(framework, batch):
    """Peak RSS (MiB) of a fresh process that builds the network and takes two steps. PyTorch's process
    builds its weights through minigrad too, under glibc's own malloc policy."""
    malloc = ["--glibc-malloc"] if ARGS.glibc_malloc else []
    out = subprocess.run([sys.executable, __file__, "--peak-memory-of", framework, "--memory-batch", str(batch),
                          "--threads", str(ARGS.threads)] + malloc, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def report_peak_memory():
    net = alexnet("paper")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((ARGS.memory_batch, 3, 224, 224), dtype=np.float32)
    y = rng.integers(0, 1000, ARGS.memory_batch)
    if ARGS.peak_memory_of == "minigrad":
        tune_malloc()
        opt, ce = mg.SGD(net.parameters(), lr=0.01), mg.SoftmaxCrossEntropy()
        for _ in range(2):
            minigrad_step(net, opt, ce, x, y)
    else:
        tnet = torch_twin(net, nn, torch)
        del net
        opt = torch.optim.SGD(tnet.parameters(), lr=0.01, momentum=0.9, weight_decay=0.0005)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        for _ in range(2):
            torch_step(tnet, opt, tx, ty)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            print(int(line.split()[1]) / 1024)


def tune_malloc():
    """What train.py does; returns the line that says so."""
    if ARGS.glibc_malloc:
        return "malloc: glibc's default (--glibc-malloc)"
    if mg.keep_freed_memory():
        return "malloc: freed memory kept for reuse (mg.keep_freed_memory())"
    return "malloc: not glibc, left as it is"


def main():
    if ARGS.peak_memory_of:
        return report_peak_memory()
    lines = [f"# AlexNet (paper preset) training step on the CPU, batch {ARGS.batch}, float32", "",
             f"Machine: {machine(ARGS.threads, **({'PyTorch': torch.__version__} if torch else {}))}", f"Date: {time.strftime('%Y-%m-%d %H:%M')}", tune_malloc(), ""]
    print("\n".join(lines), flush=True)

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    net = alexnet("paper")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((ARGS.batch, 3, 224, 224), dtype=np.float32)
    y = rng.integers(0, 1000, ARGS.batch)
    opt, ce = mg.SGD(net.parameters(), lr=0.01), mg.SoftmaxCrossEntropy()
    start = time.perf_counter()
    minigrad_step(net, opt, ce, x, y)
    say(f"minigrad first step (Numba compilation or cache load included): {time.perf_counter() - start:.2f} s; "
        f"Numba's threading layer: {numba.threading_layer()}")

    steps = {}
    forwards = {"minigrad": lambda: net.eval().forward(x)}
    if torch:
        tnet = torch_twin(net, nn, torch)
        topt = torch.optim.SGD(tnet.parameters(), lr=0.01, momentum=0.9, weight_decay=0.0005)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        steps["torch"] = lambda: torch_step(tnet.train(), topt, tx, ty)

        def torch_forward():
            with torch.no_grad():
                tnet.eval()(tx)
        forwards["torch"] = torch_forward
    steps["minigrad"] = lambda: (net.train(), minigrad_step(net, opt, ce, x, y))
    step = alternate(steps, ARGS.repeats)
    forward = alternate(forwards, ARGS.repeats)
    net.train()

    flops_per_image = 2 * multiply_adds_per_image(net)
    step_flops = 3 * flops_per_image * ARGS.batch
    rate = gemm_rate()
    floor = step_flops / rate
    say(f"GEMM: {rate / 1e9:.0f} GFLOP/s (float32, 4096^2); step {step_flops / 1e9:.0f} GFLOP -> floor {floor:.3f} s; "
        f"forward floor {floor / 3:.3f} s")
    say()
    say("| | minigrad | PyTorch | minigrad / PyTorch | GEMM floor / minigrad |")
    say("|---|---|---|---|---|")
    for what, times, fl in [("step", step, floor), ("forward (eval)", forward, floor / 3)]:
        mine, theirs = times["minigrad"], times.get("torch")
        say(f"| {what} | {mine:.3f} s | {f'{theirs:.3f} s' if theirs else '-'} | "
            f"{f'{mine / theirs:.2f}x' if theirs else '-'} | {fl / mine:.0%} |")
    say(f"\nimages/s: minigrad {ARGS.batch / step['minigrad']:.1f}"
        + (f", PyTorch {ARGS.batch / step['torch']:.1f}" if torch else ""))

    if not ARGS.no_layers:
        rows = layer_times(net, tnet if torch else None, x)
        total = sum(r[1] + r[2] for r in rows)
        say("\nPer layer, in isolation (ms); share = minigrad layer's part of the sum:")
        say("| layer | mg fwd | mg bwd | torch fwd | torch bwd | mg share |")
        say("|---|---|---|---|---|---|")
        for r in rows:
            t = f"{r[3] * 1e3:.1f} | {r[4] * 1e3:.1f}" if torch else "- | -"
            say(f"| {r[0]} | {r[1] * 1e3:.1f} | {r[2] * 1e3:.1f} | {t} | {(r[1] + r[2]) / total:.1%} |")

    if ARGS.memory_batch:
        mem = {"minigrad": peak_memory("minigrad", ARGS.memory_batch)}
        if torch:
            mem["torch"] = peak_memory("torch", ARGS.memory_batch)
        say(f"\nPeak RSS of a batch-{ARGS.memory_batch} step: minigrad {mem['minigrad']:.0f} MiB"
            + (f", PyTorch {mem['torch']:.0f} MiB, ratio {mem['minigrad'] / mem['torch']:.2f}x" if torch else ""))

    write_report("cpu_alexnet", lines)


if __name__ == "__main__":
    main()
