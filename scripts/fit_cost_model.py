#!/usr/bin/python3
"""Writes docs/perf/cost-model.md: the cost model's latency terms, their fit
to the measured schedules (docs/perf/cost-model/*.json: commit 30d23da's
three models and commit eecf9a0's eleven, each under anvil and per_op, with
their H100 times), the residuals before and after, what each term
contributes, the measured tiles against their estimates, what the measured
tiles do to the policies' choices, and today's predictions for the zoo.

Runs `anvil cost-fit docs/perf/cost-model/*.json [--fit] --json` with
kernels_db variants (the latencies before this fit without measured tiles,
with them, the fitted ones, each latency term switched off) and `anvil
schedule MODEL --json`. scripts/cost_model/ rebuilds the schedule files.

    scripts/fit_cost_model.py [--anvil build/anvil] [--gpu h100_sxm]
"""
import argparse
import datetime
import gzip
import json
import math
import numpy
import pathlib
import re
import shutil
import statistics
import subprocess
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
ALL_SCHEDULES = sorted((ROOT / "docs/perf/cost-model").glob("*.json"))
# 30d23da's files name no GPU: they ran on the H100 SXM.
SCHEDULES = [f for f in ALL_SCHEDULES if json.loads(f.read_text()).get("gpu", "h100_sxm") == "h100_sxm"]
H200_SCHEDULES = [f for f in ALL_SCHEDULES if json.loads(f.read_text()).get("gpu") == "h200"]
# The latencies of the previous fit (30d23da's six schedules alone), kept
# in kernels_db until this one: the "before" of every comparison.
BEFORE = (3.8e-7, 4.1e-7)
# The models whose measured traces gave the tiles (scripts/trace_tiles.py), kept beside the schedules:
# the live kernels_db holds ceilings only (kernels_db/README.md says why).
TILES = ROOT / "docs/perf/cost-model/tiles-h100_sxm-eecf9a0.yaml"
TRACED = ["resnet18", "bert_base", "transformer_encoder_f16"]

EQUATIONS = """\
A task's time on its block (src/schedule/cost_terms.h; `predict` in
src/schedule/cost_model.cpp plays them over the schedule):

    start  = max(block free, last member of each waited counter done
                 + sync_latency_s if it ran on another SM)
             + poll_rounds x poll_latency_s
    alone  = work + k_loop + serial
    work   = max(FLOPs / unit peak, shared-memory wavefronts / SM clock)
             + epilogue instructions / (FP32 lanes x clock)
             max  DRAM bytes / DRAM bandwidth + L2 bytes / L2 bandwidth   (per SM share)
    k_loop = slices x phases x memory_latency_s                  (synchronous staging)
           = memory_latency_s + slices x max(0, phases x memory_latency_s / in_flight
                                              - work / slices)   (pipelined; the first
             memory_latency_s is dropped for a GEMV ring over fixed weights, whose first
             stages were issued before the waits or by the block's previous task)
    serial = dependent round trips outside the K loop x memory_latency_s
    busy   = max(alone, work x k) + task_overhead_s   (k co-resident blocks busy on the SM)

| term | 30d23da (the measured schedules) | today |
|---|---|---|
| poll_rounds | one per dependency: thread 0 checks them one after another | one per 32 counters: warp 0 polls them in parallel |
| phases per K slice | one per element a thread stages (in the PTX each element's address waits behind the previous element's shared store: the params are reloaded after it) | 1 with cp.async (f32); per element otherwise (the f16/bf16 CUDA-core staging: today's PTX still reloads the params after every shared store) |
| slices in flight | 1 (load, barrier, multiply, barrier) | 3 (four cp.async stages), 2 on tensor cores; a GEMV with 16-byte aligned weight rows: 3 stages of 8 KB of its weight ring (others: serial rounds of 4 loads per thread) |
| shared-memory wavefronts | one float per load: per k, BM/16 + BN/16 per warp | 64/128-bit loads of the micro-tile |
| serial round trips | a thread's elements, a row's passes, the epilogue's operands one step after another (interpreted) | the same loops, but a row of up to 1024 without an epilogue is a warp's, in registers, the tile's rows side by side (one round trip); straight-line epilogues load all of a value's operands at once |
| co-resident blocks | 1 (megakernel), 2 (per_op: 127 registers) | 2 per SM where registers and shared memory allow |
"""


def anvil_json(args, *cmd):
    out = subprocess.run([args.anvil, *cmd], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def cost_fit(args, files, kernels_db=None, fit=False, gpu=None):
    cmd = ["cost-fit", *map(str, files), "--json", "--gpu", gpu or args.gpu]
    if fit:
        cmd.append("--fit")
    if kernels_db:
        cmd += ["--kernels-db", kernels_db]
    if not (fit and args.fit_cache):
        return anvil_json(args, *cmd)
    # A fit takes minutes; its result depends on the files and the tiles, not on the latencies it starts from.
    key = json.dumps([sorted(map(str, files)), gpu or args.gpu, _settings_of.get(kernels_db)])
    cache = json.loads(args.fit_cache.read_text()) if args.fit_cache.exists() else {}
    if key not in cache:
        out = anvil_json(args, *cmd)
        cache[key] = {"fit": out["fit"], "fitted_us": [r["fitted_us"] for r in out["schedules"]]}
        args.fit_cache.write_text(json.dumps(cache))
        return out
    out = anvil_json(args, *[c for c in cmd if c != "--fit"])
    out["fit"] = cache[key]["fit"]
    for row, fitted in zip(out["schedules"], cache[key]["fitted_us"]):
        row["fitted_us"] = fitted
    return out


_variants, _settings_of = {}, {}


def kernels_db_variant(tmp, settings):
    """A copy of kernels_db; settings: {gpu: (poll, memory, tiles_file)}. poll None keeps the GPU's own
    latencies (the kept fit); tiles_file None keeps its measured file as it is (ceilings, no tiles)."""
    key = repr(sorted(settings.items()))
    if key in _variants:
        return _variants[key]
    d = pathlib.Path(tmp) / f"kdb_{len(_variants)}"
    shutil.copytree(ROOT / "kernels_db", d)
    for gpu, (poll, memory, tiles_file) in settings.items():
        g = d / "gpus" / f"{gpu}.yaml"
        src = g.read_text()
        if poll is not None:
            src = re.sub(r"^poll_latency_s:.*$", f"poll_latency_s: {poll}", src, flags=re.M)
            src = re.sub(r"^memory_latency_s:.*$", f"memory_latency_s: {memory}", src, flags=re.M)
        g.write_text(src)
        m = d / "measured" / f"{gpu}.yaml"
        if tiles_file:  # the traced tiles, with kernels_db's own ceilings
            m.write_text(re.split(r"^tiles:", m.read_text(), flags=re.M)[0] + "tiles:" +
                         re.split(r"^tiles:", tiles_file.read_text(), flags=re.M)[1])
    _variants[key] = str(d)
    _settings_of[str(d)] = [[gpu, str(t)] for gpu, (_, _, t) in sorted(settings.items())]
    return str(d)


def kernels_db(args, tmp, poll, memory, tiles=True):
    """A copy of kernels_db whose GPU (--gpu) has these latencies, with or without the measured tiles."""
    return kernels_db_variant(tmp, {args.gpu: (poll, memory, TILES if tiles else None)})


def rms(rows, key="predicted_us"):
    return math.sqrt(sum(math.log(r[key] / r["measured_us"]) ** 2 for r in rows) / len(rows))


def measured_tiles(args):
    """{cost_key: seconds} of the traced tiles."""
    text = TILES.read_text()
    keys = re.findall(r'- key: "(.*)"\n\s+seconds: (\S+)', text)
    return {json.loads(f'"{k}"'): float(v) for k, v in keys}


def full_size_models():
    models = ROOT / "models"
    return sorted(p for p in models.glob("*.yaml") if (models / f"{p.stem}_small.yaml").exists())


def schedule(args, model, policy, kdb=None):
    cmd = ["schedule", str(ROOT / "models" / f"{model}.yaml"), "--policy", policy, "--gpu", args.gpu, "--json"]
    return anvil_json(args, *(cmd + (["--kernels-db", kdb] if kdb else [])))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--anvil", default=str(ROOT / "build" / "anvil"))
    ap.add_argument("--gpu", default="h100_sxm")
    ap.add_argument("--fit-cache", type=pathlib.Path,
                    help="keep the latency fits here and reuse them (they depend only on the schedules and tiles)")
    args = ap.parse_args()
    if args.gpu != "h100_sxm":
        ap.error("the H100 section is fitted for h100_sxm; the H200 one follows it")
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    files = {f: json.loads(f.read_text()) for f in ALL_SCHEDULES}
    new = [f for f in SCHEDULES if files[f]["commit"] == "eecf9a0"]
    old = [f for f in SCHEDULES if files[f]["commit"] == "30d23da"]
    then = {f"{d['model'].split('/')[-1].removesuffix('.yaml')} {d['policy']} {d['commit']}":
            d.get("predicted_us_at_commit", d.get("predicted_us_at_30d23da")) for d in files.values()}

    tmp_dir = tempfile.TemporaryDirectory()
    used = cost_fit(args, SCHEDULES, kernels_db(args, tmp_dir.name, None, None, tiles=True), fit=True)
    poll, memory = used["poll_latency_s"], used["memory_latency_s"]
    fit = used["fit"]
    with tempfile.TemporaryDirectory() as tmp:
        before = cost_fit(args, SCHEDULES, kernels_db(args, tmp, *BEFORE, tiles=False))
        tiles_only = cost_fit(args, SCHEDULES, kernels_db(args, tmp, *BEFORE, tiles=True))
        fit_new = cost_fit(args, new, kernels_db(args, tmp, None, None, tiles=True), fit=True)["fit"]
        fit_old = cost_fit(args, old, kernels_db(args, tmp, None, None, tiles=True), fit=True)["fit"]
        ablations = {
            "no poll term": cost_fit(args, SCHEDULES, kernels_db(args, tmp, 0, memory)),
            "no memory-latency terms": cost_fit(args, SCHEDULES, kernels_db(args, tmp, poll, 0)),
            "neither": cost_fit(args, SCHEDULES, kernels_db(args, tmp, 0, 0)),
        }
        # The measured tiles against today's estimate of the same keys (the keys whose tile code or shape
        # has changed since eecf9a0 no longer occur).
        tiles = measured_tiles(args)
        no_tiles_before = kernels_db(args, tmp, *BEFORE, tiles=False)
        by_kind = {}
        for model in TRACED:
            for g in schedule(args, model, "anvil", no_tiles_before)["group_list"]:
                if g["cost_key"] not in tiles:
                    continue
                kind = g["kind"] + (" (tensor cores)" if " tc " in g["cost_key"] else "")
                k = by_kind.setdefault(kind, {"meas": 0, "est": 0, "ratios": [], "rops": 0})
                k["meas"] += tiles[g["cost_key"]] * 1e6 * g["tiles"]
                k["est"] += g["tile_us"] * g["tiles"]
                k["ratios"].append(tiles[g["cost_key"]] * 1e6 / g["tile_us"])
                k["rops"] += 1
        # What the measured tiles change in the policies' choices (today's latencies).
        no_tiles_now = kernels_db(args, tmp, poll, memory, tiles=False)
        choices = []
        for model in TRACED:
            for policy in ("anvil", "welder", "rammer"):
                a = schedule(args, model, policy, no_tiles_now)
                b = schedule(args, model, policy, kernels_db(args, tmp, poll, memory, tiles=True))
                keys_a = {(g["name"], g["cost_key"]) for g in a["group_list"]}
                changed = sum((g["name"], g["cost_key"]) not in keys_a for g in b["group_list"])
                measured = sum(g["measured"] for g in b["group_list"])
                choices.append((model, policy, a, b, changed, measured))

    def row_name(s):
        return s["schedule"] + " " + files[pathlib.Path(s["file"])]["commit"]

    def ratio(s):
        return s["predicted_us"] / s["measured_us"]

    def spread(names):
        r = [100 * (ratio(rows[n]) - 1) for n in names]
        return f"{min(r):+.0f}% to {max(r):+.0f}%"

    def factor(names):
        r = [max(ratio(rows[n]), 1 / ratio(rows[n])) for n in names]
        return f"{min(r):.1f}-{max(r):.1f}x"

    rows = {row_name(s): s for s in used["schedules"]}
    def names(ns):
        return ", ".join(sorted({n.split()[0] for n in ns}))

    traced_mk = [n for n in rows if n.endswith("anvil eecf9a0") and n.split()[0] in TRACED]
    other_mk = [n for n in rows if n.endswith("anvil eecf9a0") and n.split()[0] not in TRACED]
    slow_po = [n for n in rows if n.endswith("per_op eecf9a0") and ratio(rows[n]) > 1]
    fast_po = [n for n in rows if n.endswith("per_op eecf9a0") and ratio(rows[n]) <= 1]
    old_rows = [n for n in rows if n.endswith("30d23da")]
    lo_kind = min(k["meas"] / k["est"] for k in by_kind.values() if k["rops"] > 2)
    hi_kind = max(k["meas"] / k["est"] for k in by_kind.values() if k["rops"] > 2)
    lines = [
        "# The cost model against the measured profiles",
        "",
        f"Generated by `scripts/fit_cost_model.py` on {datetime.date.today()}, commit {commit}, GPU description "
        f"`{args.gpu}`. Two sets of H100 SXM measurements (CUDA events, medians): commit 30d23da's "
        "(docs/perf/gpu-profile-2026-11-24.json: three models, 20 runs) and commit eecf9a0's (`anvil profile "
        "--iters 50` on 2026-11-27: eleven models, with the device's calibrated ceilings in "
        "kernels_db/measured). Each measured schedule is kept in docs/perf/cost-model/ with its time: "
        "30d23da's rebuilt by building that commit (scripts/cost_model/rebuild_30d23da.sh) and replayed "
        "under its rTasks' rules, eecf9a0's written by this tree's `anvil schedule --snapshot`, which plans "
        "exactly what eecf9a0 planned (scripts/cost_model/rebuild_snapshots.py checks each prediction against "
        "the one eecf9a0 made on the device). `anvil cost-fit` plays them all with today's terms "
        "(src/tools/cost_fit.cpp). The H200 measurements of commit 3cda44c (2026-11-28) and their fit "
        "follow the H100's, in their own section.",
        "",
        "## The model",
        "",
        EQUATIONS,
        "A tile whose cost key the traced tiles (docs/perf/cost-model/tiles-h100_sxm-eecf9a0.yaml) hold takes that time whole (work and latency alike). "
        "Those tiles are in-situ times from the measured per-task traces of "
        f"{', '.join(TRACED)} at eecf9a0 (scripts/trace_tiles.py): the median of a key's tasks inside the "
        "megakernel, two blocks per SM. They fit the schedules they were traced in, and only those.",
        "",
        "## The fit",
        "",
        f"Two free parameters, {len(SCHEDULES)} measurements. Everything else is the datasheet's "
        "(`kernels_db/gpus/h100_sxm.yaml`), the calibrated ceilings, the measured tiles, or counted from the "
        "rTasks' code. The fit minimises the squared log error over a log-spaced grid (0.05-5 us on each "
        "axis, then refined):",
        "",
        "| schedules fitted | poll_latency_s | memory_latency_s | RMS log error |",
        "|---|---|---|---|",
        f"| all {len(SCHEDULES)} (kept) | {fit['poll_latency_s'] * 1e9:.0f} ns | {fit['memory_latency_s'] * 1e9:.0f} ns "
        f"| {fit['rms_log_error']:.3f} |",
        f"| eecf9a0's {len(new)} alone | {fit_new['poll_latency_s'] * 1e9:.0f} ns | "
        f"{fit_new['memory_latency_s'] * 1e9:.0f} ns | {fit_new['rms_log_error']:.3f} |",
        f"| 30d23da's {len(old)} alone | {fit_old['poll_latency_s'] * 1e9:.0f} ns | "
        f"{fit_old['memory_latency_s'] * 1e9:.0f} ns | {fit_old['rms_log_error']:.3f} |",
        "",
        "RMS log error over all the schedules:",
        "",
        "| model | poll, memory latency | measured tiles | RMS log error |",
        "|---|---|---|---|",
        f"| before (the 30d23da fit) | {BEFORE[0] * 1e9:.0f} ns, {BEFORE[1] * 1e9:.0f} ns | no | "
        f"{rms(before['schedules']):.3f} |",
        f"| the measured tiles alone | {BEFORE[0] * 1e9:.0f} ns, {BEFORE[1] * 1e9:.0f} ns | yes | "
        f"{rms(tiles_only['schedules']):.3f} |",
        f"| after (kept in kernels_db, rounded) | {poll * 1e9:.0f} ns, {memory * 1e9:.0f} ns | yes | "
        f"{rms(used['schedules']):.3f} |",
        "",
        f"Fitted to eecf9a0 alone the poll latency runs to {fit_new['poll_latency_s'] * 1e6:.1f} us, far past "
        "an L2 round trip: the megakernels are under-predicted and per_op (which polls nothing) is not, so "
        "the poll term is the only knob that separates them. That is a symptom, not a latency; the kept fit "
        "is over all the schedules, where 30d23da's serial checks hold the poll term to a physical value.",
        "",
        "## Residuals",
        "",
        "`then`: the commit's own prediction; `before`: the latencies before this fit, no measured tiles; "
        "`after`: the kept latencies and the measured tiles. `*`: a traced model (its tiles measured).",
        "",
        "| schedule | measured | then | before | after | residual after |",
        "|---|---|---|---|---|---|",
    ]
    for i, s in enumerate(used["schedules"]):
        name = row_name(s)
        star = " *" if name.split()[0] in TRACED and name.endswith("eecf9a0") else ""
        lines.append(f"| {name}{star} | {s['measured_us']:.0f} us | {then[name]:.0f} us | "
                     f"{before['schedules'][i]['predicted_us']:.0f} us | {s['predicted_us']:.0f} us | "
                     f"{100 * (s['predicted_us'] / s['measured_us'] - 1):+.0f}% |")
    lines += [
        "",
        "What each term is worth (predictions of the same schedules, kept latencies, with a term switched off):",
        "",
        "| schedule | measured | all terms | " + " | ".join(ablations) + " |",
        "|---|---|---|" + "---|" * len(ablations),
    ]
    for i, s in enumerate(used["schedules"]):
        cells = [f"{a['schedules'][i]['predicted_us']:.0f} us" for a in ablations.values()]
        lines.append(f"| {row_name(s)} | {s['measured_us']:.0f} us | {s['predicted_us']:.0f} us | " +
                     " | ".join(cells) + " |")
    lines += [
        "",
        "## The measured tiles against their estimates",
        "",
        "Per rTask kind over the traced models' rOps that have a measured key: the measured tile time "
        "(in situ) against today's estimate of the same key in today's schedule of that model (the latencies "
        "before this fit, calibrated ceilings), summed over their tiles, and per rOp. Keys whose tile has "
        "changed since eecf9a0 (resnet18's convs now split along K, for one) no longer occur, so fewer rOps "
        "take part than were traced; the row ops kept their keys while their code changed, so their ratio "
        "sets the traced block-wide walk against the estimate of today's warp-per-row tile:",
        "",
        "| kind | rOps | measured, all tiles | estimated | ratio | per rOp: median (range) |",
        "|---|---|---|---|---|---|",
    ]
    for kind, k in sorted(by_kind.items(), key=lambda kv: -kv[1]["meas"]):
        lines.append(f"| {kind} | {k['rops']} | {k['meas']:.0f} us | {k['est']:.0f} us | {k['meas'] / k['est']:.1f}x | "
                     f"{statistics.median(k['ratios']):.1f}x ({min(k['ratios']):.1f}-{max(k['ratios']):.1f}x) |")
    lines += [
        "",
        "## What the fit cannot explain",
        "",
        f"- The tiles themselves. In situ the traced models' tiles run {lo_kind:.1f}-{hi_kind:.1f}x slower than "
        "their estimate per kind (above; resnet18's f32 implicit-GEMM conv2d tiles worst), and no choice of the "
        "two latencies fixes that: it is the tiles' work and latency structure that is wrong, not a latency's "
        "value. The measured tiles repair the traced models' megakernels (residuals "
        f"{spread(traced_mk)}); every other model is predicted from estimates, and its megakernel stays "
        f"{factor(other_mk)} too fast ({names(other_mk)}).",
        f"- per_op. It is predicted {factor(slow_po)} too slow for {names(slow_po)} (probably the element-by-element "
        "staging term, which charges a round trip per staged element of the f16/bf16 CUDA-core K loops that per_op runs) and "
        f"{factor(fast_po)} too fast for {names(fast_po)}: one memory latency cannot serve both, and the fit "
        "splits the difference. 30d23da's schedules, fitted alone to 0.105, are now over-predicted "
        f"({spread(old_rows)}).",
        "- The waits. In the 2026-11-27 traces (not kept in the repository) about half of every SM slot's "
        "time in resnet18's and bert_base's megakernels is spent in `wait` events, polling counters; the model "
        "plays the dependencies, but the in-situ tile times already include whatever co-running costs a tile, "
        "so a prediction from them is right for the traced schedule and not for another.",
        "- Generality. The measured tiles cover only the cost keys of three traced schedules; a model, a "
        "tile shape or a split the traces did not run falls back to the estimate, which is several times "
        "optimistic. The policies therefore compare a measured (slow, true) time against an estimated "
        "(fast) one, which biases them away from the measured shapes (next section).",
        "",
        "## What the measured tiles change in the policies' choices",
        "",
        "Today's latencies, the traced models, with and without kernels_db's measured tiles: predicted time, "
        "tasks, and how many rOps changed their cost key (a new tile shape or split-K) when the tiles were "
        "added. A changed rOp left its measured key for an estimated one.",
        "",
        "| model | policy | without: predicted, tasks | with: predicted, tasks | rOps changed | rOps measured |",
        "|---|---|---|---|---|---|",
    ]
    for model, policy, a, b, changed, measured in choices:
        lines.append(f"| {model} | {policy} | {a['predicted_us']:.0f} us, {a['tasks']} | {b['predicted_us']:.0f} us, "
                     f"{b['tasks']} | {changed} of {len(b['group_list'])} | {measured} |")
    lines += [
        "",
        "## Today's schedules, predicted",
        "",
        "The kept model (fitted latencies, measured tiles) on today's code. These are predictions; the "
        "measured column is eecf9a0's megakernel where it was profiled (its schedule may differ from today's: "
        "see the section above).",
        "",
        "| model | anvil | per_op | anvil at eecf9a0, measured |",
        "|---|---|---|---|",
    ]
    measured_now = {d["model"]: d["measured_us"] for d in files.values()
                    if d["commit"] == "eecf9a0" and d["policy"] == "anvil"}
    for model in full_size_models():
        a = schedule(args, model.stem, "anvil")
        p = schedule(args, model.stem, "per_op")
        m = f"{measured_now[model.stem]:.0f} us" if model.stem in measured_now else "-"
        lines.append(f"| {model.stem} | {a['predicted_us']:.0f} us | {p['predicted_us']:.0f} us | {m} |")
    with tempfile.TemporaryDirectory() as tmp:
        lines += h200_section(args, files, tmp)
        lines += h200_findings(H200_KEPT_NOTE)
    (ROOT / "docs/perf/cost-model.md").write_text("\n".join(lines) + "\n")
    print("wrote docs/perf/cost-model.md")


# The H200 run of 2026-11-28 (commit 3cda44c): its schedules, the tiles of its three traces, and the traces.
H200_COMMIT = "3cda44c"
TILES_H200 = ROOT / f"docs/perf/cost-model/tiles-h200-{H200_COMMIT}.yaml"
TRACES_H200 = ROOT / "docs/perf/traces-2026-11-28"


def latencies_of(gpu, commit=None):
    """(poll, memory) latencies of kernels_db/gpus/<gpu>.yaml, this tree's or at a commit."""
    path = f"kernels_db/gpus/{gpu}.yaml"
    text = (subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:{path}"], check=True, capture_output=True,
                           text=True).stdout if commit else (ROOT / path).read_text())
    return tuple(float(re.search(rf"^{k}:\s*(\S+)", text, flags=re.M).group(1))
                 for k in ("poll_latency_s", "memory_latency_s"))


def trace_events(model):
    """{rOp name: [body us]}, [wait us] of a measured trace, and its kind per rOp name."""
    doc = json.loads(gzip.open(TRACES_H200 / f"{model}.trace.json.gz").read())
    bodies, waits, kinds = {}, [], {}
    for e in doc["traceEvents"]:
        if e.get("ph") != "X" or "task" not in e.get("args", {}):
            continue
        if e["cat"] == "wait":
            waits.append(e["dur"])
        else:
            bodies.setdefault(e["name"], []).append(e["dur"])
            kinds[e["name"]] = e["cat"]
    return bodies, waits, kinds


def kind_of(trace_kind, cost_key):
    return trace_kind + (" (tensor cores)" if " tc " in cost_key else "")


def h200_section(args, files, tmp):
    g = "h200"
    h200 = H200_SCHEDULES
    before_lat = latencies_of(g, H200_COMMIT)
    kept_lat = latencies_of(g)

    def cf(fs, settings, fit=False, gpu=g):
        return cost_fit(args, fs, kernels_db_variant(tmp, settings), fit, gpu)

    before = cf(h200, {g: (*before_lat, None)})
    tiles_before = cf(h200, {g: (*before_lat, TILES_H200)})
    fit_plain = cf(h200, {g: (None, None, None)}, fit=True)
    fit_tiles = cf(h200, {g: (None, None, TILES_H200)}, fit=True)
    everything = ALL_SCHEDULES
    fit_all = cf(everything, {"h100_sxm": (None, None, TILES), g: (None, None, TILES_H200)}, fit=True,
                 gpu="h100_sxm")
    fit_all_plain = cf(everything, {"h100_sxm": (None, None, None), g: (None, None, None)}, fit=True, gpu="h100_sxm")
    after = cf(h200, {g: (None, None, None)})
    after_tiles = cf(h200, {g: (None, None, TILES_H200)})

    def rms_of(rows, key="predicted_us", only_gpu=None):
        rows = [r for r in rows if only_gpu is None or r["gpu"] == only_gpu]
        return math.sqrt(sum(math.log(r[key] / r["measured_us"]) ** 2 for r in rows) / len(rows))

    def fit_row(name, res, n):
        f = res["fit"]
        return (f"| {name} | {n} | {f['poll_latency_s'] * 1e9:.0f} ns | {f['memory_latency_s'] * 1e9:.0f} ns | "
                f"{f['rms_log_error']:.3f} | {rms_of(res['schedules'], 'fitted_us', g):.3f} |")

    gaps = {r["schedule"]: r["predicted_us"] / files[pathlib.Path(r["file"])]["predicted_us_at_commit"] - 1
            for r in before["schedules"]}
    off = {n: g for n, g in gaps.items() if abs(g) > 1e-6}
    rest = max(abs(g) for n, g in gaps.items() if n not in off)
    replay = (f"all {len(gaps)} " + ("exactly" if rest == 0 else f"to {rest:.0e}") if not off else
              f"the other {len(gaps) - len(off)} " + ("exactly" if rest == 0 else f"to {rest:.0e}") + "; "
              + ", ".join(f"{n} {100 * g:+.1f}%" for n, g in sorted(off.items())) +
              " replay off the prediction the same binary makes (`anvil schedule --snapshot` then `anvil "
              "cost-fit`: a gap between the snapshot and predict(), not a different schedule; not yet found)")
    lines = [
        "",
        f"# H200 (commit {H200_COMMIT}, 2026-11-28)",
        "",
        f"`anvil profile --iters 50` of {len(h200) // 2} models on an NVIDIA H200 at commit {H200_COMMIT} "
        "(docs/perf/gpu-zoo-2026-11-28.json), with the ceilings `anvil calibrate` measured there "
        "(kernels_db/measured/h200.yaml, the same file the device planned with). Each schedule is kept as "
        f"docs/perf/cost-model/{H200_COMMIT}-<model>-<policy>.json, written by this tree's `anvil schedule "
        "--snapshot` (scripts/cost_model/rebuild_snapshots.py, which refuses a snapshot whose prediction "
        "is not the device's own to 1e-9; none was refused). Replayed by `anvil cost-fit` with the latencies "
        f"of {H200_COMMIT}, they give the device's predictions: {replay}. The tiles of "
        f"the three traces (resnet18, bert_base, transformer_encoder_f16) are in "
        f"docs/perf/cost-model/tiles-h200-{H200_COMMIT}.yaml (scripts/trace_tiles.py), not in kernels_db "
        "(kernels_db/README.md says why).",
        "",
        "## The fit",
        "",
        "The grid fit of the H100 section. `RMS, H200`: over the H200 schedules alone, with the fitted "
        "latencies. A fit over several GPUs plays each schedule on its own GPU's description with one "
        "pair of latencies (`anvil cost-fit` reads the GPU a snapshot names).",
        "",
        "| schedules fitted | n | poll_latency_s | memory_latency_s | RMS log error | RMS, H200 |",
        "|---|---|---|---|---|---|",
        fit_row("H200 alone, no measured tiles", fit_plain, len(h200)),
        fit_row("H200 alone, the H200 traced tiles", fit_tiles, len(h200)),
        fit_row("H100 and H200, no measured tiles", fit_all_plain, len(everything)),
        fit_row("H100 and H200, each GPU's traced tiles", fit_all, len(everything)),
        "",
        "RMS log error over the H200 schedules:",
        "",
        "| model | poll, memory latency | measured tiles | RMS log error |",
        "|---|---|---|---|",
        f"| before ({H200_COMMIT}'s h200.yaml) | {before_lat[0] * 1e9:.0f} ns, {before_lat[1] * 1e9:.0f} ns | no | "
        f"{rms_of(before['schedules']):.3f} |",
        f"| the traced tiles alone | {before_lat[0] * 1e9:.0f} ns, {before_lat[1] * 1e9:.0f} ns | yes | "
        f"{rms_of(tiles_before['schedules']):.3f} |",
        f"| after (kept in kernels_db/gpus/h200.yaml) | {kept_lat[0] * 1e9:.0f} ns, {kept_lat[1] * 1e9:.0f} ns | no | "
        f"{rms_of(after['schedules']):.3f} |",
        f"| after, with the traced tiles | {kept_lat[0] * 1e9:.0f} ns, {kept_lat[1] * 1e9:.0f} ns | yes | "
        f"{rms_of(after_tiles['schedules']):.3f} |",
        "",
        "## Residuals",
        "",
        "`then`: the device's prediction; `before`: the replay with "
        f"{H200_COMMIT}'s latencies; `after`: the kept latencies (no measured tiles, as kernels_db has them); "
        "`after, tiles`: the same with the traced tiles. `*`: a traced model.",
        "",
        "| schedule | measured | then | before | after | residual after | after, tiles |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, s in enumerate(after["schedules"]):
        d = files[pathlib.Path(s["file"])]
        star = " *" if d["model"] in TRACED else ""
        lines.append(f"| {s['schedule']}{star} | {s['measured_us']:.0f} us | {d['predicted_us_at_commit']:.0f} us | "
                     f"{before['schedules'][i]['predicted_us']:.0f} us | {s['predicted_us']:.0f} us | "
                     f"{100 * (s['predicted_us'] / s['measured_us'] - 1):+.0f}% | "
                     f"{after_tiles['schedules'][i]['predicted_us']:.0f} us |")
    lines += h200_residual_by_kind(before, before_lat, files)
    # What the kept latencies do to a policy's choice: resnet18's anvil schedule for the h200, before and after.
    cmd = ["schedule", str(ROOT / "models/resnet18.yaml"), "--policy", "anvil", "--gpu", g, "--json", "--kernels-db"]
    was = anvil_json(args, *cmd, kernels_db_variant(tmp, {g: (*before_lat, None)}))
    now = anvil_json(args, *cmd, kernels_db_variant(tmp, {g: (None, None, None)}))
    keys = {(x["name"], x["cost_key"]) for x in was["group_list"]}
    H200_CHOICE.update(was=was, now=now, changed=sum((x["name"], x["cost_key"]) not in keys for x in now["group_list"]))
    return lines


def h200_residual_by_kind(before, before_lat, files):
    """Per rTask kind of the traced megakernels: measured bodies against the estimate of the schedule that ran."""
    rows = {files[pathlib.Path(s["file"])]["model"]: s for s in before["schedules"]
            if files[pathlib.Path(s["file"])]["policy"] == "anvil"}
    kinds, waits = {}, []
    for model in TRACED:
        bodies, wait, trace_kind = trace_events(model)
        total_body = sum(sum(v) for v in bodies.values())
        snap = files[ROOT / "docs/perf/cost-model" / f"{H200_COMMIT}-{model}-anvil.json"]
        polls = sum(snap["poll_rounds"]) * before_lat[0] * 1e6
        waits.append((model, len(wait), sum(wait), total_body, polls))
        # A split-K reduce is named after its partials, less "#partials", plus the rOps fused after it.
        split = [r["name"][:-len("#partials")] for r in rows[model]["rops"] if r["name"].endswith("#partials")]
        for r, snap_rop in zip(rows[model]["rops"], snap["rops"]):
            if r["name"] not in bodies:
                continue
            meas = bodies[r["name"]]
            kind = kind_of(trace_kind[r["name"]], r["cost_key"])
            if kind == "rowwise" and any(r["name"] == p or r["name"].startswith(p + "+") for p in split):
                kind = "rowwise (split-K reduce)"
            k = kinds.setdefault(kind, {"rops": 0, "tasks": 0, "meas": 0.0, "work": 0.0, "lat": 0.0, "ratios": [],
                                        "lat_needed": [], "work_needed": [], "by_slices": []})
            k["rops"] += 1
            k["tasks"] += len(meas)
            k["meas"] += sum(meas)
            k["work"] += r["work_us"] * len(meas)
            k["lat"] += r["latency_us"] * len(meas)
            m = statistics.median(meas)
            est = r["work_us"] + r["latency_us"]
            k["ratios"].append(m / est)
            k["by_slices"].append((snap_rop["latency"]["k_slices"], m, est))
            if r["latency_us"] > 0:  # the memory latency that alone would make the estimate the median body
                k["lat_needed"].append(before_lat[1] * (m - r["work_us"]) / r["latency_us"] * 1e9)
            if r["work_us"] > 0 and m > r["latency_us"]:  # the factor on the throughput part that alone would
                k["work_needed"].append((m - r["latency_us"]) / r["work_us"])
    lines = [
        "",
        "## The residual per rTask kind",
        "",
        f"The bodies of the three measured traces (docs/perf/traces-2026-11-28/) against the estimated tile "
        f"of the same rOp in the schedule that ran ({H200_COMMIT}'s latencies: poll {before_lat[0] * 1e9:.0f} ns, "
        f"memory {before_lat[1] * 1e9:.0f} ns), split into its throughput part (FLOPs, shared memory, "
        "DRAM and L2 bytes at the calibrated rates) and its latency part (K-loop and serial round trips x "
        "memory latency). Summed over the tasks; per rOp the median body over the estimate. `memory latency "
        "needed`: per rOp, the memory latency that alone (throughput part held) makes the estimate the "
        "median body; `throughput factor needed`: the factor on the throughput part that alone (latency "
        "part held) would. Medians over the kind's rOps, range in brackets.",
        "",
        "| kind | rOps | tasks | measured bodies | estimated: throughput + latency | ratio | per rOp: median "
        "(range) | memory latency needed | throughput factor needed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def med(xs, fmt):
        return f"{fmt(statistics.median(xs))} ({fmt(min(xs))} to {fmt(max(xs))})" if xs else "-"

    for kind, k in sorted(kinds.items(), key=lambda kv: -kv[1]["meas"]):
        est = k["work"] + k["lat"]
        lines.append(f"| {kind} | {k['rops']} | {k['tasks']} | {k['meas']:.0f} us | {k['work']:.0f} + {k['lat']:.0f} us | "
                     f"{k['meas'] / est:.1f}x | {med(k['ratios'], lambda x: f'{x:.1f}x')} | "
                     f"{med(k['lat_needed'], lambda x: f'{x:.0f} ns')} | {med(k['work_needed'], lambda x: f'{x:.1f}x')} |")
    lines += [
        "",
        "Against the K loop's length (the kinds whose rOps run at least three different numbers of K "
        "slices): the least-squares line through the rOps' median bodies, and through their estimates.",
        "",
        "| kind | rOps | K slices | measured: fixed + per slice | estimated: fixed + per slice |",
        "|---|---|---|---|---|",
    ]
    for kind, k in sorted(kinds.items(), key=lambda kv: -kv[1]["meas"]):
        xs = [x for x, _, _ in k["by_slices"]]
        if len(set(xs)) < 3:
            continue
        fm = numpy.polyfit(xs, [m for _, m, _ in k["by_slices"]], 1)
        fe = numpy.polyfit(xs, [e for _, _, e in k["by_slices"]], 1)
        k["line"] = (fm, fe)
        lines.append(f"| {kind} | {len(xs)} | {min(xs):.0f}-{max(xs):.0f} | {fm[1]:.1f} us + {fm[0]:.2f} us | "
                     f"{fe[1]:.1f} us + {fe[0]:.2f} us |")
    lines += [
        "",
        "The waits (the `wait` event before each body: the block polling its counters, dependencies still "
        "running included) against the model's poll term (poll rounds x poll latency, summed over the tasks):",
        "",
        "| model | tasks | measured waits | measured bodies | waits / (waits + bodies) | poll term, predicted |",
        "|---|---|---|---|---|---|",
    ]
    for model, n, w, b, polls in waits:
        lines.append(f"| {model} | {n} | {w:.0f} us | {b:.0f} us | {100 * w / (w + b):.0f}% | {polls:.0f} us |")
    H200_KINDS.update(kinds)
    H200_WAITS.extend(waits)
    return lines


H200_KINDS, H200_WAITS, H200_CHOICE = {}, [], {}
H200_KEPT_NOTE = (
    "The kept latencies (kernels_db/gpus/h200.yaml: the H200 fit without measured tiles, rounded) carry "
    "that missing cost. The poll latency sits at the grid's upper bound (5 us and one refining step), as it "
    "did for eecf9a0's H100 schedules alone: every megakernel is under-predicted, while per_op, which polls "
    "nothing, is over-predicted for some models and under-predicted for others, and the poll term, charged once per waiting task, is the only per-task knob the fit "
    "has. It is a fitted stand-in for the per-task fixed cost of the bodies above (the intercepts), not an L2 "
    "round trip; the H100 description keeps its physical values, anchored by 30d23da's serial checks, which "
    "the H200 has no counterpart of. It changes the policies' h200 choices: resnet18's anvil schedule goes "
    "from {was[tasks]} tasks ({was[predicted_us]:.0f} us predicted) to {now[tasks]} ({now[predicted_us]:.0f} us), "
    "{changed} of its rOps taking another tile.")


def h200_findings(kept_note):
    """What the residual per kind says (numbers from the tables above)."""
    k = H200_KINDS

    def pct_latency(x):
        return 100 * x["lat"] / (x["work"] + x["lat"])

    def med(xs):
        return statistics.median(xs)

    out = ["", "## What the residual says, per kind", ""]
    tc, conv, red = k.get("matmul (tensor cores)"), k.get("conv2d"), k.get("rowwise (split-K reduce)")
    mem = latencies_of("h200", H200_COMMIT)[1] * 1e9
    if tc and "line" in tc:
        (fm, fe) = tc["line"]
        out.append(
            f"- Tensor-core matmul, f16 (bert_base, transformer_encoder_f16; {tc['rops']} rOps): the bodies are "
            f"{tc['meas'] / (tc['work'] + tc['lat']):.1f}x the estimate, which is {pct_latency(tc):.0f}% latency. "
            f"Against the K slices the bodies run {fm[1]:.1f} us + {fm[0]:.2f} us per slice, the estimates "
            f"{fe[1]:.1f} us + {fe[0]:.2f} us: the per-slice cost is {fm[0] / fe[0]:.1f}x the estimate, the fixed "
            f"part {fm[1] / fe[1]:.1f}x ({fm[1] - fe[1]:.1f} us a task). The memory latency that alone would explain "
            f"each rOp is {med(tc['lat_needed']):.0f} ns (median, {med(tc['lat_needed']) / mem:.1f}x {mem:.0f} ns; "
            f"{min(tc['lat_needed']):.0f}-{max(tc['lat_needed']):.0f} ns), too spread to be one latency. A latency "
            "under load fits the per-slice part (twice the estimate); the fixed part supports a cost per task "
            "that does not grow with K and that the model does not hold (the prologue, the epilogue and the "
            "counter release are candidates; the traces do not split a body into them).")
    if conv and "line" in conv:
        (fm, fe) = conv["line"]
        out.append(
            f"- conv2d, f32 on CUDA cores (resnet18; {conv['rops']} rOps): {conv['meas'] / (conv['work'] + conv['lat']):.1f}x, "
            f"the worst kind. The estimate is {100 - pct_latency(conv):.0f}% throughput (FP32 FLOPs at the "
            "calibrated peak and shared-memory wavefronts; cp.async hides all but the first round trip). The "
            f"memory latency that alone would explain it is {med(conv['lat_needed']) / 1000:.0f} us per round trip "
            f"(median; {min(conv['lat_needed']) / 1000:.0f}-{max(conv['lat_needed']) / 1000:.0f} us), no latency: "
            "the memory-latency hypothesis is refuted for this kind. The throughput part would have to be "
            f"{med(conv['work_needed']):.1f}x larger (median; {min(conv['work_needed']):.1f}-"
            f"{max(conv['work_needed']):.1f}x), which supports an instruction-bound tile: the model counts the "
            "FMAs and shared-memory wavefronts, not the other instructions of the implicit GEMM. Per K slice "
            f"the bodies take {fm[0]:.2f} us against {fe[0]:.2f} us estimated, and a fixed {fm[1]:.1f} us "
            f"against {fe[1]:.1f} us.")
    if red:
        out.append(
            f"- Rowwise split-K reduce (the reduces after resnet18's split convs and bert_base's split "
            f"projections, with their fused epilogues and layer norms; {red['rops']} rOps): "
            f"{red['meas'] / (red['work'] + red['lat']):.1f}x; the estimate is {pct_latency(red):.0f}% latency "
            f"(serial round trips). The memory latency that alone explains each rOp is "
            f"{med(red['lat_needed']):.0f} ns (median; {min(red['lat_needed']):.0f}-{max(red['lat_needed']):.0f} "
            f"ns), {med(red['lat_needed']) / mem:.1f}x {mem:.0f} ns (a {max(red['lat_needed']) / min(red['lat_needed']):.1f}x "
            "spread); the throughput part would "
            f"have to be {med(red['work_needed']):.0f}x larger. The numbers support a memory latency under load "
            "of about that size for these round trips (or as many more round trips than counted), not a "
            "throughput limit.")
    waits = ", ".join(f"{m} {100 * w / (w + b):.0f}%" for m, n, w, b, polls in H200_WAITS)
    ratio = ", ".join(f"{w / polls:.0f}x" for m, n, w, b, polls in H200_WAITS)
    out.append(
        f"- Poll contention. The blocks spend {waits} of their time in `wait` events, {ratio} the model's "
        "poll term. A wait holds the time the producers are still running as well as the polling, so the "
        "traces alone do not measure the polls' cost: the hypothesis is neither supported nor refuted by "
        "these files.")
    out.append("- " + kept_note.format(**H200_CHOICE))
    return out


if __name__ == "__main__":
    main()
