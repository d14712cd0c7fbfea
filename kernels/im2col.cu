// im2col and col2im: convolution as one GEMM (the layout of minigrad/ops/cpu.py).
//
// im2col copies every kh x kw window of the zero-padded input x (N, C, H, W) into a column of
//     cols (C*kh*kw, N*OH*OW):  row (c, i, j), column (n, oh, ow)
//     cols[(c*kh + i)*kw + j][(n*OH + oh)*OW + ow] = x[n][c][oh*sh - ph + i][ow*sw - pw + j]  (0 outside)
// so that the convolution is weight (OC, C*kh*kw) @ cols. Rows are channel-major, so the rows of one
// group are one contiguous block and a grouped convolution is a batched GEMM.
//
// col2im is its adjoint, the backward of convolution with respect to x: every input pixel sums the
// column entries that were copied from it. It is written as a gather (one thread per input pixel
// reads the at most ceil(kh/sh)*ceil(kw/sw) entries that came from it), as Caffe's
// col2im_gpu_kernel does, so it needs no atomics and its result does not depend on thread timing.
//
// Both are templates, instantiated for float and double by ops/gpu.py ("im2col<float>", ...).
// Consecutive threads handle consecutive ow (or w), so their writes are coalesced.

template <typename T>
__global__ void im2col(const T* __restrict__ x, T* __restrict__ cols, int total,
                       int N, int C, int H, int W, int kh, int kw, int sh, int sw,
                       int ph, int pw, int OH, int OW)
{
    // One thread per (c, n, oh, ow): it reads one window and writes its kh*kw rows of one column.
    const int index = blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= total) return;                                     // total = C*N*OH*OW
    const int ow = index % OW;
    const int oh = (index / OW) % OH;
    const int n = (index / (OW * OH)) % N;
    const int c = index / (OW * OH * N);
    const int column = (n * OH + oh) * OW + ow;
    const int columns = N * OH * OW;
    const int h0 = oh * sh - ph, w0 = ow * sw - pw;                 // top-left of the window in x
    const T* image = x + (n * C + c) * H * W;
    T* out = cols + (c * kh * kw) * columns + column;               // row (c, 0, 0) of this column
    for (int i = 0; i < kh; ++i) {
        const int h = h0 + i;
        for (int j = 0; j < kw; ++j) {
            const int w = w0 + j;
            const bool inside = h >= 0 && h < H && w >= 0 && w < W;
            out[(i * kw + j) * columns] = inside ? image[h * W + w] : T(0);
        }
    }
}

template <typename T>
__global__ void col2im(const T* __restrict__ cols, T* __restrict__ dx, int total,
                       int N, int C, int H, int W, int kh, int kw, int sh, int sw,
                       int ph, int pw, int OH, int OW)
{
    // One thread per input pixel (n, c, h, w) of dx, in NCHW order.
    const int index = blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= total) return;                                     // total = N*C*H*W
    const int w = index % W;
    const int h = (index / W) % H;
    const int c = (index / (W * H)) % C;
    const int n = index / (W * H * C);
    const int hp = h + ph, wp = w + pw;                             // the pixel in padded coordinates
    // Output rows oh whose window [oh*sh, oh*sh + kh) holds hp: (hp - kh)/sh < oh <= hp/sh.
    const int oh_start = hp < kh ? 0 : (hp - kh) / sh + 1;
    const int oh_end = min(hp / sh + 1, OH);
    const int ow_start = wp < kw ? 0 : (wp - kw) / sw + 1;
    const int ow_end = min(wp / sw + 1, OW);
    const int columns = N * OH * OW;
    T sum = 0;
    for (int oh = oh_start; oh < oh_end; ++oh) {
        const int i = hp - oh * sh;                                 // the pixel's offset in that window
        for (int ow = ow_start; ow < ow_end; ++ow) {
            const int j = wp - ow * sw;
            sum += cols[((c * kh + i) * kw + j) * columns + (n * OH + oh) * OW + ow];
        }
    }
    dx[index] = sum;
}
