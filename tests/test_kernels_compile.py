"""Every kernels/*.cu compiles to PTX with nvcc for sm_80 (A100) and sm_90 (H100), warning-free, and
the PTX holds every kernel that minigrad/ops/gpu.py launches from it. Runs without a GPU (CI).

The templates are instantiated the way NVRTC does it for CuPy's name expressions: by taking the
address of each `name<type>` that ops.gpu.KERNELS lists, in a file that includes the source.
"""
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from minigrad.ops import gpu

NVCC = shutil.which("nvcc")
ARCHS = ("sm_80", "sm_90")
KERNEL_DIR = Path(__file__).resolve().parents[1] / "kernels"

pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH")


def ptx_entry_name(name):
    """How a kernel's PTX entry name begins: `sgemm` as is (extern "C"); `im2col<float>` Itanium-mangled,
    `_Z6im2colIfE...` (length, name, template argument f or d, then the parameter types)."""
    match = re.fullmatch(r"(\w+)<(float|double)>", name)
    if match is None:
        return name
    base, ctype = match.groups()
    return f"_Z{len(base)}{base}I{ctype[0]}E"


def compile_ptx(filename, arch, workdir):
    unit = workdir / f"{Path(filename).stem}_{arch}.cu"
    addresses = ", ".join(f"(void*)&{name}" for name in gpu.KERNELS[filename])
    unit.write_text(f'#include "{KERNEL_DIR / filename}"\nvoid* minigrad_kernels[] = {{{addresses}}};\n')
    ptx = unit.with_suffix(".ptx")
    result = subprocess.run([NVCC, "-ptx", f"-arch={arch}", "-Werror", "all-warnings", str(unit), "-o", str(ptx)],
                            capture_output=True, text=True)
    return result, ptx.read_text() if result.returncode == 0 else ""


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """(file, arch) -> (nvcc result, PTX text), all compiled in parallel."""
    workdir = tmp_path_factory.mktemp("ptx")
    jobs = [(name, arch) for name in gpu.KERNELS for arch in ARCHS]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = pool.map(lambda job: compile_ptx(*job, workdir), jobs)
        return dict(zip(jobs, results))


def test_the_kernel_table_lists_exactly_the_files_in_kernels():
    assert sorted(gpu.KERNELS) == sorted(p.name for p in KERNEL_DIR.glob("*.cu"))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("filename", sorted(gpu.KERNELS))
def test_kernel_file_compiles_to_ptx_with_every_entry(compiled, filename, arch):
    result, ptx = compiled[filename, arch]
    assert result.returncode == 0, f"nvcc failed on {filename} for {arch}:\n{result.stderr}"
    entries = re.findall(r"\.entry\s+(\w+)", ptx)
    for name in gpu.KERNELS[filename]:
        wanted = ptx_entry_name(name)
        assert any(e.startswith(wanted) for e in entries), f"{name} ({wanted}) not among {entries}"
    assert len(entries) == len(gpu.KERNELS[filename]), f"unexpected kernels in {filename}: {entries}"
