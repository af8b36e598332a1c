"""jax.numpy, jax.nn and jax.lax on jax's default device.

f32 matmuls and convolutions use Precision.HIGHEST (otherwise XLA may use
TF32 on the GPU). The composite normalisations and the average pools
compute in f32 for f16/bf16 inputs, as flax's layers do.
"""
import numpy as np

from .ops import Backend


class JaxBackend(Backend):
    name = "jax"

    def __init__(self, jax):
        import jax.numpy as jnp
        self.jax, self.jnp, self.lax = jax, jnp, jax.lax
        self.dtypes = {"f32": jnp.float32, "f16": jnp.float16, "bf16": jnp.bfloat16, "i32": jnp.int32}

    def upload(self, arr, dtype):
        # np.array, not ascontiguousarray, which makes a 0-d array 1-d
        host = np.array(arr, np.int32 if dtype == "i32" else np.float32, order="C")
        return self.jax.device_put(self.jnp.asarray(host, dtype=self.dtypes[dtype]))

    def to_numpy(self, x):
        if self.jnp.issubdtype(x.dtype, self.jnp.floating):
            x = x.astype(self.jnp.float32)
        return np.asarray(x).astype(np.float64)

    def cast(self, x, dtype):
        want = self.dtypes[dtype]
        return x if x.dtype == want else x.astype(want)

    def stat(self, x):
        return x.astype(self.jnp.float32) if x.dtype in (self.jnp.float16, self.jnp.bfloat16) else x

    def _precision(self, x):
        return self.lax.Precision.HIGHEST if x.dtype == self.jnp.float32 else None

    def full(self, shape, value, dtype):
        return self.jnp.full(shape, value, dtype=self.dtypes[dtype])

    def add(self, a, b): return self.jnp.add(a, b)
    def sub(self, a, b): return self.jnp.subtract(a, b)
    def mul(self, a, b): return self.jnp.multiply(a, b)
    def div(self, a, b): return self.jnp.divide(a, b)
    def maximum(self, a, b): return self.jnp.maximum(a, b)
    def minimum(self, a, b): return self.jnp.minimum(a, b)
    def pow(self, a, b): return self.jnp.power(a, b)
    def relu(self, x): return self.jax.nn.relu(x)
    def sigmoid(self, x): return self.jax.nn.sigmoid(x)
    def tanh(self, x): return self.jnp.tanh(x)
    def exp(self, x): return self.jnp.exp(x)
    def log(self, x): return self.jnp.log(x)
    def sqrt(self, x): return self.jnp.sqrt(x)
    def rsqrt(self, x): return self.lax.rsqrt(x)
    def neg(self, x): return self.jnp.negative(x)
    def abs(self, x): return self.jnp.abs(x)
    def erf(self, x): return self.lax.erf(x)
    def silu(self, x): return self.jax.nn.silu(x)
    def gelu(self, x, approximate): return self.jax.nn.gelu(x, approximate=approximate)  # its default is tanh
    def softmax(self, x, axis): return self.jax.nn.softmax(x, axis=axis)

    def reduce(self, kind, x, axes, keepdims):
        fn = {"sum": self.jnp.sum, "mean": self.jnp.mean, "max": self.jnp.max}[kind]
        return fn(x, axis=axes, keepdims=keepdims)

    def swap_last(self, x): return self.jnp.swapaxes(x, -1, -2)
    def matmul(self, a, b): return self.jnp.matmul(a, b, precision=self._precision(a))
    def transpose(self, x, perm): return self.jnp.transpose(x, perm)
    def reshape(self, x, shape): return self.jnp.reshape(x, shape)
    def concat(self, xs, axis): return self.jnp.concatenate(list(xs), axis=axis)
    def index(self, x, index): return x[index]
    def embedding(self, table, ids): return self.jnp.take(table, ids, axis=0)  # ids are range-checked on load

    def conv2d(self, x, w, bias, stride, padding, dilation, groups):
        top, bottom, left, right = padding
        y = self.lax.conv_general_dilated(
            x, w, window_strides=stride, padding=((top, bottom), (left, right)),
            lhs_dilation=(1, 1), rhs_dilation=dilation, dimension_numbers=("NCHW", "OIHW", "NCHW"),
            feature_group_count=groups, precision=self._precision(x))
        return y if bias is None else y + bias.reshape(1, -1, 1, 1)

    def _reduce_windows(self, x, kernel, stride, padding, init, op, dilation=(1, 1)):
        top, bottom, left, right = padding
        return self.lax.reduce_window(x, init, op, (1, 1) + tuple(kernel), (1, 1) + tuple(stride),
                                      ((0, 0), (0, 0), (top, bottom), (left, right)),
                                      window_dilation=(1, 1) + tuple(dilation))

    def maxpool2d(self, x, kernel, stride, padding, dilation=(1, 1)):
        # reduce_window pads with the init value: -inf never wins
        return self._reduce_windows(x, kernel, stride, padding, np.array(-np.inf, dtype=x.dtype), self.lax.max,
                                    dilation)

    def avgpool2d(self, x, kernel, stride, padding, count_include_pad):
        zero = np.array(0, np.float32)
        total = self._reduce_windows(self.stat(x), kernel, stride, padding, zero, self.lax.add)
        if count_include_pad:
            return total / (kernel[0] * kernel[1])
        ones = np.ones((1, 1) + tuple(x.shape[2:]), np.float32)  # a constant: XLA folds the counts
        return total / self._reduce_windows(ones, kernel, stride, padding, zero, self.lax.add)
