#!/usr/bin/python3
"""Merges what scripts/gpu_bench.sh wrote on the GPU machine into one file,
docs/perf/gpu-zoo-<date>.json, and rewrites the README's table of GPU
measurements (between the `measured:begin/end` markers) from the newest
such file.

    scripts/gpu_results.py OUT --command "the device command"       # merge, then README
    scripts/gpu_results.py --readme                                 # README only

OUT is the device's output folder or the archive gpu_bench.sh packed there
(gpu-results.tar.gz). Per model: per_op_us, per_op_graph_us, megakernel_us, launches,
per_op_launches, roofline_us, roofline_share, outputs_ok, and each external
baseline's median (null, with the reason, where it did not run or disagreed
with anvil's outputs).
"""
import argparse
import json
import math
import pathlib
import re
import sys
import tarfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
PERF = ROOT / "docs" / "perf"
BASELINES = ["torch_eager", "torch_cuda_graph", "torch_compile", "jax_jit", "torch_cudnn_lstm"]


def read_meta(out):
    meta = {}
    for line in (out / "meta.txt").read_text().splitlines():
        key, _, value = line.partition(": ")
        meta[key] = value
    return meta


def model_entry(profile, baselines):
    e = {k: profile.get(k) for k in ("megakernel_us", "per_op_us", "per_op_graph_us", "launches", "per_op_launches",
                                     "roofline_us", "predicted_us", "tasks", "outputs_ok", "rel_l2")}
    e["roofline_share"] = profile["roofline"]["share_achieved"]
    e["roofline_limit"] = profile["roofline"]["limit"]
    e["speedup_over_per_op"] = profile["per_op_us"] / profile["megakernel_us"]
    e["speedup_over_per_op_graph"] = profile["per_op_graph_us"] / profile["megakernel_us"]
    if "traced" in profile:
        e["traced_us"] = profile["traced"]["median_us"]
    e["baselines"] = {}
    for name, b in (baselines or {}).get("baselines", {}).items():
        ok = b.get("ok") and b.get("us") is not None
        e["baselines"][name] = {"us": b["us"] if ok else None, "ok": bool(b.get("ok"))}
        for k in ("error", "skipped", "rel_l2"):
            if b.get(k) is not None:
                e["baselines"][name][k] = b[k]
    return e


def read_baselines(out, model):
    """The model's baselines: <model>.json (eager, CUDA graph) and <model>.compiled.json (torch.compile, JAX)."""
    merged = None
    for name in (f"{model}.json", f"{model}.compiled.json"):
        path = out / "baselines" / name
        if not path.exists():
            continue
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue  # cut off mid-write by the phase's cap
        if merged is None:
            merged = doc
        else:
            merged.setdefault("baselines", {}).update(doc.get("baselines", {}))
    return merged


def zoo():
    """The full-size zoo models (gpu_bench.sh's default list)."""
    return sorted(p.stem for p in (ROOT / "models").glob("*.yaml") if not p.stem.endswith("_small"))


def profile_failure(err):
    text = err.read_text() if err.exists() else ""
    if text.rstrip().endswith("rc=124") or text.rstrip().endswith("rc=137"):
        return "cut off by its time cap in gpu_bench.sh (rc=124), not a failure of the run: " + text[-1500:]
    return text[-2000:] or "no output"


def stored_baselines(device):
    """{model: {baseline: entry}} from the stored results files of this device, newest last wins."""
    found = {}
    for path in sorted(PERF.glob("gpu-zoo-*.json")):
        doc = json.loads(path.read_text())
        if doc.get("device") != device:
            continue
        for model, m in doc.get("models", {}).items():
            for name, b in m.get("baselines", {}).items():
                if b.get("us") is not None:
                    found.setdefault(model, {})[name] = {**b, "from": b.get("from", path.name)}
        for model, bs in doc.get("stored_baselines", {}).items():
            for name, b in bs.items():
                if b.get("us") is not None:
                    found.setdefault(model, {})[name] = {**b, "from": b.get("from", path.name)}
    return found


def baselines_only(out):
    """This run's baselines of every model, also those whose anvil profile did not finish."""
    found = {}
    for p in sorted((out / "baselines").glob("*.txt")) if (out / "baselines").exists() else []:
        model = p.name.split(".")[0]
        doc = read_baselines(out, model)
        if doc:
            found[model] = {n: {"us": b["us"], "ok": True} for n, b in doc.get("baselines", {}).items()
                            if b.get("ok") and b.get("us") is not None}
    return found


def carry_baselines(models, device):
    """External baselines do not depend on anvil's commit: a baseline this run skipped (gpu_bench.sh skips
    those already stored for the device) is taken from the newest stored file, marked with its origin."""
    stored = stored_baselines(device)
    for model, m in models.items():
        for name, b in stored.get(model, {}).items():
            if m["baselines"].get(name, {}).get("us") is None:
                m["baselines"][name] = b


def merge(out, command):
    meta = read_meta(out)
    models, failures = {}, {}
    for p in sorted((out / "profile").glob("*.json")):
        if p.name.endswith(".trace.json"):
            continue
        try:
            profile = json.loads(p.read_text())
        except json.JSONDecodeError:
            failures[p.stem] = profile_failure(out / "profile" / f"{p.stem}.err")
            continue
        models[p.stem] = model_entry(profile, read_baselines(out, p.stem))
    for m in zoo():
        if m not in models and m not in failures:
            failures[m] = "not reached: the profile phase's time cap came first"
    carry_baselines(models, meta["device"])
    tests = (out / "gpu_tests.txt").read_text().splitlines()[-3:] if (out / "gpu_tests.txt").exists() else []
    versions = {}
    for b in sorted((out / "baselines").glob("*.json")) if (out / "baselines").exists() else []:
        try:
            versions = {**versions, **json.loads(b.read_text()).get("versions", {})}
        except json.JSONDecodeError:
            pass
    calib = (out / "calibrate.txt").read_text() if (out / "calibrate.txt").exists() else ""
    doc = {"what": "anvil profile (CUDA events; median of --iters runs after warm-up) of every zoo model against "
                   "the per_op baseline (plain and in a CUDA graph), the roofline bound, and the external "
                   "baselines of scripts/baselines.py",
           "device": meta["device"], "target": meta["target"], "date": meta["date"], "commit": meta["commit"],
           "command": command, "calibration": calib, "gpu_tests": tests, "framework_versions": versions,
           "models": models, "failed": failures,
           "stored_baselines": {m: b for m, b in baselines_only(out).items() if m not in models}}
    # A/B of one compile-time choice, measured beside the model's own profile (gpu_bench.sh: `reload_params`).
    comparisons = {}
    for p in sorted((out / "ab").glob("*.json")) if (out / "ab").exists() else []:
        model, _, variant = p.stem.partition(".")
        try:
            ab = json.loads(p.read_text())
        except json.JSONDecodeError:
            continue
        comparisons.setdefault(model, {})[variant] = {"megakernel_us": ab.get("megakernel_us"),
                                                      "default_megakernel_us": models.get(model, {}).get("megakernel_us"),
                                                      "outputs_ok": ab.get("outputs_ok")}
    if comparisons:
        doc["comparisons"] = comparisons
    for name in ("hopper", "hopper_tensor_cores", "gemv_layouts"):  # scripts/bench_hopper.py's results
        if (out / f"{name}.json").exists():
            doc[name] = json.loads((out / f"{name}.json").read_text())
    dest = results_path(meta["date"], meta["commit"])
    dest.write_text(json.dumps(doc, indent=1) + "\n")
    print("wrote", dest)


def results_path(date, commit):
    """gpu-zoo-<date>.json; a second run that day at another commit gets b, c, ... (sorted after the first)."""
    for suffix in [""] + [chr(c) for c in range(ord("b"), ord("z") + 1)]:
        path = PERF / f"gpu-zoo-{date}{suffix}.json"
        if not path.exists() or json.loads(path.read_text()).get("commit") == commit:
            return path
    raise SystemExit(f"too many results files for {date}")


def us(v):
    return "-" if v is None else f"{v:.0f} us" if v >= 100 else f"{v:.1f} us"


def legacy_table(path):
    """The first measurements (docs/perf/gpu-profile-*.json: megakernel against plain per_op only)."""
    doc = json.loads(path.read_text())
    lines = [f"<!-- measured:begin (generated by scripts/gpu_results.py from docs/perf/{path.name}) -->",
             f"Measured on {doc['device']}, {doc['date']}, commit {doc['commit']} (median of the runs; per_op "
             "launched plainly, no CUDA graph yet):", "",
             "| model | megakernel (anvil) | per_op | launches | speed-up |", "|---|---|---|---|---|"]
    for model, r in doc["profiles"].items():
        lines.append(f"| {model} | {r['megakernel_us']:.0f} us | {r['per_op_us']:.0f} us | "
                     f"1 vs {r['per_op_launches']} | {r['speedup_over_per_op']:.2f}x |")
    return "\n".join(lines) + "\n<!-- measured:end -->"


def readme_table():
    files = sorted(PERF.glob("gpu-zoo-*.json"))
    if not files:
        legacy = sorted(PERF.glob("gpu-profile-*.json"))
        return legacy_table(legacy[-1]) if legacy else None
    doc = json.loads(files[-1].read_text())
    # Models this run did not reach keep their newest earlier measurement on the same device, marked.
    earlier = {}
    for path in files[:-1]:
        old = json.loads(path.read_text())
        if old.get("device") == doc["device"]:
            for model, m in old.get("models", {}).items():
                if model not in doc["models"]:
                    # Baselines do not depend on anvil's commit: this run's, where it measured them.
                    fresh = doc.get("stored_baselines", {}).get(model, {})
                    earlier[model] = ({**m, "baselines": {**m.get("baselines", {}), **fresh}}, old["commit"][:7],
                                      path.name)
    rows = [(model, m, None) for model, m in doc["models"].items()]
    rows += [(model, m, (commit, name)) for model, (m, commit, name) in sorted(earlier.items())]
    names = [n for n in BASELINES if any(n in m["baselines"] for _, m, _ in rows)]
    lines = [f"<!-- measured:begin (generated by scripts/gpu_results.py from docs/perf/{files[-1].name}) -->",
             f"Measured on {doc['device']}, {doc['date']}, commit {doc['commit'][:12]}: medians, batch 1. "
             "per_op is one launch per rOp with the same rTask code; *graph* replays those launches from one "
             "CUDA graph. Bold: the fastest of the row.", "",
             "| model | anvil | vs the fastest other | per_op | per_op graph | vs per_op | vs graph | roofline |"
             + "".join(f" {n} |" for n in names),
             "|---|" + "---|" * (7 + len(names))]
    ratios, best_ratio = [], []
    for model, m, carried in rows:
        base = {n: m["baselines"].get(n, {}).get("us") for n in names}
        times = [m["megakernel_us"], m["per_op_us"], m["per_op_graph_us"]] + [v for v in base.values() if v]
        fastest = min(times)
        cell = lambda v: "-" if v is None else (f"**{us(v)}**" if v == fastest else us(v))
        rivals = {"per_op graph": m["per_op_graph_us"], **{n: v for n, v in base.items() if v}}
        rival = min(rivals, key=rivals.get)
        verdict = rivals[rival] / m["megakernel_us"]  # above 1: anvil is faster
        versus = f"{verdict:.2f}x ({'faster' if verdict >= 1 else 'slower'} than {rival})"
        label = model if carried is None else f"{model} (at {carried[0]}, {carried[1]})"
        lines.append(f"| {label} | {cell(m['megakernel_us'])} | {versus} | {cell(m['per_op_us'])} | {cell(m['per_op_graph_us'])}"
                     f" | {m['speedup_over_per_op']:.2f}x | {m['speedup_over_per_op_graph']:.2f}x"
                     f" | {us(m['roofline_us'])} ({100 * m['roofline_share']:.0f}%) |"
                     + "".join(f" {cell(base[n])} |" for n in names))
        if carried is not None:
            continue  # the means are this run's
        ratios.append(m["speedup_over_per_op"])
        others = [v for n, v in base.items() if v and n != "torch_eager"] + [m["per_op_graph_us"]]
        best_ratio.append(min(others) / m["megakernel_us"])
    geo = lambda xs: math.exp(sum(math.log(x) for x in xs) / len(xs))
    if ratios:
        lines += ["", f"Geometric mean over this run's {len(ratios)} models: {geo(ratios):.2f}x faster than per_op; "
                  f"{geo(best_ratio):.2f}x the speed of the best of per_op graph, CUDA graphs, torch.compile and XLA "
                  "(below 1: anvil is slower). The roofline column is the bound from the measured copy bandwidth and "
                  "FLOP peaks, with the share of it anvil achieves."]
    else:
        lines += ["", "This run measured no model to the end (see the file)."]
    if earlier:
        lines.append("A model marked (at COMMIT, FILE) was not reached by this run: its row is its newest earlier "
                     "measurement on this device, at that commit.")
    missing = [m for m in doc.get("failed", {}) if m not in earlier]
    if missing:
        lines.append(f"Never measured on this device (see the file): {', '.join(missing)}.")
    return "\n".join(lines) + "\n<!-- measured:end -->"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", help="the device's OUT directory (gpu_bench.sh's results)")
    ap.add_argument("--command", default="bash scripts/gpu_bench.sh all")
    ap.add_argument("--readme", action="store_true", help="only rewrite the README table")
    ap.add_argument("--stored-baselines", metavar="DEVICE",
                    help="print the models whose listed baselines (--names) are stored for DEVICE, and exit")
    ap.add_argument("--names", default="torch_eager,torch_cuda_graph")
    ap.add_argument("--perf-dir", help="the results files' folder (default docs/perf; the tests use another)")
    ap.add_argument("--readme-file", help="the README to rewrite (default README.md)")
    args = ap.parse_args()
    global PERF
    if args.perf_dir:
        PERF = pathlib.Path(args.perf_dir)
    if args.stored_baselines:
        stored = stored_baselines(args.stored_baselines)
        need = args.names.split(",")
        print(" ".join(m for m, b in sorted(stored.items()) if all(n in b for n in need)))
        return
    if args.out:
        out = pathlib.Path(args.out)
        if out.is_file():  # the archive: unpack it beside itself
            unpacked = out.with_name(out.name.split(".")[0])
            unpacked.mkdir(exist_ok=True)
            with tarfile.open(out) as tar:
                tar.extractall(unpacked)  # our own archive
            out = unpacked
        merge(out, args.command)
    elif not args.readme:
        sys.exit("give the OUT directory, or --readme")
    table = readme_table()
    if table:
        readme = pathlib.Path(args.readme_file) if args.readme_file else ROOT / "README.md"
        text = readme.read_text()
        if "measured:begin" not in text:
            sys.exit("README.md has no measured:begin/end markers")
        readme.write_text(re.sub(r"<!-- measured:begin.*?<!-- measured:end -->", lambda _: table, text, flags=re.S))


if __name__ == "__main__":
    main()
