"""The fuzzing harness (fuzz/, fuzz/README.md): each target for a few seconds and on its regression
corpus, in a worker process under a memory limit and a time limit per input; and the engine itself,
which must record every way an input can fail."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TARGETS = sorted(p.stem for p in (ROOT / "fuzz" / "targets").glob("*.py") if p.stem != "__init__")
NEEDS = {"onnx_load": ["onnx"]}              # the optional packages a target's code under test needs

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the engine limits memory as Linux does")


def fuzz(*arguments, timeout=600):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "fuzz", *map(str, arguments)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def skip_without_needs(target):
    for package in NEEDS.get(target, []):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"the {target} target needs {package}")


def test_every_target_says_what_it_needs():
    assert set(TARGETS) <= set(NEEDS)


@pytest.mark.parametrize("target", TARGETS)
def test_a_brief_fuzzing_run_finds_no_failure(target, tmp_path):
    """Seed 0, 5 s: the same first inputs on every run (longer runs, other seeds: fuzz/README.md)."""
    skip_without_needs(target)
    result = fuzz(target, "--seconds", 5, "--seed", 0, "--memory-mib", 1024, "--failures", tmp_path)
    assert result.returncode == 0 and "; 0 failures" in result.stdout, result.stdout + result.stderr[-3000:]
    assert int(result.stdout.split(": ")[1].split(" inputs")[0]) > 0


@pytest.mark.parametrize("target", TARGETS)
def test_every_input_that_once_broke_a_target_passes(target, tmp_path):
    skip_without_needs(target)
    corpus = ROOT / "fuzz" / "corpus" / target
    inputs = [p for p in corpus.iterdir() if p.suffix != ".md"]
    assert inputs, f"{corpus} holds no regression inputs"
    result = fuzz(target, "--replay", corpus, "--memory-mib", 1024, "--failures", tmp_path)
    assert result.returncode == 0 and f": {len(inputs)} inputs" in result.stdout, result.stdout + result.stderr[-3000:]


def test_the_engine_records_each_way_an_input_can_fail(tmp_path):
    """An exception the target may not raise, a crash, a hang, an allocation past the memory limit:
    each is a failure with its input saved; the other inputs run on in a fresh worker."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name in ("0_fine", "1_raises", "2_crashes", "3_hangs", "4_allocates", "5_fine"):
        (inputs / name).write_bytes(name.split("_")[1].encode())
    failures = tmp_path / "failures"
    result = fuzz("tests.fuzz_selftest_target", "--replay", inputs, "--memory-mib", 512, "--input-seconds", 5,
                  "--failures", failures)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("tests.fuzz_selftest_target: 6 inputs") and "fine 2" in lines[0], result.stdout
    assert "; 4 failures" in lines[0]
    assert [line.split(": ", 1)[1].split(" -> ")[0] for line in lines[1:]] == [
        "KeyError: \"'not an exception this target may raise'\"", "killed the worker (signal SIGABRT)",
        "ran past 5.0 s", "MemoryError: ''"]
    assert sorted(p.read_bytes() for p in failures.iterdir()) == [b"allocates", b"crashes", b"hangs", b"raises"]
