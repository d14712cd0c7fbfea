// The paper's update (section 5), fused into one pass over each parameter:
//     v <- momentum * v - weight_decay * eps * w - eps * dL/dw
//     w <- w + v
// Written with CuPy array expressions it is four elementwise kernels, each reading and writing whole
// arrays (fc6's weight alone is 151 MB in float32); fused, every element of w, v and dL/dw is read
// once and w and v are written once. One thread per element; the elements are independent.

template <typename T>
__global__ void sgd_update(T* __restrict__ w, T* __restrict__ v, const T* __restrict__ grad,
                           int total, T lr, T momentum, T weight_decay)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    const T velocity = momentum * v[i] - weight_decay * lr * w[i] - lr * grad[i];
    v[i] = velocity;
    w[i] += velocity;
}
