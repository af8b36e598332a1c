#!/usr/bin/python3
"""Where a measured megakernel's time goes, beside the cost model's guess.

    scripts/trace_summary.py MEASURED.trace.json[.gz] [--predicted PREDICTED.trace.json[.gz]] [--top N] [--json OUT]

MEASURED is `anvil profile --trace` (per task: a `wait` event, then its body
event named after its rOp, category = rTask kind); PREDICTED is `anvil
schedule --trace` of the same schedule (bodies only). Prints, as Markdown:
the span and the SMs' busy share; per rTask kind the tasks, the summed body
and wait time, the mean body beside the predicted mean and, in traces that
record it (publish_us, since 2026-11-28), the mean time of the arrivals
that end each body; then the rOps that
take the most body time, each with its predicted tile time. Waits are summed
over blocks, so with two blocks per SM they can exceed the span.
"""
import argparse
import collections
import gzip
import json
import statistics
import sys


def bodies(doc):
    """{(kind, rop): [(task, duration)]}, {task: wait} and {task: publish} of a trace."""
    body = collections.defaultdict(list)
    wait = {}
    publish = {}
    for e in doc["traceEvents"]:
        if e.get("ph") != "X" or "args" not in e or "task" not in e["args"]:
            continue
        if e["cat"] == "wait":
            wait[e["args"]["task"]] = e["dur"]
        else:
            body[(e["cat"], e["name"])].append((e["args"]["task"], e["dur"]))
            if "publish_us" in e["args"]:
                publish[e["args"]["task"]] = e["args"]["publish_us"]
    return body, wait, publish


def summarise(measured, predicted=None, top=15):
    body, wait, publish = bodies(measured)
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
        k["predicted_body_us"] += sum(pd)
        rops.append({"rop": rop, "kind": kind, "tasks": len(tasks), "body_us": sum(durs),
                     "median_us": statistics.median(durs),
                     "predicted_us": statistics.median(pd) if pd else None})
    total = sum(k["body_us"] for k in kinds.values())
    rops.sort(key=lambda r: -r["body_us"])
    return {"model": other.get("model"), "span_us": other.get("span_us"), "busy_share": other.get("busy_share"),
            "sms_used": other.get("sms_used"), "predicted_span_us": (predicted or {}).get("otherData", {}).get(
                "predicted_us"), "body_us": total, "kinds": dict(kinds), "rops": rops[:top]}


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
    lines += ["", "| rOp | kind | tasks | body share | median tile us | predicted tile us |", "|---|---|---|---|---|---|"]
    for r in s["rops"]:
        lines.append(f"| {r['rop']} | {r['kind']} | {r['tasks']} | {100 * r['body_us'] / s['body_us']:.1f}% | "
                     f"{r['median_us']:.2f} | {us(r['predicted_us'])} |")
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
    args = ap.parse_args()
    measured = load(args.measured)
    if not measured.get("otherData", {}).get("measured"):
        sys.exit(f"{args.measured}: not a measured trace (anvil profile --trace writes one)")
    predicted = None
    if args.predicted:
        predicted = load(args.predicted)
    s = summarise(measured, predicted, args.top)
    print(markdown(s))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(s, f, indent=1)


if __name__ == "__main__":
    main()
