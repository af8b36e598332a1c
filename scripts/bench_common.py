"""What the host-side benchmarks share: the anvil binary's JSON, the
full-size zoo, and the results document (machine, date, commit, command)
written to docs/perf/<name>-<date>.json."""
import datetime
import json
import pathlib
import platform
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def anvil_json(anvil, *args):
    """`anvil ARGS... --json`, parsed."""
    out = subprocess.run([str(anvil), *map(str, args), "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def full_size_models():
    """The zoo's full-size models: those with a _small variant for CI."""
    models = ROOT / "models"
    return sorted(p for p in models.glob("*.yaml") if (models / f"{p.stem}_small.yaml").exists())


def write_results(name, doc, out=None, device="host CPU only"):
    """Adds the machine, date, commit and command to `doc` and writes it to
    `out`, or docs/perf/<name>-<date>.json; returns the path."""
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    head = {"device": f"{device}: {cpu}, {platform.machine()}", "date": datetime.date.today().isoformat(),
            "commit": commit, "command": pathlib.Path(sys.argv[0]).name + " " + " ".join(sys.argv[1:])}
    doc = {**{k: doc[k] for k in list(doc)[:1]}, **head, **{k: v for k, v in list(doc.items())[1:]}}
    path = pathlib.Path(out) if out else ROOT / "docs" / "perf" / f"{name}-{head['date']}.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print("wrote", path)
    return path
