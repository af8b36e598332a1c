#!/usr/bin/python3
"""Where a measured megakernel's time goes, beside the cost model's guess.

    scripts/trace_summary.py MEASURED.trace.json[.gz] [--predicted PREDICTED.trace.json[.gz]] [--top N] [--json OUT]
                             [--sharing]

MEASURED is `anvil profile --trace` (per task: a `wait` event, then its body
event named after its rOp, category = rTask kind); PREDICTED is `anvil
schedule --trace` of the same schedule (bodies only). Prints, as Markdown:
the span and the SMs' busy share; per rTask kind the tasks, the summed body
and wait time, the mean body beside the predicted mean and, in traces that
record it (publish_us, since 2026-11-28), the mean time of the arrivals
that end each body; then the rOps that
take the most body time, each with its predicted tile time and, in traces
whose GEMMs mark their phases (staging_us, first_slice_us, loop_end_us:
rtasks/trace_marks.cuh, since 2026-11-29), the median of each phase over
its tiles: prologue, fill (the first slice's round trip), K loop and
epilogue. Waits are summed
over blocks, so with two blocks per SM they can exceed the span.

--sharing adds, per rOp group (the name without its layer prefixes `l<N>_`)
of the most body time, the median body of its tiles that ran alone on their
SM (the other block's bodies overlapping under a quarter of the tile) and of
those that shared it (over three quarters), each split into "warm" tiles,
whose SM ran the same group in one of its two previous bodies (its code and
constants likely cached), and "cold" ones.
"""
import argparse
import collections
import gzip
import json
import re
import statistics
import sys


PHASES = ("prologue", "fill", "loop", "epilogue")


def phases(e):
    """A marked GEMM body's phases in us (PHASES), or None: up to its first
    copies, to its first slice in shared memory, to its K loop's end, to the
    body's end (its arrivals, publish_us, excluded)."""
    a = e["args"]
    if any(m not in a for m in ("staging_us", "first_slice_us", "loop_end_us")):
        return None  # not a GEMM, or one without slices
    end = e["dur"] - a.get("publish_us", 0.0)
    marks = [0.0, a["staging_us"], a["first_slice_us"], a["loop_end_us"], end]
    return [marks[i + 1] - marks[i] for i in range(len(PHASES))]


def bodies(doc):
    """{(kind, rop): [(task, duration)]}, {task: wait}, {task: publish} and
    {task: phases} of a trace."""
    body = collections.defaultdict(list)
    wait = {}
    publish = {}
    marked = {}
    for e in doc["traceEvents"]:
        if e.get("ph") != "X" or "args" not in e or "task" not in e["args"]:
            continue
        if e["cat"] == "wait":
            wait[e["args"]["task"]] = e["dur"]
        else:
            body[(e["cat"], e["name"])].append((e["args"]["task"], e["dur"]))
            if "publish_us" in e["args"]:
                publish[e["args"]["task"]] = e["args"]["publish_us"]
            ph = phases(e)
            if ph is not None:
                marked[e["args"]["task"]] = ph
    return body, wait, publish, marked


def summarise(measured, predicted=None, top=15):
    body, wait, publish, marked = bodies(measured)
    pbody = bodies(predicted)[0] if predicted else {}
    other = measured.get("otherData", {})
    kinds = collections.defaultdict(lambda: {"tasks": 0, "body_us": 0.0, "wait_us": 0.0, "predicted_body_us": 0.0,
                                             "publish_us": None})
    rops = []
    for (kind, rop), tasks in body.items():
        k = kinds[kind]
        durs = [d for _, d in tasks]
        k["tasks"] += len(tasks)
        k["body_us"] += sum(durs)
        k["wait_us"] += sum(wait.get(t, 0.0) for t, _ in tasks)
        if any(t in publish for t, _ in tasks):
            k["publish_us"] = (k["publish_us"] or 0.0) + sum(publish.get(t, 0.0) for t, _ in tasks)
        pd = [d for _, d in pbody.get((kind, rop), [])]
        ph = [marked[t] for t, _ in tasks if t in marked]
        k["predicted_body_us"] += sum(pd)
        rops.append({"rop": rop, "kind": kind, "tasks": len(tasks), "body_us": sum(durs),
                     "median_us": statistics.median(durs),
                     "predicted_us": statistics.median(pd) if pd else None,
                     "phases_us": {n: statistics.median(p[i] for p in ph) for i, n in enumerate(PHASES)} if ph else None})
    total = sum(k["body_us"] for k in kinds.values())
    rops.sort(key=lambda r: -r["body_us"])
    return {"model": other.get("model"), "span_us": other.get("span_us"), "busy_share": other.get("busy_share"),
            "sms_used": other.get("sms_used"), "predicted_span_us": (predicted or {}).get("otherData", {}).get(
                "predicted_us"), "body_us": total, "kinds": dict(kinds), "rops": rops[:top]}


def sharing(doc, top=15):
    """Per rOp group: [(group, kind, {(alone|shared)_(warm|cold): [durations]})], most body time first."""
    by_sm = collections.defaultdict(list)
    for e in doc["traceEvents"]:
        if e.get("ph") == "X" and e.get("cat") != "wait" and "block" in e.get("args", {}):
            by_sm[e["tid"]].append(e)
    groups = collections.defaultdict(lambda: collections.defaultdict(list))
    group = lambda e: re.sub(r"^l\d+_|(?<=\+)l\d+_", "L_", e["name"])
    for events in by_sm.values():
        events.sort(key=lambda e: e["ts"])
        names = [group(e) for e in events]
        for i, e in enumerate(events):
            g = groups[(names[i], e["cat"])]
            start, end = e["ts"], e["ts"] + e["dur"]
            overlap = sum(max(0.0, min(end, x["ts"] + x["dur"]) - max(start, x["ts"])) for x in events
                          if x["args"]["block"] != e["args"]["block"] and x["ts"] < end and x["ts"] + x["dur"] > start)
            share = overlap / e["dur"] if e["dur"] > 0 else 0.0
            warm = "warm" if names[i] in names[max(0, i - 2):i] else "cold"
            g["all"].append(e["dur"])
            if share < 0.25:
                g["alone_" + warm].append(e["dur"])
            elif share > 0.75:
                g["shared_" + warm].append(e["dur"])
    rows = sorted(groups.items(), key=lambda kv: -sum(kv[1]["all"]))
    return [(name, kind, dict(d)) for (name, kind), d in rows[:top]]


def sharing_markdown(rows):
    def med(v):
        return f"{statistics.median(v):.2f} ({len(v)})" if v else "-"
    cols = ("alone_cold", "alone_warm", "shared_cold", "shared_warm")
    lines = ["| rOp group | kind | alone, cold: us (tiles) | alone, warm | sharing its SM, cold | sharing, warm |",
             "|---|---|---|---|---|---|"]
    for name, kind, d in rows:
        lines.append(f"| {name} | {kind} | " + " | ".join(med(d.get(c)) for c in cols) + " |")
    return "\n".join(lines)


def us(v):
    return "-" if v is None else f"{v:.1f}"


def markdown(s):
    lines = [f"**{s['model']}**: span {us(s['span_us'])} us measured, {us(s['predicted_span_us'])} us predicted; "
             f"SMs busy {100 * (s['busy_share'] or 0):.0f}% of the span; bodies {s['body_us']:.0f} us summed over "
             "blocks.", "",
             "| kind | tasks | body share | mean body us | predicted mean us | mean wait us | mean publish us |",
             "|---|---|---|---|---|---|---|"]
    for kind, k in sorted(s["kinds"].items(), key=lambda kv: -kv[1]["body_us"]):
        n = k["tasks"]
        pub = None if k["publish_us"] is None else k["publish_us"] / n
        lines.append(f"| {kind} | {n} | {100 * k['body_us'] / s['body_us']:.1f}% | {k['body_us'] / n:.2f} | "
                     f"{k['predicted_body_us'] / n:.2f} | {k['wait_us'] / n:.2f} | {us(pub)} |")
    lines += ["", "| rOp | kind | tasks | body share | median tile us | predicted tile us | "
              "median prologue / fill / K loop / epilogue us |", "|---|---|---|---|---|---|---|"]
    for r in s["rops"]:
        ph = " / ".join(f"{r['phases_us'][n]:.2f}" for n in PHASES) if r["phases_us"] else "-"
        lines.append(f"| {r['rop']} | {r['kind']} | {r['tasks']} | {100 * r['body_us'] / s['body_us']:.1f}% | "
                     f"{r['median_us']:.2f} | {us(r['predicted_us'])} | {ph} |")
    return "\n".join(lines)


def load(path):
    with (gzip.open if path.endswith(".gz") else open)(path, "rt") as f:
        return json.load(f)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("measured")
    ap.add_argument("--predicted")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--json")
    ap.add_argument("--sharing", action="store_true")
    args = ap.parse_args()
    measured = load(args.measured)
    if not measured.get("otherData", {}).get("measured"):
        sys.exit(f"{args.measured}: not a measured trace (anvil profile --trace writes one)")
    predicted = None
    if args.predicted:
        predicted = load(args.predicted)
    s = summarise(measured, predicted, args.top)
    print(markdown(s))
    if args.sharing:
        print()
        print(sharing_markdown(sharing(measured, args.top)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(s, f, indent=1)


if __name__ == "__main__":
    main()
