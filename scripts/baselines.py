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
value being exact in f32; i32 as '<i4'). Reading the model needs PyYAML.

Baselines (--only picks some; the default is every one but numpy):

  torch_eager       the graph evaluated op by op with PyTorch on the GPU
  torch_cuda_graph  the same forward captured once in a torch.cuda.CUDAGraph
                    and replayed
  torch_compile     torch.compile(forward), default mode
  jax_jit           jax.jit(forward)
  torch_cudnn_lstm  torch.nn.LSTM (cuDNN) with the model's weights, for models
                    in the layout of scripts/zoo/lstm_tc.py; skipped with the
                    reason for any other model
  numpy             the same graph walker on the CPU in float32, rounding
                    every node to its storage dtype: the op layer's test on
                    machines without torch or jax (scripts/test_baselines.sh)

Every baseline but torch_cudnn_lstm evaluates the graph through one op layer
(baselines/ops.py) over each framework's own kernels. A baseline is timed
only if its outputs agree with anvil's (baselines/job.py says within what);
baselines/timing.py says how it is timed; each torch or jax baseline runs in
a child process (baselines/runners.py); --in-process runs all in this one.

Output: a table on stdout; with --json OUT one object
{"model", "baselines": {NAME: {"us", "min_us", "max_us", "ok", "rel_l2",
"tolerance", "timing", "setup_s", "device", "error" | "skipped"}},
"versions": {"torch", "cuda", "cudnn", "jax", "jaxlib", "numpy", ...}}.
A framework that is not installed is recorded as skipped, a baseline that
raises as an error, and the others go on. Exit status: 0, or 2 for bad
arguments, a missing IO_DIR or model; with --strict, 1 when a baseline that
ran failed its check or raised (skipped ones do not count).
"""
import os
import sys

# `baselines` is the package directory beside this file (a package wins over
# a module of the same name); child processes re-run this file.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from baselines.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
