#!/usr/bin/python3
"""Measured tile times for kernels_db/measured/<gpu>.yaml from the per-task
traces of `anvil profile --trace` (the instrumented megakernel).

Each trace's body events (one per task: cat = rTask kind, name = rOp name,
dur in us) are matched to the rOps of `anvil schedule MODEL --json` (name,
cost_key, tiles) of the same model and policy; an rOp's tile time is the
median of its tasks' durations, and a cost key that several rOps share (in
one model or across traces) gets the median of all their tasks.

These are IN-SITU times: each task ran inside the persistent megakernel,
two blocks per SM sharing the SM's rates and hiding each other's latency,
while the rest of the schedule ran around it. The cost model takes a
measured time whole (cost_model.cpp, tile_seconds), which is what it
needs for the schedule that was traced; a tile timed alone would be faster.

The schedule must be the one that ran. By default it is made with a copy
of kernels_db whose measured file keeps its ceilings and drops its tiles
(as on the device, where `anvil calibrate` had written the ceilings and no
tile was measured yet) and whose latencies are those the GPU's description
held at --commit (eecf9a0's without it); every rOp's task count is checked
against the trace.

    scripts/trace_tiles.py TRACE.json... [--ceilings MEASURED.yaml] [--out FILE]
        [--anvil build/anvil] [--kernels-db DIR] [--gpu h100_sxm] [--commit C]
"""
import argparse
import collections
import json
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent


def fail(msg):
    sys.exit(f"trace_tiles.py: {msg}")


# The latencies kernels_db/gpus held at commit eecf9a0, where the traces
# and profiles of 2026-11-27 were taken (a later fit changed them).
EECF9A0_LATENCIES = (3.8e-7, 4.1e-7)


def latencies_at(commit, gpu):
    """The poll and memory latencies kernels_db/gpus/<gpu>.yaml held at a commit (git show)."""
    text = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:kernels_db/gpus/{gpu}.yaml"], check=True,
                          capture_output=True, text=True).stdout
    values = [re.search(rf"^{k}:\s*(\S+)", text, flags=re.M) for k in ("poll_latency_s", "memory_latency_s")]
    if not all(values):
        fail(f"kernels_db/gpus/{gpu}.yaml at {commit} has no poll or memory latency")
    return tuple(float(v.group(1)) for v in values)


def kernels_db_without_tiles(tmp, gpu, latencies=EECF9A0_LATENCIES):
    """kernels_db as the device had it: the measured ceilings, no tiles, and
    the poll and memory latencies of the time."""
    d = pathlib.Path(tmp) / "kernels_db"
    shutil.copytree(ROOT / "kernels_db", d)
    desc = d / "gpus" / f"{gpu}.yaml"
    text = desc.read_text()
    text = re.sub(r"^poll_latency_s:.*$", f"poll_latency_s: {latencies[0]}", text, flags=re.M)
    text = re.sub(r"^memory_latency_s:.*$", f"memory_latency_s: {latencies[1]}", text, flags=re.M)
    desc.write_text(text)
    measured = d / "measured" / f"{gpu}.yaml"
    if measured.exists():
        text = measured.read_text()
        # The tiles list is the file's last key (anvil writes it so, and so does this script).
        head = re.split(r"^tiles:", text, flags=re.M)[0]
        measured.write_text(head + "tiles: []\n")
    return str(d)


def tile_samples(trace_path, args, kernels_db):
    """{cost_key: [seconds of each task]} of one trace, and its model's name."""
    trace = json.loads(pathlib.Path(trace_path).read_text())
    info = trace.get("otherData", {})
    if not info.get("measured"):
        fail(f"{trace_path}: not a measured trace (anvil profile --trace writes otherData.measured)")
    model, policy = info["model"], info.get("policy", "anvil")
    sched = json.loads(subprocess.run(
        [args.anvil, "schedule", str(ROOT / "models" / f"{model}.yaml"), "--policy", policy, "--gpu", args.gpu,
         "--kernels-db", kernels_db, "--json"], check=True, capture_output=True, text=True).stdout)
    rops = {g["name"]: g for g in sched["group_list"]}
    if len(rops) != len(sched["group_list"]):
        fail(f"{model}: rOp names are not unique; the trace cannot be matched by name")
    durations = collections.defaultdict(list)
    for e in trace["traceEvents"]:
        if e.get("ph") == "X" and e.get("cat") not in (None, "wait"):
            if e["name"] not in rops:
                fail(f"{trace_path}: task {e['args'].get('task')} runs rOp '{e['name']}', "
                     f"which {model}'s schedule ({policy}) does not have")
            durations[e["name"]].append(e["dur"] * 1e-6)
    samples = collections.defaultdict(list)
    for name, g in rops.items():
        if len(durations[name]) != g["tiles"]:
            fail(f"{trace_path}: rOp '{name}' has {g['tiles']} tiles in the schedule but {len(durations[name])} "
                 "tasks in the trace: not the schedule that ran (pass the --kernels-db it was made with)")
        samples[g["cost_key"]] += durations[name]
    return model, samples


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("traces", nargs="+")
    ap.add_argument("--anvil", default=str(ROOT / "build" / "anvil"))
    ap.add_argument("--gpu", default="h100_sxm")
    ap.add_argument("--kernels-db", help="the kernels_db the traced schedules were made with "
                                         "(default: this tree's, measured tiles dropped)")
    ap.add_argument("--ceilings", help="a measured/<gpu>.yaml whose ceilings the output keeps "
                                       "(default: this tree's)")
    ap.add_argument("--commit", default="?", help="the commit the traces were measured at (for the header)")
    ap.add_argument("--out", help="write the measured file here (default: print it)")
    args = ap.parse_args()

    samples = collections.defaultdict(list)
    models = []
    with tempfile.TemporaryDirectory() as tmp:
        latencies = EECF9A0_LATENCIES if args.commit == "?" else latencies_at(args.commit, args.gpu)
        kdb = args.kernels_db or kernels_db_without_tiles(tmp, args.gpu, latencies)
        for t in args.traces:
            model, s = tile_samples(t, args, kdb)
            models.append(model)
            for key, secs in s.items():
                samples[key] += secs

    ceilings_file = pathlib.Path(args.ceilings or ROOT / "kernels_db" / "measured" / f"{args.gpu}.yaml")
    head = re.split(r"^tiles:", ceilings_file.read_text(), flags=re.M)[0]
    head = "\n".join(l for l in head.splitlines() if not l.startswith("#")).strip() + "\n"
    lines = [
        "# Ceilings: `anvil calibrate` on the device. Tiles: scripts/trace_tiles.py from the measured per-task",
        f"# traces of `anvil profile --trace` ({', '.join(models)}; commit {args.commit}): the median",
        "# duration of each cost key's tasks INSIDE the megakernel (in situ: two blocks per SM sharing it,",
        "# the rest of the schedule running around them), not a tile timed alone. Regenerate, do not edit.",
        head.rstrip("\n"),
        "tiles:",
    ]
    for key in sorted(samples):
        lines.append(f"  - key: {json.dumps(key)}")
        lines.append(f"    seconds: {statistics.median(samples[key]):.4g}")
    text = "\n".join(lines) + "\n"
    if args.out:
        pathlib.Path(args.out).write_text(text)
        print(f"wrote {args.out}: {len(samples)} measured tiles from {len(args.traces)} traces", file=sys.stderr)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
