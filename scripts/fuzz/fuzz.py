#!/usr/bin/python3
"""Fuzzes anvil with structure-aware mutants of its models (issue 17).

  fuzz.py --anvil build/anvil [--seed S] [--cases N] [--max-runs R] [--jobs J] [--save DIR]
  fuzz.py --anvil build/anvil --replay tests/fuzz_regressions

Each mutant (scripts/fuzz/mutate.py, deterministic by seed) of the small
models in models/ and tests/models goes through `anvil check`, and, when
accepted, up to R of them through `anvil run --backend host` (under a memory
limit set like `ulimit -v`, and a time limit). `--backend simt` runs them
instead as the CUDA code on the simt backend with its thread-level checks,
for an sm_90a GPU, each mutant with its own draw of the opt-in tiles and
layouts (wgmma and TMA, the L2 prefetches, blocked weights, TF32 modes):
the device code on hostile shapes, without a device. A finding is any signal,
timeout, exit status 3 (internal error) or other than 0/1/2, or a run whose
outputs disagree with the reference (exit 1). Findings are written to
--save DIR as YAML files, which --replay runs again (the ctest
fuzz_regressions): there every file must be refused (exit 2) or run right.
Exits 1 when anything was found.
"""
import argparse
import concurrent.futures
import glob
import hashlib
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mutate import mutate  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MAX_MEMORY = "64M"  # anvil's --max-memory for every mutant: big ones are refused, not run


def seed_models():
    """The models small enough to run on the host: each *_small variant, or the model itself."""
    paths = sorted(glob.glob(os.path.join(ROOT, "models", "*.yaml")) +
                   glob.glob(os.path.join(ROOT, "tests", "models", "*.yaml")))
    out = []
    for p in paths:
        stem = p[:-len(".yaml")]
        if os.path.exists(stem + "_small.yaml"):
            continue
        out.append(p)
    return out


class Limits:
    def __init__(self, timeout_s, mem_mb):
        self.timeout_s = timeout_s
        self.mem_bytes = mem_mb << 20

    def preexec(self):
        resource.setrlimit(resource.RLIMIT_AS, (self.mem_bytes, self.mem_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_anvil(anvil, args, limits, env):
    try:
        p = subprocess.run([anvil] + args, capture_output=True, text=True, errors="replace",
                           timeout=limits.timeout_s, preexec_fn=limits.preexec, env=env)
        return p.returncode, (p.stdout + p.stderr)[-2000:]
    except subprocess.TimeoutExpired:
        return "timeout", ""


def problem(step, rc, out, path):
    """What is wrong with one step's result, or None. A refusal (exit 2)
    must name the model file: an exit 2 for anything else (a bad command
    line) is no refusal."""
    if rc == "timeout":
        return f"{step}: hang (time limit)"
    if rc < 0:
        return f"{step}: killed by signal {-rc}"
    if rc == 3:
        return f"{step}: internal error (exit 3): {out.strip().splitlines()[-1] if out.strip() else ''}"
    if rc == 1 and step == "run":
        return "run: the host backend disagrees with the reference (exit 1)"
    if rc not in (0, 2):
        return f"{step}: unexpected exit status {rc}"
    if rc == 2 and os.path.basename(path) not in out:
        return f"{step}: exit 2 without a message naming the model: {out.strip()[:300]}"
    return None


# The simt backend's target and the options a mutant may draw: every mode
# that is off by default gets reached on shapes nobody wrote by hand.
HOST_RUN = ["--backend", "host", "--workers", "2"]
SIMT_RUN = ["--backend", "simt", "--gpu", "h200"]
SIMT_OPTIONS = ["--wgmma", "--gemm-l2-prefetch", "--gemv-l2-prefetch", "--blocked-weights",
                "--no-tensor-cores", "--precision=tf32", "--precision=3xtf32", "--no-last-slice-reduce",
                "--policy=topo", "--epilogue-batch=1", "--epilogue-batch=4"]


def run_options(backend, case_seed):
    """The run options of one case: the host's fixed ones, or the simt
    target with a draw (deterministic by seed) of up to three of
    SIMT_OPTIONS, --wgmma in half of them."""
    if backend == "host":
        return HOST_RUN
    rng = random.Random(case_seed)
    drawn = {"--wgmma"} if rng.random() < 0.5 else set()
    drawn.update(rng.sample(SIMT_OPTIONS, rng.randint(0, 3)))
    for valued in ("--precision=", "--epilogue-batch="):  # one value of each
        drawn.difference_update(sorted(o for o in drawn if o.startswith(valued))[1:])
    return SIMT_RUN + sorted(drawn)


def try_model(anvil, path, limits, env, allow_run, options=HOST_RUN):
    """(finding or None, whether it ran: None when check refused it)."""
    rc, out = run_anvil(anvil, ["check", path, "--max-memory", MAX_MEMORY], limits, env)
    bad = problem("check", rc, out, path)
    if bad or rc != 0:
        return bad, None
    if not allow_run():
        return None, False
    rc, out = run_anvil(anvil, ["run", path, *options, "--max-memory", MAX_MEMORY], limits, env)
    if rc == 1 and ill_conditioned(anvil, path, limits, env):
        return None, True
    bad = problem("run", rc, out, path)
    if bad and rc == 1:
        bad = bad.replace("the host backend", "the " + options[options.index("--backend") + 1] + " backend")
    if bad and rc != "timeout" and rc not in (0, 2):
        bad += ": " + (out.strip().splitlines()[-1] if out.strip() else "")
    return bad, True


def ill_conditioned(anvil, path, limits, env):
    """Whether a run that missed the tolerance did so because the model is
    ill-conditioned, not because anvil computed it wrong. Independent f32
    evaluations (the baselines' numpy layer, every node rounded to its
    storage dtype) of the model and of copies whose inputs and params are
    moved by one rounding of their dtype each: when these miss the float64
    result too, and anvil's error is within a small factor of the worst of
    them, the outputs hang on roundings (a mutant that divides by a sum near
    zero; a relu whose one positive value is a difference of large ones), and
    which roundings anvil does (it keeps fused intermediates in f32) decides
    the digits."""
    import tempfile
    import numpy as np
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    from baselines.job import Job
    from baselines.model import SPEC_TOLERANCE
    from baselines.numpy_backend import NumpyBackend
    with tempfile.TemporaryDirectory() as tmp:
        io = os.path.join(tmp, "io")
        rc, _ = run_anvil(anvil, ["run", path, *HOST_RUN, "--max-memory", MAX_MEMORY,
                                  "--save-io", io], limits, env)
        if rc != 1:
            return False
        job = Job(path, io, iters=0, warmup=0)
        prog = job.program

        def evaluate(backend, values):
            outs = prog.run(backend, prog.upload(backend, values), prog.constants(backend))
            return dict(zip(prog.outputs, (backend.to_numpy(o) for o in outs)))

        np.seterr(all="ignore")  # mutants divide by zero and overflow: that is what they are for
        unit = {"f32": 2.0**-24, "f16": 2.0**-11, "bf16": 2.0**-8}
        rng = np.random.default_rng(0)

        def nudged():
            out = {}
            for n, v in job.values.items():
                u = unit.get(job.model.dtypes.get(n), 0.0)
                out[n] = v if u == 0 or v.dtype.kind in "iu" else v * (1 + u * rng.choice([-1.0, 1.0], v.shape))
            return out

        exact = evaluate(NumpyBackend(exact=True), job.values)
        trials = [evaluate(NumpyBackend(exact=False), job.values)] + \
                 [evaluate(NumpyBackend(exact=False), nudged()) for _ in range(4)]
        for name in job.model.outputs:
            norm = max(np.linalg.norm(exact[name]), 1e-30)
            ours = np.linalg.norm(job.expected[name] - exact[name]) / norm
            theirs = max(np.linalg.norm(t[name] - exact[name]) / norm for t in trials)
            tol = SPEC_TOLERANCE[job.model.loosest_dtype(name)]
            if os.environ.get("ANVIL_FUZZ_VERBOSE"):
                print(f"  {name}: anvil {ours:.3g}, independent f32 up to {theirs:.3g}, tolerance {tol:.3g}")
            if ours > tol and not (theirs > tol / 2 and ours <= 4 * theirs):
                return False
    return True


def npy_files(model):
    """The init files a model names (copied beside each of its mutants)."""
    files = []
    for key in ("inputs", "params"):
        for t in model.get(key) or []:
            if isinstance(t, dict) and isinstance(t.get("init"), dict) and "file" in t["init"]:
                files.append(t["init"]["file"])
    return files


def write_mutant(workdir, seed_path, seed_model, case_seed):
    m = mutate(seed_model, case_seed)
    text = yaml.safe_dump(m, sort_keys=False, default_flow_style=None, width=120)
    path = os.path.join(workdir, f"case_{case_seed}.yaml")
    with open(path, "w") as f:
        f.write(text)
    for rel in npy_files(seed_model):
        src = os.path.join(os.path.dirname(seed_path), rel)
        dst = os.path.join(workdir, rel)
        if os.path.exists(src) and not os.path.exists(dst):
            os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
            shutil.copy(src, dst)
    return path, text


def campaign(args, env):
    seeds = []
    for p in seed_models():
        with open(p) as f:
            seeds.append((p, yaml.safe_load(f)))
    limits = Limits(args.timeout, args.mem_mb)
    runs = {"n": 0}

    def allow_run():
        # Called from worker threads; a rough cap is enough.
        if runs["n"] >= args.max_runs:
            return False
        runs["n"] += 1
        return True

    findings = []
    with tempfile.TemporaryDirectory(prefix="anvil-fuzz-") as work:
        def one(i):
            case_seed = args.seed * 1000003 + i
            seed_path, seed_model = seeds[i % len(seeds)]
            d = os.path.join(work, str(i % (args.jobs * 4)))
            os.makedirs(d, exist_ok=True)
            path, text = write_mutant(d, seed_path, seed_model, case_seed)
            options = run_options(args.backend, case_seed)
            bad, _ = try_model(args.anvil, path, limits, env, allow_run, options)
            os.remove(path)
            if bad and args.backend != "host":
                text = "# run: " + " ".join(options) + "\n" + text
            return (i, seed_path, case_seed, text, bad)

        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            for i, seed_path, case_seed, text, bad in pool.map(one, range(args.cases)):
                if bad:
                    findings.append((seed_path, case_seed, text, bad))
                    print(f"FOUND case {case_seed} from {os.path.relpath(seed_path, ROOT)}: {bad}", flush=True)
    print(f"fuzz: {args.cases} cases (seed {args.seed}), {runs['n']} {args.backend} runs, {len(findings)} findings")
    if args.save:
        os.makedirs(args.save, exist_ok=True)
        for seed_path, case_seed, text, bad in findings:
            name = hashlib.sha1(text.encode()).hexdigest()[:12] + ".yaml"
            with open(os.path.join(args.save, name), "w") as f:
                f.write(f"# Found by scripts/fuzz/fuzz.py --seed {args.seed} (case {case_seed}, a mutant of "
                        f"{os.path.relpath(seed_path, ROOT)}): {bad.splitlines()[0]}\n{text}")
            print(f"  saved {os.path.join(args.save, name)}")
    return 1 if findings else 0


def replay(args, env):
    limits = Limits(args.timeout, args.mem_mb)
    files = sorted(glob.glob(os.path.join(args.replay, "*.yaml")))
    failed = 0
    for path in files:
        # "# expect: refused" or "# expect: runs" in a file pins its outcome;
        # "# run: OPTIONS" runs it with those options (a simt finding's draw).
        with open(path) as f:
            header = [line for line in f if line.startswith("# ")]
        expect = [line.split(":", 1)[1].strip() for line in header if line.startswith("# expect:")]
        options = [line.split(":", 1)[1].split() for line in header if line.startswith("# run:")]
        bad, ran = try_model(args.anvil, path, limits, env, lambda: True,
                             options[0] if options else HOST_RUN)
        if not bad and expect and expect[0] != ("runs" if ran else "refused"):
            bad = f"expected it {expect[0]}, but it {'ran' if ran else 'was refused'}"
        print(f"{'FAIL' if bad else 'ok  '} {os.path.relpath(path, ROOT)}{': ' + bad if bad else ''}"
              f"{' (ran)' if ran and not bad else ''}")
        failed += bool(bad)
    print(f"fuzz replay: {len(files)} files, {failed} failed")
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--anvil", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--max-runs", type=int, default=40, help="runs of accepted mutants, at most")
    ap.add_argument("--backend", choices=["host", "simt"], default="host",
                    help="run accepted mutants on the host backend, or on simt with a draw of opt-in modes each")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per anvil command")
    ap.add_argument("--mem-mb", type=int, default=4096, help="address-space limit per anvil command (ulimit -v)")
    ap.add_argument("--save", help="write findings here as YAML files")
    ap.add_argument("--replay", help="run every YAML file of this directory instead of mutants")
    args = ap.parse_args()
    args.anvil = os.path.abspath(args.anvil)
    env = dict(os.environ)
    env.setdefault("ANVIL_CACHE_DIR", os.path.join(tempfile.gettempdir(), "anvil-fuzz-cache"))
    sys.exit(replay(args, env) if args.replay else campaign(args, env))


if __name__ == "__main__":
    main()
