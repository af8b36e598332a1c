#!/usr/bin/python3
"""Adds the measured times of docs/perf/gpu-profile-2026-11-24.json to the
schedules dump_30d23da.cpp printed (DUMP_DIR/<model>-<policy>.json) and
writes them, dependencies as runs of task ids, to OUT_DIR/30d23da-*.json.

    add_measurements.py DUMP_DIR OUT_DIR
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent


def runs(ids):
    out = []
    for x in sorted(ids):
        if out and out[-1][1] == x:
            out[-1][1] = x + 1
        else:
            out.append([x, x + 1])
    return out


def main():
    dump_dir, out_dir = map(pathlib.Path, sys.argv[1:3])
    profiles = json.loads((ROOT / "docs/perf/gpu-profile-2026-11-24.json").read_text())["profiles"]
    for model, prof in profiles.items():
        for policy in ("anvil", "per_op"):
            d = json.loads((dump_dir / f"{model}-{policy}.json").read_text())
            megakernel = policy == "anvil"
            out = {
                "what": "a schedule of commit 30d23da as its anvil planned it for the H100 SXM, and its measured "
                        "time (docs/perf/gpu-profile-2026-11-24.json); written by scripts/cost_model/rebuild_30d23da.sh",
                "commit": "30d23da", "model": model, "policy": policy,
                "measured_us": prof["megakernel_us" if megakernel else "per_op_us"],
                "predicted_us_at_30d23da": d["predicted_us"],
                "blocks_per_sm": 1 if megakernel else 2,
                "blocks_per_sm_why": "one 132-block persistent launch, one block per SM" if megakernel else
                "plain launches; NVRTC gave the conv2d kernels 127 registers (2 blocks of 256 threads per SM)",
                "threads_per_block": d["threads_per_block"],
                "rops": d["rops"],
                "tasks_format": "[rop, tile, dependencies as [first, end) runs of task ids]",
                "tasks": [[rop, tile, runs(deps)] for rop, tile, deps in d["tasks"]],
                "launches": d["launches"],
            }
            (out_dir / f"30d23da-{model}-{policy}.json").write_text(json.dumps(out, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
