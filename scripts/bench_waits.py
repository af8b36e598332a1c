#!/usr/bin/python3
"""Tasks, dependency waits, GEMM decomposition and predictions of the default
schedule, before and after.

For every full-size zoo model, runs `anvil schedule MODEL --policy P --json
--emit FILE` with the current binary and, given --before, with an older one
(a build of the commit before the change), and records per model: tasks,
counter polls of one run (wait_checks: every counter or producer task a
task waits on, summed over tasks), the most polls on one block
(wait_checks_per_block_max), the counters, blocks per SM and grid blocks,
the predicted time, and its GEMM-like rOps (matmul, implicit-GEMM conv):
how many fill a wave of the grid's blocks, how many are split along K
(split_k), and for the others the cost model's reasons (why_not, counted).
The per-block numbers are read from the emitted task and queue tables, so
an older binary that does not report them is measured the same way (its
task table holds one entry per producer task a task waits on, checked one
after another by thread 0). Writes docs/perf/waits-<date>.json (or --out).
These are schedule properties and cost-model predictions: nothing runs on
a GPU.

    scripts/bench_waits.py [--anvil build/anvil] [--before OLD_ANVIL] [--policy anvil] [--out FILE]
"""
import argparse
import collections
import json
import pathlib
import re
import subprocess
import tempfile

from bench_common import ROOT, full_size_models, write_results


def int_table(src, name):
    m = re.search(r"ANVIL_TABLE (?:int|unsigned) " + name + r"\[\] = \{(.*?)\};", src, re.S)
    return [int(x.strip().rstrip("u")) for x in m.group(1).replace("\n", " ").split(",") if x.strip()] if m else []


def waits_from_source(src):
    """Polls per task and per block, from the emitted tables (old or new layout)."""
    body = re.search(r"AnvilTask anvil_tasks\[\] = \{(.*?)\};", src, re.S).group(1)
    rows = [[int(v) for v in r.split(",")] for r in re.findall(r"\{([-\d, ]+)\}", body)]
    polls = [r[3] for r in rows]  # {op, tile, dep_begin, dep_count} or {op, tile, wait_begin, wait_count, ...}
    qoff, queue = int_table(src, "anvil_qoff"), int_table(src, "anvil_queue")
    per_block = [sum(polls[t] for t in queue[qoff[b]:qoff[b + 1]]) for b in range(len(qoff) - 1)]
    return sum(polls), max(per_block, default=0), len(qoff) - 1


def gemms(j):
    """The GEMM-like groups: filling a wave, split along K, neither (with the reasons, counted)."""
    out = {"gemms": 0, "fill_wave": 0, "split": 0, "neither": 0, "why_not": collections.Counter()}
    for g in j["group_list"]:
        if g["kind"] not in ("matmul", "conv2d") or "split_k" not in g:
            continue
        out["gemms"] += 1
        if g["split_k"] > 1:
            out["split"] += 1
        elif g["fills_wave"]:
            out["fill_wave"] += 1
        else:
            out["neither"] += 1
            # The reason's kind, without the numbers that differ per layer.
            out["why_not"][re.sub(r"\b\d+(\.\d+)?\b", "N", g.get("why_not", "?"))] += 1
    if out["gemms"] == 0:  # an older binary: no split-K data
        return None
    out["why_not"] = dict(out["why_not"].most_common())
    return out


def measure(anvil, model, policy, tmp):
    emitted = pathlib.Path(tmp) / f"{model.stem}.cu"
    out = subprocess.run([anvil, "schedule", str(model), "--policy", policy, "--json", "--emit", str(emitted)],
                         check=True, capture_output=True, text=True).stdout
    j = json.loads(out)
    polls, per_block_max, blocks = waits_from_source(emitted.read_text())
    row = {"tasks": j["tasks"], "wait_checks": polls, "wait_checks_per_block_max": per_block_max,
           "grid_blocks": blocks, "predicted_us": j["predicted_us"],
           "blocks_per_sm": j.get("blocks_per_sm"), "counters": j.get("counters", j["tasks"])}
    if "wait_checks" in j:  # the binary reports them itself: both readings must agree
        assert j["wait_checks"] == polls and j["wait_checks_per_block_max"] == per_block_max, (model, j, row)
    decomposition = gemms(j)
    if decomposition:
        row["gemm_rops"] = decomposition
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--anvil", default=str(ROOT / "build" / "anvil"))
    ap.add_argument("--before", default=None, help="an anvil binary built before the change")
    ap.add_argument("--before-commit", default=None, help="the commit --before was built from")
    ap.add_argument("--policy", default="anvil")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in full_size_models():
            entry = {"after": measure(args.anvil, model, args.policy, tmp)}
            if args.before:
                entry["before"] = measure(args.before, model, args.policy, tmp)
            results[model.stem] = entry
            print(model.stem, json.dumps(entry), flush=True)

    write_results("waits", {
        "benchmark": "tasks, dependency waits (counter polls), GEMM decomposition (split-K) and predictions "
                     "of the default schedule, before and after",
        "before_commit": args.before_commit, "policy": args.policy,
        "gpu": "h100_sxm (kernels_db), predictions only: no GPU",
        "fields": {"wait_checks": "counter (before: producer task) polls in one run, summed over tasks",
                   "wait_checks_per_block_max": "the most on one block",
                   "counters": "counters the kernel allocates (before: one per task)",
                   "gemm_rops": "GEMM-like rOps: filling a wave of grid_blocks whole, split along K, neither "
                                "(why_not: the cost model's reasons, numbers elided, counted)"},
        "models": results}, args.out)


if __name__ == "__main__":
    main()
