"""The teaching notebooks run top to bottom in a fresh kernel, so that they can never rot.

Each MyST notebook is read with jupytext and executed with nbclient from its own directory (it imports
`model` from there); a cell that raises, including a failed gradient `assert`, fails the test.
"""
import json
import os
import sys
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext", reason="the notebook tests need the test extra: pip install -e '.[test]'")
nbclient = pytest.importorskip("nbclient", reason="the notebook tests need the test extra: pip install -e '.[test]'")
pytest.importorskip("ipykernel", reason="the notebook tests need the test extra: pip install -e '.[test]'")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = [ROOT / "examples" / "alexnet" / "backward_pass.md", ROOT / "examples" / "alexnet" / "failure_modes.md",
             ROOT / "examples" / "alexnet" / "towers.md",
             ROOT / "examples" / "alexnet" / "trained_alexnet.md"]


@pytest.fixture
def python3_kernel_of_this_interpreter(tmp_path, monkeypatch):
    """Make the kernel named "python3" start this very interpreter (the one minigrad is installed in),
    whatever other "python3" kernelspecs the machine has: JUPYTER_PATH is searched first."""
    spec = tmp_path / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # minigrad from this checkout, also when the tests run without installing it
    inherited = [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT)] + inherited))
    return "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_runs_top_to_bottom_in_a_fresh_kernel(path, python3_kernel_of_this_interpreter):
    notebook = jupytext.read(path)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    assert any(cell.cell_type == "code" for cell in notebook.cells)
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name=python3_kernel_of_this_interpreter,
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()            # raises CellExecutionError, naming the cell, if any cell fails
    errors = [output for cell in notebook.cells if cell.cell_type == "code"
              for output in cell.get("outputs", []) if output.get("output_type") == "error"]
    assert errors == []
