"""numpy on the CPU: the numpy baseline, and the self-test's float64 reference."""
import math

import numpy as np

from .ops import Backend


def round_bf16(x):
    """float32 rounded to the nearest bfloat16 (ties to even), as float32."""
    x = np.array(x, np.float32)
    bits = x.reshape(-1).view(np.uint32)  # 1-d: numpy scalar arithmetic would widen 0-d values
    up = np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))
    rounded = ((bits + up) & np.uint32(0xFFFF0000)).view(np.float32).reshape(x.shape)
    return np.where(np.isnan(x), x, rounded)


def _erf():
    try:
        from scipy.special import erf
        return erf
    except ImportError:
        return np.vectorize(math.erf, otypes=[np.float64])


class NumpyBackend(Backend):
    """`exact`: float64, nothing rounded. Otherwise float32 with every node
    rounded to its storage dtype, as anvil stores it."""
    name = "numpy"

    def __init__(self, exact=False):
        self.exact = exact
        self.ft = np.float64 if exact else np.float32
        self._erf = _erf()

    def upload(self, arr, dtype):
        if dtype == "i32":
            return np.asarray(arr, np.int64)
        return self.cast(np.asarray(arr, self.ft), dtype)

    def to_numpy(self, x):
        return np.asarray(x, np.float64)

    def cast(self, x, dtype):
        if dtype == "i32" or np.asarray(x).dtype.kind in "iu":
            return x
        x = np.asarray(x, self.ft)
        if self.exact or dtype == "f32":
            return x
        if dtype == "f16":
            return x.astype(np.float16).astype(np.float32)
        return round_bf16(x)

    def full(self, shape, value, dtype):
        return np.full(shape, value, self.ft)

    def _f(self, x):
        # 0-d results come back as numpy scalars, which numpy < 2 widens to
        # float64 next to a Python float: back to an array of ft
        return np.asarray(x, self.ft)

    def add(self, a, b): return self._f(np.add(a, b))
    def sub(self, a, b): return self._f(np.subtract(a, b))
    def mul(self, a, b): return self._f(np.multiply(a, b))
    def div(self, a, b): return self._f(np.divide(a, b))
    def maximum(self, a, b): return np.maximum(a, b)
    def minimum(self, a, b): return np.minimum(a, b)
    def pow(self, a, b): return self._f(np.power(a, b))
    def relu(self, x): return np.maximum(x, self.ft(0))
    def sigmoid(self, x): return self._f(1 / (1 + np.exp(-x)))
    def tanh(self, x): return np.tanh(x)
    def exp(self, x): return np.exp(x)
    def log(self, x): return np.log(x)
    def sqrt(self, x): return np.sqrt(x)
    def rsqrt(self, x): return self._f(1 / np.sqrt(x))
    def neg(self, x): return np.negative(x)
    def abs(self, x): return np.abs(x)
    def erf(self, x): return self._f(self._erf(x))

    def reduce(self, kind, x, axes, keepdims):
        fn = {"sum": np.sum, "mean": np.mean, "max": np.max}[kind]
        return self._f(fn(x, axis=axes, keepdims=keepdims))

    def swap_last(self, x): return np.swapaxes(x, -1, -2)
    def matmul(self, a, b): return np.matmul(a, b)
    def transpose(self, x, perm): return np.transpose(x, perm)
    def reshape(self, x, shape): return np.reshape(x, shape)
    def concat(self, xs, axis): return np.concatenate(xs, axis=axis)
    def index(self, x, index): return x[index]
    def embedding(self, table, ids): return table[ids]

    @staticmethod
    def _windows(x, kernel, stride, dilation, padding, fill):
        """x [N, C, H, W] padded with `fill`, as [N, C, KH, KW, OH, OW]: the
        input under each kernel tap at every output position (floor mode)."""
        top, bottom, left, right = padding
        xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=fill)
        (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
        oh = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
        ow = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
        out = np.empty(x.shape[:2] + (kh, kw, oh, ow), x.dtype)
        for i in range(kh):
            for j in range(kw):
                rows = slice(i * dh, i * dh + (oh - 1) * sh + 1, sh)
                cols = slice(j * dw, j * dw + (ow - 1) * sw + 1, sw)
                out[:, :, i, j] = xp[:, :, rows, cols]
        return out

    def conv2d(self, x, w, bias, stride, padding, dilation, groups):
        n, o, (_, cg, kh, kw) = x.shape[0], w.shape[0], w.shape
        win = self._windows(x, (kh, kw), stride, dilation, padding, 0.0)
        oh, ow = win.shape[4:]
        # Channels c = g * cg + k: the windows of group g are one matrix
        # [cg * KH * KW, OH * OW], multiplied by that group's filters.
        cols = win.reshape(n, groups, cg * kh * kw, oh * ow)
        y = np.matmul(w.reshape(1, groups, o // groups, cg * kh * kw), cols).reshape(n, o, oh, ow)
        return y if bias is None else y + bias.reshape(1, o, 1, 1)

    def maxpool2d(self, x, kernel, stride, padding, dilation=(1, 1)):
        return self._windows(x, kernel, stride, dilation, padding, -np.inf).max(axis=(2, 3))

    def avgpool2d(self, x, kernel, stride, padding, count_include_pad):
        total = self._windows(x, kernel, stride, (1, 1), padding, 0.0).sum(axis=(2, 3))
        if count_include_pad:
            return self._f(total / (kernel[0] * kernel[1]))
        real = self._windows(np.ones_like(x), kernel, stride, (1, 1), padding, 0.0).sum(axis=(2, 3))
        return self._f(total / real)
