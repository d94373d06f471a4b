"""More tasks: the committed pocket world at T = 8 and 14 tasks, as the paper's 8 / 14 / 20 study
(reports/scaling.md).

    python study/scaling.py run 14     # the committed params with 14 tasks, from scratch
    python study/scaling.py table      # rewrite the table of reports/scaling.md

The 8-task row is the committed default run (``metrics/summary.json``). ``run T`` builds the
committed code (HEAD) with the committed params.yaml in a scratch checkout, its benchmark grown
to T tasks: the default tasks first, then the registry's other pocket tasks in registry order.
Everything else (pre-training, fine-tuning recipe, grids) is unchanged, so the rows differ only
in T, and what the two runs share (pre-training, the default tasks' data and fine-tunes) is
restored from the committed run's DVC cache (``dvc repro`` there first). It writes ``reports/scaling/T.json``: every method's test accuracy (absolute and
normalized), the alphas and lambdas chosen on validation, and the minutes it took.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "study"))
from regime import _groups, _repro, scratch_checkout  # noqa: E402  (one way to build a world and time it)

RESULTS = ROOT / "reports" / "scaling"
REPORT = ROOT / "reports" / "scaling.md"
MARKER = "<!-- table: written by `python study/scaling.py table` -->"
METHODS = ("zeroshot", "finetuned", "average", "task-arithmetic", "ties", "consensus-ta", "consensus-ties",
           "magnitude-masking", "tall-ta", "tall-ties")  # fmt: skip
LABELS = {"zeroshot": "zero-shot", "finetuned": "fine-tuned", "average": "weight averaging",
          "task-arithmetic": "Task Arithmetic", "ties": "TIES", "consensus-ta": "Consensus TA",
          "consensus-ties": "Consensus TIES", "magnitude-masking": "magnitude masking",
          "tall-ta": "TALL mask + TA", "tall-ties": "TALL mask + TIES"}  # fmt: skip
# The paper, CLIP ViT-B/32, test, normalized (absolute for zero-shot and fine-tuned), T = 8 / 14 / 20.
PAPER = {
    "zeroshot": (48.4, 57.3, 56.1), "finetuned": (92.8, 90.9, 91.3), "average": (72.3, 71.2, 67.5),
    "task-arithmetic": (76.5, 72.2, 66.8), "ties": (81.0, 74.8, 69.9), "consensus-ta": (80.8, 77.4, 72.0),
    "consensus-ties": (80.6, 74.5, 69.6), "magnitude-masking": (93.3, 88.4, 82.1),
    "tall-ta": (99.7, 99.1, 99.2), "tall-ties": (100.3, 100.0, 99.7),
}  # fmt: skip
ABSOLUTE = ("zeroshot", "finetuned")


def benchmark(default_tasks: dict, count: int) -> dict:
    """The default tasks, then the registry's other pocket tasks, ``count`` in all."""
    sys.path.insert(0, str(ROOT / "src"))
    from tallmerge.tasks.pocket import POCKET_TASKS

    names = list(default_tasks) + [t for t in POCKET_TASKS if t not in default_tasks]
    if not len(default_tasks) <= count <= len(names):
        raise SystemExit(
            f"error: T must be between {len(default_tasks)} and {len(names)} (the pocket registry), got {count}"
        )
    return {name: default_tasks.get(name, {}) for name in names[:count]}


def record(summary: dict, tasks: list, minutes: float | None, stages: dict | None, commit: str) -> dict:
    rows = {}
    for m in METHODS:
        s = summary[m]
        rows[m] = {"avg_top1_test": s["avg_top1_test"], "avg_normalized_test": s["avg_normalized_test"]}
        for knob in ("alpha", "lambda", "k"):
            if knob in s:
                rows[m][knob] = s[knob]
    return {
        "tasks": tasks,
        "commit": commit,
        "minutes": minutes,
        "minutes_by_stage_group": stages,
        "methods": rows,
    }


def run(count: int) -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    with scratch_checkout(f"scaling-{count}") as (work, commit, env):
        params["tasks"] = benchmark(params["tasks"], count)
        (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        # The committed run's cache: pre-training and the default tasks' data and fine-tunes are
        # restored from its run-cache (same code, params and inputs), the rest is built here.
        subprocess.run(
            [sys.executable, "-m", "dvc", "cache", "dir", "--local", str(ROOT / ".dvc" / "cache")],
            cwd=work,
            env=env,
            check=True,
            capture_output=True,
        )
        stages, total = _repro(work, env, work.parent / "repro.log", run_cache=True)
        summary = json.loads((work / "metrics" / "summary.json").read_text())
        result = record(summary, list(params["tasks"]), round(total, 2), _groups(stages), commit)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{count}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def table() -> str:
    committed = json.loads((ROOT / "metrics" / "summary.json").read_text())
    default_tasks = list(yaml.safe_load((ROOT / "params.yaml").read_text())["tasks"])
    rows = {len(default_tasks): record(committed, default_tasks, None, None, "committed default")}
    for path in sorted(RESULTS.glob("*.json")):
        rows[int(path.stem)] = json.loads(path.read_text())
    counts = sorted(rows)
    key = lambda m: "avg_top1_test" if m in ABSOLUTE else "avg_normalized_test"  # noqa: E731
    lines = [
        MARKER,
        "",
        "Test accuracy, average over the T tasks: absolute for zero-shot and fine-tuned, normalized "
        "(% of fine-tuned) otherwise; the paper's CLIP ViT-B/32 at T = 8 / 14 / 20 beside ours.",
        "",
        "| method | " + " | ".join(f"pocket T = {t}" for t in counts) + " | paper 8 / 14 / 20 |",
        "|---|" + "---|" * (len(counts) + 1),
    ]
    for m in METHODS:
        ours = " | ".join(f"{rows[t]['methods'][m][key(m)]:.1f}" for t in counts)
        lines.append(f"| {LABELS[m]} | {ours} | {' / '.join(f'{p:.1f}' for p in PAPER[m])} |")
    gain = lambda t, m, base: rows[t]["methods"][m][key(m)] - rows[t]["methods"][base][key(base)]  # noqa: E731
    lines.append(
        "| **Consensus TA - TA** | "
        + " | ".join(f"**{gain(t, 'consensus-ta', 'task-arithmetic'):+.1f}**" for t in counts)
        + " | +4.2 / +5.0 / +4.8 |"
    )
    lines.append(
        "| Consensus TIES - TIES | "
        + " | ".join(f"{gain(t, 'consensus-ties', 'ties'):+.1f}" for t in counts)
        + " | -0.4 / -0.3 / -0.3 |"
    )
    lines += ["", "Tasks and cost:", ""]
    for t in counts:
        r = rows[t]
        cost = (
            f"{r['minutes']:.1f} min on 2 cores, shared stages restored"
            if r.get("minutes")
            else "the committed `dvc repro`"
        )
        lines.append(f"- T = {t} ({cost}): {', '.join(r['tasks'])}")
    return "\n".join(lines) + "\n"


def write_table() -> None:
    text = REPORT.read_text()
    REPORT.write_text(text.split(MARKER)[0].rstrip() + "\n\n" + table())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    runs = commands.add_parser("run", help="build the default world with T tasks from scratch and record it")
    runs.add_argument("count", type=int, metavar="T")
    commands.add_parser("table", help="rewrite the table of reports/scaling.md")
    args = parser.parse_args()
    if args.command == "run":
        result = run(args.count)
        print(f"T = {args.count}: {result['minutes']} min", flush=True)
    write_table()


if __name__ == "__main__":
    main()
