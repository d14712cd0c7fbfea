// Max pooling over kh x kw windows moved by (sh, sw), overlapping when the stride is smaller than the
// window (AlexNet: 3x3, stride 2, section 3.4). Conventions of minigrad/ops/cpu.py:
//  - the input is padded with -infinity, so a padded position never wins against a real value;
//  - argmax (N, C, OH, OW), int, is the window-local index i*kw + j of the FIRST maximum in row-major
//    order (a later equal value does not replace it), as Caffe and PyTorch choose among ties;
//  - a window holding NaN gives NaN, its argmax the LAST NaN in row-major order: PyTorch's rule
//    (val > max || isnan(val)), so that a diverging run's NaN is never pooled away;
//  - backward routes each window's gradient to that one input, so gradient is conserved under ties;
//  - (ph, pw) are the leading pads (top, left); trailing pads and ceil_mode only change OH and OW
//    (ops/cpu.py pool_geometry), and every window holds at least one real value.
// Backward is a gather: one thread per input pixel sums dy over the windows whose argmax points at
// it. No atomics, and the sum is taken in a fixed order, so the result is deterministic.

template <typename T> __device__ T negative_infinity();
template <> __device__ float negative_infinity<float>() { return -__int_as_float(0x7f800000); }
template <> __device__ double negative_infinity<double>() { return -__longlong_as_double(0x7ff0000000000000LL); }

template <typename T> __device__ bool is_nan(T value) { return value != value; }  // (no math header in NVRTC)

template <typename T>
__global__ void maxpool_forward(const T* __restrict__ x, T* __restrict__ y, int* __restrict__ argmax,
                                int total, int C, int H, int W, int kh, int kw, int sh, int sw,
                                int ph, int pw, int OH, int OW)
{
    // One thread per output (n, c, oh, ow), in NCHW order.
    const int index = blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= total) return;                                     // total = N*C*OH*OW
    const int ow = index % OW;
    const int oh = (index / OW) % OH;
    const int nc = index / (OW * OH);                               // n*C + c
    const T* image = x + nc * H * W;
    const int h0 = oh * sh - ph, w0 = ow * sw - pw;
    T best = negative_infinity<T>();
    // A window of -inf alone keeps its first position inside the input (PyTorch's rule, and the CPU's).
    int best_index = max(0, -h0) * kw + max(0, -w0);
    for (int i = 0; i < kh; ++i) {
        const int h = h0 + i;
        for (int j = 0; j < kw; ++j) {
            const int w = w0 + j;
            const T value = (h >= 0 && h < H && w >= 0 && w < W) ? image[h * W + w] : negative_infinity<T>();
            if (value > best || is_nan(value)) {     // the first maximum stays; a NaN wins, a later NaN after it
                best = value;
                best_index = i * kw + j;
            }
        }
    }
    y[index] = best;
    argmax[index] = best_index;
}

template <typename T>
__global__ void maxpool_backward(const T* __restrict__ dy, const int* __restrict__ argmax,
                                 T* __restrict__ dx, int total, int C, int H, int W, int kh, int kw,
                                 int sh, int sw, int ph, int pw, int OH, int OW)
{
    // One thread per input pixel (n, c, h, w), in NCHW order.
    const int index = blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= total) return;                                     // total = N*C*H*W
    const int w = index % W;
    const int h = (index / W) % H;
    const int nc = index / (W * H);
    const int hp = h + ph, wp = w + pw;                             // the pixel in padded coordinates
    // The windows that contain it: (hp - kh)/sh < oh <= hp/sh, and the same for ow.
    const int oh_start = hp < kh ? 0 : (hp - kh) / sh + 1;
    const int oh_end = min(hp / sh + 1, OH);
    const int ow_start = wp < kw ? 0 : (wp - kw) / sw + 1;
    const int ow_end = min(wp / sw + 1, OW);
    const T* dy_map = dy + nc * OH * OW;
    const int* argmax_map = argmax + nc * OH * OW;
    T sum = 0;
    for (int oh = oh_start; oh < oh_end; ++oh) {
        for (int ow = ow_start; ow < ow_end; ++ow) {
            const int here = (hp - oh * sh) * kw + (wp - ow * sw);  // this pixel's index in that window
            if (argmax_map[oh * OW + ow] == here) sum += dy_map[oh * OW + ow];
        }
    }
    dx[index] = sum;
}
