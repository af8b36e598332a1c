#!/usr/bin/python3
"""Dependency waits and occupancy of the default schedule, before and after.

For every full-size zoo model, runs `anvil schedule MODEL --policy P --json
--emit FILE` with the current binary and, given --before, with an older one
(a build of the commit before the change), and records per model: tasks,
counter polls of one run (wait_checks: every counter or producer task a
task waits on, summed over tasks), the most polls on one block
(wait_checks_per_block_max), the counters, blocks per SM and grid blocks,
and the predicted time. The per-block numbers are read from the emitted
task and queue tables, so an older binary that does not report them is
measured the same way (its task table holds one entry per producer task a
task waits on, checked one after another by thread 0). Writes
docs/perf/waits-<date>.json. These are schedule properties and cost-model
predictions: nothing runs on a GPU.

    scripts/bench_waits.py [--anvil build/anvil] [--before OLD_ANVIL] [--policy anvil]
"""
import argparse
import datetime
import json
import pathlib
import platform
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent


def full_size_models():
    models = ROOT / "models"
    return sorted(p for p in models.glob("*.yaml") if (models / f"{p.stem}_small.yaml").exists())


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

    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    doc = {"benchmark": "dependency waits (counter polls) and occupancy of the default schedule, before and after",
           "device": f"host CPU only: {cpu}, {platform.machine()}; no GPU: schedule properties and predictions",
           "date": datetime.date.today().isoformat(), "commit": commit, "before_commit": args.before_commit,
           "command": "scripts/bench_waits.py " + " ".join(sys.argv[1:]), "policy": args.policy,
           "gpu": "h100_sxm (kernels_db), predictions only",
           "fields": {"wait_checks": "counter (before: producer task) polls in one run, summed over tasks",
                      "wait_checks_per_block_max": "the most on one block",
                      "counters": "counters the kernel allocates (before: one per task)"},
           "models": results}
    out = pathlib.Path(args.out) if args.out else ROOT / "docs" / "perf" / f"waits-{doc['date']}.json"
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
