"""Run minigrad's CUDA C kernels on the CPU, to test their index arithmetic where there is no GPU.

g++ compiles kernels/*.cu as C++ with a few definitions standing in for CUDA's (blockIdx, threadIdx,
blockDim, __shared__, __syncthreads, ...). A launch runs the blocks one after another; inside a block
the threads run one after another, or, for a kernel that synchronises its block (sgemm), as blockDim
real threads meeting at a barrier. The arguments are handed over as CUDA's launch API takes them (an
array of pointers to each argument), from the same `Launch` that ops/gpu.py builds for CuPy, so the
scalar types ops/gpu.py chose are the ones the kernel reads.

What it cannot show: races between blocks, anything about speed or memory coalescing, NVRTC's and
the hardware's own behaviour. Those need the GPU tests on a GPU.
"""
import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

from minigrad.ops import gpu

KERNEL_DIR = Path(__file__).resolve().parents[1] / "kernels"
COOPERATIVE = {"sgemm"}             # kernels that call __syncthreads()
CXX = shutil.which("g++")

PRELUDE = r"""
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>
using std::max; using std::min; using std::pow;

struct uint3 { unsigned int x = 0, y = 0, z = 0; };
static thread_local uint3 threadIdx, blockIdx;
static uint3 blockDim, gridDim;
static std::barrier<>* block_barrier = nullptr;
#define __global__
#define __device__
#define __restrict__
#define __launch_bounds__(threads)
#define __shared__ static                  /* blocks run one at a time: one copy serves each in turn */
static void __syncthreads() { block_barrier->arrive_and_wait(); }
static float __int_as_float(int i) { float f; std::memcpy(&f, &i, sizeof f); return f; }
static double __longlong_as_double(long long i) { double d; std::memcpy(&d, &i, sizeof d); return d; }
"""

LAUNCHER = r"""
template <typename... Args, std::size_t... I>
static void call(void (*kernel)(Args...), void** args, std::index_sequence<I...>) {
    kernel(*static_cast<Args*>(args[I])...);
}

template <typename... Args>
static void emulate(void (*kernel)(Args...), const unsigned* dims, void** args, bool cooperative) {
    gridDim = {dims[0], dims[1], dims[2]};
    blockDim = {dims[3], dims[4], dims[5]};
    const unsigned threads = blockDim.x * blockDim.y * blockDim.z;
    for (unsigned bz = 0; bz < gridDim.z; ++bz)
    for (unsigned by = 0; by < gridDim.y; ++by)
    for (unsigned bx = 0; bx < gridDim.x; ++bx) {
        const uint3 block = {bx, by, bz};
        auto run_thread = [&](unsigned t) {
            blockIdx = block;
            threadIdx = {t % blockDim.x, t / blockDim.x % blockDim.y, t / (blockDim.x * blockDim.y)};
            call(kernel, args, std::index_sequence_for<Args...>{});
        };
        if (!cooperative) {
            for (unsigned t = 0; t < threads; ++t) run_thread(t);
            continue;
        }
        std::barrier<> barrier(threads);
        block_barrier = &barrier;
        std::vector<std::thread> pool;
        for (unsigned t = 0; t < threads; ++t) pool.emplace_back(run_thread, t);
        for (auto& thread : pool) thread.join();
    }
}
"""

SCALAR_TYPES = {np.int32: ctypes.c_int32, np.int64: ctypes.c_int64,
                np.float32: ctypes.c_float, np.float64: ctypes.c_double}


def symbol(name):
    return "emulate_" + re.sub(r"\W", "_", name)


def unavailable_reason():
    return None if CXX else "g++ is not on PATH (needed to run the CUDA kernels on the CPU)"


class Emulator:
    """The kernels of ops.gpu.KERNELS compiled for the CPU into one shared library in `workdir`."""

    def __init__(self, workdir):
        parts = [PRELUDE] + [f'#include "{KERNEL_DIR / name}"' for name in gpu.KERNELS] + [LAUNCHER]
        for file, names in gpu.KERNELS.items():
            for name in names:
                cooperative = "true" if name in COOPERATIVE else "false"
                parts.append(f'extern "C" void {symbol(name)}(const unsigned* dims, void** args) '
                             f'{{ emulate(&{name}, dims, args, {cooperative}); }}')
        source, library = Path(workdir) / "kernels_on_cpu.cpp", Path(workdir) / "kernels_on_cpu.so"
        source.write_text("\n".join(parts) + "\n")
        subprocess.run([CXX, "-std=c++20", "-O1", "-shared", "-fPIC", "-pthread", "-Wno-unknown-pragmas",
                        str(source), "-o", str(library)], check=True, capture_output=True, text=True)
        self.library = ctypes.CDLL(str(library))

    def run(self, launch, *arrays):
        """Stands in for ops.gpu._run: the same Launch, NumPy arrays for CuPy ones."""
        for a in arrays:
            assert isinstance(a, np.ndarray) and a.flags.c_contiguous, "kernels take C-contiguous arrays"
        for s in launch.scalars:       # a Python int or float here is the bug of cupy #3186
            assert type(s) in SCALAR_TYPES, f"scalar argument {s!r} has no explicit C type"
        if min(launch.grid) == 0:
            return
        dims = (ctypes.c_uint * 6)(*(tuple(launch.grid) + (1,) * (3 - len(launch.grid))),
                                   *(tuple(launch.block) + (1,) * (3 - len(launch.block))))
        values = [ctypes.c_void_p(a.ctypes.data) for a in arrays]
        values += [SCALAR_TYPES[type(s)](s.item()) for s in launch.scalars]
        args = (ctypes.c_void_p * len(values))(*(ctypes.addressof(v) for v in values))
        getattr(self.library, symbol(launch.kernel))(dims, args)
