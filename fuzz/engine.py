"""The engine: a worker process runs a target on one input after another, under a memory limit; this
process (the supervisor) watches it, so that whatever an input does (raises what it may not, kills the
worker, runs past its time) is recorded with the input, and fuzzing goes on in a fresh worker.

A target is a module of fuzz/targets/ with three functions:
    seeds(workdir) -> [bytes]           real inputs to start from (called in the worker before its limit)
    mutate(data, seeds, rng) -> bytes   a new input from `data` (one of the seeds), random.Random rng
    run(data, workdir) -> str           the code under test on one input: returns what happened
                                        ("loaded", "refused"); anything it raises is a failure
Input i of a run is made by the random generator seeded with (seed, i), so a run can be repeated.

Worker and supervisor talk over a pipe, one line per event: "start i", "done i <outcome>",
"fail i <exception>" (the input saved as <workdir>/failed-i). Before input i the worker writes it to
<workdir>/current, where the supervisor finds it if the worker dies or hangs.
"""
import hashlib
import importlib
import os
import random
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STARTUP_SECONDS = 300           # imports, seeds and warm-up of a worker (Numba compiles on a cold cache)


def target_module(name):
    """fuzz/targets/<name>.py, or the module of that dotted name (a test's own target)."""
    return importlib.import_module(name if "." in name else f"fuzz.targets.{name}")


# --- the worker -----------------------------------------------------------------------------------------
def limit_memory(extra_bytes):
    """Cap this process's address space at what it maps now plus extra_bytes (RLIMIT_AS): a larger
    allocation then fails (MemoryError) rather than taking the machine's memory."""
    with open("/proc/self/status") as status:
        mapped = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (mapped + extra_bytes, mapped + extra_bytes))


def worker(target_name, seed, first, memory, workdir, replay=()):
    """Run the target on inputs first, first + 1, ... (of the files `replay`, if given), reporting each
    on the pipe that was stdout; the target's own output goes to stderr."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    target = target_module(target_name)
    seeds = target.seeds(workdir)
    for data in seeds[:1]:                     # lazy imports and JIT compilation, before the limit
        target.run(data, workdir)
    limit_memory(memory)
    current = workdir / "current"
    inputs = ((i, path.read_bytes()) for i, path in enumerate(replay) if i >= first) if replay else (
        (i, _generate(target, seeds, seed, i)) for i in _count(first))
    for i, data in inputs:
        current.write_bytes(data)
        protocol.write(f"start {i}\n")
        try:
            outcome = target.run(data, workdir)
        except Exception as error:
            traceback.print_exc()
            (workdir / f"failed-{i}").write_bytes(data)       # (current is the next input by the time it is read)
            protocol.write(f"fail {i} {type(error).__name__}: {str(error)[:300]!r}\n")
        else:
            protocol.write(f"done {i} {outcome}\n")
    protocol.write("end\n")


def _generate(target, seeds, seed, i):
    rng = random.Random(f"{seed}:{i}")
    return target.mutate(rng.choice(seeds), seeds, rng)


def _count(first):
    while True:
        yield first
        first += 1


# --- the supervisor -------------------------------------------------------------------------------------
class Run:
    """What a fuzzing run found: inputs tried, their outcomes, and failures (each with its input saved)."""

    def __init__(self, target, failures_dir):
        self.target, self.failures_dir = target, Path(failures_dir)
        self.tried, self.outcomes, self.failures = 0, Counter(), []

    def fail(self, i, what, data):
        self.failures_dir.mkdir(parents=True, exist_ok=True)
        path = self.failures_dir / f"{hashlib.sha1(data).hexdigest()[:16]}.input"
        path.write_bytes(data)
        self.failures.append((i, what, path))

    def summary(self, seconds):
        outcomes = ", ".join(f"{kind} {n}" for kind, n in self.outcomes.most_common())
        lines = [f"{self.target}: {self.tried} inputs in {seconds:.0f} s ({outcomes}); {len(self.failures)} failures"]
        lines += [f"  input {i}: {what} -> {path}" for i, what, path in self.failures]
        return "\n".join(lines)


def supervise(target, seconds, seed=0, memory=2 << 30, input_seconds=30, failures_dir=None, replay=()):
    """Fuzz `target` for `seconds` (or run it once on each file of `replay`), each input within
    `memory` bytes above the worker's start and `input_seconds`; returns the Run."""
    failures_dir = failures_dir or ROOT / "fuzz" / "failures" / target
    run, started, first = Run(target, failures_dir), time.monotonic(), 0
    workdir, replay = Path(tempfile.mkdtemp(prefix=f"fuzz-{target}-")), [Path(p) for p in replay]
    try:
        while first is not None:                        # a new worker after each crash or hang
            first = _supervise_worker(run, target, seed, first, memory, input_seconds, workdir, replay,
                                      deadline=None if replay else started + seconds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return run, time.monotonic() - started


def _supervise_worker(run, target, seed, first, memory, input_seconds, workdir, replay, deadline):
    """One worker's life. Returns the index to go on from after a crash or hang, or None when done."""
    command = [sys.executable, "-m", "fuzz", target, "--worker", "--seed", str(seed), "--first", str(first),
               "--memory-mib", str(memory >> 20), "--workdir", str(workdir), *(["--replay", *map(str, replay)]
                                                                                 if replay else [])]
    log = open(workdir / "worker.log", "wb")
    worker_process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log,
                                      env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                          [str(ROOT), os.environ.get("PYTHONPATH", "")])})
    lines, running, limit = _Lines(worker_process.stdout), None, time.monotonic() + STARTUP_SECONDS
    try:
        while True:
            if deadline is not None and running is None and time.monotonic() > deadline:
                return None
            line = lines.next(limit)
            if line is None or line == "":            # ran past its time, or the worker died
                if running is None:                   # between inputs: the harness's fault, not an input's
                    raise RuntimeError(f"the {target} worker stopped between inputs; the end of its log:\n"
                                       f"{(workdir / 'worker.log').read_text()[-3000:]}")
                worker_process.kill()
                status = worker_process.wait()
                what = (f"ran past {input_seconds} s" if line is None else
                        f"killed the worker ({_describe_status(status)})")
                run.tried += 1
                run.outcomes["failed"] += 1
                run.fail(running, what, (workdir / "current").read_bytes())
                return running + 1
            event, *rest = line.split(" ", 2)
            if event == "end":
                return None
            i = int(rest[0])
            if event == "start":
                running, limit = i, time.monotonic() + input_seconds
            else:
                run.tried += 1
                running, limit = None, time.monotonic() + input_seconds
                if event == "done":
                    run.outcomes[rest[1] if len(rest) > 1 else "done"] += 1
                else:
                    run.outcomes["failed"] += 1
                    failed = workdir / f"failed-{i}"
                    run.fail(i, rest[1], failed.read_bytes())
                    failed.unlink()
    finally:
        if worker_process.poll() is None:
            worker_process.send_signal(signal.SIGKILL)
            worker_process.wait()
        log.close()


class _Lines:
    """The lines of a pipe, read as they come (select() on the pipe itself: a buffered reader could hold
    a line that select() does not see)."""

    def __init__(self, stream):
        self.fd, self.buffer = stream.fileno(), b""

    def next(self, limit):
        """The next line; "" at the end of the stream; None if none comes before `limit`."""
        while b"\n" not in self.buffer:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, limit - time.monotonic()))
            if not ready:
                return None
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return ""
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()


def _describe_status(status):
    return f"signal {signal.Signals(-status).name}" if status < 0 else f"exit status {status}"
