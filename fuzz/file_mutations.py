"""What the two file fuzzers share (fuzz/image_decoding.py, fuzz/checkpoint_loader.py; fuzz/FILES.md):
byte-level mutations, and the loop that runs a target over its regression corpus and then over mutated
inputs for a fixed time, holding each input to a bound on memory and time and recording what broke.

A target is a function check(data) -> outcome: it feeds the file's bytes to minigrad and returns a
short label of what happened ("loaded", "refused: OSError"), or raises Broken(why) when the file broke
minigrad's contract (an undocumented exception, a second warning, an error that names no file). Any
other exception out of check() is a broken contract too. Inputs are made from the target's seeds (valid
files written by Pillow or by minigrad.checkpoint.save) by one to four mutations, drawn from the byte
mutations here and the target's own structured ones (crafted headers, zip and JSON edits).

Bounds, per input: at most --input-seconds of wall time (a Python-level loop is interrupted then; a
hang inside C is left to the caller's timeout, tests/test_fuzz_files.py) and at most the target's
memory bound above the resident memory before the input (Linux: the peak is reset per input through
/proc/self/clear_refs and read from /proc/self/status; elsewhere memory is not measured and the
summary says so). The caller bounds the whole process with RLIMIT_AS (--address-space-mb here, or
resource.setrlimit in the test), so that an unbounded allocation is a MemoryError, not a dead machine.

A run replays the corpus, checks each seed as it is (valid files, which must load), then mutates for
--seconds, reproducibly from --seed. It prints one JSON line at the end: inputs tried, the outcome
counts, the largest memory and time of one input, and every failure with the file it was saved to
(--save-failures DIR, the first input of each distinct failure; a hand run saves into fuzz/corpus/<kind>/,
where the input stays as a regression case). The exit status is 1 when anything broke.

--atheris runs the same check coverage-guided instead, through libFuzzer (_fuzz_with_atheris), for
longer runs by hand where atheris is installed; the loop here needs nothing beyond minigrad's own
dependencies, so CI runs it.
"""
import argparse
import gzip
import hashlib
import json
import os
import random
import re
import resource
import signal
import struct
import sys
import tempfile
import time
import traceback

INTERESTING_INTEGERS = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF,
                        0x80000000, 0xFFFFFFFF, 100_000, 1_000_000)


class Broken(Exception):
    """The input broke minigrad's contract for the file (why: what happened instead)."""


class Timeout(BaseException):
    """An input ran past its time bound (a BaseException, so that no `except Exception` swallows it)."""


# --- byte-level mutations ----------------------------------------------------------------------------
def _span(rng, data):
    start = rng.randrange(len(data) + 1)
    return start, min(len(data), start + rng.choice((1, 2, 4, 8, 16, 64, 512)))


def flip_bits(rng, data, seeds):
    data = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


def set_bytes(rng, data, seeds):
    start, end = _span(rng, data)
    value = rng.choice((0x00, 0xFF, 0x7F, 0x80, rng.randrange(256)))
    return data[:start] + bytes([value]) * (end - start) + data[end:]


def write_integer(rng, data, seeds):
    """An interesting 16- or 32-bit integer, either byte order, at a random place (a length or a size)."""
    fmt = rng.choice((">H", "<H", ">I", "<I"))
    value = rng.choice(INTERESTING_INTEGERS) & (0xFFFF if fmt[1] == "H" else 0xFFFFFFFF)
    at = rng.randrange(max(1, len(data) - struct.calcsize(fmt) + 1))
    return data[:at] + struct.pack(fmt, value) + data[at + struct.calcsize(fmt):]


def insert_bytes(rng, data, seeds):
    at = rng.randrange(len(data) + 1)
    filler = rng.choice((bytes([rng.randrange(256)]) * rng.choice((1, 16, 4096)), os.urandom(rng.randint(1, 64))))
    return data[:at] + filler + data[at:]


def delete_bytes(rng, data, seeds):
    start, end = _span(rng, data)
    return data[:start] + data[end:]


def duplicate_bytes(rng, data, seeds):
    start, end = _span(rng, data)
    return data[:end] + data[start:end] * rng.randint(1, 8) + data[end:]


def truncate(rng, data, seeds):
    return data[:rng.randrange(len(data) + 1)]


def splice(rng, data, seeds):
    """The head of this input and the tail of another seed."""
    other = rng.choice(seeds)
    return data[:rng.randrange(len(data) + 1)] + other[rng.randrange(len(other) + 1):]


BYTE_MUTATIONS = (flip_bits, set_bytes, write_integer, insert_bytes, delete_bytes, duplicate_bytes, truncate,
                  splice)


def label(message, words=5):
    """An outcome's label for the counts: the first words of its message, numbers and paths blurred."""
    blurred = re.sub(r"'[^']*'|\S*/\S*", "'...'", re.sub(r"\d[\d,.]*", "N", message[:200]))
    return " ".join(blurred.split()[:words])[:60]


def mutate(rng, seeds, structured):
    """One input: a seed under one to four mutations, structured or byte-level with equal odds."""
    data = rng.choice(seeds)
    for _ in range(rng.randint(1, 4)):
        kind = structured if structured and rng.random() < 0.5 else BYTE_MUTATIONS
        data = rng.choice(kind)(rng, data, seeds)
    return data


# --- bounds ------------------------------------------------------------------------------------------
def _status_kb(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def memory_measurable():
    """Whether the peak resident memory can be reset per input (Linux's /proc/self/clear_refs)."""
    try:
        _reset_peak()
        return True
    except OSError:
        return False


def _reset_peak():
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def _on_alarm(signum, frame):
    raise Timeout()


def run_one(check, data, seconds, memory_bound, measure_memory):
    """(outcome or None, failure or None, resident bytes added at the peak, seconds) of check(data),
    held to `seconds` (None: the caller bounds the time) and to memory_bound(data) bytes."""
    if measure_memory:
        _reset_peak()
        before = _status_kb("VmRSS")
    if seconds:
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.perf_counter()
    outcome = failure = None
    try:
        outcome = check(data)
    except Broken as broken:
        failure = str(broken)
    except Timeout:
        failure = f"took more than {seconds:g} s"
    except Exception as error:             # (MemoryError and RecursionError included)
        where = traceback.extract_tb(error.__traceback__)[-1]
        failure = (f"{type(error).__name__}: {str(error)[:300]} (at {os.path.basename(where.filename)}:"
                   f"{where.lineno} in {where.name})")
    finally:
        if seconds:
            signal.setitimer(signal.ITIMER_REAL, 0)
    elapsed = time.perf_counter() - start
    added = max(0, _status_kb("VmHWM") - before) * 1024 if measure_memory else 0
    if failure is None and added > memory_bound(data):
        failure = f"added {added / 2**20:.0f} MiB of resident memory, more than its bound " \
                  f"{memory_bound(data) / 2**20:.0f} MiB"
    return outcome, failure, added, elapsed


# --- the loop ----------------------------------------------------------------------------------------
def parse_args(description, argv):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seconds", type=float, default=60.0, help="fuzz for this long after the corpus (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="of the mutations: a run is reproducible (default 0)")
    parser.add_argument("--input-seconds", type=float, default=10.0, help="time bound of one input (default 10)")
    parser.add_argument("--address-space-mb", type=int, help="RLIMIT_AS of this process, in MiB (default: as it is)")
    parser.add_argument("--save-failures", metavar="DIR", help="write each input that broke something into DIR "
                        "(fuzz/corpus/<kind>/ keeps it as a regression case)")
    parser.add_argument("--corpus", metavar="DIR", help="the regression cases to replay first (default: the "
                        "target's fuzz/corpus/<kind>/)")
    parser.add_argument("--replay-only", action="store_true", help="replay the corpus and stop")
    parser.add_argument("--atheris", action="store_true", help="coverage-guided, through atheris (pip install "
                        "atheris); the arguments this parser does not know go to libFuzzer (-runs=N, -jobs=N, ...)")
    return parser.parse_known_args(argv)


def fuzz(name, check, seeds, structured, memory_bound, corpus, argv=None):
    """Run `check` over the files in `corpus` (a folder), then over inputs mutated from `seeds` until
    --seconds have passed; memory_bound(data) is the most resident memory one input may add. Prints
    the summary line; returns the exit status."""
    args, libfuzzer_args = parse_args(f"Fuzz {name}: fuzz/FILES.md", argv)
    if libfuzzer_args and not args.atheris:
        raise SystemExit(f"{name}: unknown arguments {libfuzzer_args} (libFuzzer's go with --atheris)")
    if args.address_space_mb:
        resource.setrlimit(resource.RLIMIT_AS, (args.address_space_mb * 2**20,) * 2)
    corpus = args.corpus or corpus
    measure_memory = memory_measurable()
    replays = sorted(os.path.join(corpus, entry) for entry in os.listdir(corpus)) if os.path.isdir(corpus) else []
    if args.atheris:
        return _fuzz_with_atheris(check, seeds, structured, memory_bound, replays, args, libfuzzer_args,
                                  measure_memory)
    rng = random.Random(args.seed)
    summary = {"target": name, "seed": args.seed, "replayed": 0, "seeds": 0, "inputs": 0, "outcomes": {},
               "failures": [], "largest_memory_mb": 0.0, "longest_input_s": 0.0,
               "memory": "measured per input" if measure_memory else "not measured (no /proc/self/clear_refs)"}

    def inputs():
        """(kind, where it comes from, bytes): the corpus, the seeds as they are, then mutated seeds."""
        for path in replays:
            yield "replayed", path, read_case(path)
        if args.replay_only:
            return
        for number, seed in enumerate(seeds):
            yield "seeds", f"seed {number}", seed
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            yield "inputs", None, mutate(rng, seeds, structured)

    for kind, source, data in inputs():
        summary[kind] += 1
        outcome, failure, added, elapsed = run_one(check, data, args.input_seconds, memory_bound, measure_memory)
        summary["largest_memory_mb"] = max(summary["largest_memory_mb"], round(added / 2**20, 1))
        summary["longest_input_s"] = max(summary["longest_input_s"], round(elapsed, 3))
        if failure is None:
            summary["outcomes"][outcome] = summary["outcomes"].get(outcome, 0) + 1
            continue
        known = next((record for record in summary["failures"] if record["why"] == failure), None)
        if known:                         # (the same failure again: counted, its first input kept)
            known["count"] += 1
            continue
        record = {"why": failure, "input": source or _save(data, args.save_failures), "count": 1}
        summary["failures"].append(record)
        print(f"{name}: BROKEN by {record['input']}: {failure}", file=sys.stderr, flush=True)
    summary["seconds"] = args.seconds
    print(json.dumps(summary, sort_keys=True), flush=True)
    return 1 if summary["failures"] else 0


def _save(data, folder):
    """The input written gzipped into `folder` under the hash of its bytes (a record padded with a
    million characters takes a few kilobytes); None without a folder."""
    if folder is None:
        return None
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, hashlib.sha1(data).hexdigest()[:16] + ".gz")
    with open(path, "wb") as f:
        f.write(gzip.compress(data, mtime=0))
    return path


def read_case(path):
    """The input a corpus file holds (gzipped when its name ends in .gz)."""
    with open(path, "rb") as f:
        content = f.read()
    return gzip.decompress(content) if path.endswith(".gz") else content


def _fuzz_with_atheris(check, seeds, structured, memory_bound, replays, args, libfuzzer_args, measure_memory):
    """Coverage-guided fuzzing: libFuzzer, through atheris, keeps the inputs that reach new lines of the
    Python code (minigrad's, PIL's plugins, zipfile, numpy's .npy reader, json), and mutates them with
    its own byte mutations or with this module's, structured ones included (half each). It starts from
    the seeds and the corpus, stops at the first broken contract (saved with --save-failures), and
    bounds time and memory itself (-timeout, and the same memory bound per input as the loop)."""
    import atheris

    start = tempfile.mkdtemp(prefix="fuzz-atheris-")        # (libFuzzer adds the inputs it keeps: left for reuse)
    print(f"libFuzzer's corpus: {start}", file=sys.stderr, flush=True)
    for number, content in enumerate([*seeds, *map(read_case, replays)]):
        with open(os.path.join(start, str(number)), "wb") as f:
            f.write(content)

    def one_input(content):
        _, failure, _, _ = run_one(check, content, None, memory_bound, measure_memory)
        if failure:
            raise Broken(f"{failure} (the input: {_save(content, args.save_failures)})")

    def mutator(content, max_size, seed):
        rng = random.Random(seed)
        if rng.random() < 0.5:
            return atheris.Mutate(content, max_size)
        return rng.choice(structured + BYTE_MUTATIONS)(rng, content, seeds)[:max_size]

    atheris.instrument_all()
    atheris.Setup([sys.argv[0], f"-max_total_time={int(args.seconds)}", f"-timeout={int(args.input_seconds) + 1}",
                   "-rss_limit_mb=0", f"-max_len={2**23}", f"-seed={args.seed + 1}", *libfuzzer_args, start],
                  one_input, custom_mutator=mutator)
    atheris.Fuzz()
