"""The model YAML (shared/spec/model-format.md), and Program: its graph as
one forward function over any backend.

Dtypes. Every tensor keeps its YAML dtype. A node whose float inputs and
result share one dtype computes in it (the frameworks accumulate in f32
inside their kernels); a node that mixes dtypes (e.g. llama_decode's f32
residual added to a bf16 projection) computes in f32, and its result is cast
to the node's dtype.
"""
import heapq
import os

from . import UsageError
from .ops import OP_BUILDERS

FLOAT_DTYPES = ("f32", "f16", "bf16")
DTYPES = FLOAT_DTYPES + ("i32",)
# The spec's tolerance by dtype (relative L2 error), the one table of the
# Python side: scripts/reference_check.py checks anvil's outputs with it.
# anvil's own check (dtype_tolerance, src/base/dtype.cpp) must say the same;
# tests/test_checks.cpp reads this line and compares.
SPEC_TOLERANCE = {"f32": 1e-4, "f16": 1e-2, "bf16": 2e-2, "i32": 0.0}


def load_yaml(path):
    # torch and jax do not need PyYAML, so it may be missing where they are.
    try:
        import yaml
    except ImportError:
        raise UsageError("PyYAML is needed: set PYTHONPATH to a directory holding the yaml package "
                         "(e.g. Debian's /usr/lib/python3/dist-packages)")
    with open(path) as f:
        text = f.read()
    try:
        # safe_load's loader, in C where libyaml is there: 3x faster on the 1 MB lstm_tc.yaml
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as e:
        raise UsageError(f"{path}: not YAML: {e}")


def load_model(path):
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such model file")
    return Model(load_yaml(path), path)


class Model:
    """The YAML document: declared tensors, nodes (each with its dtype
    resolved), outputs, and every tensor's dtype."""

    def __init__(self, doc, path="<model>"):
        if not isinstance(doc, dict) or "nodes" not in doc and "outputs" not in doc:
            raise UsageError(f"{path}: not an anvil model")
        self.path = path
        self.name = str(doc.get("name", os.path.basename(path)))
        default = doc.get("dtype", "f32")
        self.decls, self.kind, self.dtypes, self.nodes = {}, {}, {}, {}
        for kind in ("inputs", "params"):
            for t in doc.get(kind) or []:
                self.decls[t["name"]] = t
                self.kind[t["name"]] = kind
                self.dtypes[t["name"]] = t.get("dtype", default)
        for n in doc.get("nodes") or []:
            if n["op"] not in OP_BUILDERS:
                raise UsageError(f"{path}: node '{n['name']}': op '{n['op']}' is not known to baselines.py")
            self.nodes[n["name"]] = dict(n, dtype=n.get("dtype", default))
            self.dtypes[n["name"]] = self.nodes[n["name"]]["dtype"]
        self.outputs = list(doc.get("outputs") or [])
        for name in self.outputs:
            if name not in self.dtypes:
                raise UsageError(f"{path}: output '{name}' is declared nowhere")
        for name, d in self.dtypes.items():
            if d not in DTYPES:
                raise UsageError(f"{path}: tensor '{name}': unknown dtype '{d}'")

    def inputs_of(self, name):
        return self.nodes[name].get("inputs") or [] if name in self.nodes else []

    def _cone(self, name):
        """`name` and every tensor it depends on (iteratively: LSTM chains are deep)."""
        seen, stack = set(), [name]
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            if n not in self.dtypes:
                raise UsageError(f"{self.path}: '{n}' is declared nowhere")
            seen.add(n)
            stack.extend(self.inputs_of(n))
        return seen

    def order(self):
        """The nodes the outputs need, in a topological order, file order
        where free (Kahn's algorithm with a heap on the file position)."""
        need = set().union(*(self._cone(o) for o in self.outputs)) & self.nodes.keys()
        position = {n: k for k, n in enumerate(self.nodes)}
        waiting = {n: len({i for i in self.inputs_of(n) if i in need}) for n in need}
        users = {}
        for n in need:
            for i in set(self.inputs_of(n)) & need:
                users.setdefault(i, []).append(n)
        ready = [(position[n], n) for n, w in waiting.items() if w == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            _, n = heapq.heappop(ready)
            order.append(n)
            for u in users.get(n, []):
                waiting[u] -= 1
                if waiting[u] == 0:
                    heapq.heappush(ready, (position[u], u))
        if len(order) != len(need):
            stuck = sorted(n for n in need if waiting[n] > 0)
            raise UsageError(f"{self.path}: the graph has a cycle through {', '.join(stuck[:8])}")
        return order

    def loosest_dtype(self, name):
        """The dtype of loosest tolerance on the way to `name`."""
        return max((self.dtypes[n] for n in self._cone(name)), key=SPEC_TOLERANCE.__getitem__)


class Step:
    """One node of the program: its function, inputs, the dtype each input
    is cast to first (None: as it is), its dtype, and what dies after it."""
    __slots__ = ("name", "fn", "inputs", "casts", "dtype", "free")


class Program:
    """A model as a forward function: the needed nodes in a topological
    order, every value freed after its last use."""

    def __init__(self, model):
        self.model = model
        order = model.order()
        self.outputs = list(model.outputs)
        # constants are made once, outside the timed forward (as a user's
        # Python scalars or module buffers would be)
        self.const_nodes = [n for n in order if model.nodes[n]["op"] == "constant"]
        nodes = [n for n in order if model.nodes[n]["op"] != "constant"]
        used = {i for n in nodes for i in model.inputs_of(n)} | set(self.outputs)
        self.arg_names = [n for n in model.decls if n in used]
        last_use = {i: k for k, n in enumerate(nodes) for i in model.inputs_of(n)}
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
        floats = {dtypes[i] for i in s.inputs if dtypes[i] in FLOAT_DTYPES}
        mixed = len(floats | {s.dtype}) > 1
        s.casts = ["f32" if mixed and dtypes[i] in ("f16", "bf16") else None for i in s.inputs]
        return s

    def upload(self, be, values):
        """The forward's arguments: the declared tensors it reads, on `be`."""
        return [be.upload(values[n], self.model.dtypes[n]) for n in self.arg_names]

    def constants(self, be):
        return {n: be.cast(OP_BUILDERS["constant"](self.model.nodes[n])(be, []), self.model.dtypes[n])
                for n in self.const_nodes}

    def run(self, be, args, consts):
        env = dict(consts)
        env.update(zip(self.arg_names, args))
        for s in self.steps:
            xs = [env[i] if c is None else be.cast(env[i], c) for i, c in zip(s.inputs, s.casts)]
            env[s.name] = be.cast(s.fn(be, xs), s.dtype)
            for n in s.free:
                del env[n]
        return tuple(env[o] for o in self.outputs)
