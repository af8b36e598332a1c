#!/usr/bin/python3
"""Runs one exported model (export_models.py) through anvil on the host
backend under every policy, straight from the .onnx file, and compares each
output with PyTorch's float64 output; then imports it to YAML and checks the
YAML run gives the very same outputs.

usage: check_model.py ANVIL EXPORT_DIR NAME [POLICY ...]"""
import os
import subprocess
import sys
import tempfile

import numpy as np

TOLERANCE = 1e-4  # relative L2 against PyTorch in float64, as anvil's f32 check
ROUNDING_FACTOR = 8  # as anvil's check: up to 8x the model's own f32 rounding error
ILL_CONDITIONED = 1e-2  # past this, PyTorch's own f32 run says nothing about anyone's
POLICIES = ["anvil", "rammer", "welder", "topo", "per_op"]


class CheckFailed(Exception):
    """A step failed: its message, and anvil's output when anvil refused."""

    def __init__(self, message, output=""):
        super().__init__(message)
        self.output = output


def run(cmd, quiet=False):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not quiet:
        print("$ " + " ".join(cmd) + "\n" + r.stdout, end="")
    if r.returncode != 0:
        raise CheckFailed(f"exit status {r.returncode}", r.stdout)


def rel_l2(got, want):
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))


def check(anvil, root, name, policies=POLICIES, quiet=False):
    """Returns {policy: (relative L2, max abs error)} of the model's outputs
    against PyTorch's; raises CheckFailed on a refusal, a mismatch, or an
    imported YAML whose outputs differ from the .onnx run's."""
    model = os.path.join(root, name + ".onnx")
    inputs = os.path.join(root, name, "inputs")
    expected = os.path.join(root, name, "expected")
    extra = []
    shape_file = os.path.join(root, name, "input_shape.txt")
    if os.path.exists(shape_file):
        extra = ["--input-shape", open(shape_file).read().strip()]
    # A model whose output f32 rounding alone moves by more than TOLERANCE
    # (PyTorch's own f32 run, measured at export) is held to a multiple of that.
    tolerance = TOLERANCE
    own_file = os.path.join(root, name, "torch_f32_error.txt")
    if os.path.exists(own_file):
        own = float(open(own_file).read())
        if own > ILL_CONDITIONED:
            raise CheckFailed(f"not compared: PyTorch's own f32 output is {own:.1e} from its float64 one "
                              "(these random weights make the model ill-conditioned)")
        tolerance = max(TOLERANCE, ROUNDING_FACTOR * own)
    errors = {}
    with tempfile.TemporaryDirectory() as tmp:
        outs = {}
        for policy in policies:
            io = os.path.join(tmp, policy)
            run([anvil, "run", model, "--backend", "host", "--policy", policy, "--inputs", inputs, "--save-io", io] + extra,
                quiet)
            worst = (0.0, 0.0)
            for f in sorted(os.listdir(expected)):
                want = np.load(os.path.join(expected, f))
                got = np.load(os.path.join(io, "outputs", f)).astype(np.float64)
                if got.shape != want.shape:
                    raise CheckFailed(f"{policy}: output {f} is {got.shape}, PyTorch's is {want.shape}")
                err = rel_l2(got, want)
                if not quiet:
                    print(f"{name} {policy}: output {f} relative L2 vs PyTorch float64 {err:.3e} (tolerance {tolerance:.3e})")
                if not err <= tolerance:
                    raise CheckFailed(f"{policy}: output {f} differs from PyTorch by {err:.3e} > {tolerance:.3e}")
                worst = max(worst[0], err), max(worst[1], float(np.max(np.abs(got - want))))
                outs[(policy, f)] = got
            errors[policy] = worst
        yaml = os.path.join(tmp, "imported", name + ".yaml")
        os.makedirs(os.path.dirname(yaml))
        run([anvil, "import", model, "-o", yaml] + extra, quiet)
        io = os.path.join(tmp, "from_yaml")
        run([anvil, "run", yaml, "--backend", "host", "--policy", policies[0], "--inputs", inputs, "--save-io", io], quiet)
        for f in sorted(os.listdir(expected)):
            got = np.load(os.path.join(io, "outputs", f)).astype(np.float64)
            if not np.array_equal(got, outs[(policies[0], f)]):
                raise CheckFailed(f"the imported YAML's output {f} differs from the .onnx run's")
        if not quiet:
            print(f"{name}: the imported YAML gives the same outputs")
    return errors


def main():
    anvil, root, name = sys.argv[1:4]
    try:
        check(anvil, root, name, sys.argv[4:] or POLICIES)
    except CheckFailed as e:
        sys.exit(f"FAILED: {e}")


if __name__ == "__main__":
    main()
