"""PyTorch: torch and torch.nn.functional kernels on one device.

f32 is true f32 (TF32 off); i32 ids are int64, torch's index type. Where
torch has no F.rms_norm (before 2.4) the composite rmsnorm computes its
statistics in f32 for f16/bf16 inputs, as Llama's RMSNorm does.
"""
import numpy as np

from . import Skip
from .ops import Backend


def set_torch_precision(torch):
    # f32 must be f32: no TF32 in cuBLAS or cuDNN. benchmark=True: cuDNN
    # picks its fastest algorithms for these fixed shapes, as a tuned
    # deployment would.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True


def import_torch():
    """torch, set up for a GPU baseline, or Skip."""
    try:
        import torch
    except ImportError as e:
        raise Skip(f"torch is not installed ({e})")
    if not torch.cuda.is_available():
        raise Skip("torch sees no CUDA device")
    set_torch_precision(torch)
    return torch


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, torch, device):
        self.torch, self.F, self.device = torch, torch.nn.functional, device
        self.dtypes = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16, "i32": torch.int64}
        self.has_rms_norm = hasattr(self.F, "rms_norm")

    def upload(self, arr, dtype):
        # np.array, not ascontiguousarray, which makes a 0-d array 1-d
        host = np.array(arr, np.int64 if dtype == "i32" else np.float32, order="C")
        return self.torch.from_numpy(host).to(self.device).to(self.dtypes[dtype])

    def to_numpy(self, x):
        return x.detach().double().cpu().numpy()

    def stat(self, x):
        return x.float() if x.dtype in (self.torch.float16, self.torch.bfloat16) else x

    def cast(self, x, dtype):
        want = self.dtypes[dtype]
        return x if x.dtype == want else x.to(want)

    def full(self, shape, value, dtype):
        return self.torch.full(shape, value, dtype=self.dtypes[dtype], device=self.device)

    def add(self, a, b): return self.torch.add(a, b)
    def sub(self, a, b): return self.torch.sub(a, b)
    def mul(self, a, b): return self.torch.mul(a, b)
    def div(self, a, b): return self.torch.div(a, b)
    def maximum(self, a, b): return self.torch.maximum(a, b)
    def minimum(self, a, b): return self.torch.minimum(a, b)
    def pow(self, a, b): return self.torch.pow(a, b)
    def relu(self, x): return self.torch.relu(x)
    def sigmoid(self, x): return self.torch.sigmoid(x)
    def tanh(self, x): return self.torch.tanh(x)
    def exp(self, x): return self.torch.exp(x)
    def log(self, x): return self.torch.log(x)
    def sqrt(self, x): return self.torch.sqrt(x)
    def rsqrt(self, x): return self.torch.rsqrt(x)
    def neg(self, x): return self.torch.neg(x)
    def abs(self, x): return self.torch.abs(x)
    def erf(self, x): return self.torch.erf(x)
    def silu(self, x): return self.F.silu(x)
    def gelu(self, x, approximate): return self.F.gelu(x, approximate="tanh" if approximate else "none")
    def softmax(self, x, axis): return self.torch.softmax(x, dim=axis)

    def layernorm(self, x, gamma, beta, first, eps):
        return self.F.layer_norm(x, tuple(x.shape[first:]), gamma, beta, eps)

    def rmsnorm(self, x, gamma, eps):
        if self.has_rms_norm:
            return self.F.rms_norm(x, (x.shape[-1],), gamma, eps)
        return super().rmsnorm(x, gamma, eps)

    def batchnorm(self, x, scale, bias, mean, var, eps):
        return self.F.batch_norm(x, mean, var, scale, bias, False, 0.0, eps)

    def reduce(self, kind, x, axes, keepdims):
        fn = {"sum": self.torch.sum, "mean": self.torch.mean, "max": self.torch.amax}[kind]
        return fn(x, dim=axes, keepdim=keepdims)

    def global_avgpool(self, x): return self.torch.mean(x, dim=(2, 3), keepdim=True)
    def swap_last(self, x): return x.transpose(-1, -2)
    def matmul(self, a, b): return self.torch.matmul(a, b)
    def transpose(self, x, perm): return x.permute(perm)
    def reshape(self, x, shape): return self.torch.reshape(x, shape)
    def concat(self, xs, axis): return self.torch.cat(list(xs), dim=axis)
    def index(self, x, index): return x[index]
    def embedding(self, table, ids): return self.F.embedding(ids, table)

    def _pad(self, x, padding, value=0.0):
        top, bottom, left, right = padding
        return self.F.pad(x, (left, right, top, bottom), value=value)  # F.pad lists the last dim first

    @staticmethod
    def _symmetric(padding, kernel=None):
        """Padding torch's own argument can express: the same on both sides
        (and, for pools, at most half the kernel)."""
        top, bottom, left, right = padding
        ok = top == bottom and left == right
        return ok and (kernel is None or (2 * top <= kernel[0] and 2 * left <= kernel[1]))

    def conv2d(self, x, w, bias, stride, padding, dilation, groups):
        if self._symmetric(padding):
            return self.F.conv2d(x, w, bias, stride, (padding[0], padding[2]), dilation, groups)
        return self.F.conv2d(self._pad(x, padding), w, bias, stride, 0, dilation, groups)

    def maxpool2d(self, x, kernel, stride, padding, dilation=(1, 1)):
        if self._symmetric(padding, kernel):
            return self.F.max_pool2d(x, kernel, stride, (padding[0], padding[2]), dilation)
        return self.F.max_pool2d(self._pad(x, padding, float("-inf")), kernel, stride, 0, dilation)

    def avgpool2d(self, x, kernel, stride, padding, count_include_pad):
        if self._symmetric(padding, kernel):
            return self.F.avg_pool2d(x, kernel, stride, (padding[0], padding[2]), False, count_include_pad)
        mean = self.F.avg_pool2d(self._pad(x, padding), kernel, stride, 0)  # sum / (KH * KW)
        if count_include_pad:
            return mean
        ones = self.torch.ones((1, 1) + tuple(x.shape[2:]), dtype=self.torch.float32, device=x.device)
        real = self.F.avg_pool2d(self._pad(ones, padding), kernel, stride, 0)  # real cells / (KH * KW)
        return self.torch.div(mean.float(), real)
