"""python -m fuzz TARGET [--seconds S] [--seed N]: fuzz a target (fuzz/targets/) for S seconds;
python -m fuzz TARGET --replay FILE|FOLDER ...: run it once on each input given (the regression corpus).
Exits 1 if any input failed; the failing inputs are saved (--failures) to be reproduced and, once fixed,
kept in fuzz/corpus/TARGET/."""
import argparse
import sys
from pathlib import Path

from . import engine


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", help="a module of fuzz/targets/, e.g. onnx_load")
    parser.add_argument("--seconds", type=float, default=60, help="how long to fuzz (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="input i is made from (seed, i) (default 0)")
    parser.add_argument("--memory-mib", type=int, default=2048,
                        help="the memory an input may take, above the worker's own (default 2048)")
    parser.add_argument("--input-seconds", type=float, default=30, help="the time an input may take (default 30)")
    parser.add_argument("--replay", nargs="+", metavar="PATH", help="run on these files (folders: their files)")
    parser.add_argument("--failures", metavar="FOLDER", help="where failing inputs go (fuzz/failures/TARGET)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    replay = sorted(file for path in map(Path, args.replay or []) for file in (
        sorted(p for p in path.iterdir() if p.is_file() and p.suffix != ".md") if path.is_dir() else [path]))
    if args.worker:
        engine.worker(args.target, args.seed, args.first, args.memory_mib << 20, Path(args.workdir), replay)
        return 0
    if args.replay is not None and not replay:
        parser.error(f"--replay: no files in {args.replay}")
    run, seconds = engine.supervise(args.target, args.seconds, args.seed, args.memory_mib << 20, args.input_seconds,
                                    args.failures, replay)
    print(run.summary(seconds))
    return 1 if run.failures else 0


if __name__ == "__main__":
    sys.exit(main())
