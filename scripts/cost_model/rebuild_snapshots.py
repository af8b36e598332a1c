#!/usr/bin/python3
"""Rebuilds docs/perf/cost-model/<commit>-*.json: the schedules that `anvil
profile` timed on a device (eecf9a0 on an H100 on 2026-11-27, 3cda44c on an
H200 on 2026-11-28), as `anvil cost-fit` replays them ("format": "timeline",
src/tools/cost_fit.h), each with its measured median (megakernel_us under
anvil, per_op_us under per_op).

The schedules come from `anvil schedule --snapshot` of this tree's binary,
with kernels_db as the device had it: the calibrated ceilings (this tree's
kernels_db/measured/<target>.yaml, which must equal the run's
measured_<target>.yaml where it kept one), no measured tiles, and the
latencies kernels_db/gpus/<target>.yaml held at the measured commit. This is
only the schedule that ran if this binary plans exactly what that commit
planned; the script checks it: each snapshot's prediction must equal the
profile's own (predicted_us, per_op_predicted_us, computed on the device) to
1e-9, or it refuses and writes nothing for that schedule (build the commit
with the --snapshot commit cherry-picked, and pass it as --anvil).

    scripts/cost_model/rebuild_snapshots.py PROFILE_DIR [--anvil build/anvil]

PROFILE_DIR is the device output of scripts/gpu_bench.sh: meta.txt beside
it names the commit and target, profile/<model>.json (`anvil profile
--json`) each model.
"""
import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from trace_tiles import kernels_db_without_tiles, latencies_at  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("profile_dir", type=pathlib.Path)
    ap.add_argument("--anvil", default=str(ROOT / "build" / "anvil"))
    args = ap.parse_args()
    meta = dict(l.split(": ", 1) for l in (args.profile_dir.parent / "meta.txt").read_text().splitlines() if ": " in l)
    commit = meta["commit"][:7]
    target = meta["target"]
    device_ceilings = args.profile_dir.parent / f"measured_{target}.yaml"
    tree_ceilings = ROOT / "kernels_db" / "measured" / f"{target}.yaml"
    if device_ceilings.exists() and device_ceilings.read_text() != tree_ceilings.read_text():
        sys.exit(f"{device_ceilings} differs from {tree_ceilings}: the device planned with other ceilings")
    out_dir = ROOT / "docs" / "perf" / "cost-model"
    written, refused = [], []
    with tempfile.TemporaryDirectory() as tmp:
        kdb = kernels_db_without_tiles(tmp, target, latencies_at(commit, target))
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
                                   f"{commit} predicted {prof[predicted]:.6f} us: not its schedule")
                    continue
                out = {
                    "what": f"a schedule of commit {commit} as anvil planned it for the {meta['target']} (calibrated "
                            "ceilings, no measured tiles) and its measured time (anvil profile, median of "
                            f"{prof.get('iters')} runs, {meta['device']}, {meta['date']}); written by "
                            "scripts/cost_model/rebuild_snapshots.py",
                    "commit": commit,
                    "measured_us": prof[measured],
                    "predicted_us_at_commit": prof[predicted],
                    **snap,
                }
                out["policy"] = policy
                out["model"] = model
                (out_dir / f"{commit}-{model}-{policy}.json").write_text(json.dumps(out, separators=(",", ":")) + "\n")
                written.append(f"{model} {policy}")
    print(f"wrote {len(written)} schedules to docs/perf/cost-model/{commit}-*.json")
    for r in refused:
        print("refused:", r, file=sys.stderr)
    sys.exit(1 if refused else 0)


if __name__ == "__main__":
    main()
