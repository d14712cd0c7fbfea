// Local response normalisation across channels (section 3.3), the paper's formula as printed:
//     scale_c = k + alpha * sum_{j = max(first, c - n/2)}^{min(last, c + n/2)} a_j^2    (alpha NOT / n)
//     b_c     = a_c * scale_c^-beta
// where [first, last] is c's group: the C channels split into C / group_channels equal contiguous
// groups (the paper's two towers, section 3.2, normalise their own maps; one group is plain LRN).
// Its gradient (the window is symmetric and clipped alike, so "the channels whose window holds c" is
// again the window around c):
//     da_c = dy_c * scale_c^-beta - 2 alpha beta a_c * sum_{j near c} dy_j b_j / scale_j
//
// One thread per pixel column (n, h, w) walks down the C channels once, keeping the window sum as a
// running total: add the channel entering at c + n/2, subtract the one leaving at c - n/2 - 1
// (Caffe's LRNFillScale / LRNComputeDiff), starting afresh at each group's first channel. Each value
// is read once per role and nothing is shared between threads, so there are no atomics. Consecutive
// threads hold consecutive w: at every channel step a warp reads and writes consecutive addresses.

template <typename T>
__global__ void lrn_forward(const T* __restrict__ a, T* __restrict__ b, T* __restrict__ scale,
                            int total, int C, int HW, int size, int group_channels, T alpha, T beta, T k)
{
    const int index = blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= total) return;                                     // total = N*H*W
    const int n = index / HW, pixel = index % HW;
    const int offset = n * C * HW + pixel;                          // (n, channel 0, pixel)
    const T* a_col = a + offset;
    T* b_col = b + offset;
    T* scale_col = scale + offset;
    const int half = size / 2;
    T window = 0;                                                   // sum of a_j^2 over the window
    for (int c = 0; c < C; ++c) {
        const int first = c - c % group_channels, end = first + group_channels;
        if (c == first) {                                           // a new group: its first window
            window = 0;
            for (int j = first; j < first + half && j < end; ++j) window += a_col[j * HW] * a_col[j * HW];
        }
        const int enter = c + half, leave = c - half - 1;
        if (enter < end) window += a_col[enter * HW] * a_col[enter * HW];
        if (leave >= first) window -= a_col[leave * HW] * a_col[leave * HW];
        const T s = k + alpha * window;
        scale_col[c * HW] = s;
        b_col[c * HW] = a_col[c * HW] * pow(s, -beta);
    }
}

template <typename T>
__global__ void lrn_backward(const T* __restrict__ dy, const T* __restrict__ a, const T* __restrict__ b,
                             const T* __restrict__ scale, T* __restrict__ da,
                             int total, int C, int HW, int size, int group_channels, T alpha, T beta)
{
    const int index = blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= total) return;                                     // total = N*H*W
    const int n = index / HW, pixel = index % HW;
    const int offset = n * C * HW + pixel;
    dy += offset; a += offset; b += offset; scale += offset; da += offset;
    const int half = size / 2;
    // ratio_j = dy_j * b_j / scale_j, summed over the window as a running total.
    T window = 0;
    const T two_alpha_beta = T(2) * alpha * beta;
    for (int c = 0; c < C; ++c) {
        const int first = c - c % group_channels, end = first + group_channels;
        if (c == first) {
            window = 0;
            for (int j = first; j < first + half && j < end; ++j) window += dy[j * HW] * b[j * HW] / scale[j * HW];
        }
        const int enter = c + half, leave = c - half - 1;
        if (enter < end) window += dy[enter * HW] * b[enter * HW] / scale[enter * HW];
        if (leave >= first) window -= dy[leave * HW] * b[leave * HW] / scale[leave * HW];
        da[c * HW] = dy[c * HW] * pow(scale[c * HW], -beta) - two_alpha_beta * a[c * HW] * window;
    }
}
