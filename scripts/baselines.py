#!/usr/bin/python3
"""External baselines for anvil's profiler: the same model (the same YAML,
the same weights and inputs) run by the frameworks a user would otherwise
pick, each checked against anvil's outputs and timed.

    scripts/baselines.py MODEL.yaml IO_DIR [--iters N] [--warmup N]
                         [--only NAME,...] [--json OUT] [--strict]
                         [--timeout S] [--in-process]
    scripts/baselines.py --self-test

IO_DIR is what `anvil run MODEL.yaml --save-io IO_DIR` wrote: inputs/,
params/ and outputs/ as .npy (f16 as '<f2'; f32 and bf16 as '<f4', a bf16
value being exact in f32; i32 as '<i4').

Baselines (--only picks some; the default is every one but numpy):

  torch_eager       the graph evaluated op by op with PyTorch on the GPU
  torch_cuda_graph  the same forward captured once in a torch.cuda.CUDAGraph
                    and replayed
  torch_compile     torch.compile(forward), default mode
  jax_jit           jax.jit(forward)
  torch_cudnn_lstm  torch.nn.LSTM (cuDNN) with the model's weights, for models
                    in the layout of scripts/zoo/lstm_tc.py (a stacked LSTM
                    unrolled into matmuls, slices, sigmoid and tanh); skipped
                    with the reason for any other model
  numpy             the same graph walker on the CPU in float32, rounding
                    every node to its storage dtype; the op layer's test on
                    machines without torch or jax (scripts/test_baselines.sh)

How a model is evaluated. The op semantics of shared/spec/model-format.md
are written once (OP_BUILDERS): each builder parses a node's attributes and
calls backend primitives (matmul, conv2d, pools, softmax, layernorm, ...).
A backend (NumpyBackend, TorchBackend, JaxBackend) implements those
primitives with its framework's own kernels (F.conv2d, F.layer_norm,
lax.conv_general_dilated, lax.reduce_window, ...); what a framework lacks
falls back to the composites of the Backend base class, written from the
spec's formulas. Program walks the nodes in a topological order, frees
every value after its last use, and is the forward function of every
framework baseline.

Dtypes. Every tensor has its YAML dtype: f16 -> float16, bf16 -> bfloat16,
f32 -> float32 (true f32: TF32 is switched off in torch, and jax matmuls and
convolutions on f32 use Precision.HIGHEST), i32 -> integer ids (int64 in
torch, which indexes with it). A node whose float inputs and result share one
dtype computes in it (the frameworks accumulate in f32 inside their
kernels); a node that mixes dtypes (e.g. llama_decode's f32 residual added
to a bf16 projection) computes in f32 and its result is cast to the node's
dtype. The composite normalisations (jax's layernorm, rmsnorm and
batchnorm, torch's rmsnorm before torch 2.4) and jax's average pools
compute their statistics in f32 for f16/bf16 inputs, as flax and Llama's
RMSNorm do.

Checks. Each output is compared with IO_DIR/outputs/NAME.npy by relative L2
error, with the tolerance of the loosest dtype on the way to that output
(as scripts/reference_check.py does), loosened for frameworks
(FRAMEWORK_TOLERANCE): f16 2e-2 and bf16 4e-2, twice the spec's, because
anvil and the framework are each within the spec's tolerance of the exact
value, so they are within twice it of each other; f32 1e-3 rather than
2e-4, because frameworks may pick Winograd or FFT convolutions
(cudnn.benchmark) and reorder long sums, which costs f32 about 1e-5 to 1e-4
relative. A wrong op is off by order 1, far above all of these. A baseline
that disagrees gets ok=false, an error, and no time.

Timing, the method of `anvil profile`: the median (and min and max) of
--iters timed runs after --warmup untimed ones, in microseconds; the first
call (compilation, graph capture, autotuning) comes before both and is
reported as setup_s. torch baselines record a torch.cuda.Event on the
current stream before and after each forward and wait for the second, so
a run's time is GPU time from the first launch to the last kernel's end,
including the gaps where the GPU waits on the CPU to launch (what eager mode
costs). JAX exposes no events: a run is timed on the wall clock around
fn(*args) and block_until_ready() on every output, so it also counts the
Python dispatch of the call and the host's wake-up after the GPU is done,
which events do not: read jax's time as an upper bound next to torch's.
jax without a GPU backend is skipped. The numpy baseline is timed on the
wall clock too.

Isolation. Each torch or jax baseline runs in a child process of this
script: torch and jax load their own CUDA libraries (cuDNN versions can
clash), jax preallocates GPU memory, a device-side assert poisons a CUDA
context, and a crash or a hang (--timeout S, per baseline) must not lose the
others. --in-process runs everything in this process. jax is told not to
preallocate (XLA_PYTHON_CLIENT_PREALLOCATE=false). torch.compile of a very
large unrolled graph (the full-size lstm_tc has 16k nodes) can take many
minutes: give it a --timeout.

Output: a table on stdout; with --json OUT one object
{"model", "baselines": {NAME: {"us", "min_us", "max_us", "ok", "rel_l2",
"tolerance", "timing", "setup_s", "device", "error" | "skipped"}},
"versions": {"torch", "cuda", "cudnn", "jax", "jaxlib", "numpy", ...}}.
A framework that is not installed is recorded as skipped, a baseline that
raises as an error, and the others go on. Exit status: 0, or 2 for bad
arguments, a missing IO_DIR or model; with --strict, 1 when a baseline that
ran failed its check or raised (skipped ones do not count).

--self-test evaluates random single-op graphs of every op in float64 numpy,
checks those against scripts/reference_check.py (written separately), then
evaluates them in every installed framework (numpy float32, torch, jax) and
compares with the spec's own tolerances (so f32 at 1e-4 also proves TF32 is
off); it checks the LSTM weight mapping against nn.LSTM's documented
equations (and nn.LSTM itself where torch is installed), and the built-in
YAML reader against PyYAML on the repository's models.
"""
import argparse
import heapq
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

SCRIPT = os.path.abspath(__file__)
REPO = os.path.dirname(os.path.dirname(SCRIPT))
FLOAT_DTYPES = ("f32", "f16", "bf16")
DTYPES = FLOAT_DTYPES + ("i32",)
SPEC_TOLERANCE = {"f32": 1e-4, "f16": 1e-2, "bf16": 2e-2, "i32": 0.0}
FRAMEWORK_TOLERANCE = {"f32": 1e-3, "f16": 2e-2, "bf16": 4e-2, "i32": 0.0}
BASELINES = ("torch_eager", "torch_cuda_graph", "torch_compile", "jax_jit", "torch_cudnn_lstm", "numpy")
DEFAULT_BASELINES = BASELINES[:-1]
FRAMEWORK_OF = {"torch_eager": "torch", "torch_cuda_graph": "torch", "torch_compile": "torch",
                "torch_cudnn_lstm": "torch", "jax_jit": "jax", "numpy": "numpy"}


class UsageError(Exception):
    """Bad arguments, a missing IO_DIR or an unreadable model: exit 2."""


class Skip(Exception):
    """A baseline that cannot run here (framework missing, model unmappable)."""


# -- YAML ---------------------------------------------------------------------
# PyYAML may be missing where torch and jax are installed (neither needs it),
# so a reader of the subset models/*.yaml use is built in: top-level
# `key: value` lines and block lists of flow values (`  - {name: x, ...}`).
_INT = re.compile(r"[-+]?[0-9]+$")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_SPECIAL = {"true": True, "True": True, "false": False, "False": False, "null": None, "~": None, "": None,
            ".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf, ".nan": math.nan}


def _scalar(text):
    t = text.strip()
    if t in _SPECIAL:
        return _SPECIAL[t]
    if _INT.match(t):
        return int(t)
    if _FLOAT.match(t):
        return float(t)
    return t


class _Flow:
    """Recursive-descent reader of one YAML flow value: {..}, [..], a quoted
    or a plain scalar; a `#` after a blank starts a comment."""

    def __init__(self, text, where):
        self.s, self.i, self.where = text, 0, where

    def fail(self, what):
        raise UsageError(f"{self.where}: {what} (PyYAML is not installed; the built-in reader knows "
                         "only the flow style of models/*.yaml)")

    def blank(self):
        while self.i < len(self.s) and self.s[self.i] in " \t":
            self.i += 1

    def at_comment(self):
        return self.i < len(self.s) and self.s[self.i] == "#" and (self.i == 0 or self.s[self.i - 1] in " \t")

    def parse(self):
        v = self.value(flow=False)
        self.blank()
        if self.i < len(self.s) and not self.at_comment():
            self.fail(f"unexpected text '{self.s[self.i:]}'")
        return v

    def value(self, flow=True):
        self.blank()
        c = self.s[self.i] if self.i < len(self.s) else ""
        if c == "{":
            return self.mapping()
        if c == "[":
            return self.sequence()
        if c in ("'", '"'):
            return self.quoted()
        return _scalar(self.plain(",]}" if flow else "", key=False))

    def plain(self, stops, key):
        start = self.i
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in stops or self.at_comment():
                break
            if key and c == ":":
                break
            self.i += 1
        return self.s[start:self.i]

    def quoted(self):
        q = self.s[self.i]
        end = self.s.find(q, self.i + 1)
        if end < 0:
            self.fail("unterminated string")
        text, self.i = self.s[self.i + 1:end], end + 1
        return text

    def expect(self, c):
        self.blank()
        if self.i >= len(self.s) or self.s[self.i] != c:
            self.fail(f"expected '{c}'")
        self.i += 1

    def mapping(self):
        self.expect("{")
        out = {}
        while True:
            self.blank()
            if self.s[self.i:self.i + 1] == "}":
                self.i += 1
                return out
            key = self.quoted() if self.s[self.i:self.i + 1] in ("'", '"') else self.plain(",}", key=True).strip()
            self.expect(":")
            out[key] = self.value()
            self.blank()
            if self.s[self.i:self.i + 1] == ",":
                self.i += 1
            elif self.s[self.i:self.i + 1] != "}":
                self.fail("expected ',' or '}'")

    def sequence(self):
        self.expect("[")
        out = []
        while True:
            self.blank()
            if self.s[self.i:self.i + 1] == "]":
                self.i += 1
                return out
            out.append(self.value())
            self.blank()
            if self.s[self.i:self.i + 1] == ",":
                self.i += 1
            elif self.s[self.i:self.i + 1] != "]":
                self.fail("expected ',' or ']'")


def parse_yaml_subset(text, path):
    doc, items = {}, None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        body = line.strip()
        if not body or body.startswith("#") or body == "---":
            continue
        where = f"{path}:{lineno}"
        if body.startswith("- "):
            if items is None:
                raise UsageError(f"{where}: a list item outside a top-level list")
            items.append(_Flow(body[2:], where).parse())
            continue
        if line[0] in " \t":
            _Flow(body, where).fail("nested block mappings are not supported")
        key, sep, rest = line.partition(":")
        if not sep:
            raise UsageError(f"{where}: expected 'key: value'")
        value = _Flow(rest, where).parse()
        doc[key.strip()] = value
        items = None
        if value is None:  # a block list may follow
            items = doc[key.strip()] = []
    return doc


def load_yaml(path):
    with open(path) as f:
        text = f.read()
    try:
        import yaml
    except ImportError:
        return parse_yaml_subset(text, path)
    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # C: 10x faster
    except yaml.YAMLError as e:
        raise UsageError(f"{path}: not YAML: {e}")


# -- the model ----------------------------------------------------------------
def pair(v):
    """kernel, stride or dilation: an int or [h, w]."""
    return (int(v), int(v)) if isinstance(v, (int, float)) else (int(v[0]), int(v[-1]))


def pads(v):
    """padding: an int, [h, w] or [top, left, bottom, right], as (top, bottom, left, right)."""
    v = [int(v)] if isinstance(v, (int, float)) else [int(p) for p in v]
    if len(v) == 4:
        return v[0], v[2], v[1], v[3]
    return v[0], v[0], v[-1], v[-1]


class Model:
    """The YAML document: declared tensors, nodes, outputs and every tensor's dtype."""

    def __init__(self, doc, path="<model>"):
        if not isinstance(doc, dict) or "nodes" not in doc and "outputs" not in doc:
            raise UsageError(f"{path}: not an anvil model")
        self.path = path
        self.name = str(doc.get("name", os.path.basename(path)))
        self.dtype = doc.get("dtype", "f32")
        self.decls, self.kind, self.dtypes = {}, {}, {}
        for kind in ("inputs", "params"):
            for t in doc.get(kind) or []:
                self.decls[t["name"]] = t
                self.kind[t["name"]] = kind
                self.dtypes[t["name"]] = t.get("dtype", self.dtype)
        self.nodes = {}
        self.file_order = {}
        for i, n in enumerate(doc.get("nodes") or []):
            if n["op"] not in OP_BUILDERS:
                raise UsageError(f"{path}: node '{n['name']}': op '{n['op']}' is not known to baselines.py")
            self.nodes[n["name"]] = n
            self.file_order[n["name"]] = i
            self.dtypes[n["name"]] = n.get("dtype", self.dtype)
        self.outputs = list(doc.get("outputs") or [])
        for name in self.outputs:
            if name not in self.dtypes:
                raise UsageError(f"{path}: output '{name}' is declared nowhere")
        for name, d in self.dtypes.items():
            if d not in DTYPES:
                raise UsageError(f"{path}: tensor '{name}': unknown dtype '{d}'")

    def inputs_of(self, name):
        return self.nodes[name].get("inputs") or [] if name in self.nodes else []

    def needed(self):
        """Every node an output depends on (iteratively: LSTM chains are deep)."""
        seen, stack = set(), list(self.outputs)
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            if name not in self.dtypes:
                raise UsageError(f"{self.path}: '{name}' is declared nowhere")
            seen.add(name)
            stack.extend(self.inputs_of(name))
        return seen

    def order(self):
        """The needed nodes in a topological order, file order where free
        (Kahn's algorithm with a heap on the file position)."""
        need = {n for n in self.needed() if n in self.nodes}
        waiting = {n: len({i for i in self.inputs_of(n) if i in need}) for n in need}
        users = {}
        for n in need:
            for i in set(self.inputs_of(n)):
                if i in need:
                    users.setdefault(i, []).append(n)
        ready = [(self.file_order[n], n) for n, w in waiting.items() if w == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            _, n = heapq.heappop(ready)
            order.append(n)
            for u in users.get(n, []):
                waiting[u] -= 1
                if waiting[u] == 0:
                    heapq.heappush(ready, (self.file_order[u], u))
        if len(order) != len(need):
            stuck = sorted(n for n in need if waiting[n] > 0)
            raise UsageError(f"{self.path}: the graph has a cycle through {', '.join(stuck[:8])}")
        return order

    def loosest_dtype(self, name):
        """The loosest-tolerance dtype on the way to `name` (its whole input cone)."""
        worst, seen, stack = self.dtypes[name], set(), [name]
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            if SPEC_TOLERANCE[self.dtypes[n]] > SPEC_TOLERANCE[worst]:
                worst = self.dtypes[n]
            stack.extend(self.inputs_of(n))
        return worst


def load_model(path):
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such model file")
    return Model(load_yaml(path), path)


# -- the op layer: every op of the spec, once ----------------------------------
# A builder reads a node's attributes once, when the program is planned, and
# returns fn(be, args) that computes the node with backend `be`'s primitives.
def _unary(prim):
    return lambda node: lambda be, a: getattr(be, prim)(a[0])


def _binary(prim):
    return lambda node: lambda be, a: getattr(be, prim)(a[0], a[1])


def _constant(node):
    shape, value, dtype = tuple(int(d) for d in node.get("shape", [])), float(node["value"]), node["_dtype"]
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
        if not axes:  # a reduction over no axis is the identity (torch would reduce over all)
            return lambda be, a: a[0]
        return lambda be, a: be.reduce(kind, a[0], axes, keepdims)
    return build


def _matmul(node):
    ta, tb = bool(node.get("transpose_a", False)), bool(node.get("transpose_b", False))

    def fn(be, a):
        x = be.swap_last(a[0]) if ta else a[0]
        y = be.swap_last(a[1]) if tb else a[1]
        return be.matmul(x, y)
    return fn


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
    axis, step = int(node["axis"]), int(node.get("step", 1))
    start = int(node.get("start", 0))
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
        kernel = pair(node["kernel"])
        stride = pair(node.get("stride", node["kernel"]))
        padding = pads(node.get("padding", 0))
        if kind == "max":
            return lambda be, a: be.maxpool2d(a[0], kernel, stride, padding)
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
    "abs": _unary("abs"), "silu": _unary("silu"),
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


class Step:
    """One node of the program: its function, inputs, the dtype each float
    input is cast to first (None: as it is), its dtype, what dies after it."""
    __slots__ = ("name", "fn", "inputs", "casts", "dtype", "free")


class Program:
    """A model as a forward function over any backend."""

    def __init__(self, model):
        self.model = model
        order = model.order()
        self.outputs = list(model.outputs)
        self.const_nodes = [n for n in order if model.nodes[n]["op"] == "constant"]
        nodes = [n for n in order if model.nodes[n]["op"] != "constant"]
        used = {i for n in nodes for i in model.inputs_of(n)} | set(self.outputs)
        self.arg_names = [n for n in model.decls if n in used]
        last_use = {}
        for k, n in enumerate(nodes):
            for i in model.inputs_of(n):
                last_use[i] = k
        dies_after = [[] for _ in nodes]
        for name, k in last_use.items():
            if name not in self.outputs:
                dies_after[k].append(name)
        self.steps = [self._step(n, dies_after[k]) for k, n in enumerate(nodes)]

    def _step(self, name, free):
        node, dtypes = self.model.nodes[name], self.model.dtypes
        s = Step()
        s.name, s.dtype, s.free = name, dtypes[name], free
        s.inputs = list(self.model.inputs_of(name))
        s.fn = OP_BUILDERS[node["op"]](node)
        # One float dtype for inputs and result: compute in it. A mix: in f32.
        floats = {dtypes[i] for i in s.inputs if dtypes[i] in FLOAT_DTYPES}
        mixed = len(floats | {s.dtype}) > 1
        s.casts = [("f32" if mixed and dtypes[i] != "f32" and dtypes[i] in FLOAT_DTYPES else None)
                   for i in s.inputs]
        return s

    def constants(self, be):
        """Constant nodes, made once outside the timed forward (as a user's
        Python scalars or module buffers would be)."""
        out = {}
        for n in self.const_nodes:
            node = dict(self.model.nodes[n], _dtype=self.model.dtypes[n])
            out[n] = be.cast(OP_BUILDERS["constant"](node)(be, []), self.model.dtypes[n])
        return out

    def run(self, be, args, consts):
        env = dict(consts)
        env.update(zip(self.arg_names, args))
        for s in self.steps:
            xs = [env[i] if c is None else be.cast(env[i], c) for i, c in zip(s.inputs, s.casts)]
            env[s.name] = be.cast(s.fn(be, xs), s.dtype)
            for n in s.free:
                del env[n]
        return tuple(env[o] for o in self.outputs)

    def upload(self, be, values):
        return [be.upload(values[n], self.model.dtypes[n]) for n in self.arg_names]


# -- backends -------------------------------------------------------------------
class Backend:
    """Primitives shared by all backends, written once from the spec's
    formulas; a framework overrides them with its own kernels where it has
    them. Binary primitives also take a Python number as their second operand."""

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
        per_channel = [self.reshape(self.stat(p), shape) for p in (scale, bias, mean, var)]
        scale, bias, mean, var = per_channel
        k = self.mul(scale, self.rsqrt(self.add(var, eps)))
        return self.add(self.mul(self.sub(self.stat(x), mean), k), bias)

    def global_avgpool(self, x):
        return self.reduce("mean", x, (2, 3), True)


def round_bf16(x):
    """float32 rounded to the nearest bfloat16 (ties to even), as float32."""
    x = np.array(x, np.float32)
    bits = x.reshape(-1).view(np.uint32)  # 1-d: numpy scalar arithmetic would widen 0-d values
    up = np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))
    rounded = ((bits + up) & np.uint32(0xFFFF0000)).view(np.float32).reshape(x.shape)
    return np.where(np.isnan(x), x, rounded)


def _erf_numpy():
    try:
        from scipy.special import erf
        return erf
    except ImportError:
        return np.vectorize(math.erf, otypes=[np.float64])


class NumpyBackend(Backend):
    """numpy on the CPU. `exact`: float64 and no rounding (the self-test's
    reference); otherwise float32 with every node rounded to its storage
    dtype, as anvil stores it."""
    name = "numpy"

    def __init__(self, exact=False):
        self.exact = exact
        self.ft = np.float64 if exact else np.float32
        self._erf = _erf_numpy()

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

    def maxpool2d(self, x, kernel, stride, padding):
        return self._windows(x, kernel, stride, (1, 1), padding, -np.inf).max(axis=(2, 3))

    def avgpool2d(self, x, kernel, stride, padding, count_include_pad):
        total = self._windows(x, kernel, stride, (1, 1), padding, 0.0).sum(axis=(2, 3))
        if count_include_pad:
            return self._f(total / (kernel[0] * kernel[1]))
        real = self._windows(np.ones_like(x), kernel, stride, (1, 1), padding, 0.0).sum(axis=(2, 3))
        return self._f(total / real)


class TorchBackend(Backend):
    """PyTorch: torch and torch.nn.functional kernels on one device."""
    name = "torch"

    def __init__(self, torch, device):
        self.torch, self.F, self.device = torch, torch.nn.functional, device
        self.dtypes = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16,
                       "i32": torch.int64}  # ids index as int64, torch's index type
        self.has_rms_norm = hasattr(self.F, "rms_norm")  # torch >= 2.4

    def upload(self, arr, dtype):
        # np.array, not ascontiguousarray, which makes a 0-d array 1-d
        host = np.array(arr, np.int64 if dtype == "i32" else np.float32, order="C")
        return self.torch.from_numpy(host).to(self.device).to(self.dtypes[dtype])

    def to_numpy(self, x):
        return x.detach().double().cpu().numpy()

    def stat(self, x):
        # the composite rmsnorm's statistics in f32 (torch < 2.4 has no
        # F.rms_norm), as Llama's own RMSNorm and F.rms_norm compute them
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

    def maxpool2d(self, x, kernel, stride, padding):
        if self._symmetric(padding, kernel):
            return self.F.max_pool2d(x, kernel, stride, (padding[0], padding[2]))
        return self.F.max_pool2d(self._pad(x, padding, float("-inf")), kernel, stride, 0)

    def avgpool2d(self, x, kernel, stride, padding, count_include_pad):
        if self._symmetric(padding, kernel):
            return self.F.avg_pool2d(x, kernel, stride, (padding[0], padding[2]), False, count_include_pad)
        mean = self.F.avg_pool2d(self._pad(x, padding), kernel, stride, 0)  # sum / (KH * KW)
        if count_include_pad:
            return mean
        ones = self.torch.ones((1, 1) + tuple(x.shape[2:]), dtype=self.torch.float32, device=x.device)
        real = self.F.avg_pool2d(self._pad(ones, padding), kernel, stride, 0)  # real cells / (KH * KW)
        return self.torch.div(mean.float(), real)


class JaxBackend(Backend):
    """jax.numpy, jax.nn and jax.lax on jax's default device."""
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
        # f16/bf16 statistics in f32, as flax's normalisation layers compute them
        return x.astype(self.jnp.float32) if x.dtype in (self.jnp.float16, self.jnp.bfloat16) else x

    def _precision(self, x):
        # f32 stays f32: without HIGHEST, XLA may use TF32 on the GPU
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

    def _reduce_windows(self, x, kernel, stride, padding, init, op):
        top, bottom, left, right = padding
        return self.lax.reduce_window(x, init, op, (1, 1) + tuple(kernel), (1, 1) + tuple(stride),
                                      ((0, 0), (0, 0), (top, bottom), (left, right)))

    def maxpool2d(self, x, kernel, stride, padding):
        # reduce_window pads with the init value: -inf never wins
        return self._reduce_windows(x, kernel, stride, padding, np.array(-np.inf, dtype=x.dtype), self.lax.max)

    def avgpool2d(self, x, kernel, stride, padding, count_include_pad):
        zero = np.array(0, np.float32)
        total = self._reduce_windows(self.stat(x), kernel, stride, padding, zero, self.lax.add)
        if count_include_pad:
            return total / (kernel[0] * kernel[1])
        ones = np.ones((1, 1) + tuple(x.shape[2:]), np.float32)  # a constant: XLA folds the counts
        return total / self._reduce_windows(ones, kernel, stride, padding, zero, self.lax.add)


# -- LSTM: the unrolled layout of scripts/zoo/lstm_tc.py, and nn.LSTM -----------
def lstm_tc_nodes(layers, steps, hidden):
    """The nodes scripts/zoo/lstm_tc.py writes for a stacked LSTM over the
    input x [steps, features], with params w{l} [features or H, 4H], u{l}
    [H, 4H] and b{l} [4H] per layer: z = x_t @ W + b (+ h @ U from step 1
    on: the state starts at zero), gate columns (i, f, o, g), one sigmoid
    over i|f|o and tanh over g, c = f*c + i*g (c = i*g at step 0), h =
    o*tanh(c); y = the last layer's h of every step, concatenated. Returns
    (node mappings as in the YAML, the name of the last layer's final h)."""
    H, nodes = hidden, []

    def op(name, kind, inputs, **attrs):
        nodes.append(dict(name=name, op=kind, inputs=list(inputs), **attrs))
        return name

    prev = [op(f"x_t{t}", "slice", ["x"], axis=0, start=t, end=t + 1) for t in range(steps)]
    for l in range(layers):
        h = c = None
        outs = []
        for t in range(steps):
            p = f"l{l}t{t}_"
            z = op(p + "xb", "add", [op(p + "xw", "matmul", [prev[t], f"w{l}"]), f"b{l}"])
            if h is not None:
                z = op(p + "z", "add", [z, op(p + "hu", "matmul", [h, f"u{l}"])])
            sig = op(p + "sig", "sigmoid", [op(p + "sg", "slice", [z], axis=1, start=0, end=3 * H)])
            g = op(p + "g", "tanh", [op(p + "gz", "slice", [z], axis=1, start=3 * H, end=4 * H)])
            i = op(p + "i", "slice", [sig], axis=1, start=0, end=H)
            o = op(p + "o", "slice", [sig], axis=1, start=2 * H, end=3 * H)
            c_new = ig = op(p + "ig", "mul", [i, g])
            if c is not None:
                f = op(p + "f", "slice", [sig], axis=1, start=H, end=2 * H)
                c_new = op(p + "c", "add", [op(p + "fc", "mul", [f, c]), ig])
            h = op(p + "h", "mul", [o, op(p + "tc", "tanh", [c_new])])
            c = c_new
            outs.append(h)
        prev = outs
    op("y", "concat", prev, axis=0)
    return nodes, prev[-1]


class LstmLayout:
    """A model that is exactly lstm_tc_nodes(...): nn.LSTM's sizes and what
    each output is ("sequence": every h of the last layer; "final": its last h)."""

    def __init__(self, layers, steps, features, hidden, outputs):
        self.layers, self.steps, self.features, self.hidden = layers, steps, features, hidden
        self.outputs = outputs


def _attrs(node):
    return {k: v for k, v in node.items() if k not in ("name", "op", "inputs", "dtype")}


def lstm_layout(model):
    """The LstmLayout of `model`, or Skip saying why it is not one."""
    why = "not a stacked LSTM in the layout of scripts/zoo/lstm_tc.py"
    inputs = [n for n, k in model.kind.items() if k == "inputs"]
    if inputs != ["x"] or len(model.decls["x"]["shape"]) != 2 or "w0" not in model.decls or "u0" not in model.decls:
        raise Skip(f"{why} (it needs one input x [steps, features] and params w0, u0, b0, ...)")
    steps, features = (int(d) for d in model.decls["x"]["shape"])
    hidden = int(model.decls["u0"]["shape"][0])
    layers = 0
    while f"w{layers}" in model.decls:
        layers += 1
    for l in range(layers):
        want = {f"w{l}": [features if l == 0 else hidden, 4 * hidden], f"u{l}": [hidden, 4 * hidden],
                f"b{l}": [4 * hidden]}
        for name, shape in want.items():
            if name not in model.decls or [int(d) for d in model.decls[name]["shape"]] != shape:
                raise Skip(f"{why} (param {name} should be {shape})")
    expected, final = lstm_tc_nodes(layers, steps, hidden)
    if set(model.nodes) != {n["name"] for n in expected}:
        raise Skip(f"{why} (its nodes are not the unrolled cells of {layers} layers x {steps} steps)")
    for e in expected:
        m = model.nodes[e["name"]]
        if m["op"] != e["op"] or list(m.get("inputs") or []) != e["inputs"] or _attrs(m) != _attrs(e):
            raise Skip(f"{why} (node '{e['name']}' differs from it)")
    if len(set(model.dtypes.values())) != 1:
        raise Skip(f"{why} (its tensors do not share one dtype)")
    kinds = {"y": "sequence", final: "final"}
    if any(o not in kinds for o in model.outputs):
        raise Skip(f"{why} (outputs other than y and {final})")
    return LstmLayout(layers, steps, features, hidden, [kinds[o] for o in model.outputs])


def lstm_weights(layout, values):
    """Per layer, nn.LSTM's (weight_ih, weight_hh, bias_ih, bias_hh) from
    the graph's w, u, b: nn.LSTM multiplies W_ih [4H, in] @ x with gate rows
    (i, f, g, o); the graph multiplies x @ W [in, 4H] with gate columns
    (i, f, o, g). The graph has one bias, so bias_hh is zero."""
    H = layout.hidden
    rows = np.concatenate([np.arange(0, 2 * H), np.arange(3 * H, 4 * H), np.arange(2 * H, 3 * H)])
    out = []
    for l in range(layout.layers):
        w, u, b = (np.asarray(values[f"{p}{l}"], np.float64) for p in "wub")
        out.append((w[:, rows].T.copy(), u[:, rows].T.copy(), b[rows].copy(), np.zeros(4 * H)))
    return out


def lstm_equations(x, weights):
    """nn.LSTM's documented equations in float64, zero initial state, batch
    1: (every h of the last layer [steps, H], its last h [1, H])."""
    seq = np.asarray(x, np.float64)
    sigmoid = lambda v: 1 / (1 + np.exp(-v))
    for w_ih, w_hh, b_ih, b_hh in weights:
        H = w_hh.shape[1]
        h, c, outs = np.zeros(H), np.zeros(H), []
        for x_t in seq:
            i, f, g, o = np.split(w_ih @ x_t + b_ih + w_hh @ h + b_hh, 4)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
            outs.append(h)
        seq = np.stack(outs)
    return seq, seq[-1:]


# -- a job: the model, anvil's values, and the measuring method ------------------
class Job:
    def __init__(self, model_path, io_dir, iters, warmup):
        if not os.path.isdir(io_dir):
            raise UsageError(f"{io_dir}: no such IO directory (write one with `anvil run MODEL --save-io DIR`)")
        self.model = load_model(model_path)
        self.program = Program(self.model)
        self.io_dir, self.iters, self.warmup = io_dir, iters, warmup
        self.values = {n: self._load(self.model.kind[n], n) for n in self.model.decls}
        self.expected = {n: self._load("outputs", n).astype(np.float64) for n in self.model.outputs}
        self._check_ids()

    def _load(self, kind, name):
        path = os.path.join(self.io_dir, kind, name + ".npy")
        if not os.path.isfile(path):
            raise UsageError(f"{path}: missing (is {self.io_dir} from `anvil run {self.model.path} --save-io`?)")
        arr = np.load(path)
        dtype = self.model.dtypes[name]
        stored = {"f16": "float16", "i32": "int32"}.get(dtype, "float32")  # bf16 is saved as its f32 value
        if arr.dtype != np.dtype(stored):
            raise UsageError(f"{path}: holds {arr.dtype} values, but '{name}' is {dtype} (saved as {stored})")
        want = [int(d) for d in self.model.decls[name]["shape"]] if name in self.model.decls else None
        if want is not None and list(arr.shape) != want:
            raise UsageError(f"{path}: shape {list(arr.shape)}, the model says {want}")
        return arr

    def _check_ids(self):
        """Embedding ids outside the table would be a device-side assert in
        torch and NaN in jax: refuse them here, as anvil does at run time."""
        for node in self.model.nodes.values():
            if node["op"] != "embedding":
                continue
            table, ids = node["inputs"][:2]
            if table in self.values and ids in self.values:
                v, bad = self.values[table].shape[0], self.values[ids]
                if bad.size and (bad.min() < 0 or bad.max() >= v):
                    raise UsageError(f"node '{node['name']}': an embedding id is outside [0, {v})")


def compare(model, got, expected):
    """Relative L2 error and tolerance of every output; the problems found."""
    rel, tol, problems = {}, {}, []
    for name, g in zip(model.outputs, got):
        e = expected[name]
        tol[name] = FRAMEWORK_TOLERANCE[model.loosest_dtype(name)]
        if g.shape != e.shape:
            rel[name] = None
            problems.append(f"{name}: shape {list(g.shape)}, anvil's is {list(e.shape)}")
            continue
        err = float(np.linalg.norm(g - e) / max(float(np.linalg.norm(e)), 1e-30))
        rel[name] = err if math.isfinite(err) else None
        if not err <= tol[name]:
            problems.append(f"{name}: relative L2 error {err:.3e} against anvil, over {tol[name]:.0e}")
    return rel, tol, problems


def summarize(times_us):
    return {"us": statistics.median(times_us), "min_us": min(times_us), "max_us": max(times_us)}


def time_events(torch, call, warmup, iters):
    """anvil profile's method: CUDA events on the current stream around each
    run, waited for before the next."""
    for _ in range(warmup):
        call()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(iters):
        start.record()
        call()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e3)  # ms -> us
    return times


def time_wall(call, warmup, iters):
    """Wall clock around a call that blocks until its outputs are ready."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1e6)
    return times


def check_and_time(entry, job, setup, call, fetch, timer):
    """setup() makes the first outputs (compiling or capturing on the way);
    they are checked against anvil's; only a baseline that agrees is timed."""
    t0 = time.perf_counter()
    got = fetch(setup())
    entry["setup_s"] = round(time.perf_counter() - t0, 3)
    entry["rel_l2"], entry["tolerance"], problems = compare(job.model, got, job.expected)
    if problems:
        entry["error"] = "; ".join(problems) + " (not timed)"
        return
    entry.update(summarize(timer(call)))
    entry["ok"] = True


# -- the baselines ----------------------------------------------------------------
def import_torch():
    try:
        import torch
    except ImportError as e:
        raise Skip(f"torch is not installed ({e})")
    if not torch.cuda.is_available():
        raise Skip("torch sees no CUDA device")
    set_torch_precision(torch)
    return torch


def set_torch_precision(torch):
    # f32 must be f32: no TF32 in cuBLAS or cuDNN. benchmark=True: cuDNN
    # picks its fastest algorithms for these fixed shapes, as a tuned
    # deployment would.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True


def capture_cuda_graph(torch, fn):
    """torch.cuda.CUDAGraph capture of fn, after warm-up runs on a side
    stream (lazy initialisation and cuDNN autotuning cannot be captured)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outs = fn()
    return graph, outs


def run_torch(name, job, entry):
    if name == "torch_cudnn_lstm":
        return run_cudnn_lstm(job, entry)
    torch = import_torch()
    entry["timing"] = "cuda_events"
    entry["device"] = torch.cuda.get_device_name()
    be, prog = TorchBackend(torch, "cuda"), job.program
    fetch = lambda outs: [be.to_numpy(o) for o in outs]
    timer = lambda call: time_events(torch, call, job.warmup, job.iters)
    with torch.no_grad():
        args, consts = prog.upload(be, job.values), prog.constants(be)

        def forward(*a):
            return prog.run(be, a, consts)

        if name == "torch_eager":
            call = lambda: forward(*args)
            check_and_time(entry, job, call, call, fetch, timer)
        elif name == "torch_compile":
            if not hasattr(torch, "compile"):
                raise Skip(f"torch {torch.__version__} has no torch.compile (it came with 2.0)")
            compiled = torch.compile(forward)
            call = lambda: compiled(*args)
            check_and_time(entry, job, call, call, fetch, timer)
        else:
            captured = {}

            def setup():
                captured["graph"], captured["outs"] = capture_cuda_graph(torch, lambda: forward(*args))
                return replay()

            def replay():
                captured["graph"].replay()
                return captured["outs"]

            check_and_time(entry, job, setup, replay, fetch, timer)


def run_cudnn_lstm(job, entry):
    layout = lstm_layout(job.model)
    torch = import_torch()
    entry["timing"] = "cuda_events"
    entry["device"] = torch.cuda.get_device_name()
    entry["impl"] = "cudnn" if torch.backends.cudnn.is_available() and torch.backends.cudnn.enabled else "native"
    be = TorchBackend(torch, "cuda")
    dtype = job.model.dtypes["x"]
    lstm = torch.nn.LSTM(layout.features, layout.hidden, num_layers=layout.layers)
    lstm = lstm.to(device=be.device, dtype=be.dtypes[dtype]).eval()
    with torch.no_grad():
        for l, arrays in enumerate(lstm_weights(layout, job.values)):
            for pname, arr in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), arrays):
                getattr(lstm, f"{pname}_l{l}").copy_(torch.from_numpy(arr.astype(np.float32)))
        lstm.flatten_parameters()
        x = be.upload(job.values["x"], dtype).reshape(layout.steps, 1, layout.features)  # [seq, batch 1, in]

        def call():
            out, (h_n, _) = lstm(x)
            return tuple(out[:, 0] if k == "sequence" else h_n[-1] for k in layout.outputs)

        fetch = lambda outs: [be.to_numpy(o) for o in outs]
        check_and_time(entry, job, call, call, fetch, lambda c: time_events(torch, c, job.warmup, job.iters))


def run_jax(name, job, entry):
    # Without this jax takes 75% of the GPU's memory at start-up.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    try:
        import jax
    except ImportError as e:
        raise Skip(f"jax is not installed ({e})")
    device = jax.devices()[0]
    if device.platform == "cpu":  # CPU times next to GPU ones would mislead
        raise Skip(f"jax {jax.__version__} has no GPU backend here (install jax[cuda12])")
    entry["timing"] = "wall_clock (includes dispatch)"
    entry["device"] = f"{device.platform}: {getattr(device, 'device_kind', str(device))}"
    be, prog = JaxBackend(jax), job.program
    args, consts = prog.upload(be, job.values), prog.constants(be)
    fn = jax.jit(lambda *a: prog.run(be, a, consts))

    def call():
        outs = fn(*args)
        for o in outs:
            o.block_until_ready()
        return outs

    fetch = lambda outs: [be.to_numpy(o) for o in outs]
    check_and_time(entry, job, call, call, fetch, lambda c: time_wall(c, job.warmup, job.iters))


def run_numpy(name, job, entry):
    entry["timing"] = "wall_clock"
    entry["device"] = f"cpu: {platform.machine()}"
    be, prog = NumpyBackend(), job.program
    args, consts = prog.upload(be, job.values), prog.constants(be)

    def call():
        with np.errstate(all="ignore"):  # exp overflowing to inf in sigmoid is fine
            return prog.run(be, args, consts)

    fetch = lambda outs: [be.to_numpy(o) for o in outs]
    check_and_time(entry, job, call, call, fetch, lambda c: time_wall(c, job.warmup, job.iters))


RUNNERS = {"torch_eager": run_torch, "torch_cuda_graph": run_torch, "torch_compile": run_torch,
           "torch_cudnn_lstm": run_torch, "jax_jit": run_jax, "numpy": run_numpy}


def new_entry():
    return {"us": None, "min_us": None, "max_us": None, "ok": False, "rel_l2": {}, "tolerance": {}}


def run_one(name, job):
    entry = new_entry()
    try:
        RUNNERS[name](name, job, entry)
    except Skip as e:
        entry["skipped"] = str(e)
    except Exception as e:  # one baseline's failure must not stop the others
        import traceback
        traceback.print_exc()
        first = str(e).strip().splitlines()
        entry["error"] = f"{type(e).__name__}: {first[0] if first else ''}"
    return entry


def framework_versions():
    """Versions of the frameworks this process imported."""
    v = {}
    torch = sys.modules.get("torch")
    if torch is not None:
        v["torch"] = torch.__version__
        v["cuda"] = torch.version.cuda
        if torch.backends.cudnn.is_available():
            v["cudnn"] = torch.backends.cudnn.version()
    jax = sys.modules.get("jax")
    if jax is not None:
        v["jax"] = jax.__version__
        jaxlib = sys.modules.get("jaxlib")
        if jaxlib is not None and hasattr(jaxlib, "__version__"):
            v["jaxlib"] = jaxlib.__version__
    return v


def _pump(stream, tail):
    """Copies a child's stderr to ours, keeping its last lines."""
    for line in stream:
        sys.stderr.write(line)
        tail.append(line.rstrip("\n"))


def run_child(name, args):
    """One baseline in a child process of this script; its entry and versions."""
    import collections
    import signal
    import threading
    with tempfile.TemporaryDirectory(prefix="anvil-baselines-") as tmp:
        out = os.path.join(tmp, "result.json")
        cmd = [sys.executable, SCRIPT, args.model, args.io_dir, "--iters", str(args.iters),
               "--warmup", str(args.warmup), "--only", name, "--in-process", "--json", out]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        tail = collections.deque(maxlen=8)
        reader = threading.Thread(target=_pump, args=(proc.stderr, tail), daemon=True)
        reader.start()
        try:
            rc = proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the child and any compile workers it started
            proc.wait()
            reader.join(5)
            return dict(new_entry(), error=f"timed out after {args.timeout} s"), {}
        reader.join(5)
        if rc == 0 and os.path.isfile(out):
            with open(out) as f:
                data = json.load(f)
            return data["baselines"][name], data.get("versions", {})
        last = " | ".join(l for l in tail if l.strip())[-600:]
        return dict(new_entry(), error=f"its process exited with status {rc}: {last}"), {}


# -- report -----------------------------------------------------------------------
def _status(entry):
    if entry.get("skipped"):
        return "skipped: " + entry["skipped"]
    if entry.get("error"):
        return "FAILED: " + entry["error"]
    worst = max((e for e in entry["rel_l2"].values() if e is not None), default=0.0)
    return f"ok (worst rel L2 {worst:.1e})"


def print_table(report):
    fmt = lambda v: "-" if v is None else f"{v:.1f}"
    print(f"model {report['model']}: external baselines, median/min/max of {report['iters']} runs "
          f"after {report['warmup']} warm-up runs, us")
    print(f"  {'baseline':<18} {'median':>10} {'min':>10} {'max':>10}  check")
    for name, e in report["baselines"].items():
        print(f"  {name:<18} {fmt(e['us']):>10} {fmt(e['min_us']):>10} {fmt(e['max_us']):>10}  {_status(e)}")
    print("  (torch: CUDA events; jax and numpy: wall clock including dispatch)")


# -- self-test ----------------------------------------------------------------------
def _case(label, op, shapes, dtype="f32", positive=(), ids=None, dtypes=None, node_dtype=None, **attrs):
    """A one-node model doc: inputs a0, a1, ... of `shapes` (normal values;
    the indices in `positive` uniform in [0.5, 2]; `ids` = (index, high): i32
    ids in [0, high)), node y = op(a0, a1, ...)."""
    dtypes = dtypes or {}
    inputs = []
    for k, shape in enumerate(shapes):
        t = {"name": f"a{k}", "shape": list(shape)}
        if ids and ids[0] == k:
            t.update(dtype="i32", high=ids[1])
        elif k in dtypes:
            t["dtype"] = dtypes[k]
        if k in positive:
            t["positive"] = True
        inputs.append(t)
    node = dict(name="y", op=op, inputs=[t["name"] for t in inputs], **attrs)
    if node_dtype:
        node["dtype"] = node_dtype
    return {"anvil": 1, "name": label, "dtype": dtype, "inputs": inputs, "nodes": [node], "outputs": ["y"]}


def self_test_cases():
    c = _case
    cases = [c(f"{op}", op, [[3, 17]], positive=(0,) if op in ("log", "sqrt", "rsqrt") else ())
             for op in ("relu", "sigmoid", "tanh", "exp", "log", "sqrt", "rsqrt", "neg", "abs", "silu")]
    cases += [c(f"{op}_broadcast", op, [[4, 1, 5], [3, 5]], positive=(0, 1) if op in ("div", "pow") else ())
              for op in ("add", "sub", "mul", "div", "max", "min", "pow")]
    cases += [
        c("gelu_erf", "gelu", [[4, 33]]),
        c("gelu_tanh", "gelu", [[4, 33]], approximate="tanh"),
        {"anvil": 1, "name": "constant", "dtype": "f32", "inputs": [{"name": "a0", "shape": [2, 3]}],
         "nodes": [{"name": "k", "op": "constant", "value": 0.75, "shape": [3]},
                   {"name": "y", "op": "mul", "inputs": ["a0", "k"]}], "outputs": ["y", "k"]},
        c("softmax_last", "softmax", [[3, 4, 9]]),
        c("softmax_axis0", "softmax", [[5, 7]], axis=0),
        c("layernorm_last", "layernorm", [[4, 6, 8], [8], [8]], eps=1e-3),
        c("layernorm_axis-2", "layernorm", [[4, 6, 8], [6, 8], [6, 8]], axis=-2),
        c("rmsnorm", "rmsnorm", [[5, 16], [16]]),
        c("reduce_sum", "reduce_sum", [[3, 4, 5]], axes=[0, 2]),
        c("reduce_mean_keep", "reduce_mean", [[3, 4, 5]], axes=[-1], keepdims=True),
        c("reduce_max", "reduce_max", [[3, 4, 5]], axes=[1]),
        c("matmul_batch", "matmul", [[2, 3, 4, 5], [5, 6]]),
        c("matmul_transposed", "matmul", [[2, 1, 5, 4], [3, 6, 5]], transpose_a=True, transpose_b=True),
        c("transpose", "transpose", [[2, 3, 4]], perm=[2, 0, 1]),
        c("reshape", "reshape", [[2, 3, 4]], shape=[-1, 6]),
        c("concat", "concat", [[2, 3], [2, 1], [2, 4]], axis=1),
        c("slice_negative_step", "slice", [[3, 11]], axis=1, start=-9, end=-1, step=2),
        c("slice_start", "slice", [[5, 2]], axis=0, start=1),
        c("conv2d_general", "conv2d", [[2, 4, 9, 11], [6, 2, 3, 3], [6]], stride=[2, 1], padding=[1, 0, 2, 1],
          dilation=[1, 2], groups=2),
        c("conv2d_same", "conv2d", [[1, 3, 8, 8], [5, 3, 3, 3]], padding=1),
        c("conv2d_depthwise", "conv2d", [[2, 4, 7, 7], [4, 1, 3, 3]], stride=2, padding=[1, 1], groups=4),
        c("maxpool2d", "maxpool2d", [[2, 3, 9, 8]], kernel=3, stride=2, padding=1),
        c("maxpool2d_asym", "maxpool2d", [[2, 3, 9, 8]], kernel=[3, 2], stride=[2, 1], padding=[1, 0, 1, 1]),
        c("avgpool2d", "avgpool2d", [[2, 3, 9, 8]], kernel=3, stride=2, padding=1),
        c("avgpool2d_include", "avgpool2d", [[2, 3, 9, 8]], kernel=3, stride=1, padding=1, count_include_pad=True),
        c("avgpool2d_asym", "avgpool2d", [[2, 3, 9, 8]], kernel=[2, 3], stride=[1, 2], padding=[1, 1, 0, 2]),
        c("avgpool2d_asym_include", "avgpool2d", [[2, 3, 9, 8]], kernel=2, padding=[0, 1, 1, 0],
          count_include_pad=True),
        c("global_avgpool", "global_avgpool", [[2, 3, 5, 7]]),
        c("batchnorm", "batchnorm", [[2, 3, 4, 5], [3], [3], [3], [3]], positive=(4,), eps=1e-3),
        c("embedding", "embedding", [[10, 4], [3, 2]], ids=(1, 10)),
        # the storage dtypes and their mixes
        c("matmul_f16", "matmul", [[8, 64], [64, 16]], dtype="f16"),
        c("conv2d_f16", "conv2d", [[1, 8, 6, 6], [4, 8, 3, 3]], dtype="f16", padding=1),
        c("avgpool2d_f16", "avgpool2d", [[1, 2, 6, 6]], dtype="f16", kernel=2, padding=[0, 1, 1, 0]),
        c("layernorm_bf16", "layernorm", [[4, 32], [32], [32]], dtype="bf16"),
        c("softmax_bf16", "softmax", [[4, 32]], dtype="bf16"),
        c("batchnorm_bf16", "batchnorm", [[2, 3, 4, 5], [3], [3], [3], [3]], dtype="bf16", positive=(4,)),
        c("add_mixed", "add", [[4, 8], [4, 8]], dtype="bf16", dtypes={0: "f32"}, node_dtype="f32"),
        c("rmsnorm_mixed", "rmsnorm", [[3, 16], [16]], dtype="bf16", dtypes={0: "f32"}),
        c("embedding_f32_table", "embedding", [[10, 4], [5]], dtype="f16", dtypes={0: "f32"}, ids=(1, 10)),
    ]
    return cases


def _random_values(model, rng):
    values = {}
    for name, t in model.decls.items():
        shape = [int(d) for d in t["shape"]]
        if model.dtypes[name] == "i32":
            values[name] = rng.integers(0, int(t["high"]), shape).astype(np.int32)
            continue
        v = rng.uniform(0.5, 2.0, shape) if t.get("positive") else rng.standard_normal(shape)
        values[name] = NumpyBackend().cast(v, model.dtypes[name]).astype(np.float32)  # exact in its dtype
    return values


def _self_test_backends():
    """(name, backend, evaluate(program, args, consts), supports(dtype set)) for every framework here."""
    found = [("numpy", NumpyBackend(), None, lambda dts: True)]
    try:
        import torch
        set_torch_precision(torch)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        # torch's CPU kernels lack some f16/bf16 ops; the GPU has them all
        found.append((f"torch ({device})", TorchBackend(torch, device), torch.no_grad,
                      lambda dts: device == "cuda" or dts <= {"f32", "i32"}))
    except ImportError:
        print("self-test: torch is not installed: not tested")
    try:
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        import jax
        found.append((f"jax ({jax.devices()[0].platform})", JaxBackend(jax), "jit", lambda dts: True))
    except ImportError:
        print("self-test: jax is not installed: not tested")
    return found


def _evaluate(be, how, prog, values):
    args, consts = prog.upload(be, values), prog.constants(be)
    if how == "jit":
        outs = be.jax.jit(lambda *a: prog.run(be, a, consts))(*args)
    elif how is not None:
        with how():
            outs = prog.run(be, args, consts)
    else:
        outs = prog.run(be, args, consts)
    return [be.to_numpy(o) for o in outs]


def _independent_reference():
    """evaluate(node, args) of scripts/reference_check.py, anvil's float64
    check (written separately from this file), or None where it cannot load."""
    try:
        import importlib.util
        spec = importlib.util.spec_from_file_location("reference_check", os.path.join(REPO, "scripts",
                                                                                      "reference_check.py"))
        module = importlib.util.module_from_spec(spec)
        sys.dont_write_bytecode = True
        spec.loader.exec_module(module)
        return module.evaluate
    except Exception as e:  # e.g. PyYAML missing where it imports yaml
        print(f"self-test: scripts/reference_check.py cannot be loaded ({type(e).__name__}): "
              "the float64 numpy path is not checked against it")
        return None


def _reference_outputs(evaluate, model, values):
    env = {n: np.asarray(v, np.int64 if model.dtypes[n] == "i32" else np.float64) for n, v in values.items()}
    for n in model.order():
        env[n] = np.asarray(evaluate(model.nodes[n], [env[i] for i in model.inputs_of(n)]), np.float64)
    return [env[o] for o in model.outputs]


def self_test_ops(backends):
    """Every case in float64 numpy, first against reference_check.py (the
    op semantics), then every backend against it (the frameworks' kernels)."""
    failures = 0
    rng = np.random.default_rng(5)
    exact = NumpyBackend(exact=True)
    reference = _independent_reference()
    for doc in self_test_cases():
        model = Model(doc, doc["name"])
        prog = Program(model)
        values = _random_values(model, rng)
        with np.errstate(all="ignore"):
            want = _evaluate(exact, None, prog, values)
            if reference is not None:
                for out, r, w in zip(model.outputs, _reference_outputs(reference, model, values), want):
                    if r.shape != w.shape or not np.allclose(w, r, rtol=1e-9, atol=1e-12):
                        failures += 1
                        print(f"  FAILED {doc['name']}: float64 numpy differs from reference_check.py on {out}")
        for name, be, how, supports in backends:
            if not supports(set(model.dtypes.values())):
                continue
            try:
                with np.errstate(all="ignore"):
                    got = _evaluate(be, how, prog, values)
                bad = []
                for out, g, w in zip(model.outputs, got, want):
                    tol = SPEC_TOLERANCE[model.loosest_dtype(out)]
                    err = np.linalg.norm(g - w) / max(np.linalg.norm(w), 1e-30) if g.shape == w.shape else math.inf
                    if not err <= tol:
                        bad.append(f"{out}: shape {list(g.shape)} vs {list(w.shape)}, rel L2 {err:.2e} > {tol:.0e}")
            except Exception as e:
                bad = [f"{type(e).__name__}: {e}"]
            if bad:
                failures += 1
                print(f"  FAILED {doc['name']} on {name}: {'; '.join(bad)}")
    print(f"self-test: {len(self_test_cases())} single-op graphs on {', '.join(b[0] for b in backends)}: "
          f"{failures} failed")
    return failures


def self_test_lstm(backends):
    """The LSTM mapping: detection, and the graph against nn.LSTM's equations."""
    failures = 0
    layers, steps, features, hidden = 2, 4, 5, 3
    nodes, final = lstm_tc_nodes(layers, steps, hidden)
    params = []
    for l in range(layers):
        params += [{"name": f"w{l}", "shape": [features if l == 0 else hidden, 4 * hidden]},
                   {"name": f"u{l}", "shape": [hidden, 4 * hidden]}, {"name": f"b{l}", "shape": [4 * hidden]}]
    doc = {"anvil": 1, "name": "lstm", "dtype": "f32", "inputs": [{"name": "x", "shape": [steps, features]}],
           "params": params, "nodes": nodes, "outputs": ["y", final]}
    model = Model(doc, "lstm")
    values = _random_values(model, np.random.default_rng(9))
    layout = lstm_layout(model)
    graph = _evaluate(NumpyBackend(exact=True), None, Program(model), values)
    weights = lstm_weights(layout, values)
    for got, want in zip(graph, lstm_equations(values["x"], weights)):
        if not np.allclose(got, want, rtol=1e-12, atol=1e-12):
            failures += 1
            print("  FAILED: the unrolled graph differs from nn.LSTM's equations under the weight mapping")
    # A changed gate order is not the layout.
    swapped = dict(doc, nodes=[dict(n, start=2 * hidden, end=3 * hidden) if n["name"] == "l0t1_f" else
                               dict(n, start=hidden, end=2 * hidden) if n["name"] == "l0t1_o" else n
                               for n in nodes])
    for label, other in (("gate order", swapped), ("an MLP", self_test_cases()[0])):
        try:
            lstm_layout(Model(other, label))
            failures += 1
            print(f"  FAILED: {label} was taken for the lstm_tc layout")
        except Skip:
            pass
    small = os.path.join(REPO, "models", "lstm_tc_small.yaml")
    if os.path.isfile(small):
        lstm_layout(load_model(small))  # raises Skip if the generator's layout moved away
    torch = sys.modules.get("torch")
    if torch is not None and any(b[0].startswith("torch") for b in backends):
        device = "cuda" if torch.cuda.is_available() else "cpu"
        lstm = torch.nn.LSTM(features, hidden, num_layers=layers).to(device).eval()
        with torch.no_grad():
            for l, arrays in enumerate(weights):
                for pname, arr in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), arrays):
                    getattr(lstm, f"{pname}_l{l}").copy_(torch.from_numpy(arr.astype(np.float32)))
            out, (h_n, _) = lstm(torch.from_numpy(values["x"]).to(device).reshape(steps, 1, features))
        for got, want in ((out[:, 0], graph[0]), (h_n[-1], graph[1])):
            got = got.double().cpu().numpy()
            err = np.linalg.norm(got - want) / np.linalg.norm(want)
            if not err <= SPEC_TOLERANCE["f32"]:
                failures += 1
                print(f"  FAILED: nn.LSTM ({device}) differs from the graph: rel L2 {err:.2e}")
    print(f"self-test: LSTM layout and weight mapping: {failures} failed")
    return failures


def _same_yaml(a, b):
    """Equal, reading a numeric string (PyYAML keeps 1e-5 a string) as its number."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_yaml(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_yaml(x, y) for x, y in zip(a, b))
    if isinstance(a, str) != isinstance(b, str):
        try:
            return float(a) == float(b)
        except (TypeError, ValueError):
            return False
    return a == b


def self_test_yaml():
    try:
        import yaml
    except ImportError:
        print("self-test: PyYAML is not installed: the built-in reader is not compared with it")
        return 0
    import glob
    failures, files = 0, 0
    for path in sorted(glob.glob(os.path.join(REPO, "models", "*.yaml")) +
                       glob.glob(os.path.join(REPO, "tests", "models", "*.yaml"))):
        if os.path.getsize(path) > 256 * 1024:  # PyYAML takes long over the largest ones
            continue
        with open(path) as f:
            text = f.read()
        files += 1
        if not _same_yaml(parse_yaml_subset(text, path), yaml.safe_load(text)):
            failures += 1
            print(f"  FAILED: the built-in YAML reader and PyYAML differ on {path}")
    print(f"self-test: built-in YAML reader against PyYAML on {files} models: {failures} failed")
    return failures


def self_test():
    backends = _self_test_backends()
    failures = self_test_yaml() + self_test_ops(backends) + self_test_lstm(backends)
    print("self-test: " + ("ok" if failures == 0 else f"{failures} FAILED"))
    return 0 if failures == 0 else 1


# -- main ------------------------------------------------------------------------------
def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="baselines.py", description="Run a model with PyTorch, torch.compile, CUDA graphs, JAX (and cuDNN's "
        "LSTM), check their outputs against anvil's and time them.",
        epilog="Baselines: " + ", ".join(BASELINES) + " (numpy only when named). See the module docstring.")
    ap.add_argument("model", nargs="?", help="the model YAML")
    ap.add_argument("io_dir", nargs="?", help="the directory `anvil run MODEL --save-io DIR` wrote")
    ap.add_argument("--iters", type=int, default=50, help="timed runs (the median is reported)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed runs before them")
    ap.add_argument("--only", help="comma-separated baselines to run")
    ap.add_argument("--json", help="write the results as one JSON object here")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a baseline that ran failed")
    ap.add_argument("--timeout", type=float, default=None, help="seconds each child process may take")
    ap.add_argument("--in-process", action="store_true", help="run torch and jax in this process")
    ap.add_argument("--self-test", action="store_true", help="check the op layer of every installed framework")
    args = ap.parse_args(argv)
    if args.self_test:
        return args
    if not args.model or not args.io_dir:
        ap.error("MODEL.yaml and IO_DIR are required")
    args.names = list(DEFAULT_BASELINES)
    if args.only:
        args.names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in args.names if n not in BASELINES]
        if unknown or not args.names:
            ap.error(f"--only: unknown baseline(s) {', '.join(unknown) or '(none given)'}; "
                     f"known: {', '.join(BASELINES)}")
    if args.iters < 1 or args.warmup < 0:
        ap.error("--iters must be at least 1 and --warmup at least 0")
    return args


def main(argv):
    args = parse_args(argv)
    if args.self_test:
        return self_test()
    try:
        job = Job(args.model, args.io_dir, args.iters, args.warmup)
    except UsageError as e:
        print(f"baselines.py: {e}", file=sys.stderr)
        return 2
    results, versions = {}, {"numpy": np.__version__, "python": platform.python_version()}
    for name in args.names:
        if args.in_process or FRAMEWORK_OF[name] == "numpy":
            results[name] = run_one(name, job)
        else:
            results[name], child_versions = run_child(name, args)
            versions.update(child_versions)
    versions.update(framework_versions())
    report = {"model": job.model.name, "model_file": args.model, "io_dir": args.io_dir, "iters": args.iters,
              "warmup": args.warmup, "baselines": results, "versions": versions}
    print_table(report)
    if args.json:
        try:
            with open(args.json, "w") as f:
                json.dump(report, f, indent=2)
                f.write("\n")
        except OSError as e:
            print(f"baselines.py: cannot write {args.json}: {e.strerror}", file=sys.stderr)
            return 2
    failed = [n for n, e in results.items() if e.get("error")]
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
