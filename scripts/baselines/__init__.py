"""The external-baseline runner behind scripts/baselines.py.

    model.py          the model YAML, and Program: the graph as a forward function
    ops.py            every op of the spec, once, over backend primitives
    numpy_backend.py  numpy_backend, torch_backend, jax_backend: the primitives
    torch_backend.py    in each framework's own kernels
    jax_backend.py
    lstm.py           the unrolled LSTM layout of scripts/zoo/lstm_tc.py and nn.LSTM
    job.py            anvil's saved values, and the check against them
    timing.py         how a baseline is timed
    runners.py        each baseline, each in its own child process
    cli.py            arguments, the table and the JSON report
    self_test.py      --self-test
"""


class UsageError(Exception):
    """Bad arguments, a missing IO_DIR or an unreadable model: exit 2."""


class Skip(Exception):
    """A baseline that cannot run here (framework missing, model unmappable)."""
