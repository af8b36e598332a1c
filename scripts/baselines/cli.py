"""The command line of scripts/baselines.py: arguments, the table on stdout
and the JSON report."""
import argparse
import json
import platform
import sys

import numpy as np

from . import UsageError
from .job import Job
from .runners import BASELINES, DEFAULT_BASELINES, run_child, run_one
from .self_test import self_test


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
        if args.in_process or name == "numpy":
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
