"""From the methods' result files to what people read: the metrics contract (accuracy.csv,
summary.json), plot data for ``dvc plots show``, and reports/results.md in the paper's form."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from tallmerge.results.metrics import summarize

# The paper's table order, labels, and its CLIP ViT-B/32 8-task row: absolute test top-1
# (normalized), Wang et al., ICML 2024, Tables 1 and 2.
METHODS = {
    "zeroshot": ("Zero-shot", (48.4, None)),
    "average": ("Weight averaging", (66.5, 72.3)),
    "task-arithmetic": ("Task Arithmetic", (70.8, 76.5)),
    "ties": ("TIES", (75.1, 81.0)),
    "consensus-ta": ("Consensus TA", (75.0, 80.8)),
    "consensus-ties": ("Consensus TIES", (74.8, 80.6)),
    "finetuned": ("Fine-tuned", (92.8, None)),
    "magnitude-masking": ("Magnitude masking", (86.8, 93.3)),
    "tall-ta": ("TALL mask + TA", (92.6, 99.7)),
    "tall-ties": ("TALL mask + TIES", (93.0, 100.3)),
}
ALPHA_METHODS = ("task-arithmetic", "ties", "consensus-ta", "consensus-ties")
MTVS = ("ta", "ties")


def accuracy_frame(results: Sequence[dict]) -> pd.DataFrame:
    rows = [{"method": r["method"], **row} for r in results for row in r["accuracy"]]
    return pd.DataFrame(rows, columns=["method", "task", "split", "top1"])


def summary(results: Sequence[dict]) -> dict:
    """``{method: {avg_top1_*, avg_normalized_*, and the selected alpha / lambda / k / topk}}``."""
    out = summarize(accuracy_frame(results))
    for r in results:
        out[r["method"]].update(r["selected"])
    return out


def alpha_curves(results: Sequence[dict]) -> pd.DataFrame:
    """Average normalized validation accuracy against alpha, one column per method."""
    columns = {}
    for r in results:
        if r["method"] in ALPHA_METHODS and r.get("search"):
            columns[r["method"]] = {p["alpha"]: p["avg_normalized_val"] for p in r["search"]}
    frame = pd.DataFrame(columns)
    return frame.rename_axis("alpha").reset_index()


def lambda_curves(results: Sequence[dict]) -> dict[str, pd.DataFrame]:
    """Per task: validation top-1 of its TALL reconstruction against lambda, per tau_MTL."""
    by_task: dict[str, dict[str, dict[float, float]]] = {}
    for r in results:
        if r["method"].startswith("tall-"):
            for p in r["search"]:
                by_task.setdefault(p["task"], {}).setdefault(r["method"], {})[p["lambda"]] = p["top1_val"]
    return {
        task: pd.DataFrame(curves).rename_axis("lambda").reset_index() for task, curves in by_task.items()
    }


def overlap_shares(results: Sequence[dict]) -> pd.DataFrame:
    """Share (%) of weights whose selected TALL masks are on for exactly 0, 1, ..., T tasks."""
    columns = {}
    for r in results:
        if r["method"].startswith("consensus-") and "overlap" in r:
            counts = r["overlap"]
            columns[r["method"].removeprefix("consensus-")] = [100.0 * c / sum(counts) for c in counts]
    frame = pd.DataFrame(columns).round(3)
    return frame.rename_axis("tasks").reset_index()


COMPRESSION_KEYS = (
    "mtv",
    "vector_dtype",
    "bytes",
    "bits_per_weight",
    "avg_top1_test",
    "avg_normalized_test",
    "projected_gbit_vit_b32_20tasks",
    "projected_gbit_vit_l14_20tasks",
)
PAPER_GBIT = {
    "ViT-B-32": 8.2,
    "ViT-L-14": 26.8,
}  # the paper's TALL store, 20 tasks, fp32 vector + 1-bit masks


def compression_summary(compression: dict) -> dict:
    """The ``compression`` entry of summary.json: the kept store's sizes, accuracy, projections."""
    return {k: compression[k] for k in COMPRESSION_KEYS}


def storage(summary_: dict, compression: dict) -> pd.DataFrame:
    """Storage of every task's model (MB on disk) against average normalized test accuracy:
    the fine-tuned checkpoints, each store built, and single models (zero-shot, merged)."""
    one_model = compression["bytes"]["base"]  # a merged model is a checkpoint like the base
    rows = [
        {
            "storage": "fine-tuned checkpoints",
            "megabytes": compression["bytes"]["finetuned"],
            "avg_normalized_test": summary_["finetuned"]["avg_normalized_test"],
        }
    ]
    rows += [
        {
            "storage": f"store: {name}",
            "megabytes": s["bytes"]["total"],
            "avg_normalized_test": s["avg_normalized_test"],
        }
        for name, s in compression["stores"].items()
    ]
    rows += [
        {
            "storage": f"one model: {METHODS[m][0]}",
            "megabytes": one_model,
            "avg_normalized_test": summary_[m]["avg_normalized_test"],
        }
        for m in ("zeroshot", "average", "task-arithmetic", "ties", "consensus-ta", "consensus-ties")
        if m in summary_
    ]
    frame = pd.DataFrame(rows)
    frame["megabytes"] = (frame["megabytes"] / 1e6).round(4)
    return frame


def comparison(summary_: dict) -> pd.DataFrame:
    rows = [
        {"method": m, "avg_normalized_test": s["avg_normalized_test"], "avg_top1_test": s["avg_top1_test"]}
        for m, s in summary_.items()
        if m != "finetuned"
    ]
    return pd.DataFrame(rows)


def markdown(results: Sequence[dict], summary_: dict, arch: str, compression: dict | None = None) -> str:
    """reports/results.md: our numbers beside the paper's ViT-B/32 8-task row."""
    frame = accuracy_frame(results)
    tasks = list(dict.fromkeys(frame.task))
    present = [m for m in METHODS if m in summary_]

    def cell(absolute: float, normalized: float | None) -> str:
        return f"{absolute:.1f}" if normalized is None else f"{absolute:.1f} ({normalized:.1f})"

    lines = [
        "# Results",
        "",
        "Written by the `report` stage of `dvc repro` from `metrics/methods/*.json`; do not edit by hand.",
        f"Ours: `{arch}` on the {len(tasks)}-task pocket benchmark ({', '.join(tasks)}).",
        "Test top-1 averaged over tasks, normalized accuracy (merged / fine-tuned, per task) in parentheses.",
        "The paper's row (CLIP ViT-B/32, 8 real tasks) is there for orientation, not as a like-for-like target.",
        "",
        f"| method | ours: {arch}, {len(tasks)} tasks | paper: ViT-B/32, 8 tasks | selected on validation |",
        "|---|---|---|---|",
    ]
    for method in present:
        label, (paper_abs, paper_norm) = METHODS[method]
        ours = summary_[method]
        normalized = None if method == "finetuned" else ours["avg_normalized_test"]
        lines.append(
            f"| {label} | {cell(ours['avg_top1_test'], normalized)} | {cell(paper_abs, paper_norm)} | {_selection(ours)} |"
        )

    lines += [
        "",
        "## Per task (test top-1)",
        "",
        "| method | " + " | ".join(tasks) + " |",
        "|---|" + "---|" * len(tasks),
    ]
    test = frame[frame.split == "test"].set_index(["method", "task"]).top1
    for method in present:
        lines.append(
            f"| {METHODS[method][0]} | " + " | ".join(f"{test[(method, t)]:.1f}" for t in tasks) + " |"
        )

    shares = overlap_shares(results)
    if len(shares.columns) > 1:
        lines += [
            "",
            "## Where the selected TALL masks agree",
            "",
            "Share of weights (%) used by no task (catastrophic), one task (selfish), or more (shared):",
            "",
            "| tau_MTL | catastrophic (0) | selfish (1) | shared (>= 2) |",
            "|---|---|---|---|",
        ]
        for mtv in MTVS:
            if mtv in shares:
                col = shares[mtv]
                lines.append(f"| {mtv} | {col[0]:.1f} | {col[1]:.1f} | {col[2:].sum():.1f} |")
    if compression is not None:
        lines += _compression_lines(summary_, compression)
    return "\n".join(lines) + "\n"


def _compression_lines(summary_: dict, compression: dict) -> list[str]:
    n = compression["bytes"]["finetuned"]
    lines = [
        "",
        "## Compressed store",
        "",
        f"Kept: `{compression['store']}`, TALL masks of tau_MTL = {compression['mtv']}, merged vector stored as "
        f"{compression['vector_dtype']} (the smallest store within the tolerance on validation).",
        "Sizes are bytes on disk; normalized accuracy is of the models rebuilt from each store, on test.",
        "",
        "| storage | bytes | % of fine-tuned | vector bits/weight | mask bits/weight | avg top-1 (normalized) |",
        "|---|---|---|---|---|---|",
        f"| fine-tuned checkpoints | {n:,} | 100.0 | | | {summary_['finetuned']['avg_top1_test']:.1f} (100.0) |",
    ]
    for name, s in compression["stores"].items():
        b = s["bits_per_weight"]
        lines.append(
            f"| store: {name} | {s['bytes']['total']:,} | {100 * s['bytes']['total'] / n:.1f} | {b['vector']:.2f} | "
            f"{b['mask']:.3f} | {s['avg_top1_test']:.1f} ({s['avg_normalized_test']:.1f}) |"
        )
    lines += [
        "",
        "Projected with the paper's accounting (the full fp32 zero-shot model, visual and text side, + the merged "
        "vector and 20 masks over the visual encoder at the kept store's measured bits per weight):",
        "",
        "| model, 20 tasks | ours (Gbit) | paper's TALL store (Gbit) |",
        "|---|---|---|",
        f"| ViT-B/32 | {compression['projected_gbit_vit_b32_20tasks']:.2f} | {PAPER_GBIT['ViT-B-32']} |",
        f"| ViT-L/14 | {compression['projected_gbit_vit_l14_20tasks']:.2f} | {PAPER_GBIT['ViT-L-14']} |",
    ]
    return lines


def _selection(entry: dict) -> str:
    parts = []
    if "alpha" in entry:
        parts.append(f"alpha = {entry['alpha']:.3g}")
    if "k" in entry:
        parts.append(f"k = {entry['k']}")
    if "lambda" in entry:
        parts.append("lambda = " + ", ".join(f"{v:g}" for v in entry["lambda"].values()))
    if "topk" in entry:
        parts.append(f"top-k = {entry['topk']:g}%")
    return "; ".join(parts)
