"""The file fuzzers (fuzz/image_decoding.py, fuzz/checkpoint_loader.py; fuzz/FILES.md): each runs here
for a few seconds in a subprocess whose address space is bounded (RLIMIT_AS) under a timeout, after
replaying every input of its regression corpus and checking its seeds; a longer run is by hand. And the
harness itself is shown to see each kind of broken contract: an undocumented exception, a second
warning, an error that names no file, too much memory, too much time."""
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from minigrad import data

FUZZ = Path(__file__).resolve().parents[1] / "fuzz"
sys.path.insert(0, str(FUZZ))
import checkpoint_loader  # noqa: E402
import file_mutations  # noqa: E402
import image_decoding  # noqa: E402

SECONDS = 4                                         # of mutated inputs per target, after the corpus and seeds
TARGETS = [("image_decoding.py", "images", 4 * 2**30), ("checkpoint_loader.py", "checkpoints", 2 * 2**30)]


def bounded(address_space):
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))


@pytest.mark.parametrize("script, corpus, address_space", TARGETS)
def test_each_target_keeps_its_contract_on_its_corpus_its_seeds_and_mutations(script, corpus, address_space,
                                                                            tmp_path):
    result = subprocess.run([sys.executable, str(FUZZ / script), "--seconds", str(SECONDS), "--seed", "0",
                             "--save-failures", str(tmp_path)], capture_output=True, text=True, timeout=600,
                            preexec_fn=bounded(address_space))
    assert result.stdout, result.stderr[-3000:]
    summary = json.loads(result.stdout.splitlines()[-1])
    assert result.returncode == 0 and not summary["failures"], (summary["failures"], result.stderr[-3000:])
    assert summary["replayed"] == len(os.listdir(FUZZ / "corpus" / corpus)) > 0
    assert summary["outcomes"]["loaded"] >= summary["seeds"] > 0 and summary["inputs"] > 0
    assert summary["memory"] == "measured per input"


def summary_of(check, content, tmp_path, capsys, memory_bound=lambda content: 2**30, seconds=10):
    """The summary of file_mutations.fuzz replaying `content` as its whole corpus."""
    (tmp_path / "corpus").mkdir(exist_ok=True)
    (tmp_path / "corpus" / "case").write_bytes(content)
    status = file_mutations.fuzz("test", check, [content], (), memory_bound, str(tmp_path / "corpus"),
                                 ["--replay-only", "--input-seconds", str(seconds)])
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert status == (1 if summary["failures"] else 0)
    return summary


def test_the_image_contract_sees_an_undocumented_exception_and_a_second_warning(tmp_path, monkeypatch, capsys):
    check = image_decoding.make_check(str(tmp_path / "work"))
    png = image_decoding.seeds()[4]
    assert summary_of(check, png, tmp_path, capsys)["outcomes"] == {"loaded": 1}

    def eof(path, size):
        raise EOFError("end of the stream")
    monkeypatch.setattr(data.folder, "load_image", eof)
    [failure] = summary_of(check, png, tmp_path, capsys)["failures"]
    assert failure["why"].startswith("EOFError: end of the stream (at ")

    def twice(path, size):
        warnings.warn(f"ImageFolder: skipping {path}: unreadable image (once)")
        raise OSError("and again")
    monkeypatch.setattr(data.folder, "load_image", twice)
    [failure] = summary_of(check, png, tmp_path, capsys)["failures"]
    assert failure["why"].startswith("a skipped file must give one warning naming it and why")


def test_the_checkpoint_contract_sees_an_error_that_does_not_name_the_file(tmp_path, monkeypatch, capsys):
    check = checkpoint_loader.make_check(str(tmp_path))
    [valid, _] = checkpoint_loader.seeds(str(tmp_path))
    assert summary_of(check, b"not a zip", tmp_path, capsys)["outcomes"] == {
        "refused: not a readable checkpoint (BadZipFile:": 1}

    def anonymous(path):
        raise ValueError("something is wrong")
    monkeypatch.setattr(checkpoint_loader.checkpoint, "load", anonymous)
    [failure] = summary_of(check, valid, tmp_path, capsys)["failures"]
    assert failure["why"] == "a ValueError that does not name the file: something is wrong"


HUNGRY = """
import sys
import numpy as np
import file_mutations

def hungry(content):
    return f"allocated {np.ones(2**26, np.uint8).sum()}"              # 64 MiB, written

sys.exit(file_mutations.fuzz("test", hungry, [b"x"], (), lambda content: 2**24, sys.argv[1], ["--replay-only"]))
"""


def test_the_harness_bounds_the_memory_of_an_input(tmp_path):
    """In a process of its own: memory this test session freed and kept (train.py's keep_freed_memory)
    would be reused without adding to the resident set."""
    (tmp_path / "case").write_bytes(b"x")
    result = subprocess.run([sys.executable, "-c", HUNGRY, str(tmp_path)], cwd=FUZZ, capture_output=True, text=True,
                            timeout=120)
    [failure] = json.loads(result.stdout.splitlines()[-1])["failures"]
    assert result.returncode == 1 and failure["why"].startswith("added 6"), failure
    assert failure["why"].endswith("more than its bound 16 MiB")


def test_the_harness_bounds_the_time_of_an_input(tmp_path, capsys):
    def endless(content):
        while True:
            time.sleep(0.01)
    [failure] = summary_of(endless, b"x", tmp_path, capsys, seconds=0.2)["failures"]
    assert failure["why"] == "took more than 0.2 s"
