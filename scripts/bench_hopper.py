#!/usr/bin/env python3
"""Issue 6's Hopper benchmarks, run on the GPU machine (scripts/gpu_bench.sh hopper):

- one large GEMM, 4096^3 in f16 and bf16: anvil's megakernel against cuBLAS
  (torch.matmul) on the same device, both timed with CUDA events; with
  --tensor-cores the f16 one also on Hopper's wgmma tile (anvil --wgmma)
  and, last, every candidate tile of it alone (anvil tune --wgmma): among
  them the wgmma tiles at BK 64, whose operands the TMA engine copies,
  beside those at BK 32 on cp.async, which the policy picks today;
- a chain of batch-1 GEMVs (8 x [1, 4096] @ [4096, 4096], f16) and the
  Llama-style decode step (models/llama_decode.yaml): achieved bytes/s (the
  model's weights and inputs over its median time) against the device's
  measured copy bandwidth (anvil calibrate);
- with --gemv-layouts, instead of all the above: the GEMV chain with its
  weights row-major ([K, N]: a tile's k rows of BN columns lie a whole row
  of N apart) and blocked ([N / 64, K, 64]: each 64-column block one run of
  memory, the layout a tile-contiguous weight pass would produce), each under
  the anvil policy (its own BN) and topo (decompose's BN 64). Both forms
  stream the same bytes through the same GEMV tiles; what differs is the
  DRAM locality of the stream (docs/perf/gpu-notes-2026-11-28b.md, point 4).
  Then the row-major chain with anvil's own pass, --blocked-weights
  (frontend/blocked_weights.h), which should match the blocked declaration;
  last, the row-major chain with --gemv-l2-prefetch (each GEMV task's weights
  past the ring's first stages prefetched into L2 before its waits:
  rtasks/weight_ring.cuh), which asks whether the stream is short of bytes
  in flight rather than of locality.

Writes one JSON object (--json OUT) with device, date, commit, command and
gemm_4096_f16_us, cublas_4096_f16_us, gemm_4096_bf16_us, cublas_4096_bf16_us,
gemv_chain_bytes_per_s, decode_step_bytes_per_s, copy_bytes_per_s,
gemm_4096_f16_tiles ({cost key: seconds per wave of tiles}, with
--tensor-cores) (with
--gemv-layouts: gemv_chain_{row,blocked}_{anvil,topo}_bytes_per_s,
gemv_chain_blocked_weights_bytes_per_s and gemv_chain_l2_prefetch_bytes_per_s).

    scripts/bench_hopper.py --anvil build/anvil [--kernels-db DIR] [--tensor-cores] [--gemv-layouts] --json OUT
"""
import argparse
import datetime
import json
import pathlib
import re
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def gemm_model(dtype, n=4096):
    return f"""anvil: 1
name: gemm_{n}_{dtype}
dtype: {dtype}
seed: 3
inputs:
  - {{name: a, shape: [{n}, {n}], init: normal, std: 0.05}}
params:
  - {{name: b, shape: [{n}, {n}], init: normal, std: 0.05}}
nodes:
  - {{name: c, op: matmul, inputs: [a, b]}}
outputs: [c]
"""


def gemv_chain_model(layers=8, width=4096, dtype="f16", blocked=0):
    """`blocked` > 0: each weight as [width / blocked, width, blocked], a batched
    GEMV whose [1, blocked] rows are read back as one [1, width] row (a free
    reshape): column n of the layer is block n / blocked, column n % blocked."""
    nodes, params, x = [], [], "x"
    for i in range(layers):
        if blocked:
            params.append(f"  - {{name: w{i}, shape: [{width // blocked}, {width}, {blocked}], init: normal, std: 0.015}}")
            nodes.append(f"  - {{name: h{i}b, op: matmul, inputs: [{x}, w{i}]}}")
            nodes.append(f"  - {{name: h{i}, op: reshape, inputs: [h{i}b], shape: [1, {width}]}}")
        else:
            params.append(f"  - {{name: w{i}, shape: [{width}, {width}], init: normal, std: 0.015}}")
            nodes.append(f"  - {{name: h{i}, op: matmul, inputs: [{x}, w{i}]}}")
        x = f"h{i}"
    name = f"gemv_chain_{dtype}" + (f"_blocked{blocked}" if blocked else "")
    return (f"anvil: 1\nname: {name}\ndtype: {dtype}\nseed: 4\ninputs:\n"
            f"  - {{name: x, shape: [1, {width}]}}\nparams:\n" + "\n".join(params) +
            "\nnodes:\n" + "\n".join(nodes) + f"\noutputs: [{x}]\n")


def profile(args, model, extra=()):
    cmd = [args.anvil, "profile", str(model), "--iters", str(args.iters), "--json", *extra]
    if args.kernels_db:
        cmd += ["--kernels-db", args.kernels_db]
    cmd += ["--tensor-cores" if args.tensor_cores else "--no-tensor-cores"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.strip()[-2000:]}")
    return json.loads(r.stdout)


def tune_tiles(args, model, extra=()):
    """Every candidate tile of the model's GEMMs alone on the device (anvil
    tune): {cost key: seconds per wave of tiles}, from the file it writes."""
    with tempfile.TemporaryDirectory() as tmp:
        measured = pathlib.Path(tmp) / "measured.yaml"
        cmd = [args.anvil, "tune", str(model), "--out", str(measured), *extra]
        if args.kernels_db:
            cmd += ["--kernels-db", args.kernels_db]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if not measured.exists():
            raise RuntimeError(f"{' '.join(cmd)} failed: {(r.stderr or r.stdout).strip()[-2000:]}")
        text = measured.read_text()
    pairs = re.findall(r'key: "([^"]*)"\s+seconds: ([0-9.eE+-]+)', text)
    return {key: float(seconds) for key, seconds in pairs}


def cublas_us(dtype, n, iters):
    import torch
    t = {"f16": torch.float16, "bf16": torch.bfloat16}[dtype]
    a = torch.randn(n, n, device="cuda", dtype=t)
    b = torch.randn(n, n, device="cuda", dtype=t)
    for _ in range(5):
        torch.matmul(a, b)
    times = []
    for _ in range(iters):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        torch.matmul(a, b)
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e) * 1e3)
    times.sort()
    return times[len(times) // 2]


def derive(out):
    """The shares, from whatever has been measured so far."""
    for k, dtype in (("f16", "f16"), ("bf16", "bf16"), ("f16_wgmma", "f16")):
        if f"gemm_4096_{k}_us" in out and f"cublas_4096_{dtype}_us" in out:
            out[f"gemm_4096_{k}_share_of_cublas"] = out[f"cublas_4096_{dtype}_us"] / out[f"gemm_4096_{k}_us"]
    layouts = [f"gemv_chain_{l}_{p}" for l in ("row", "blocked") for p in ("anvil", "topo")]
    layouts += ["gemv_chain_blocked_weights", "gemv_chain_l2_prefetch"]
    for k in ("gemv_chain", "decode_step", *layouts):
        if f"{k}_bytes_per_s" in out and "copy_bytes_per_s" in out:
            out[f"{k}_share_of_copy"] = out[f"{k}_bytes_per_s"] / out["copy_bytes_per_s"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--anvil", default=str(ROOT / "build" / "anvil"))
    ap.add_argument("--kernels-db", default="")
    ap.add_argument("--tensor-cores", action="store_true",
                    help="let anvil pick its tensor-core tiles (without it: anvil --no-tensor-cores)")
    ap.add_argument("--gemv-layouts", action="store_true",
                    help="only the GEMV chain with row-major and blocked weights, under the anvil and topo policies")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()

    out = {"what": "issue 6 benchmarks: 4096^3 GEMM vs cuBLAS; batch-1 GEMV chain and decode step bytes/s vs copy "
                   "bandwidth (CUDA events, medians)",
           "date": datetime.date.today().isoformat(),
           "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                    text=True).stdout.strip() or "unknown",
           "command": " ".join(sys.argv), "tensor_cores": args.tensor_cores, "errors": {}}
    started = time.monotonic()

    def step(name, measure):
        """One measurement; the JSON is rewritten after each, so a run cut off by
        its cap (gpu_bench.sh) keeps what it measured."""
        t0 = time.monotonic()
        try:
            measure()
        except Exception as e:  # keep going: one failure must not hide the other numbers
            out["errors"][name] = str(e)
        out.setdefault("step_seconds", {})[name] = round(time.monotonic() - t0, 1)
        derive(out)
        pathlib.Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
        error = f"  ERROR {out['errors'][name][-300:]}" if name in out["errors"] else ""
        print(f"{time.monotonic() - started:6.1f} s  {name}: {out['step_seconds'][name]} s{error}", flush=True)

    def gemm(dtype, path, extra=(), key=None):
        key = key or dtype
        path.write_text(gemm_model(dtype))
        p = profile(args, path, extra)
        out[f"gemm_4096_{key}_us"] = p["megakernel_us"]
        out[f"gemm_4096_{key}_ok"] = p["outputs_ok"]
        out["device"] = p["device"]
        out["copy_bytes_per_s"] = p["roofline"]["ceilings"]["copy_bytes_per_s"]

    def bandwidth(name, model, extra=()):
        p = profile(args, model, extra)
        out[f"{name}_us"] = p["megakernel_us"]
        out[f"{name}_bytes"] = p["roofline"]["min_bytes"]
        out[f"{name}_bytes_per_s"] = p["roofline"]["min_bytes"] / (p["megakernel_us"] * 1e-6)
        out[f"{name}_ok"] = p["outputs_ok"]
        out["copy_bytes_per_s"] = p["roofline"]["ceilings"]["copy_bytes_per_s"]

    def cublas(dtype):
        out[f"cublas_4096_{dtype}_us"] = cublas_us(dtype, 4096, args.iters)

    # One figure of each kind first (f16 GEMM, the GEMV chain), then bf16, and
    # the decode step last: the profile phase of gpu_bench.sh measures
    # llama_decode too, and it took 65 s of the H200's 110 s cap at caaf45f.
    # A cap that cuts the run short still leaves one of each. On the H200
    # (2026-11-28) the first order, both GEMMs first, returned nothing in 110 s.
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        chain = tmp / "gemv_chain.yaml"
        chain.write_text(gemv_chain_model())
        if args.gemv_layouts:
            blocked = tmp / "gemv_chain_blocked.yaml"
            blocked.write_text(gemv_chain_model(blocked=64))
            for layout, model in (("row", chain), ("blocked", blocked)):
                for policy in ("anvil", "topo"):
                    key = f"gemv_chain_{layout}_{policy}"
                    step(key, lambda k=key, m=model, p=policy: bandwidth(k, m, ["--policy", p]))
            step("gemv_chain_blocked_weights",
                 lambda: bandwidth("gemv_chain_blocked_weights", chain, ["--policy", "anvil", "--blocked-weights"]))
            step("gemv_chain_l2_prefetch",
                 lambda: bandwidth("gemv_chain_l2_prefetch", chain, ["--policy", "anvil", "--gemv-l2-prefetch"]))
            print(json.dumps(out, indent=1))
            return
        step("cublas_4096_f16", lambda: cublas("f16"))
        step("gemm_4096_f16", lambda: gemm("f16", tmp / "gemm_f16.yaml"))
        if args.tensor_cores:  # wgmma's [crosscheck] passed on the H200 at caaf45f
            step("gemm_4096_f16_wgmma", lambda: gemm("f16", tmp / "gemm_f16.yaml", ["--wgmma"], "f16_wgmma"))
        step("gemv_chain", lambda: bandwidth("gemv_chain", chain))
        step("cublas_4096_bf16", lambda: cublas("bf16"))
        step("gemm_4096_bf16", lambda: gemm("bf16", tmp / "gemm_bf16.yaml"))
        step("decode_step", lambda: bandwidth("decode_step", ROOT / "models" / "llama_decode.yaml"))
        if args.tensor_cores:  # last: it compiles every candidate (NVRTC, tens of seconds)
            path = tmp / "gemm_f16.yaml"
            path.write_text(gemm_model("f16"))
            step("gemm_4096_f16_tiles",
                 lambda: out.update(gemm_4096_f16_tiles=tune_tiles(args, path, ["--wgmma"])))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
