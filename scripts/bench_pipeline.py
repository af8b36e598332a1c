#!/usr/bin/python3
"""Load-to-emit time of every full-size zoo model, on this machine.

Runs `anvil schedule MODEL --policy P --emit OUT.cu` (and with --nvrtc, also
the NVRTC compile, uncached) REPEATS times per model, takes the median of
each stage, and writes docs/perf/pipeline-<date>.json with the device,
date, commit and command.

    scripts/bench_pipeline.py [--anvil build/anvil] [--repeats 3] [--nvrtc]
"""
import argparse
import datetime
import json
import os
import pathlib
import platform
import re
import statistics
import subprocess
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent


def full_size_models():
    models = ROOT / "models"
    return sorted(p for p in models.glob("*.yaml") if (models / f"{p.stem}_small.yaml").exists())


def stage_times(output):
    line = next(l for l in output.splitlines() if l.strip().startswith("time"))
    return {name: float(sec) for name, sec in re.findall(r"(\w+) ([0-9.]+) s", line)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--anvil", default=str(ROOT / "build" / "anvil"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--policy", default="topo")
    ap.add_argument("--nvrtc", action="store_true", help="also time NVRTC (cache disabled)")
    args = ap.parse_args()

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        for model in full_size_models():
            runs = []
            for i in range(args.repeats):
                env["ANVIL_CACHE_DIR"] = f"{tmp}/cache{i}"  # a fresh cache: NVRTC really compiles
                cmd = [args.anvil, "schedule", str(model), "--policy", args.policy, "--emit", f"{tmp}/out.cu"]
                if args.nvrtc:
                    cmd.append("--compile")
                out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
                runs.append(stage_times(out))
            stats = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            tasks = int(re.search(r"tasks\s+(\d+)", out).group(1))
            stats["tasks"] = tasks
            stats["source_bytes"] = os.path.getsize(f"{tmp}/out.cu")
            results[model.stem] = stats
            print(model.stem, stats, flush=True)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    record = {
        "what": "load-to-emit time per full-size model (median of repeats, seconds per stage)",
        "device": f"host CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (no GPU)",
        "date": datetime.date.today().isoformat(),
        "commit": commit,
        "command": "scripts/bench_pipeline.py " + " ".join(
            f"--{k} {v}" if not isinstance(v, bool) else f"--{k}" for k, v in vars(args).items()
            if k != "anvil" and v is not False),
        "policy": args.policy,
        "repeats": args.repeats,
        "models": results,
    }
    out = ROOT / "docs" / "perf" / f"pipeline-{record['date']}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
