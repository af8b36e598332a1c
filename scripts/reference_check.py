#!/usr/bin/python3
"""An independent float64 check of `anvil run MODEL --save-io DIR`.

Reads the model YAML and the saved inputs and params, evaluates every node
with numpy in float64 (written from the spec, sharing no code with anvil),
and compares each saved output with the spec's tolerance by dtype: relative
L2 error 1e-4 (f32), 1e-2 (f16), 2e-2 (bf16). Exit status 0 when every output
agrees, 1 otherwise.

    scripts/reference_check.py MODEL.yaml DIR
"""
import math
import sys

import numpy as np
import yaml

TOLERANCE = {"f32": 1e-4, "f16": 1e-2, "bf16": 2e-2}


def erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def axis_of(a, rank):
    return a + rank if a < 0 else a


def hw(v):
    """kernel, stride or dilation: an int or [h, w]."""
    return (v, v) if isinstance(v, int) else (v[0], v[-1])


def padding(v):
    """An int, [h, w] or [top, left, bottom, right] as ((top, bottom), (left, right))."""
    v = [v] if isinstance(v, int) else list(v)
    if len(v) == 4:
        return (v[0], v[2]), (v[1], v[3])
    return (v[0], v[0]), (v[-1], v[-1])


def windows(x, kernel, stride, dilation, pad, fill):
    """x [N, C, H, W] padded with `fill`, as [N, C, OH, OW, KH, KW]: every
    window of the sliding kernel, PyTorch's floor-mode output size."""
    (top, bottom), (left, right) = pad
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=fill)
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    oh = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    out = np.empty(x.shape[:2] + (oh, ow, kh, kw))
    for i in range(kh):
        for j in range(kw):
            out[..., i, j] = xp[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]
    return out


def conv2d(node, x, w, bias):
    g = node.get("groups", 1)
    n, c = x.shape[:2]
    o, cg, kh, kw = w.shape
    win = windows(x, (kh, kw), hw(node.get("stride", 1)), hw(node.get("dilation", 1)),
                  padding(node.get("padding", 0)), 0.0)
    oh, ow = win.shape[2:4]
    # Output channel o reads the input channels of its group, o // (O / groups).
    y = np.einsum("ngchwij,gocij->ngohw", win.reshape(n, g, c // g, oh, ow, kh, kw),
                  w.reshape(g, o // g, cg, kh, kw)).reshape(n, o, oh, ow)
    return y if bias is None else y + bias.reshape(1, o, 1, 1)


def pool(node, x):
    kernel = hw(node["kernel"])
    stride = hw(node.get("stride", node["kernel"]))
    pad = padding(node.get("padding", 0))
    if node["op"] == "maxpool2d":  # padding is -inf: it never wins
        return windows(x, kernel, stride, (1, 1), pad, -np.inf).max(axis=(-2, -1))
    total = windows(x, kernel, stride, (1, 1), pad, 0.0).sum(axis=(-2, -1))
    if node.get("count_include_pad", False):
        return total / (kernel[0] * kernel[1])
    real = windows(np.ones_like(x), kernel, stride, (1, 1), pad, 0.0).sum(axis=(-2, -1))
    return total / real


def embedding(table, ids):
    ids = ids.astype(np.int64)
    bad = (ids < 0) | (ids >= table.shape[0])
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise SystemExit(f"reference_check.py: embedding id {ids[where]} at {list(where)} is outside "
                         f"[0, {table.shape[0]})")
    return table[ids]


def evaluate(node, args):
    op = node["op"]
    x = args[0] if args else None
    unary = {
        "relu": lambda v: np.maximum(v, 0.0),
        "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)),
        "tanh": np.tanh,
        "exp": np.exp,
        "log": np.log,
        "sqrt": np.sqrt,
        "rsqrt": lambda v: 1.0 / np.sqrt(v),
        "neg": np.negative,
        "abs": np.abs,
        "silu": lambda v: v / (1.0 + np.exp(-v)),
    }
    binary = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
              "max": np.maximum, "min": np.minimum, "pow": np.power}
    if op in unary:
        return unary[op](x)
    if op in binary:
        return binary[op](args[0], args[1])
    if op == "constant":
        return np.full(node.get("shape", []), float(node["value"]), dtype=np.float64)
    if op == "gelu":
        if node.get("approximate", "none") == "tanh":
            return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
        return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))
    if op == "softmax":
        ax = node.get("axis", -1)
        e = np.exp(x - x.max(axis=ax, keepdims=True))
        return e / e.sum(axis=ax, keepdims=True)
    if op == "layernorm":
        first = axis_of(node.get("axis", -1), x.ndim)
        axes = tuple(range(first, x.ndim))
        mean = x.mean(axis=axes, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
        return (x - mean) / np.sqrt(var + node.get("eps", 1e-5)) * args[1] + args[2]
    if op == "rmsnorm":
        ms = (x * x).mean(axis=-1, keepdims=True)
        return x / np.sqrt(ms + node.get("eps", 1e-6)) * args[1]
    if op in ("reduce_sum", "reduce_mean", "reduce_max"):
        fn = {"reduce_sum": np.sum, "reduce_mean": np.mean, "reduce_max": np.max}[op]
        return fn(x, axis=tuple(node["axes"]), keepdims=node.get("keepdims", False))
    if op == "matmul":
        a, b = args
        if node.get("transpose_a", False):
            a = np.swapaxes(a, -1, -2)
        if node.get("transpose_b", False):
            b = np.swapaxes(b, -1, -2)
        return np.matmul(a, b)
    if op == "transpose":
        return np.transpose(x, node["perm"])
    if op == "reshape":
        return np.reshape(x, node["shape"])
    if op == "concat":
        return np.concatenate(args, axis=node["axis"])
    if op == "slice":
        ax = axis_of(node["axis"], x.ndim)
        index = [slice(None)] * x.ndim
        index[ax] = slice(node.get("start", 0), node.get("end", None), node.get("step", 1))
        return x[tuple(index)]
    if op == "conv2d":
        return conv2d(node, args[0], args[1], args[2] if len(args) == 3 else None)
    if op in ("maxpool2d", "avgpool2d"):
        return pool(node, x)
    if op == "global_avgpool":
        return x.mean(axis=(2, 3), keepdims=True)
    if op == "batchnorm":
        per_channel = [1, x.shape[1]] + [1] * (x.ndim - 2)
        scale, bias, mean, var = (a.reshape(per_channel) for a in args[1:])
        return (x - mean) / np.sqrt(var + node.get("eps", 1e-5)) * scale + bias
    if op == "embedding":
        return embedding(args[0], args[1])
    raise SystemExit(f"reference_check.py: op '{op}' is not covered by this script")


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    model_path, io_dir = sys.argv[1], sys.argv[2]
    with open(model_path) as f:
        model = yaml.safe_load(f)
    default_dtype = model.get("dtype", "f32")
    values, dtypes = {}, {}
    for kind in ("inputs", "params"):
        for t in model.get(kind) or []:
            values[t["name"]] = np.load(f"{io_dir}/{kind}/{t['name']}.npy").astype(np.float64)
            dtypes[t["name"]] = t.get("dtype", default_dtype)
    nodes = {n["name"]: n for n in model.get("nodes") or []}

    def value(name):
        if name not in values:
            node = nodes[name]
            values[name] = evaluate(node, [value(i) for i in node.get("inputs", [])])
            dtypes[name] = node.get("dtype", default_dtype)
        return values[name]

    def loosest(name, seen=None):
        seen = seen if seen is not None else set()
        if name in seen:
            return 0.0
        seen.add(name)
        tol = TOLERANCE.get(dtypes.get(name, default_dtype), 0.0)
        for i in nodes.get(name, {}).get("inputs", []):
            tol = max(tol, loosest(i, seen))
        return tol

    ok = True
    for name in model["outputs"]:
        want = value(name)
        got = np.load(f"{io_dir}/outputs/{name}.npy").astype(np.float64)
        if got.shape != want.shape:
            print(f"{name}: shape {list(got.shape)}, expected {list(want.shape)}: FAILED")
            ok = False
            continue
        err = np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30)
        tol = loosest(name)
        good = bool(err <= tol)
        ok = ok and good
        print(f"{name}: relative L2 error {err:.3e} (tolerance {tol:.0e}) {'ok' if good else 'FAILED'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
