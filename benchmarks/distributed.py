"""Data-parallel training steps of the paper's AlexNet on this machine: 1 and 2 MPI ranks (one BLAS
thread each) against one process with two threads, and how much of the gradient all-reduce the
bucketed overlap hides.

    python benchmarks/distributed.py [--batch 32] [--steps 3]

Each configuration runs in fresh processes (the thread count is fixed when NumPy loads), on random
images at the global batch --batch (each rank its slice), one warm-up step then --steps timed ones:

    one process, 2 threads     python, OPENBLAS_NUM_THREADS=2
    1 rank, 1 thread           mpiexec -n 1
    2 ranks, 1 thread each     mpiexec -n 2 (DataParallel, 25 MB buckets)

For the ranks it also reports the step time spent waiting for the all-reduces after backward (what
the overlap did not hide) and the time the same buckets take to all-reduce with nothing else running.
Every process calls mg.keep_freed_memory(), as train.py does, and the report says so. The report is
printed, for benchmarks/results/distributed.md (whose scaling model comes from benchmarks/scaling_model.py).
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
    parser.add_argument("--batch", type=int, default=32, help="global batch (default 32)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up (default 3)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def worker(args):
    """Time training steps of this rank's replica; rank 0 prints one JSON line."""
    import numpy as np

    import minigrad as mg
    from minigrad import distributed
    from minigrad.models import alexnet

    comm = distributed.world()
    distributed.check_global_batch(comm, args.batch)
    kept_freed_memory = mg.keep_freed_memory()          # as train.py runs (minigrad/ops/cpu_runtime.py)
    model = alexnet("paper")
    optimizer = mg.SGD(model.parameters(), lr=0.01)
    replicas = distributed.DataParallel(model, comm) if comm.size > 1 else None
    local = args.batch // comm.size
    rng = np.random.default_rng(comm.rank)
    x = rng.standard_normal((local, 3, 224, 224), dtype=np.float32) * 50
    y = rng.integers(0, 1000, local)
    loss_fn = mg.SoftmaxCrossEntropy()

    def timed_steps():
        """(median step time, median time waited for the all-reduces after backward)."""
        times, exposed = [], []
        for step in range(args.steps + 1):
            comm.barrier()
            start, waited_before = time.perf_counter(), replicas.exposed_seconds if replicas else 0.0
            loss_fn.forward(model.forward(x), y)
            optimizer.zero_grad()
            model.backward(loss_fn.backward(1 / comm.size))
            optimizer.step()
            if step:                              # step 0 compiles and warms the allocator
                times.append(time.perf_counter() - start)
                exposed.append((replicas.exposed_seconds if replicas else 0.0) - waited_before)
        return statistics.median(times), statistics.median(exposed)

    step, exposed = timed_steps()
    standalone, alone = [], step
    if replicas:
        # The same step with the hook removed: the ranks compute as before and communicate nothing.
        # The polls that progress MPI run on the cores that compute, so the honest cost of the
        # communication is the difference of the two steps, not only the wait after backward.
        model.backward_hooks.clear()
        alone = timed_steps()[0]
        # The same all-reduces with no backward to hide them.
        for _ in range(args.steps):
            comm.barrier()
            start = time.perf_counter()
            for request in [comm.start_allreduce_in_place(flat) for flat, _ in replicas.buckets]:
                request.wait()
            standalone.append(time.perf_counter() - start)
    if comm.rank == 0:
        print(json.dumps({"step": step, "exposed": exposed, "compute": alone, "kept_freed_memory": kept_freed_memory,
                          "allreduce": statistics.median(standalone) if standalone else 0.0,
                          "buckets": [int(flat.nbytes) for flat, _ in replicas.buckets] if replicas else [],
                          "parameters": sum(p.data.size for p in model.parameters())}))


def launch(ranks, threads, args):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PMI_", "OMPI_", "PMIX_"))}
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[name] = str(threads)
    env["PYTHONPATH"] = str(ROOT)
    program = [sys.executable, str(HERE), "--worker", "--batch", str(args.batch), "--steps", str(args.steps)]
    if ranks:
        mpiexec = Path(sys.executable).parent / "mpiexec"
        program = [str(mpiexec if mpiexec.exists() else "mpiexec"), "-n", str(ranks), sys.executable, "-m",
                   "mpi4py", *program[1:]]
    result = subprocess.run(program, env=env, capture_output=True, text=True, timeout=1800)
    if result.returncode:
        raise SystemExit(f"benchmark run failed ({' '.join(program)}):\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    args = parse()
    if args.worker:
        return worker(args)
    runs = {"one process, 2 threads": launch(0, 2, args), "1 rank, 1 thread": launch(1, 1, args),
            "2 ranks, 1 thread each": launch(2, 1, args)}
    baseline = runs["one process, 2 threads"]["step"]
    lines = [f"# Data-parallel AlexNet (paper preset) on this machine, global batch {args.batch}, float32", "",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; Python "
             f"{platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M')}; median of {args.steps} steps "
             f"after one warm-up",
             "malloc: freed memory kept for reuse in every process (mg.keep_freed_memory(), as train.py runs)"
             if all(run["kept_freed_memory"] for run in runs.values())
             else "malloc: glibc's default (mg.keep_freed_memory() needs glibc)", "",
             "| configuration | step | images/s | vs one process, 2 threads | step without the all-reduces "
             "| waited after backward | the all-reduces alone | hidden by the overlap |",
             "|---|---|---|---|---|---|---|---|"]
    for name, run in runs.items():
        cost = run["step"] - run["compute"]               # what communicating added to the step
        comm = (f"{run['compute']:.3f} s | {run['exposed']:.3f} s | {run['allreduce']:.3f} s | "
                f"{min(1.0, max(0.0, 1 - cost / run['allreduce'])):.0%}") if run["allreduce"] else "- | - | - | -"
        lines.append(f"| {name} | {run['step']:.3f} s | {args.batch / run['step']:.1f} | "
                     f"{baseline / run['step']:.2f}x | {comm} |")
    buckets = runs["2 ranks, 1 thread each"]["buckets"]
    lines += ["", f"{runs['2 ranks, 1 thread each']['parameters']:,} parameters in {len(buckets)} buckets of "
              f"{', '.join(f'{b / 2**20:.0f}' for b in buckets)} MiB (backward order). Hidden = 1 - (step - step "
              f"without the all-reduces) / the all-reduces alone."]
    report = "\n".join(lines)
    print(report)
    return report


if __name__ == "__main__":
    main()
