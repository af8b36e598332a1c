#!/usr/bin/python3
"""An independent float64 check of `anvil run MODEL --save-io DIR`.

Reads the model YAML and the saved inputs and params, evaluates every node
in float64 with the op layer of scripts/baselines/ (ops.py, written from the
spec, over numpy_backend.py's primitives with nothing rounded; it shares no
code with anvil), and compares each saved output with the spec's tolerance
(baselines/model.py's SPEC_TOLERANCE, the one table: relative L2 error 1e-4
f32, 1e-2 f16, 2e-2 bf16, of the loosest dtype on the output's way). Exit
status 0 when every output agrees, 1 otherwise, 2 when the files do not fit
the model.

    scripts/reference_check.py MODEL.yaml DIR
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from baselines import UsageError  # noqa: E402
from baselines.job import Job  # noqa: E402
from baselines.model import SPEC_TOLERANCE  # noqa: E402
from baselines.numpy_backend import NumpyBackend  # noqa: E402


def reference_outputs(job):
    """Every output of the job's model in float64, from anvil's saved inputs and params."""
    exact, prog = NumpyBackend(exact=True), job.program
    outs = prog.run(exact, prog.upload(exact, job.values), prog.constants(exact))
    return dict(zip(prog.outputs, (exact.to_numpy(o) for o in outs)))


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    try:
        job = Job(sys.argv[1], sys.argv[2], iters=0, warmup=0)
    except UsageError as e:
        print(f"reference_check.py: {e}", file=sys.stderr)
        sys.exit(2)
    want = reference_outputs(job)
    ok = True
    for name in job.model.outputs:
        got, w = job.expected[name], want[name]
        if got.shape != w.shape:
            print(f"{name}: shape {list(got.shape)}, expected {list(w.shape)}: FAILED")
            ok = False
            continue
        err = np.linalg.norm(got - w) / max(np.linalg.norm(w), 1e-30)
        tol = SPEC_TOLERANCE[job.model.loosest_dtype(name)]
        good = bool(err <= tol)
        ok = ok and good
        print(f"{name}: relative L2 error {err:.3e} (tolerance {tol:.0e}) {'ok' if good else 'FAILED'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
