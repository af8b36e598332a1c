"""What `anvil run MODEL --save-io IO_DIR` saved, and the check of a
baseline's outputs against it.

Each output is compared with IO_DIR/outputs/NAME.npy by relative L2 error,
with the tolerance of the loosest dtype on its way (as
scripts/reference_check.py does), loosened for frameworks: f16 2e-2 and
bf16 4e-2, twice the spec's, because anvil and the framework are each
within the spec's tolerance of the exact value; f32 1e-3 rather than 2e-4,
because frameworks may pick Winograd or FFT convolutions (cudnn.benchmark)
and reorder long sums, which costs f32 about 1e-5 to 1e-4. A wrong op is
off by order 1, far above all of these.
"""
import math
import os

import numpy as np

from . import UsageError
from .model import Program, load_model

FRAMEWORK_TOLERANCE = {"f32": 1e-3, "f16": 2e-2, "bf16": 4e-2, "i32": 0.0}


class Job:
    """The model, anvil's inputs, params and outputs, and the timing counts."""

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
