#!/usr/bin/python3
"""Rebuilds docs/perf/cost-model/eecf9a0-*.json: the schedules of commit
eecf9a0 that `anvil profile` timed on an H100 on 2026-11-27, as `anvil
cost-fit` replays them ("format": "timeline", src/tools/cost_fit.h), each
with its measured median (megakernel_us under anvil, per_op_us under per_op).

The schedules come from `anvil schedule --snapshot` of this tree's binary,
with kernels_db as the device had it: the calibrated ceilings, no measured
tiles, eecf9a0's latencies. This is only the schedule that ran if this binary plans exactly what
eecf9a0 planned; the script checks it: each snapshot's prediction must equal
the profile's own (predicted_us, per_op_predicted_us, computed by eecf9a0 on
the device) to 1e-9, or it refuses and writes nothing for that model (build
eecf9a0 with the --snapshot commit cherry-picked, and pass it as --anvil).

    scripts/cost_model/rebuild_eecf9a0.py PROFILE_DIR [--anvil build/anvil]

PROFILE_DIR is the device output of scripts/gpu_bench.sh: meta.txt beside
it names the commit, profile/<model>.json (`anvil profile --json`) each model.
"""
import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from trace_tiles import kernels_db_without_tiles  # noqa: E402

COMMIT = "eecf9a0"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("profile_dir", type=pathlib.Path)
    ap.add_argument("--anvil", default=str(ROOT / "build" / "anvil"))
    args = ap.parse_args()
    meta = dict(l.split(": ", 1) for l in (args.profile_dir.parent / "meta.txt").read_text().splitlines() if ": " in l)
    if not meta.get("commit", "").startswith(COMMIT):
        sys.exit(f"{args.profile_dir}: measured at commit {meta.get('commit')}, not {COMMIT}")
    out_dir = ROOT / "docs" / "perf" / "cost-model"
    written, refused = [], []
    with tempfile.TemporaryDirectory() as tmp:
        kdb = kernels_db_without_tiles(tmp, meta["target"])
        for f in sorted(args.profile_dir.glob("*.json")):
            if f.name.endswith(".trace.json") or f.stat().st_size == 0:
                continue
            prof = json.loads(f.read_text())
            model = prof["model"]
            for policy, measured, predicted in (("anvil", "megakernel_us", "predicted_us"),
                                                ("per_op", "per_op_us", "per_op_predicted_us")):
                if prof.get(measured) is None:
                    continue
                snap_path = pathlib.Path(tmp) / f"{model}-{policy}.json"
                subprocess.run([args.anvil, "schedule", str(ROOT / "models" / f"{model}.yaml"), "--policy", policy,
                                "--gpu", meta["target"], "--kernels-db", kdb, "--snapshot", str(snap_path)],
                               check=True, capture_output=True)
                snap = json.loads(snap_path.read_text())
                if abs(snap["predicted_us"] / prof[predicted] - 1) > 1e-9:
                    refused.append(f"{model} {policy}: this binary predicts {snap['predicted_us']:.6f} us, "
                                   f"{COMMIT} predicted {prof[predicted]:.6f} us: not its schedule")
                    continue
                out = {
                    "what": f"a schedule of commit {COMMIT} as anvil planned it for the {meta['target']} (calibrated "
                            "ceilings, no measured tiles) and its measured time (anvil profile, median of "
                            f"{prof.get('iters')} runs, {meta['device']}, {meta['date']}); written by "
                            "scripts/cost_model/rebuild_eecf9a0.py",
                    "commit": COMMIT,
                    "measured_us": prof[measured],
                    "predicted_us_at_commit": prof[predicted],
                    **snap,
                }
                out["policy"] = policy
                out["model"] = model
                (out_dir / f"{COMMIT}-{model}-{policy}.json").write_text(json.dumps(out, separators=(",", ":")) + "\n")
                written.append(f"{model} {policy}")
    print(f"wrote {len(written)} schedules to docs/perf/cost-model/{COMMIT}-*.json")
    for r in refused:
        print("refused:", r, file=sys.stderr)
    sys.exit(1 if refused else 0)


if __name__ == "__main__":
    main()
