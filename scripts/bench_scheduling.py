#!/usr/bin/python3
"""How scheduling time grows with the number of rTasks: a benchmark.

Generates branchy synthetic models (BRANCHES parallel branches of DEPTH
matmul + gelu layers over ROWS x 1024 activations, summed at the end) whose
tile graphs hold about 1e4 to 1e6 rTasks, runs `anvil schedule MODEL
--policy P --json` on each (REPEATS times, medians), and writes
docs/perf/scheduling-<date>.json with the machine, date, commit, command and
per size and policy: the tile graph's rTasks (before fusion and re-tiling,
which change the scheduled task count), the seconds of each stage, and
microseconds per rTask (flat when scheduling is linear).

    scripts/bench_scheduling.py [--anvil build/anvil] [--repeats 3] [--max-tasks 1e6]
"""
import argparse
import json
import pathlib
import statistics
import tempfile

from bench_common import ROOT, anvil_json, write_results
BRANCHES, DEPTH, WIDTH = 8, 16, 1024
# ROWS -> about ROWS/2 tasks per (branch, layer): a 64x64-tiled matmul has
# ROWS/64 * 16 tiles and gelu ROWS*1024/4096.
ROWS = [160, 512, 1600, 5120, 16384]


def model_yaml(rows):
    lines = ["anvil: 1", f"name: synthetic_r{rows}", "dtype: f16", "inputs:", f"  - {{name: x, shape: [{rows}, {WIDTH}]}}",
             "params:", f"  - {{name: w, shape: [{WIDTH}, {WIDTH}]}}", "nodes:"]
    ends = []
    for b in range(BRANCHES):
        h = "x"
        for d in range(DEPTH):
            lines.append(f"  - {{name: mm_{b}_{d}, op: matmul, inputs: [{h}, w]}}")
            lines.append(f"  - {{name: act_{b}_{d}, op: gelu, inputs: [mm_{b}_{d}]}}")
            h = f"act_{b}_{d}"
        ends.append(h)
    acc = ends[0]
    for i, e in enumerate(ends[1:]):
        lines.append(f"  - {{name: sum_{i}, op: add, inputs: [{acc}, {e}]}}")
        acc = f"sum_{i}"
    lines += ["outputs:", f"  - {acc}"]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--anvil", default=str(ROOT / "build" / "anvil"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-tasks", type=float, default=1.1e6)
    ap.add_argument("--policies", default="per_op,topo,rammer,welder,anvil")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in ROWS:
            if rows * BRANCHES * DEPTH / 2 > args.max_tasks:
                break
            path = pathlib.Path(tmp) / f"synthetic_r{rows}.yaml"
            path.write_text(model_yaml(rows))
            rtasks = None  # the tile graph's rTasks before any policy: per_op keeps them all
            for policy in ["per_op"] + [p for p in args.policies.split(",") if p != "per_op"]:
                runs = []
                for _ in range(args.repeats):
                    runs.append(anvil_json(args.anvil, "schedule", path, "--policy", policy))
                stages = {}
                for name, _ in runs[0]["schedule_seconds"]:
                    stages[name] = statistics.median(dict(r["schedule_seconds"])[name] for r in runs)
                # The policy's own work (its front stages included): decompose is
                # shared by all, load is yaml-cpp.
                scheduling = sum(stages.get(s, 0) for s in ("fuse", "variants", "policy", "verify", "predict"))
                rtasks = rtasks or runs[0]["tasks"]
                row = {"rows": rows, "policy": policy, "rtasks": rtasks, "scheduled_tasks": runs[0]["tasks"],
                       "groups": runs[0]["groups"], "stage_seconds": stages, "policy_plus_predict_s": scheduling,
                       "us_per_rtask": 1e6 * scheduling / rtasks, "predicted_us": runs[0]["predicted_us"]}
                results.append(row)
                print(json.dumps(row), flush=True)

    write_results("scheduling", {"benchmark": "scheduling time against rTask count (scheduling runs on the host)",
                                 "model": f"{BRANCHES} branches x {DEPTH} x (matmul [ROWS,{WIDTH}]x[{WIDTH},{WIDTH}] + gelu), f16",
                                 "results": results}, args.out)

if __name__ == "__main__":
    main()
