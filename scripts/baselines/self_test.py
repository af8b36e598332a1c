"""--self-test: random single-op graphs of every op, evaluated in float64
numpy (the one float64 reference, which scripts/reference_check.py also
runs), then in every installed framework (numpy float32, torch, jax),
compared with the spec's own tolerances (so f32 at 1e-4 also proves TF32 is
off); and the LSTM weight mapping against nn.LSTM's documented equations
(and nn.LSTM itself where torch is installed)."""
import math
import os
import sys

import numpy as np

from . import Skip, UsageError
from .lstm import lstm_equations, lstm_layout, lstm_tc_nodes, lstm_weights, torch_lstm
from .model import SPEC_TOLERANCE, Model, Program, load_model
from .jax_backend import JaxBackend
from .numpy_backend import NumpyBackend
from .torch_backend import TorchBackend, set_torch_precision

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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


def cases():
    c = _case
    out = [c(f"{op}", op, [[3, 17]], positive=(0,) if op in ("log", "sqrt", "rsqrt") else ())
           for op in ("relu", "sigmoid", "tanh", "exp", "log", "sqrt", "rsqrt", "neg", "abs", "silu", "erf")]
    out += [c(f"{op}_broadcast", op, [[4, 1, 5], [3, 5]], positive=(0, 1) if op in ("div", "pow") else ())
            for op in ("add", "sub", "mul", "div", "max", "min", "pow")]
    out += [
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
        c("maxpool2d_dilated", "maxpool2d", [[2, 3, 9, 11]], kernel=[3, 2], stride=[1, 2], dilation=[2, 3],
          padding=[2, 1, 1, 0]),
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
    return out


def _random_values(model, rng):
    values, rounding = {}, NumpyBackend()
    for name, t in model.decls.items():
        shape = [int(d) for d in t["shape"]]
        if model.dtypes[name] == "i32":
            values[name] = rng.integers(0, int(t["high"]), shape).astype(np.int32)
            continue
        v = rng.uniform(0.5, 2.0, shape) if t.get("positive") else rng.standard_normal(shape)
        values[name] = rounding.cast(v, model.dtypes[name]).astype(np.float32)  # exact in its dtype
    return values


def _plain(be):
    return lambda prog, args, consts: prog.run(be, args, consts)


def _torch():
    import torch
    set_torch_precision(torch)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    be = TorchBackend(torch, device)

    def forward(prog, args, consts):
        with torch.no_grad():
            return prog.run(be, args, consts)
    # torch's CPU kernels lack some f16/bf16 ops; the GPU has them all
    return f"torch ({device})", be, forward, lambda dts: device == "cuda" or dts <= {"f32", "i32"}


def _jax():
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import jax
    be = JaxBackend(jax)
    forward = lambda prog, args, consts: jax.jit(lambda *a: prog.run(be, a, consts))(*args)
    return f"jax ({jax.devices()[0].platform})", be, forward, lambda dts: True


def _backends():
    """(label, backend, forward(program, args, consts), supports(dtype set))
    for every framework installed here."""
    numpy = NumpyBackend()
    found = [("numpy", numpy, _plain(numpy), lambda dts: True)]
    for name, make in (("torch", _torch), ("jax", _jax)):
        try:
            found.append(make())
        except ImportError:
            print(f"self-test: {name} is not installed: not tested")
    return found


def _evaluate(be, forward, prog, values):
    outs = forward(prog, prog.upload(be, values), prog.constants(be))
    return [be.to_numpy(o) for o in outs]


def _rel_l2_problem(out, got, want, tol):
    """None when `got` is within `tol` of `want`; otherwise what is wrong."""
    err = np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30) if got.shape == want.shape else math.inf
    return None if err <= tol else f"{out}: shape {list(got.shape)} vs {list(want.shape)}, rel L2 {err:.2e} > {tol:.0e}"


def self_test_ops(backends):
    """Every case in float64 numpy, then every backend against it (the
    frameworks' kernels)."""
    failures = 0
    rng = np.random.default_rng(5)
    exact = NumpyBackend(exact=True)
    docs = cases()
    for doc in docs:
        model = Model(doc, doc["name"])
        prog = Program(model)
        values = _random_values(model, rng)
        with np.errstate(all="ignore"):
            want = _evaluate(exact, _plain(exact), prog, values)
        for label, be, forward, supports in backends:
            if not supports(set(model.dtypes.values())):
                continue
            try:
                with np.errstate(all="ignore"):
                    got = _evaluate(be, forward, prog, values)
                bad = [_rel_l2_problem(out, g, w, SPEC_TOLERANCE[model.loosest_dtype(out)])
                       for out, g, w in zip(model.outputs, got, want)]
                bad = [b for b in bad if b]
            except Exception as e:
                bad = [f"{type(e).__name__}: {e}"]
            if bad:
                failures += 1
                print(f"  FAILED {doc['name']} on {label}: {'; '.join(bad)}")
    print(f"self-test: {len(docs)} single-op graphs on {', '.join(b[0] for b in backends)}: {failures} failed")
    return failures


def self_test_lstm():
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
    exact = NumpyBackend(exact=True)
    graph = _evaluate(exact, _plain(exact), Program(model), values)
    weights = lstm_weights(layout, values)
    for got, want in zip(graph, lstm_equations(values["x"], weights)):
        if not np.allclose(got, want, rtol=1e-12, atol=1e-12):
            failures += 1
            print("  FAILED: the unrolled graph differs from nn.LSTM's equations under the weight mapping")
    # A changed gate order is not the layout.
    swapped = dict(doc, nodes=[dict(n, start=2 * hidden, end=3 * hidden) if n["name"] == "l0t1_f" else
                               dict(n, start=hidden, end=2 * hidden) if n["name"] == "l0t1_o" else n
                               for n in nodes])
    for label, other in (("gate order", swapped), ("an MLP", cases()[0])):
        try:
            lstm_layout(Model(other, label))
            failures += 1
            print(f"  FAILED: {label} was taken for the lstm_tc layout")
        except Skip:
            pass
    small = os.path.join(REPO, "models", "lstm_tc_small.yaml")
    try:
        lstm_layout(load_model(small))
    except UsageError as e:
        print(f"self-test: {e}: {small} is not checked")
    except Skip as e:
        failures += 1
        print(f"  FAILED: {small} is not recognised any more: {e}")
    torch = sys.modules.get("torch")
    if torch is not None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        lstm = torch_lstm(torch, layout, weights, device, torch.float32)
        with torch.no_grad():
            out, (h_n, _) = lstm(torch.from_numpy(values["x"]).to(device).reshape(steps, 1, features))
        for got, want in ((out[:, 0], graph[0]), (h_n[-1], graph[1])):
            got = got.double().cpu().numpy()
            err = np.linalg.norm(got - want) / np.linalg.norm(want)
            if not err <= SPEC_TOLERANCE["f32"]:
                failures += 1
                print(f"  FAILED: nn.LSTM ({device}) differs from the graph: rel L2 {err:.2e}")
    print(f"self-test: LSTM layout and weight mapping: {failures} failed")
    return failures


def self_test():
    failures = self_test_ops(_backends()) + self_test_lstm()
    print("self-test: " + ("ok" if failures == 0 else f"{failures} FAILED"))
    return 0 if failures == 0 else 1
