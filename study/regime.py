"""The regime study: build candidate pocket worlds and record how each behaves (reports/regime.md).

    python study/regime.py run NAME [NAME ...]   # build each candidate from scratch, record it
    python study/regime.py table                 # rewrite the candidates table of reports/regime.md

A candidate (study/candidates.yaml) is the committed params.yaml with a few keys set. ``run``
checks out the committed code (HEAD) into a scratch folder, applies the candidate's params,
runs ``dvc repro`` from scratch there with a cache of its own (no run-cache shared with anything
else), and times every stage. It then writes ``reports/regime/NAME.json``: the cost (minutes on
this machine), the indicators the selection rule reads (validation: zero-shot, fine-tuned, Task
Arithmetic and TIES normalized), the distance D of reports/regime.md, the eligibility gates, and
the outcomes the rule never reads (TALL masks, Consensus, magnitude masking, the store), test
split included. ``table`` turns those files into the table at the end of reports/regime.md, below
its marker; the selection rule above the marker is never touched.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from determinism import cpu_model  # noqa: E402  (the same CPU name the kernel probe records)

CANDIDATES = ROOT / "study" / "candidates.yaml"
RESULTS = ROOT / "reports" / "regime"
REPORT = ROOT / "reports" / "regime.md"
MARKER = "<!-- candidates table: written by `python study/regime.py table` -->"

PAPER = {"zeroshot": 48.4, "finetuned": 92.8, "task-arithmetic": 76.5, "ties": 81.0}  # B/32 x 8, test
BUDGET_MINUTES = 30.0
GAP = 30.0  # fine-tuned - zero-shot, points
OUTCOMES = ("average", "tall-ta", "tall-ties", "consensus-ta", "consensus-ties", "magnitude-masking")


def load_candidates() -> dict:
    return yaml.safe_load(CANDIDATES.read_text())


def apply(params: dict, settings: dict) -> dict:
    """Set dotted keys (``finetune.lr``) in a params mapping; every key must already exist."""
    for dotted, value in settings.items():
        node, *path = dotted.split(".")
        keys = [node, *path]
        target = params
        for key in keys[:-1]:
            target = target[key]
        if keys[-1] not in target:
            raise SystemExit(f"error: {CANDIDATES}: '{dotted}' is not a key of params.yaml")
        target[keys[-1]] = value
    return params


@contextlib.contextmanager
def scratch_checkout(prefix: str, keep: bool = False) -> Iterator[tuple[Path, str, dict]]:
    """A git worktree of the committed code (HEAD) in a scratch folder: ``(path, commit, env)``,
    ``env`` being the environment to run its pipeline in. Removed afterwards unless ``keep``."""
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    scratch = Path(tempfile.mkdtemp(prefix=f"tallmerge-{prefix}-"))
    work = scratch / "repo"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(work), commit], cwd=ROOT, check=True, capture_output=True
    )
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONUNBUFFERED": "1",  # DVC's lines arrive as they are printed: they time the stages
        # the scratch checkout's own library, not the one the venv has installed (editable,
        # it would be this working copy's, whatever its state)
        "PYTHONPATH": os.pathsep.join(filter(None, [str(work / "src"), os.environ.get("PYTHONPATH")])),
    }
    try:
        yield work, commit, env
    finally:
        if not keep:
            subprocess.run(["git", "worktree", "remove", "--force", str(work)], cwd=ROOT, capture_output=True)
            shutil.rmtree(scratch, ignore_errors=True)


def run(name: str, keep: bool) -> dict:
    candidates = load_candidates()
    if name not in candidates:
        raise SystemExit(f"error: {CANDIDATES}: no candidate '{name}' (have: {', '.join(candidates)})")
    candidate = candidates[name]
    with scratch_checkout(f"regime-{name}", keep) as (work, commit, env):
        params = apply(yaml.safe_load((work / "params.yaml").read_text()), candidate.get("set") or {})
        (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        stages, total = _repro(work, env, work.parent / "repro.log")
        record = _record(name, candidate, work, commit, stages, total)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def _repro(work: Path, env: dict, log: Path, run_cache: bool = False) -> tuple[dict, float]:
    """Run ``dvc repro`` in ``work``; minutes per stage (from DVC's 'Running stage' lines).
    Without ``run_cache`` every stage runs; with it, stages DVC has run before with the same
    code, inputs and params are restored from the run-cache instead."""
    stages, current, started = {}, None, time.monotonic()
    t0 = started
    command = [sys.executable, "-m", "dvc", "repro", *([] if run_cache else ["--no-run-cache"])]
    with open(log, "w") as out:
        proc = subprocess.Popen(
            command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for line in proc.stdout:
            out.write(line)
            out.flush()
            if line.startswith("Running stage '"):
                now = time.monotonic()
                if current:
                    stages[current] = (now - t0) / 60
                current, t0 = line.split("'")[1], now
        code = proc.wait()
    end = time.monotonic()
    if current:
        stages[current] = (end - t0) / 60
    if code != 0:
        raise SystemExit(f"error: dvc repro failed in {work} (log: {log})")
    return stages, (end - started) / 60


def _groups(stages: dict) -> dict:
    groups: dict[str, float] = {}
    for stage, minutes in stages.items():
        group = stage.split("@")[0]
        groups[group] = round(groups.get(group, 0.0) + minutes, 2)
    return groups


def _record(name: str, candidate: dict, work: Path, commit: str, stages: dict, total: float) -> dict:
    summary = json.loads((work / "metrics" / "summary.json").read_text())
    with open(work / "metrics" / "accuracy.csv") as f:
        rows = list(csv.DictReader(f))
    sys.path.insert(0, str(work / "src"))
    from tallmerge.tasks import get_task  # the candidate's own registry (class counts for chance)

    zeroshot_val = {
        r["task"]: float(r["top1"]) for r in rows if r["method"] == "zeroshot" and r["split"] == "val"
    }
    chance = {task: 100.0 / len(get_task(task).classnames) for task in zeroshot_val}
    indicators = {
        "zeroshot": summary["zeroshot"]["avg_top1_val"],
        "finetuned": summary["finetuned"]["avg_top1_val"],
        "task-arithmetic": summary["task-arithmetic"]["avg_normalized_val"],
        "ties": summary["ties"]["avg_normalized_val"],
    }
    distance = math.sqrt(sum((indicators[k] - PAPER[k]) ** 2 for k in PAPER))
    gates = {
        f"repro <= {BUDGET_MINUTES:g} min": total <= BUDGET_MINUTES,
        "zero-shot above chance on every task": all(zeroshot_val[t] > chance[t] for t in zeroshot_val),
        f"fine-tuned - zero-shot >= {GAP:g}": indicators["finetuned"] - indicators["zeroshot"] >= GAP,
    }
    outcomes = {
        m: {k: summary[m][k] for k in ("avg_normalized_val", "avg_normalized_test")} for m in OUTCOMES
    }
    baselines = {
        m: {
            k: summary[m][k]
            for k in ("avg_top1_val", "avg_top1_test", "avg_normalized_val", "avg_normalized_test")
        }
        for m in ("zeroshot", "finetuned", "task-arithmetic", "ties")
    }
    per_task_val = {
        m: {r["task"]: float(r["top1"]) for r in rows if r["method"] == m and r["split"] == "val"}
        for m in ("zeroshot", "finetuned", "task-arithmetic", "ties")
    }
    return {
        "candidate": name,
        "why": " ".join(str(candidate.get("why", "")).split()),
        "set": candidate.get("set") or {},
        "commit": commit,
        "machine": f"{cpu_model()}, {os.cpu_count()} cores",
        "minutes": round(total, 2),
        "minutes_by_stage_group": _groups(stages),
        "indicators_val": indicators,
        "distance": round(distance, 2),
        "gates": gates,
        "eligible": all(gates.values()),
        "baselines": baselines,
        "per_task_top1_val": per_task_val,
        "outcomes_never_used_to_choose": outcomes,
        "store": summary.get("compression"),
    }


def table() -> str:
    records = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]
    records.sort(key=lambda r: (not r["eligible"], r["distance"]))
    lines = [
        MARKER,
        "",
        "Validation indicators (z, f: absolute top-1; a, s: normalized), distance D, cost, then the outcomes",
        "the rule never reads (test, normalized). Rerun a row: `python study/regime.py run NAME`.",
        "",
        "| candidate | code | set | z | f | a | s | D | eligible | minutes | TALL+TA | TALL+TIES | Cons. TA - TA | Cons. TIES - TIES | magnitude |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        i, o, b = r["indicators_val"], r["outcomes_never_used_to_choose"], r["baselines"]
        settings = ", ".join(_setting(k, v) for k, v in r["set"].items()) or "(defaults)"
        failed = [g for g, ok in r["gates"].items() if not ok]
        lines.append(
            f"| {r['candidate']} | {r.get('commit', '')[:7]} | {settings} | {i['zeroshot']:.1f} | {i['finetuned']:.1f} | {i['task-arithmetic']:.1f} "
            f"| {i['ties']:.1f} | {r['distance']:.1f} | {'yes' if not failed else 'no: ' + '; '.join(failed)} "
            f"| {r['minutes']:.1f} | {o['tall-ta']['avg_normalized_test']:.1f} | {o['tall-ties']['avg_normalized_test']:.1f} "
            f"| {o['consensus-ta']['avg_normalized_test'] - b['task-arithmetic']['avg_normalized_test']:+.1f} "
            f"| {o['consensus-ties']['avg_normalized_test'] - b['ties']['avg_normalized_test']:+.1f} "
            f"| {o['magnitude-masking']['avg_normalized_test']:.1f} |"
        )
    lines += ["", "Why each lever:", ""]
    lines += [f"- **{r['candidate']}**: {r['why']}" for r in records]
    return "\n".join(lines) + "\n"


def _setting(key: str, value) -> str:
    """``key=value`` for the table; a mapping (the ``tasks`` of a benchmark) by its keys."""
    return f"{key}={' '.join(value)}" if isinstance(value, dict) else f"{key}={value}"


def write_table() -> None:
    text = REPORT.read_text()
    head = text.split(MARKER)[0].rstrip() + "\n\n"
    REPORT.write_text(head + table())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    runs = commands.add_parser("run", help="build candidates from scratch and record them")
    runs.add_argument("names", nargs="+")
    runs.add_argument("--keep", action="store_true", help="keep the scratch checkout (its path is printed)")
    commands.add_parser("table", help="rewrite the candidates table of reports/regime.md")
    args = parser.parse_args()
    if args.command == "run":
        for name in args.names:
            record = run(name, args.keep)
            print(
                f"{name}: D = {record['distance']}, {record['minutes']} min, eligible: {record['eligible']}",
                flush=True,
            )
        write_table()
    else:
        write_table()


if __name__ == "__main__":
    main()
