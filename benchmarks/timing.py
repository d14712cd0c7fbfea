"""What the benchmarks that time minigrad beside a peer share: a median of alternated runs and a line
that says on what machine. Import it after setting the thread variables (it imports NumPy)."""
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def alternate(fns, repeats, warmup=2):
    """Each function in turn, `repeats` times after `warmup`: the median time of each."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(timed(fn))
    return {name: statistics.median(values) for name, values in times.items()}


def machine(threads, **versions):
    """The processor, the versions (NumPy's and those given, e.g. ONNX_Runtime="1.2") and the threads."""
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    flags = open("/proc/cpuinfo").read()
    peers = "".join(f", {name.replace('_', ' ')} {version}" for name, version in versions.items())
    return (f"{cpu}, {os.cpu_count()} cores, {'AVX-512' if 'avx512f' in flags else 'no AVX-512'}; Python "
            f"{platform.python_version()}, NumPy {np.__version__}{peers}; {threads} threads")


def write_report(name, lines):
    """Write this run as the head of benchmarks/results/<name>_<host>.md, above the file's history.

    The history is every section (from the first "## " heading on) that people wrote under an earlier
    run: the before/after tables of each change. A fresh run replaces only the head above it."""
    out = Path(__file__).resolve().parent / "results" / f"{name}_{platform.node() or 'machine'}.md"
    history = ""
    if out.exists():
        text = out.read_text()
        start = text.find("\n## ")
        history = text[start:] if start >= 0 else ""
    out.write_text("\n".join(lines) + "\n" + history)
    print(f"\nwritten to {out.relative_to(out.parents[2])} (the history below the run kept)")
