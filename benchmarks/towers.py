"""Training steps of the paper's AlexNet as two towers on two MPI ranks (minigrad/distributed/towers.py,
one BLAS thread each) against one process with two threads, and the bytes each crossing sends.

    python benchmarks/towers.py [--batch 128] [--steps 2]

Each configuration runs in fresh processes (the thread count is fixed when NumPy loads), on random
images at --batch (both towers see the whole batch), one warm-up step then --steps timed ones:

    one process, 2 threads     python, OPENBLAS_NUM_THREADS=2
    two towers, 1 thread each  mpiexec -n 2, one tower per rank

For the towers it also reports the part of a step spent inside the crossings (the collective layers'
forward and backward: the transfers and the waiting for the other tower). The bytes per step at each
crossing come from towers.crossings, against the all-reduce of the gradients that two data-parallel
replicas would send. Every process calls mg.keep_freed_memory(), as train.py does, and the report
says so. The report is printed and written to benchmarks/results/towers.md.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve()


def parse():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=128, help="batch (default 128, the paper's)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up (default 2)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def timed(layer, spent):
    """Wrap a collective layer's forward and backward so that their time adds up in spent[0]."""
    for method in ("forward", "backward"):
        inner = getattr(layer, method)

        def wrapper(value, inner=inner):
            start = time.perf_counter()
            result = inner(value)
            spent[0] += time.perf_counter() - start
            return result
        setattr(layer, method, wrapper)


def worker(args):
    """Time training steps of the one-device net (one process) or of this rank's tower; rank 0 prints
    one JSON line."""
    import numpy as np

    import minigrad as mg
    from minigrad import distributed
    from minigrad.distributed import towers
    from minigrad.models import alexnet

    comm = distributed.world()
    kept_freed_memory = mg.keep_freed_memory()          # as train.py runs (minigrad/ops/cpu_runtime.py)
    model = alexnet("paper")
    spent = [0.0]
    if comm.size > 1:
        model = towers.tower(model, comm)
        for layer in model.layers:
            if isinstance(layer, (mg.AllGather, mg.GatherOutput, mg.SharedInput)):
                timed(layer, spent)
    optimizer = mg.SGD(model.parameters(), lr=0.01)
    rng = np.random.default_rng(0)              # the same batch on both towers
    x = rng.standard_normal((args.batch, 3, 224, 224), dtype=np.float32) * 50
    y = rng.integers(0, 1000, args.batch)
    loss_fn = mg.SoftmaxCrossEntropy()
    steps, crossing = [], []
    for step in range(args.steps + 1):
        comm.barrier()
        spent[0], start = 0.0, time.perf_counter()
        optimizer.zero_grad()
        loss_fn.forward(model.forward(x), y)
        model.backward(loss_fn.backward())
        optimizer.step()
        if step:                                # step 0 warms up (Numba, allocations)
            steps.append(time.perf_counter() - start)
            crossing.append(spent[0])
    slowest = comm.allgather_object((statistics.median(steps), statistics.median(crossing)))
    if comm.rank == 0:
        print(json.dumps({"step": max(s for s, _ in slowest), "crossing": max(c for _, c in slowest),
                          "kept_freed_memory": kept_freed_memory}))


def run(command, threads):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PMI_", "OMPI_", "PMIX_"))}
    env.update(OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads),
               PYTHONPATH=str(ROOT))
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    args = parse()
    if args.worker:
        return worker(args)
    from minigrad.distributed import towers
    from minigrad.models import alexnet

    mpiexec = str(Path(sys.executable).parent / "mpiexec")
    script = [str(HERE), "--worker", "--batch", str(args.batch), "--steps", str(args.steps)]
    load = os.getloadavg()[0]                   # other jobs on the machine make every figure noisier
    one = run([sys.executable, *script], threads=2)
    two = run([mpiexec, "-n", "2", sys.executable, "-m", "mpi4py", *script], threads=1)
    net = alexnet("paper").eval()
    table = towers.crossings(net, args.batch, 224)
    parameters = sum(p.data.size for p in net.parameters())
    allreduce = parameters * 4                  # a ring all-reduce on 2 ranks: 2 (P-1)/P of the gradients
    total = sum(f + b for _, _, f, b in table)
    lines = [f"# Two towers on two ranks against one process (paper AlexNet, batch {args.batch})", "",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"{time.strftime('%Y-%m-%d')}; median of {args.steps} steps after a warm-up, random images. "
             f"Load average {load:.1f} when it started (above {os.cpu_count()}: other jobs shared the "
             f"cores, and the times are indicative only).",
             "malloc: freed memory kept for reuse in every process (mg.keep_freed_memory(), as train.py runs)"
             if one["kept_freed_memory"] and two["kept_freed_memory"]
             else "malloc: glibc's default (mg.keep_freed_memory() needs glibc)", "",
             "| configuration | step (s) | in the crossings (s) | ratio to one process |", "|---|---|---|---|",
             f"| one process, 2 threads | {one['step']:.2f} | - | 1.00 |",
             f"| two towers, 2 ranks x 1 thread | {two['step']:.2f} | {two['crossing']:.2f} | "
             f"{two['step'] / one['step']:.2f} |", "",
             "Bytes each rank sends per training step (float32):", "",
             "| crossing | gathered array | forward (MB) | backward (MB) |", "|---|---|---|---|"]
    lines += [f"| {name} | {shape} | {f / 1e6:.2f} | {b / 1e6:.2f} |" for name, shape, f, b in table]
    lines += ["", f"Two towers: {total / 1e6:.1f} MB per rank per step. Two data-parallel replicas: the all-reduce "
              f"of {parameters / 1e6:.1f} M float32 gradients, {allreduce / 1e6:.0f} MB per rank per step "
              f"({allreduce / total:.1f}x the towers' traffic).", "",
              f"Run as `python benchmarks/towers.py --batch {args.batch} --steps {args.steps}`. On a CPU the two "
              "towers cannot stand in for two GPUs: they split the cores that the one process uses with two "
              "threads, and the one process pays for its threads' synchronisation in every layer, so the ratio "
              "says little about model parallelism in general. What carries over is the traffic: the fully "
              "connected layers that hold most of the parameters have small activations (section 3.2)."]
    report = "\n".join(lines) + "\n"
    print(report)
    out = ROOT / "benchmarks" / "results" / "towers.md"
    out.write_text(report)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
