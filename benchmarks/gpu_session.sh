#!/usr/bin/env bash
# minigrad's GPU half meets a GPU (issue 27): everything the first lent device must run, as one script,
# so that the device's few minutes go to running, not writing. Every step keeps its output in $OUT.
#
#   bash benchmarks/gpu_session.sh             # on the device machine (its $OUT comes back to the session)
#   bash benchmarks/gpu_session.sh --dry-run   # on a CPU: the same steps, those that need a GPU skipping,
#                                              # the long ones shortened (checks the script itself)
#
# Steps, in the order a short budget should spend itself (each under its own timeout):
#   1. the GPU tests and the kernels' compilation;
#   2. train.py --device cuda on the embedded default, 2 epochs, then resumed on the CPU for a third
#      (a checkpoint crosses devices) with its time and accuracy;
#   3. benchmarks/gpu_alexnet.py: training throughput against PyTorch + cuDNN (TF32 off on both), each
#      kernel's bandwidth against the device's copy, sgemm.cu against cuBLAS;
#   4. the data loader's images/s on every core, to set beside the GPU step's images/s;
#   5. the whole suite with the GPU present.
set -u
cd "$(dirname "$0")/.."
dry_run=0
[ "${1:-}" = "--dry-run" ] && dry_run=1
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
echo "gpu_session: writing to $OUT (dry run: $dry_run)"

run() {   # run NAME SECONDS COMMAND...: its output in $OUT/NAME.log, its status and time in $OUT/status.txt
  local name=$1 seconds=$2
  shift 2
  local start=$SECONDS
  timeout "$seconds" "$@" > "$OUT/$name.log" 2>&1
  local status=$?
  echo "$name: exit $status after $((SECONDS - start)) s" | tee -a "$OUT/status.txt"
}

if [ $dry_run = 0 ]; then
  pip install -q --no-deps -e . > "$OUT/install.log" 2>&1
  nvidia-smi > "$OUT/device.txt" 2>&1
fi
python -c "import minigrad as mg, numpy; print('minigrad', mg.__version__, 'numpy', numpy.__version__);
print('GPU:', mg.backend.gpu_unavailable_reason() or 'available')" >> "$OUT/device.txt" 2>&1
cat "$OUT/device.txt"

run 1-gpu-tests 300 python -m pytest -q -rs tests/test_gpu.py tests/test_kernels_compile.py

device=cuda
epochs=2
[ $dry_run = 1 ] && device=cpu && epochs=1
run 2-train-cuda 420 python examples/alexnet/train.py --device "$device" --epochs "$epochs" --out "$OUT/run"
run 2-resume-cpu 300 python examples/alexnet/train.py --resume "$OUT/run" --device cpu --epochs $((epochs + 1))

if [ $dry_run = 1 ]; then
  run 3-gpu-alexnet 60 python -c "import sys; sys.path.insert(0, 'benchmarks'); import gpu_alexnet; print('imports')"
else
  run 3-gpu-alexnet 420 python benchmarks/gpu_alexnet.py --batch 256 --out "$OUT"
fi

jpegs="$OUT/jpegs"
count=2000
[ $dry_run = 1 ] && count=64
run 4-make-jpegs 120 python benchmarks/make_jpegs.py --out "$jpegs" --count "$count"
run 4-loader 300 python benchmarks/loader.py --data "$jpegs" --workers "$(nproc)" --images "$count" --repeats 1

[ $dry_run = 0 ] && run 5-suite 600 python -m pytest -q -x -rs
echo "gpu_session: done; $OUT/status.txt:"
cat "$OUT/status.txt"
