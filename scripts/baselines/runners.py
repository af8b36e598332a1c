"""Each baseline: set up, checked against anvil's outputs, and timed only if
it agrees; each torch or jax baseline in a child process of its own.

Isolation: torch and jax load their own CUDA libraries (cuDNN versions can
clash), jax preallocates GPU memory, a device-side assert poisons a CUDA
context, and a crash or a hang (--timeout, per baseline) must not lose the
others. A child re-runs scripts/baselines.py with --in-process for one
baseline and hands back its JSON. torch.compile of a very large unrolled
graph (the full-size lstm_tc has 16k nodes) can take many minutes: give it
a --timeout.
"""
import collections
import functools
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import numpy as np

from . import Skip
from .jax_backend import JaxBackend
from .job import compare
from .lstm import lstm_layout, lstm_weights, torch_lstm
from .numpy_backend import NumpyBackend
from .timing import summarize, time_events, time_wall
from .torch_backend import TorchBackend, import_torch

ENTRY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "baselines.py")
BASELINES = ("torch_eager", "torch_cuda_graph", "torch_compile", "jax_jit", "torch_cudnn_lstm", "numpy")
DEFAULT_BASELINES = BASELINES[:-1]


def new_entry():
    return {"us": None, "min_us": None, "max_us": None, "ok": False, "rel_l2": {}, "tolerance": {}}


def check_and_time(entry, job, be, prepare, timer):
    """prepare() compiles or captures and returns the call to time; its first
    outputs are checked against anvil's, and only a baseline that agrees is
    timed (timer(call, warmup, iters) -> microseconds)."""
    t0 = time.perf_counter()
    call = prepare()
    got = [be.to_numpy(o) for o in call()]
    entry["setup_s"] = round(time.perf_counter() - t0, 3)
    entry["rel_l2"], entry["tolerance"], problems = compare(job.model, got, job.expected)
    if problems:
        entry["error"] = "; ".join(problems) + " (not timed)"
        return
    entry.update(summarize(timer(call, job.warmup, job.iters)))
    entry["ok"] = True


def capture_cuda_graph(torch, fn):
    """fn captured in a torch.cuda.CUDAGraph, after warm-up runs on a side
    stream (lazy initialisation and cuDNN autotuning cannot be captured);
    returns replay() -> fn's outputs."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outs = fn()

    def replay():
        graph.replay()
        return outs
    return replay


def _torch_on_gpu(entry):
    torch = import_torch()
    entry["timing"] = "cuda_events"
    entry["device"] = torch.cuda.get_device_name()
    return torch


def run_torch(name, job, entry):
    if name == "torch_cudnn_lstm":
        return run_cudnn_lstm(job, entry)
    torch = _torch_on_gpu(entry)
    be, prog = TorchBackend(torch, "cuda"), job.program
    with torch.no_grad():
        args, consts = prog.upload(be, job.values), prog.constants(be)
        forward = lambda *a: prog.run(be, a, consts)
        if name == "torch_compile":
            if not hasattr(torch, "compile"):
                raise Skip(f"torch {torch.__version__} has no torch.compile (it came with 2.0)")
            forward = torch.compile(forward)
        call = lambda: forward(*args)
        prepare = (lambda: capture_cuda_graph(torch, call)) if name == "torch_cuda_graph" else (lambda: call)
        check_and_time(entry, job, be, prepare, functools.partial(time_events, torch))


def run_cudnn_lstm(job, entry):
    layout = lstm_layout(job.model)
    torch = _torch_on_gpu(entry)
    entry["impl"] = "cudnn" if torch.backends.cudnn.is_available() and torch.backends.cudnn.enabled else "native"
    be = TorchBackend(torch, "cuda")
    dtype = job.model.dtypes["x"]
    lstm = torch_lstm(torch, layout, lstm_weights(layout, job.values), be.device, be.dtypes[dtype])
    x = be.upload(job.values["x"], dtype).reshape(layout.steps, 1, layout.features)  # [seq, batch 1, in]

    def call():
        out, (h_n, _) = lstm(x)
        return tuple(out[:, 0] if k == "sequence" else h_n[-1] for k in layout.outputs)

    with torch.no_grad():
        check_and_time(entry, job, be, lambda: call, functools.partial(time_events, torch))


def run_jax(name, job, entry):
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # else jax takes 75% of the GPU's memory
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

    check_and_time(entry, job, be, lambda: call, time_wall)


def run_numpy(name, job, entry):
    entry["timing"] = "wall_clock"
    entry["device"] = f"cpu: {platform.machine()}"
    be, prog = NumpyBackend(), job.program
    args, consts = prog.upload(be, job.values), prog.constants(be)

    def call():
        with np.errstate(all="ignore"):  # exp overflowing to inf in sigmoid is fine
            return prog.run(be, args, consts)

    check_and_time(entry, job, be, lambda: call, time_wall)


RUNNERS = {"torch_eager": run_torch, "torch_cuda_graph": run_torch, "torch_compile": run_torch,
           "torch_cudnn_lstm": run_torch, "jax_jit": run_jax, "numpy": run_numpy}


def run_one(name, job):
    """One baseline in this process: its entry of the report."""
    entry = new_entry()
    try:
        RUNNERS[name](name, job, entry)
    except Skip as e:
        entry["skipped"] = str(e)
    except Exception as e:  # one baseline's failure must not stop the others
        traceback.print_exc()
        first = str(e).strip().splitlines()
        entry["error"] = f"{type(e).__name__}: {first[0] if first else ''}"
    return entry


def _pump(stream, tail):
    """Copies a child's stderr to ours, keeping its last lines."""
    for line in stream:
        sys.stderr.write(line)
        tail.append(line.rstrip("\n"))


def run_child(name, args):
    """One baseline in a child process: its entry, and the versions it saw."""
    with tempfile.TemporaryDirectory(prefix="anvil-baselines-") as tmp:
        out = os.path.join(tmp, "result.json")
        cmd = [sys.executable, ENTRY, args.model, args.io_dir, "--iters", str(args.iters),
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
        last = " | ".join(line for line in tail if line.strip())[-600:]
        return dict(new_entry(), error=f"its process exited with status {rc}: {last}"), {}
