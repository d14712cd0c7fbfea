"""The scaling model of benchmarks/results/distributed.md: data-parallel AlexNet past this machine.

    python benchmarks/scaling_model.py

Arithmetic only (it times nothing): every figure follows from the assumptions below, which are the
page's; replace them with your own cluster's and run it again. It prints the page's tables.

Communication: minigrad all-reduces the float32 gradient in three buckets (fc8 + fc7, fc6, the
convolutions; minigrad.distributed.DataParallel with 25 MiB buckets), each a reduce-scatter then an
all-gather, which a ring does in T = 2 (N-1)/N x bytes / B + 2 (N-1) x alpha per bucket.
Overlap: the fc buckets travel while the convolutions' backward runs (the `hidden` share of the step),
where the collective progresses on its own (NCCL's kernels, MPI with an asynchronous progress thread);
the convolutions' bucket starts after conv1's backward and is never hidden.
"""
# --- the network (from the layer shapes of the paper preset) -----------------------------------------
FC_BUCKETS = (4 * (4096 * 4096 + 4096 + 4096 * 1000 + 1000), 4 * (9216 * 4096 + 4096))   # bytes, fc8+fc7, fc6
CONV_BYTES = 4 * (96 * 3 * 11 * 11 + 96 + 256 * 48 * 25 + 256 + 384 * 256 * 9 + 384 + 384 * 192 * 9 + 384
                  + 256 * 192 * 9 + 256)
FORWARD_MACS = {"conv1": 55 * 55 * 96 * 363, "conv2": 27 * 27 * 256 * 1200, "conv3": 13 * 13 * 384 * 2304,
                "conv4": 13 * 13 * 384 * 1728, "conv5": 13 * 13 * 256 * 1728,
                "fc6": 9216 * 4096, "fc7": 4096 * 4096, "fc8": 4096 * 1000}
# A step is forward + backward, backward twice the forward (input and weight gradients): 3x, counted
# as cpu_alexnet_vm.md counts its 139 GFLOP per 32 images (conv1's input gradient included).
STEP_FLOP = 3 * 2 * sum(FORWARD_MACS.values())                       # per image
CONV_MACS = sum(macs for name, macs in FORWARD_MACS.items() if name.startswith("conv"))
CONV_BACKWARD_SHARE = 2 * CONV_MACS / (3 * sum(FORWARD_MACS.values()))  # of a step's FLOPs

# --- the machines and links (assumptions, see the page) ----------------------------------------------
LOCAL_BATCH = 128                     # weak scaling: the paper's batch on every replica
MACHINES = [  # name, seconds per step at LOCAL_BATCH, share of the step that hides the fc buckets
    ("this VM, 2 cores (measured)", 0.966 * LOCAL_BATCH / 32, 0.360 / 0.966),  # cpu_alexnet_vm.md, per-layer table
    ("CPU node, 3 TFLOP/s (assumed)", STEP_FLOP * LOCAL_BATCH / 3e12, 0.360 / 0.966),  # minigrad's CPU profile
    ("H100, minigrad's kernels, 15 TFLOP/s (assumed)", STEP_FLOP * LOCAL_BATCH / 15e12, CONV_BACKWARD_SHARE),
    ("H100, cuDNN-class, 150 TFLOP/s (assumed)", STEP_FLOP * LOCAL_BATCH / 150e12, CONV_BACKWARD_SHARE),
]
LINKS_GBPS = (10, 25, 100, 400)
EFFICIENCY = 0.9                      # of the link rate reached on large messages
ALPHA = 10e-6                         # seconds per hop of the ring
RANKS = (2, 8, 64, 512)
STRONG_RANKS = (2, 4, 8, 16)          # global batch 128: local batches of 64 down to 8


def ring(nbytes, ranks, gbps, buckets=1):
    """Seconds to all-reduce `nbytes` in `buckets` buckets over a ring of `ranks` on a `gbps` link."""
    bandwidth = EFFICIENCY * gbps * 1e9 / 8
    return 2 * (ranks - 1) / ranks * nbytes / bandwidth + 2 * (ranks - 1) * ALPHA * buckets


def exposed(ranks, gbps, window, overlap=True):
    """Communication seconds a step waits for: the fc buckets beyond the window, then the conv bucket."""
    fc = ring(sum(FC_BUCKETS), ranks, gbps, len(FC_BUCKETS))
    return (max(0.0, fc - window) if overlap else fc) + ring(CONV_BYTES, ranks, gbps)


def main():
    total = sum(FC_BUCKETS) + CONV_BYTES
    print(f"gradient {total / 1e6:.1f} MB (fc {sum(FC_BUCKETS) / 1e6:.1f} MB, conv {CONV_BYTES / 1e6:.1f} MB); "
          f"each rank sends and receives 2 (N-1)/N of it a step ({total / 1e6:.1f} MB at N = 2, "
          f"{2 * total / 1e6:.1f} MB as N grows); step {STEP_FLOP / 1e9:.2f} GFLOP per image; conv backward {CONV_BACKWARD_SHARE:.0%} of a step's FLOPs\n")
    print("| link | " + " | ".join(f"{n} ranks" if n == 2 else str(n) for n in RANKS) + " | limit 2 x bytes / B |")
    print("|---" * (len(RANKS) + 2) + "|")
    for gbps in LINKS_GBPS:
        cells = [f"{1e3 * (ring(sum(FC_BUCKETS), n, gbps, 2) + ring(CONV_BYTES, n, gbps)):.1f} ms" for n in RANKS]
        print(f"| {gbps} Gb/s | " + " | ".join(cells) + f" | {2e3 * total / (EFFICIENCY * gbps * 1e9 / 8):.1f} ms |")

    print("\nWeak scaling (local batch 128): N where the fc buckets outgrow the window; efficiency at 64 ranks "
          "with the overlap / without\n")
    print("| compute per step | step | hidden window | " + " | ".join(f"{g} Gb/s" for g in LINKS_GBPS) + " |")
    print("|---" * (len(LINKS_GBPS) + 3) + "|")
    for name, step, share in MACHINES:
        cells = []
        for gbps in LINKS_GBPS:
            crossing = next((n for n in range(2, 10001) if ring(sum(FC_BUCKETS), n, gbps, 2) > share * step), None)
            overlapped, plain = (step / (step + exposed(64, gbps, share * step, overlap)) for overlap in (True, False))
            cells.append(f"{f'N = {crossing}' if crossing else 'beyond 10,000'}; {overlapped:.0%} / {plain:.0%}")
        print(f"| {name} | {1e3 * step:.1f} ms | {1e3 * share * step:.1f} ms ({share:.0%}) | "
              + " | ".join(cells) + " |")

    print("\nStrong scaling (global batch 128 cut into N slices, the paper's recipe): the best speed-up over one "
          f"rank for N in {STRONG_RANKS} and the N that gives it, with the overlap / without\n")
    print("| compute per step | " + " | ".join(f"{g} Gb/s" for g in LINKS_GBPS) + " |")
    print("|---" * (len(LINKS_GBPS) + 1) + "|")
    for name, step, share in MACHINES:
        cells = []
        for gbps in LINKS_GBPS:
            best = []
            for overlap in (True, False):
                speedups = {n: step / (step / n + exposed(n, gbps, share * step / n, overlap)) for n in STRONG_RANKS}
                n = max(speedups, key=speedups.get)
                best.append(f"{speedups[n]:.1f}x at {n}" if speedups[n] > 1 else "none")
            cells.append(" / ".join(best))
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
