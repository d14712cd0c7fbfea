// A tiled single-precision GEMM, the classic kernel to read before reading cuBLAS:
//     C[b] = A[b] @ B[b],   A (M x K), B (K x N), C (M x N), all row-major and contiguous,
// batched over blockIdx.z with element strides between consecutive matrices (0 broadcasts one).
// minigrad uses cuBLAS (cupy.matmul) by default; ops/gpu.use_custom_sgemm(True) switches to this one.
//
// Two ideas make it fast enough to be worth reading:
//  1. Shared-memory tiles. A block computes a TILE_M x TILE_N tile of C. It walks along K in steps of
//     TILE_K; at each step its 256 threads copy a TILE_M x TILE_K slice of A and a TILE_K x TILE_N
//     slice of B from global into shared memory (coalesced: consecutive threads read consecutive
//     addresses), then every thread reuses them from shared memory. Each element loaded from global
//     memory is used TILE_N (A) or TILE_M (B) times instead of once.
//  2. Register blocking. Each thread computes a THREAD_M x THREAD_N = 4 x 4 block of C held in
//     registers: per k it loads 4 values of A and 4 of B from shared memory and does 16 multiply-adds,
//     instead of 2 loads per multiply-add. The thread's rows are ty, ty + 16, ty + 32, ty + 48 (and
//     the same for columns with tx), so a warp reads 16 consecutive floats of Bs: no bank conflicts.
//
// Launch: block (16, 16), grid (ceil(N / 64), ceil(M / 64), batch). Edges are guarded (zeros are
// loaded beyond M, N or K), so any shape works.

#define TILE_M 64
#define TILE_N 64
#define TILE_K 16
#define THREADS_X 16                          // threads per block along N
#define THREADS_Y 16                          // threads per block along M
#define THREAD_M (TILE_M / THREADS_Y)         // 4 rows of C per thread
#define THREAD_N (TILE_N / THREADS_X)         // 4 columns of C per thread
#define THREADS (THREADS_X * THREADS_Y)

extern "C" __global__ void __launch_bounds__(THREADS)
sgemm(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
      int M, int N, int K, long long stride_a, long long stride_b, long long stride_c)
{
    // As is stored transposed (k-major) so that the inner loop reads a column of A as a row; the
    // +1 pads each row so that the transposing stores of 16 consecutive k hit 16 different banks.
    __shared__ float As[TILE_K][TILE_M + 1];
    __shared__ float Bs[TILE_K][TILE_N];

    const int tx = threadIdx.x, ty = threadIdx.y, thread = ty * THREADS_X + tx;
    const int row0 = blockIdx.y * TILE_M, col0 = blockIdx.x * TILE_N;
    A += blockIdx.z * stride_a;
    B += blockIdx.z * stride_b;
    C += blockIdx.z * stride_c;

    float acc[THREAD_M][THREAD_N] = {};
    for (int k0 = 0; k0 < K; k0 += TILE_K) {
        // Stage the tiles: TILE_M*TILE_K and TILE_K*TILE_N elements, THREADS at a time.
        for (int e = thread; e < TILE_M * TILE_K; e += THREADS) {
            const int m = e / TILE_K, k = e % TILE_K;               // consecutive threads: along a row of A
            const int row = row0 + m, col = k0 + k;
            As[k][m] = (row < M && col < K) ? A[(long long)row * K + col] : 0.0f;
        }
        for (int e = thread; e < TILE_K * TILE_N; e += THREADS) {
            const int k = e / TILE_N, n = e % TILE_N;               // consecutive threads: along a row of B
            const int row = k0 + k, col = col0 + n;
            Bs[k][n] = (row < K && col < N) ? B[(long long)row * N + col] : 0.0f;
        }
        __syncthreads();                                            // tiles complete before anyone reads
        #pragma unroll
        for (int k = 0; k < TILE_K; ++k) {
            float a[THREAD_M], b[THREAD_N];
            #pragma unroll
            for (int r = 0; r < THREAD_M; ++r) a[r] = As[k][ty + r * THREADS_Y];
            #pragma unroll
            for (int c = 0; c < THREAD_N; ++c) b[c] = Bs[k][tx + c * THREADS_X];
            #pragma unroll
            for (int r = 0; r < THREAD_M; ++r)
                #pragma unroll
                for (int c = 0; c < THREAD_N; ++c) acc[r][c] += a[r] * b[c];
        }
        __syncthreads();                                            // everyone done before the next tiles
    }
    #pragma unroll
    for (int r = 0; r < THREAD_M; ++r) {
        const int row = row0 + ty + r * THREADS_Y;
        #pragma unroll
        for (int c = 0; c < THREAD_N; ++c) {
            const int col = col0 + tx + c * THREADS_X;
            if (row < M && col < N) C[(long long)row * N + col] = acc[r][c];
        }
    }
}
