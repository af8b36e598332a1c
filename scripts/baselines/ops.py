"""The op semantics of shared/spec/model-format.md, written once.

A builder reads a node's attributes once, when the program is planned, and
returns fn(be, args): the node computed with backend `be`'s primitives
(matmul, conv2d, pools, softmax, layernorm, ...). Each backend implements
the primitives with its framework's own kernels; what a framework lacks falls
back to the composites of Backend, written from the spec's formulas.
"""
import math


def pair(v):
    """kernel, stride or dilation: an int or [h, w]."""
    return (int(v), int(v)) if isinstance(v, (int, float)) else (int(v[0]), int(v[-1]))


def pads(v):
    """padding: an int, [h, w] or [top, left, bottom, right], as (top, bottom, left, right)."""
    v = [int(v)] if isinstance(v, (int, float)) else [int(p) for p in v]
    if len(v) == 4:
        return v[0], v[2], v[1], v[3]
    return v[0], v[0], v[-1], v[-1]


def _unary(prim):
    return lambda node: lambda be, a: getattr(be, prim)(a[0])


def _binary(prim):
    return lambda node: lambda be, a: getattr(be, prim)(a[0], a[1])


def _constant(node):
    shape, value, dtype = tuple(int(d) for d in node.get("shape", [])), float(node["value"]), node["dtype"]
    return lambda be, a: be.full(shape, value, dtype)


def _gelu(node):
    approximate = node.get("approximate", "none") == "tanh"
    return lambda be, a: be.gelu(a[0], approximate)


def _softmax(node):
    axis = int(node.get("axis", -1))
    return lambda be, a: be.softmax(a[0], axis)


def _layernorm(node):
    axis, eps = int(node.get("axis", -1)), float(node.get("eps", 1e-5))
    return lambda be, a: be.layernorm(a[0], a[1], a[2], axis % a[0].ndim, eps)


def _rmsnorm(node):
    eps = float(node.get("eps", 1e-6))
    return lambda be, a: be.rmsnorm(a[0], a[1], eps)


def _reduce(kind):
    def build(node):
        axes, keepdims = tuple(int(x) for x in node["axes"]), bool(node.get("keepdims", False))
        if not axes:  # the identity (torch would reduce over every axis)
            return lambda be, a: a[0]
        return lambda be, a: be.reduce(kind, a[0], axes, keepdims)
    return build


def _matmul(node):
    ta, tb = bool(node.get("transpose_a", False)), bool(node.get("transpose_b", False))
    return lambda be, a: be.matmul(be.swap_last(a[0]) if ta else a[0], be.swap_last(a[1]) if tb else a[1])


def _transpose(node):
    perm = tuple(int(p) for p in node["perm"])
    return lambda be, a: be.transpose(a[0], perm)


def _reshape(node):
    shape = tuple(int(d) for d in node["shape"])
    return lambda be, a: be.reshape(a[0], shape)


def _concat(node):
    axis = int(node["axis"])
    return lambda be, a: be.concat(a, axis)


def _slice(node):
    axis, start, step = int(node["axis"]), int(node.get("start", 0)), int(node.get("step", 1))
    end = None if node.get("end") is None else int(node["end"])

    def fn(be, a):
        index = [slice(None)] * a[0].ndim
        index[axis % a[0].ndim] = slice(start, end, step)
        return be.index(a[0], tuple(index))
    return fn


def _conv2d(node):
    stride, dilation = pair(node.get("stride", 1)), pair(node.get("dilation", 1))
    padding, groups = pads(node.get("padding", 0)), int(node.get("groups", 1))
    return lambda be, a: be.conv2d(a[0], a[1], a[2] if len(a) > 2 else None, stride, padding, dilation, groups)


def _pool(kind):
    def build(node):
        kernel, stride = pair(node["kernel"]), pair(node.get("stride", node["kernel"]))
        padding = pads(node.get("padding", 0))
        if kind == "max":
            dilation = pair(node.get("dilation", 1))
            return lambda be, a: be.maxpool2d(a[0], kernel, stride, padding, dilation)
        include = bool(node.get("count_include_pad", False))
        return lambda be, a: be.avgpool2d(a[0], kernel, stride, padding, include)
    return build


def _batchnorm(node):
    eps = float(node.get("eps", 1e-5))
    return lambda be, a: be.batchnorm(a[0], a[1], a[2], a[3], a[4], eps)


OP_BUILDERS = {
    "constant": _constant,
    "add": _binary("add"), "sub": _binary("sub"), "mul": _binary("mul"), "div": _binary("div"),
    "max": _binary("maximum"), "min": _binary("minimum"), "pow": _binary("pow"),
    "relu": _unary("relu"), "sigmoid": _unary("sigmoid"), "tanh": _unary("tanh"), "exp": _unary("exp"),
    "log": _unary("log"), "sqrt": _unary("sqrt"), "rsqrt": _unary("rsqrt"), "neg": _unary("neg"),
    "abs": _unary("abs"), "silu": _unary("silu"), "erf": _unary("erf"),
    "gelu": _gelu,
    "softmax": _softmax,
    "layernorm": _layernorm,
    "rmsnorm": _rmsnorm,
    "reduce_sum": _reduce("sum"), "reduce_mean": _reduce("mean"), "reduce_max": _reduce("max"),
    "matmul": _matmul,
    "transpose": _transpose,
    "reshape": _reshape,
    "concat": _concat,
    "slice": _slice,
    "conv2d": _conv2d,
    "maxpool2d": _pool("max"), "avgpool2d": _pool("avg"),
    "global_avgpool": _unary("global_avgpool"),
    "batchnorm": _batchnorm,
    "embedding": lambda node: lambda be, a: be.embedding(a[0], a[1]),
}


class Backend:
    """The composite primitives, from the spec's formulas; a framework
    overrides them with its own kernels where it has them. Binary primitives
    also take a Python number as their second operand."""

    def stat(self, x):
        """The value normalisation statistics are computed from."""
        return x

    def silu(self, x):
        return self.mul(x, self.sigmoid(x))

    def gelu(self, x, approximate):
        if approximate:
            inner = self.mul(self.add(x, self.mul(self.mul(self.mul(x, x), x), 0.044715)), math.sqrt(2 / math.pi))
            return self.mul(self.mul(x, 0.5), self.add(self.tanh(inner), 1.0))
        return self.mul(self.mul(x, 0.5), self.add(self.erf(self.mul(x, 1 / math.sqrt(2))), 1.0))

    def softmax(self, x, axis):
        e = self.exp(self.sub(x, self.reduce("max", x, (axis,), True)))
        return self.div(e, self.reduce("sum", e, (axis,), True))

    def layernorm(self, x, gamma, beta, first, eps):
        xs = self.stat(x)
        axes = tuple(range(first, x.ndim))
        d = self.sub(xs, self.reduce("mean", xs, axes, True))
        var = self.reduce("mean", self.mul(d, d), axes, True)  # biased, as the spec says
        return self.add(self.mul(self.mul(d, self.rsqrt(self.add(var, eps))), gamma), beta)

    def rmsnorm(self, x, gamma, eps):
        xs = self.stat(x)
        ms = self.reduce("mean", self.mul(xs, xs), (-1,), True)
        return self.mul(self.mul(xs, self.rsqrt(self.add(ms, eps))), gamma)

    def batchnorm(self, x, scale, bias, mean, var, eps):
        shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        scale, bias, mean, var = (self.reshape(self.stat(p), shape) for p in (scale, bias, mean, var))
        k = self.mul(scale, self.rsqrt(self.add(var, eps)))
        return self.add(self.mul(self.sub(self.stat(x), mean), k), bias)

    def global_avgpool(self, x):
        return self.reduce("mean", x, (2, 3), True)
