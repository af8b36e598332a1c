#!/usr/bin/python3
"""Writes docs/perf/cost-model.md: the cost model's latency terms, their fit
to the measured schedules of commit 30d23da, the residuals, what each term
contributes, and today's predictions for the zoo.

Runs `anvil cost-fit docs/perf/cost-model/*.json [--fit] --json` (the
schedules of 30d23da with their H100 times; scripts/cost_model/ rebuilds
them) with the kernels_db GPU's latencies, with the fitted ones, and with
each latency term switched off, then `anvil schedule MODEL --json` for the
full-size zoo under anvil and per_op.

    scripts/fit_cost_model.py [--anvil build/anvil] [--gpu h100_sxm]
"""
import argparse
import datetime
import json
import math
import pathlib
import re
import subprocess
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCHEDULES = sorted((ROOT / "docs/perf/cost-model").glob("30d23da-*.json"))

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
                                              - work / slices)   (pipelined)
    serial = dependent round trips outside the K loop x memory_latency_s
    busy   = max(alone, work x k) + task_overhead_s   (k co-resident blocks busy on the SM)

| term | 30d23da (the measured schedules) | today |
|---|---|---|
| poll_rounds | one per dependency: thread 0 checks them one after another | one per 32 counters: warp 0 polls them in parallel |
| phases per K slice | one per element a thread stages (in the PTX each element's address waits behind the previous element's shared store: the params are reloaded after it) | 1 with cp.async (f32); per element otherwise (the f16/bf16 CUDA-core staging: today's PTX still reloads the params after every shared store) |
| slices in flight | 1 (load, barrier, multiply, barrier) | 3 (four cp.async stages), 2 on tensor cores |
| shared-memory wavefronts | one float per load: per k, BM/16 + BN/16 per warp | 64/128-bit loads of the micro-tile |
| serial round trips | a thread's elements, a row's passes, the epilogue's operands one step after another (interpreted) | the same loops; straight-line epilogues load all of a value's operands at once |
| co-resident blocks | 1 (megakernel), 2 (per_op: 127 registers) | 2 per SM where registers and shared memory allow |
"""


def anvil_json(args, *cmd):
    out = subprocess.run([args.anvil, *cmd], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def cost_fit(args, kernels_db=None, fit=False):
    cmd = ["cost-fit", *map(str, SCHEDULES), "--json", "--gpu", args.gpu]
    if fit:
        cmd.append("--fit")
    if kernels_db:
        cmd += ["--kernels-db", kernels_db]
    return anvil_json(args, *cmd)


def with_latencies(args, tmp, poll, memory):
    """A kernels_db directory whose GPU has these latencies."""
    src = (ROOT / "kernels_db/gpus" / f"{args.gpu}.yaml").read_text()
    src = re.sub(r"^poll_latency_s:.*$", f"poll_latency_s: {poll}", src, flags=re.M)
    src = re.sub(r"^memory_latency_s:.*$", f"memory_latency_s: {memory}", src, flags=re.M)
    d = pathlib.Path(tmp) / f"kdb_{poll}_{memory}"
    (d / "gpus").mkdir(parents=True, exist_ok=True)
    (d / "gpus" / f"{args.gpu}.yaml").write_text(src)
    return str(d)


def log_err(pred, meas):
    return math.log(pred / meas)


def full_size_models():
    models = ROOT / "models"
    return sorted(p for p in models.glob("*.yaml") if (models / f"{p.stem}_small.yaml").exists())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--anvil", default=str(ROOT / "build" / "anvil"))
    ap.add_argument("--gpu", default="h100_sxm")
    args = ap.parse_args()
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    profile = json.loads((ROOT / "docs/perf/gpu-profile-2026-11-24.json").read_text())["profiles"]

    used = cost_fit(args, fit=True)
    poll, memory = used["poll_latency_s"], used["memory_latency_s"]
    fit = used["fit"]
    with tempfile.TemporaryDirectory() as tmp:
        ablations = {
            "no poll term": cost_fit(args, with_latencies(args, tmp, 0, memory)),
            "no memory-latency terms": cost_fit(args, with_latencies(args, tmp, poll, 0)),
            "neither": cost_fit(args, with_latencies(args, tmp, 0, 0)),
        }

    ratios = [prof[m] / prof[p] for prof in profile.values()
              for m, p in (("megakernel_us", "predicted_us"), ("per_op_us", "per_op_predicted_us"))]
    lines = [
        "# The cost model against the measured profiles (issue 13, part 5)",
        "",
        f"Generated by `scripts/fit_cost_model.py` on {datetime.date.today()}, commit {commit}, GPU description "
        f"`{args.gpu}`. The measurements are the only GPU ones so far: "
        "docs/perf/gpu-profile-2026-11-24.json (H100 SXM, commit 30d23da, CUDA events, median of 20 runs). "
        "That commit's schedules were rebuilt by building it (scripts/cost_model/rebuild_30d23da.sh) and are "
        "kept in docs/perf/cost-model/; `anvil cost-fit` plays them with today's terms under 30d23da's rules "
        "(src/tools/cost_fit.cpp). Its own cost model had predicted them "
        f"{min(ratios):.1f}-{max(ratios):.1f}x too fast.",
        "",
        "## The model",
        "",
        EQUATIONS,
        "## The fit",
        "",
        "Two free parameters, six measurements (three models, each as the megakernel and as per_op), so four "
        "degrees of freedom; everything else is the datasheet's (`kernels_db/gpus/h100_sxm.yaml`) or counted "
        "from the rTasks' code. The fit minimises the squared log error over a log-spaced grid "
        "(0.05-5 us on each axis, then refined):",
        "",
        "| | poll_latency_s | memory_latency_s | RMS log error |",
        "|---|---|---|---|",
        f"| least squares | {fit['poll_latency_s'] * 1e9:.0f} ns | {fit['memory_latency_s'] * 1e9:.0f} ns | "
        f"{fit['rms_log_error']:.3f} |",
        f"| kept in kernels_db (rounded) | {poll * 1e9:.0f} ns | {memory * 1e9:.0f} ns | "
        f"{math.sqrt(sum(log_err(s['predicted_us'], s['measured_us']) ** 2 for s in used['schedules']) / len(used['schedules'])):.3f} |",
        "",
        "Both land where the hardware says they should: an acquire load that reaches L2 and comes back, and a "
        "dependent load served by L2 or DRAM, are each a few hundred nanoseconds on an H100 under load. "
        "Neither was held to a prior; an earlier version of the model (two round trips per conv2d slice, "
        "no shared-memory term) fitted a 41 ns poll and a 1.6 us memory latency, physically impossible, "
        "which is what sent us to the PTX (each staged element's load is issued behind the previous one's shared store; "
        "ptxas may still reorder them, and no SASS disassembler was at hand: the physical fit is the evidence).",
        "",
        "## Residuals",
        "",
        "| schedule (30d23da) | measured | predicted then | predicted now | residual | fitted |",
        "|---|---|---|---|---|---|",
    ]
    for s in used["schedules"]:
        model, policy = s["schedule"].split()
        then = profile[model]["predicted_us" if policy == "anvil" else "per_op_predicted_us"]
        lines.append(f"| {model} {policy} | {s['measured_us']:.0f} us | {then:.0f} us | {s['predicted_us']:.0f} us | "
                     f"{100 * (s['predicted_us'] / s['measured_us'] - 1):+.0f}% | {s['fitted_us']:.0f} us |")
    lines += [
        "",
        "What each term is worth (predictions of the same schedules with a term switched off):",
        "",
        "| schedule (30d23da) | measured | all terms | " + " | ".join(ablations) + " |",
        "|---|---|---|" + "---|" * len(ablations),
    ]
    for i, s in enumerate(used["schedules"]):
        cells = [f"{a['schedules'][i]['predicted_us']:.0f} us" for a in ablations.values()]
        lines.append(f"| {s['schedule']} | {s['measured_us']:.0f} us | {s['predicted_us']:.0f} us | " +
                     " | ".join(cells) + " |")
    lines += [
        "",
        "The megakernels lose about as much to the serial dependency checks (resnet18's 3,003 tasks check "
        "266,407 dependencies, one L2 round trip each) as to the K loops' staging (a 64 x 64 x 32 slice is 16 "
        "dependent round trips per thread); per_op, which has no waits, to the staging and the scalar "
        "shared-memory reads of the multiply.",
        "",
        "Caveats: six totals cannot separate every term (the per-task trace, `anvil profile --trace`, would "
        "give thousands of points per run); mobilenet_v2's per_op is the worst fit (it has the most small "
        "launches, whose cost beside the launch overhead the model does not know); a100 and h200 descriptions "
        "reuse the H100's latencies unmeasured.",
        "",
        "## Today's schedules, predicted (they await a GPU)",
        "",
        "The same calibrated model on today's code (parallel polls, pipelined tiles, straight-line epilogues, "
        "two blocks per SM). These are predictions, not measurements; `anvil profile` on a device is what "
        "checks them. per_op runs decompose's CUDA-core tiles, so on the f16 models (bert_base, vit_b16, "
        "nerf_mlp) it pays the element-by-element staging in every K slice; lstm_tc's and resnext29_split's "
        "per_op pay their 16,150 and 1,056 launches.",
        "",
        "| model | anvil | per_op | anvil at 30d23da, measured |",
        "|---|---|---|---|",
    ]
    for model in full_size_models():
        a = anvil_json(args, "schedule", str(model), "--policy", "anvil", "--gpu", args.gpu, "--json")
        p = anvil_json(args, "schedule", str(model), "--policy", "per_op", "--gpu", args.gpu, "--json")
        then = f"{profile[model.stem]['megakernel_us']:.0f} us" if model.stem in profile else "-"
        lines.append(f"| {model.stem} | {a['predicted_us']:.0f} us | {p['predicted_us']:.0f} us | {then} |")
    (ROOT / "docs/perf/cost-model.md").write_text("\n".join(lines) + "\n")
    print("wrote docs/perf/cost-model.md")


if __name__ == "__main__":
    main()
