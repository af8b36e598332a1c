"""Shared helpers of the model-zoo generators (scripts/zoo/*.py).

`Model` collects inputs, params and nodes, infers every node's shape as it is
added (so a generator can assert the shapes it expects, for the spatial ops
too) and writes the YAML text itself, in the compact flow style of
models/*.yaml: one tensor or node per line.

`simulate` evaluates a model with numpy twice: in float64 (what anvil's
reference does) and with every node's result rounded to its storage dtype
after an f32 computation (what anvil's kernels do), from random inputs and
params drawn as the file says (not anvil's values, only their
distribution). It reports each output's scale and the relative L2 error of
the rounded run, an estimate of the error anvil will see, so a generator
can check that its inits keep activations well scaled and that the model
fits in its dtype's tolerance. Values are freed as soon as their last
consumer has run and params are drawn when first needed, so models with
gigabytes of weights fit in memory.
"""
import math
import os
import textwrap

import numpy as np
import yaml

MODELS_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models"))
TOLERANCE = {"f32": 1e-4, "f16": 1e-2, "bf16": 2e-2}

UNARY = {"relu", "sigmoid", "tanh", "exp", "log", "sqrt", "rsqrt", "neg", "abs", "silu", "gelu"}
BINARY = {"add", "sub", "mul", "div", "max", "min", "pow"}


def num(v):
    """A number as YAML text that PyYAML and yaml-cpp both read back as the
    same float (PyYAML wants a dot in the mantissa of 1.0e-12)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    v = float(v)
    if v == 0:
        return "0.0"
    text = f"{v:.6g}"
    if "e" in text:
        mant, exp = text.split("e")
        if "." not in mant:
            mant += ".0"
        text = f"{mant}e{int(exp):+d}"
    elif "." not in text:
        text += ".0"
    assert float(yaml.safe_load(text)) == float(text), text
    return text


def value_text(v):
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value_text(x) for x in v) + "]"
    if isinstance(v, str):
        return v
    return num(v)


def broadcast(*shapes):
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dims = {s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0}
        dims.discard(1)
        assert len(dims) <= 1, f"shapes {shapes} do not broadcast"
        out.append(dims.pop() if dims else 1)
    return out


def pair(v):
    return [v, v] if isinstance(v, int) else list(v)


def pads(v):
    if isinstance(v, int):
        return [v, v, v, v]
    v = list(v)
    return [v[0], v[1], v[0], v[1]] if len(v) == 2 else v


class Model:
    def __init__(self, name, dtype, seed, header):
        self.name, self.dtype, self.seed = name, dtype, seed
        self.header = header.strip("\n")
        self.inputs, self.params, self.nodes, self.outputs = [], [], [], []
        self.shapes, self.dtypes = {}, {}
        self.node_count = 0

    # -- declarations ------------------------------------------------------
    def _tensor(self, kind, name, shape, attrs):
        assert name not in self.shapes, f"duplicate name {name}"
        shape = [int(d) for d in shape]
        assert all(d > 0 for d in shape), (name, shape)
        self.shapes[name] = shape
        self.dtypes[name] = attrs.get("dtype", self.dtype)
        kind.append(dict(name=name, shape=shape, **attrs))
        return name

    def input(self, name, shape, **attrs):
        return self._tensor(self.inputs, name, shape, attrs)

    def param(self, name, shape, init="normal", **attrs):
        return self._tensor(self.params, name, shape, dict(init=init, **attrs))

    def comment(self, text):
        self.nodes.append(("#", text))

    def output(self, *names):
        for n in names:
            assert n in self.shapes, n
            self.outputs.append(n)

    def shape(self, name):
        return list(self.shapes[name])

    def op(self, name, op, inputs=(), **attrs):
        assert name not in self.shapes, f"duplicate name {name}"
        for i in inputs:
            assert i in self.shapes, f"node {name}: unknown input {i}"
        shape = infer(op, [self.shapes[i] for i in inputs], attrs, name)
        self.shapes[name] = shape
        self.dtypes[name] = attrs.get("dtype", self.dtype)
        self.nodes.append(dict(name=name, op=op, inputs=list(inputs), **attrs))
        self.node_count += 1
        return name

    # -- YAML text ---------------------------------------------------------
    @staticmethod
    def _mapping(d, keys_first):
        parts = []
        for k in keys_first:
            if k in d and not (k == "inputs" and not d[k]):
                parts.append(f"{k}: {value_text(d[k])}")
        for k, v in d.items():
            if k not in keys_first:
                parts.append(f"{k}: {value_text(v)}")
        return "{" + ", ".join(parts) + "}"

    def text(self):
        # The header is paragraphs separated by blank lines, each re-flowed
        # to 78 columns and started on a new comment line.
        lines = []
        for para in self.header.split("\n\n"):
            lines += ["# " + l for l in textwrap.wrap(" ".join(para.split()), 76, break_on_hyphens=False)]
        lines += ["anvil: 1", f"name: {self.name}", f"dtype: {self.dtype}", f"seed: {self.seed}", ""]
        lines.append("inputs:")
        lines += ["  - " + self._mapping(t, ["name", "shape", "dtype", "init"]) for t in self.inputs]
        lines += ["", "params:"]
        lines += ["  - " + self._mapping(t, ["name", "shape", "dtype", "init"]) for t in self.params]
        lines += ["", "nodes:"]
        for n in self.nodes:
            if isinstance(n, tuple):
                lines.append("  # " + n[1])
            else:
                lines.append("  - " + self._mapping(n, ["name", "op", "inputs"]))
        lines += ["", "outputs: [" + ", ".join(self.outputs) + "]", ""]
        return "\n".join(lines)

    def write(self, directory=MODELS_DIR):
        assert self.outputs, "no outputs"
        text = self.text()
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        parsed = yaml.load(text, Loader=loader)  # the file must read back as written
        assert parsed["name"] == self.name and len(parsed["nodes"]) == self.node_count
        path = os.path.join(directory, self.name + ".yaml")
        with open(path, "w") as f:
            f.write(text)
        shown = os.path.relpath(path, os.path.dirname(MODELS_DIR)) if path.startswith(MODELS_DIR) else path
        print(f"wrote {shown}: {self.node_count} nodes, "
              f"{len(self.params)} params ({self.param_count() / 1e6:.2f} M values), {len(text)} bytes")
        return path

    def param_count(self):
        return sum(int(np.prod(p["shape"])) for p in self.params)


# -- shape inference (numpy semantics of the spec) ------------------------------
def infer(op, shapes, a, name):
    def need(k):
        assert len(shapes) == k, f"node {name}: {op} takes {k} inputs, got {len(shapes)}"

    if op == "constant":
        need(0)
        return list(a.get("shape", []))
    if op in BINARY:
        need(2)
        return broadcast(*shapes)
    if op in UNARY:
        need(1)
        return list(shapes[0])
    if op == "softmax":
        need(1)
        return list(shapes[0])
    if op == "layernorm":
        need(3)
        x = shapes[0]
        first = a.get("axis", -1) % len(x)
        assert shapes[1] == x[first:] and shapes[2] == x[first:], (name, shapes)
        return list(x)
    if op == "rmsnorm":
        need(2)
        assert shapes[1] == shapes[0][-1:], (name, shapes)
        return list(shapes[0])
    if op in ("reduce_sum", "reduce_mean", "reduce_max"):
        need(1)
        x = shapes[0]
        axes = {ax % len(x) for ax in a["axes"]}
        if a.get("keepdims", False):
            return [1 if i in axes else d for i, d in enumerate(x)]
        return [d for i, d in enumerate(x) if i not in axes]
    if op == "matmul":
        need(2)
        x, y = list(shapes[0]), list(shapes[1])
        assert len(x) >= 2 and len(y) >= 2, f"node {name}: rank-1 matmul operand"
        if a.get("transpose_a"):
            x[-1], x[-2] = x[-2], x[-1]
        if a.get("transpose_b"):
            y[-1], y[-2] = y[-2], y[-1]
        assert x[-1] == y[-2], f"node {name}: matmul inner dims {x} @ {y}"
        return broadcast(x[:-2], y[:-2]) + [x[-2], y[-1]]
    if op == "transpose":
        need(1)
        return [shapes[0][p] for p in a["perm"]]
    if op == "reshape":
        need(1)
        total = int(np.prod(shapes[0]))
        out = list(a["shape"])
        if -1 in out:
            rest = int(np.prod([d for d in out if d != -1]))
            out[out.index(-1)] = total // rest
        assert int(np.prod(out)) == total, f"node {name}: reshape {shapes[0]} -> {a['shape']}"
        return out
    if op == "concat":
        assert len(shapes) >= 1
        ax = a["axis"] % len(shapes[0])
        out = list(shapes[0])
        for s in shapes[1:]:
            assert len(s) == len(out) and all(s[i] == out[i] for i in range(len(s)) if i != ax), (name, shapes)
            out[ax] += s[ax]
        return out
    if op == "slice":
        need(1)
        x = list(shapes[0])
        ax = a["axis"] % len(x)
        x[ax] = len(range(*slice(a.get("start", 0), a.get("end", None), a.get("step", 1)).indices(x[ax])))
        assert x[ax] > 0, f"node {name}: empty slice"
        return x
    if op == "conv2d":
        assert len(shapes) in (2, 3)
        n, c, h, w = shapes[0]
        o, cg, kh, kw = shapes[1]
        g = a.get("groups", 1)
        assert c % g == 0 and o % g == 0 and cg == c // g, f"node {name}: conv2d groups {shapes}"
        if len(shapes) == 3:
            assert shapes[2] == [o], name
        sh, sw = pair(a.get("stride", 1))
        dh, dw = pair(a.get("dilation", 1))
        pt, pl, pb, pr = pads(a.get("padding", 0))
        oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
        ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
        assert oh > 0 and ow > 0, name
        return [n, o, oh, ow]
    if op in ("maxpool2d", "avgpool2d"):
        need(1)
        n, c, h, w = shapes[0]
        kh, kw = pair(a["kernel"])
        sh, sw = pair(a.get("stride", a["kernel"]))
        pt, pl, pb, pr = pads(a.get("padding", 0))
        return [n, c, (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1]
    if op == "global_avgpool":
        need(1)
        return shapes[0][:2] + [1, 1]
    if op == "batchnorm":
        need(5)
        c = shapes[0][1]
        assert all(s == [c] for s in shapes[1:]), (name, shapes)
        return list(shapes[0])
    raise AssertionError(f"node {name}: op {op} not known to zoolib")


# -- numpy evaluation ----------------------------------------------------------
def _erf(x):
    """erf with fractional error below 1.2e-7 everywhere (the Chebyshev fit
    of erfc in Numerical Recipes), vectorised: enough for estimating f16
    and bf16 rounding errors, and no scipy needed."""
    x = np.asarray(x, dtype=np.float64)
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))
    erfc = t * np.exp(poly)
    return np.where(x >= 0, 1.0 - erfc, erfc - 1.0)


def round_to(x, dtype):
    """Rounds values to a storage dtype (round to nearest even), returned as
    float32, which holds every f16 and bf16 value exactly."""
    if dtype == "f32":
        return x.astype(np.float32)
    if dtype == "f16":
        return x.astype(np.float16).astype(np.float32)
    if dtype == "bf16":
        b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
        r = ((b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
        return r.view(np.float32)
    raise ValueError(dtype)


def _conv2d(x, w, b, a, ft):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    g = a.get("groups", 1)
    sh, sw = pair(a.get("stride", 1))
    dh, dw = pair(a.get("dilation", 1))
    pt, pl, pb, pr = pads(a.get("padding", 0))
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + pl + pr - dw * (kw - 1) - 1) // sw + 1
    cols = np.empty((n, c, kh, kw, oh, ow), dtype=ft)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = xp[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh, j * dw: j * dw + sw * (ow - 1) + 1: sw]
    cols = cols.reshape(n, g, cg * kh * kw, oh * ow)
    wm = w.reshape(g, o // g, cg * kh * kw).astype(ft)
    y = np.matmul(wm[None], cols).reshape(n, o, oh, ow)
    if b is not None:
        y = y + b.reshape(1, o, 1, 1)
    return y


def _pool(x, a, kind, ft):
    n, c, h, w = x.shape
    kh, kw = pair(a["kernel"])
    sh, sw = pair(a.get("stride", a["kernel"]))
    pt, pl, pb, pr = pads(a.get("padding", 0))
    oh, ow = (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=fill)
    ones = np.pad(np.ones((h, w), dtype=ft), ((pt, pb), (pl, pr)))
    acc = np.full((n, c, oh, ow), fill, dtype=ft)
    cnt = np.zeros((oh, ow), dtype=ft)
    for i in range(kh):
        for j in range(kw):
            win = xp[:, :, i: i + sh * (oh - 1) + 1: sh, j: j + sw * (ow - 1) + 1: sw]
            if kind == "max":
                acc = np.maximum(acc, win)
            else:
                acc = acc + win
                cnt = cnt + ones[i: i + sh * (oh - 1) + 1: sh, j: j + sw * (ow - 1) + 1: sw]
    if kind == "max":
        return acc
    if a.get("count_include_pad", False):
        return acc / (kh * kw)
    return acc / cnt


def evaluate(node, args, ft):
    op, a = node["op"], node
    x = args[0] if args else None
    if op == "constant":
        return np.full(a.get("shape", []), float(a["value"]), dtype=ft)
    if op in BINARY:
        f = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
             "max": np.maximum, "min": np.minimum, "pow": np.power}[op]
        return f(args[0], args[1])
    if op == "relu":
        return np.maximum(x, 0)
    if op == "sigmoid":
        return 1 / (1 + np.exp(-x))
    if op == "tanh":
        return np.tanh(x)
    if op == "exp":
        return np.exp(x)
    if op == "log":
        return np.log(x)
    if op == "sqrt":
        return np.sqrt(x)
    if op == "rsqrt":
        return 1 / np.sqrt(x)
    if op == "neg":
        return -x
    if op == "abs":
        return np.abs(x)
    if op == "silu":
        return x / (1 + np.exp(-x))
    if op == "gelu":
        if a.get("approximate", "none") == "tanh":
            return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
        return (0.5 * x * (1 + _erf(x.astype(np.float64) / math.sqrt(2)))).astype(ft)
    if op == "softmax":
        ax = a.get("axis", -1)
        e = np.exp(x - x.max(axis=ax, keepdims=True))
        return e / e.sum(axis=ax, keepdims=True)
    if op == "layernorm":
        axes = tuple(range(a.get("axis", -1) % x.ndim, x.ndim))
        m = x.mean(axis=axes, keepdims=True)
        v = ((x - m) ** 2).mean(axis=axes, keepdims=True)
        return (x - m) / np.sqrt(v + a.get("eps", 1e-5)) * args[1] + args[2]
    if op == "rmsnorm":
        return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + a.get("eps", 1e-6)) * args[1]
    if op in ("reduce_sum", "reduce_mean", "reduce_max"):
        f = {"reduce_sum": np.sum, "reduce_mean": np.mean, "reduce_max": np.max}[op]
        return f(x, axis=tuple(a["axes"]), keepdims=a.get("keepdims", False))
    if op == "matmul":
        p, q = args
        if a.get("transpose_a"):
            p = np.swapaxes(p, -1, -2)
        if a.get("transpose_b"):
            q = np.swapaxes(q, -1, -2)
        return np.matmul(p, q)
    if op == "transpose":
        return np.ascontiguousarray(np.transpose(x, a["perm"]))
    if op == "reshape":
        return np.reshape(x, a["shape"])
    if op == "concat":
        return np.concatenate(args, axis=a["axis"])
    if op == "slice":
        ax = a["axis"] % x.ndim
        idx = [slice(None)] * x.ndim
        idx[ax] = slice(a.get("start", 0), a.get("end", None), a.get("step", 1))
        return np.ascontiguousarray(x[tuple(idx)])
    if op == "conv2d":
        return _conv2d(x, args[1], args[2] if len(args) > 2 else None, a, ft)
    if op == "maxpool2d":
        return _pool(x, a, "max", ft)
    if op == "avgpool2d":
        return _pool(x, a, "avg", ft)
    if op == "global_avgpool":
        return x.mean(axis=(2, 3), keepdims=True)
    if op == "batchnorm":
        c = x.shape[1]
        sh = [1, c] + [1] * (x.ndim - 2)
        s, b, m, v = (t.reshape(sh) for t in args[1:])
        return (x - m) / np.sqrt(v + a.get("eps", 1e-5)) * s + b
    raise AssertionError(f"op {op} not known to zoolib")


def _draw(t, rng, default_std):
    init = t.get("init", "normal")
    shape = t["shape"]
    if init == "normal":
        return rng.standard_normal(shape) * t.get("std", default_std)
    if init == "uniform":
        return rng.uniform(t.get("low", -1.0), t.get("high", 1.0), shape)
    if init == "zeros":
        return np.zeros(shape)
    if init == "ones":
        return np.ones(shape)
    raise AssertionError(init)


def simulate(model, seed=0, trace=None, quiet=False):
    """Evaluates the model in float64 and in rounded storage (see the module
    docstring). Returns {output: (rms, relative L2 error, tolerance)}.
    `trace`: node names whose rms to print (a list), or None."""
    rng = np.random.default_rng(seed)
    decl = {t["name"]: (t, 1.0) for t in model.inputs}
    decl.update({t["name"]: (t, 0.02) for t in model.params})
    nodes = [n for n in model.nodes if isinstance(n, dict)]
    last_use = {}
    for i, n in enumerate(nodes):
        for x in n["inputs"]:
            last_use[x] = i
    keep = set(model.outputs)
    hi, lo = {}, {}

    def get(name):
        if name not in hi:
            t, std = decl[name]
            v = round_to(_draw(t, rng, std), model.dtypes[name])
            hi[name], lo[name] = v.astype(np.float64), v
        return hi[name], lo[name]

    with np.errstate(over="raise", invalid="raise", divide="raise"):
        for i, n in enumerate(nodes):
            args = [get(x) for x in n["inputs"]]
            h = evaluate(n, [p for p, _ in args], np.float64)
            l = evaluate(n, [q.astype(np.float32) for _, q in args], np.float32)
            hi[n["name"]] = np.asarray(h, dtype=np.float64)
            lo[n["name"]] = round_to(np.asarray(l, dtype=np.float32), model.dtypes[n["name"]])
            assert list(hi[n["name"]].shape) == model.shapes[n["name"]], n["name"]
            if trace is not None and n["name"] in trace:
                print(f"    {n['name']}: rms {np.sqrt(np.mean(h ** 2)):.3g}")
            for x in n["inputs"]:
                if last_use[x] == i and x not in keep:
                    hi.pop(x, None)
                    lo.pop(x, None)
    result = {}
    for name in model.outputs:
        h, l = get(name)
        err = np.linalg.norm(l - h) / max(np.linalg.norm(h), 1e-30)
        rms = float(np.sqrt(np.mean(h ** 2)))
        tol = TOLERANCE[model.dtypes[name]]
        result[name] = (rms, float(err), tol)
        if not quiet:
            print(f"  {model.name}: output {name} {list(h.shape)} rms {rms:.3g}, "
                  f"rounded-storage error {err:.2e} (tolerance {tol:.0e})")
    return result


def check_scale(model, seed=0, low=0.05, high=50.0, margin=0.5, **kw):
    """Simulates and asserts every output is well scaled and its estimated
    error is within `margin` of the tolerance."""
    res = simulate(model, seed=seed, **kw)
    for name, (rms, err, tol) in res.items():
        assert low <= rms <= high, f"{model.name}: output {name} rms {rms} is badly scaled"
        assert err <= margin * tol, f"{model.name}: output {name} estimated error {err} vs tolerance {tol}"
    return res


def main_args():
    """Generators take --check (simulate the small variants), --check-full
    (simulate the full-size ones too: slow, minutes) and --out DIR."""
    import argparse
    p = argparse.ArgumentParser()
    p.add_argument("--check", action="store_true", help="simulate the small variant in numpy")
    p.add_argument("--check-full", action="store_true", help="simulate the full-size variant too (slow)")
    p.add_argument("--out", default=MODELS_DIR)
    return p.parse_args()


# -- building blocks shared by the transformer generators ----------------------
def finish(args, full, small):
    """Write both variants; with --check (--check-full), simulate the small (and full) one."""
    full.write(args.out)
    small.write(args.out)
    if args.check or args.check_full:
        check_scale(small)
    if args.check_full:
        check_scale(full)


def linear(m, pfx, x, fan_in, fan_out, std=None, bias=True):
    """x @ W (+ b): W normal with std 1/sqrt(fan_in) unless given, b uniform
    +-0.05. The result is named `pfx`."""
    std = (1.0 / fan_in) ** 0.5 if std is None else std
    m.param(pfx + "_w", [fan_in, fan_out], std=round(std, 6))
    if not bias:
        return m.op(pfx, "matmul", [x, pfx + "_w"])
    y = m.op(pfx + "_mm", "matmul", [x, pfx + "_w"])
    m.param(pfx + "_b", [fan_out], init="uniform", low=-0.05, high=0.05)
    return m.op(pfx, "add", [y, pfx + "_b"])


def norm_params(m, pfx, dim, beta=True):
    m.param(pfx + "_g", [dim], init="uniform", low=0.9, high=1.1)
    if beta:
        m.param(pfx + "_b", [dim], init="uniform", low=-0.05, high=0.05)


def self_attention(m, pfx, x, seq, dim, heads, scale):
    """Multi-head self-attention of x [seq, dim] with q/k/v/o projections
    and biases; `scale` names a scalar constant 1/sqrt(head dim)."""
    dh = dim // heads
    split = {}
    for t in "qkv":
        p = linear(m, f"{pfx}_{t}", x, dim, dim)
        r = m.op(f"{pfx}_{t}_r", "reshape", [p], shape=[seq, heads, dh])
        split[t] = m.op(f"{pfx}_{t}_h", "transpose", [r], perm=[1, 0, 2])
    s = m.op(f"{pfx}_scores", "matmul", [split["q"], split["k"]], transpose_b=True)
    assert m.shape(s) == [heads, seq, seq]
    s = m.op(f"{pfx}_scaled", "mul", [s, scale])
    p = m.op(f"{pfx}_probs", "softmax", [s], axis=-1)
    c = m.op(f"{pfx}_ctx", "matmul", [p, split["v"]])
    c = m.op(f"{pfx}_ctx_t", "transpose", [c], perm=[1, 0, 2])
    c = m.op(f"{pfx}_ctx_m", "reshape", [c], shape=[seq, dim])
    return linear(m, f"{pfx}_o", c, dim, dim)


# -- building blocks shared by the CNN generators -------------------------------
def batchnorm(m, pfx, x, gamma=(0.9, 1.1)):
    """Inference batchnorm with its four [C] params: scale uniform in `gamma`,
    bias and mean uniform +-0.05, var uniform in [0.8, 1.2] (a layer whose
    input already has about unit variance stays about unit variance)."""
    c = m.shape(x)[1]
    m.param(pfx + "_s", [c], init="uniform", low=gamma[0], high=gamma[1])
    m.param(pfx + "_b", [c], init="uniform", low=-0.05, high=0.05)
    m.param(pfx + "_m", [c], init="uniform", low=-0.05, high=0.05)
    m.param(pfx + "_v", [c], init="uniform", low=0.8, high=1.2)
    return m.op(pfx, "batchnorm", [x, pfx + "_s", pfx + "_b", pfx + "_m", pfx + "_v"])


def conv(m, pfx, x, cout, k, stride=1, padding=0, groups=1, gain=2.0):
    """A bias-free conv2d whose weights are normal with std
    sqrt(gain / fan_in): He init (gain 2) keeps the variance of a ReLU
    network's pre-activations constant from layer to layer."""
    cin = m.shape(x)[1]
    fan_in = cin // groups * k * k
    m.param(pfx + "_w", [cout, cin // groups, k, k], std=round((gain / fan_in) ** 0.5, 6))
    attrs = {}
    if stride != 1:
        attrs["stride"] = stride
    if padding:
        attrs["padding"] = padding
    if groups != 1:
        attrs["groups"] = groups
    return m.op(pfx, "conv2d", [x, pfx + "_w"], **attrs)


def classifier(m, x, classes):
    """global_avgpool, flatten to [N, C], and a linear layer with bias."""
    n, c = m.shape(x)[:2]
    p = m.op("pool", "global_avgpool", [x])
    f = m.op("flat", "reshape", [p], shape=[n, c])
    return linear(m, "fc", f, c, classes)
