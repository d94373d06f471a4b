"""From the methods' result files to what people read: the metrics contract (accuracy.csv,
summary.json), plot data for ``dvc plots show``, and reports/results.md in the paper's form."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from tallmerge.merging.recipes import CONSENSUS_PREFIX, METHODS, MTV_RECIPES, RECIPES, PaperRow
from tallmerge.results.metrics import summarize
from tallmerge.store.accounting import overhead_gbit, projected_gbit

REFERENCE = {  # rows that are not merges: their labels and published B/32 x 8 numbers
    "zeroshot": ("Zero-shot", PaperRow(48.4)),
    "finetuned": ("Fine-tuned", PaperRow(92.8)),
    "magnitude-masking": ("Magnitude masking", PaperRow(86.8, 93.3)),
    "magnitude-pruning": ("Magnitude pruning", PaperRow(None, 98.4)),
}
TALL_PREFIX = "tall-"


def report_methods(merges: Sequence[str], mtvs: Sequence[str]) -> list[str]:
    """The rows of the report, in the paper's table order: zero-shot, single-model merges,
    consensus merges, then the per-task models (fine-tuned, magnitude pruning and masking, TALL masks)."""
    return [
        "zeroshot",
        *merges,
        *(CONSENSUS_PREFIX + m for m in mtvs),
        "finetuned",
        "magnitude-pruning",
        "magnitude-masking",
        *(TALL_PREFIX + m for m in mtvs),
    ]


def describe_method(method: str) -> tuple[str, PaperRow | None]:
    """A result's label and its published row (None where no paper reports one)."""
    if method in REFERENCE:
        return REFERENCE[method]
    if method.startswith(TALL_PREFIX):
        recipe = RECIPES[method.removeprefix(TALL_PREFIX)]
        return f"TALL mask + {recipe.short or recipe.label}", recipe.tall_paper
    entry = METHODS[method]
    return entry.label, entry.paper


def method_label(method: str) -> str:
    return describe_method(method)[0]


def _alpha_searched(method: str) -> bool:
    return method in METHODS and not METHODS[method].fixed_alpha


# The plot files have one column per method of the registry, empty where a method did not run,
# so that dvc.yaml's plot definitions (which name their columns) fit any params.yaml.
ALPHA_COLUMNS = [m for m in METHODS if _alpha_searched(m)]
LAMBDA_COLUMNS = [TALL_PREFIX + r for r in MTV_RECIPES]
OVERLAP_COLUMNS = list(MTV_RECIPES)


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
        if _alpha_searched(r["method"]) and r.get("search"):
            columns[r["method"]] = {p["alpha"]: p["avg_normalized_val"] for p in r["search"]}
    frame = pd.DataFrame(columns, columns=ALPHA_COLUMNS).sort_index()
    return frame.rename_axis("alpha").reset_index()


def lambda_curves(results: Sequence[dict]) -> dict[str, pd.DataFrame]:
    """Per task: validation top-1 of its TALL reconstruction against lambda, per tau_MTL."""
    by_task: dict[str, dict[str, dict[float, float]]] = {}
    for r in results:
        if r["method"].startswith(TALL_PREFIX):
            for p in r["search"]:
                by_task.setdefault(p["task"], {}).setdefault(r["method"], {})[p["lambda"]] = p["top1_val"]
    return {
        task: pd.DataFrame(curves, columns=LAMBDA_COLUMNS).sort_index().rename_axis("lambda").reset_index()
        for task, curves in by_task.items()
    }


def overlap_shares(results: Sequence[dict]) -> pd.DataFrame:
    """Share (%) of weights whose selected TALL masks are on for exactly 0, 1, ..., T tasks."""
    columns = {}
    for r in results:
        if r["method"].startswith(CONSENSUS_PREFIX) and "overlap" in r:
            counts = r["overlap"]
            columns[r["method"].removeprefix(CONSENSUS_PREFIX)] = [100.0 * c / sum(counts) for c in counts]
    frame = pd.DataFrame(columns, columns=OVERLAP_COLUMNS).round(3)
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
    "projected_overhead_gbit_vit_b32_20tasks",
    "projected_overhead_gbit_vit_l14_20tasks",
)
PAPER_GBIT = {
    "ViT-B-32": 8.2,
    "ViT-L-14": 26.8,
}  # the paper's TALL store, 20 tasks, fp32 vector + 1-bit masks


def compression_summary(compression: dict) -> dict:
    """The ``compression`` entry of summary.json: the kept store's sizes, accuracy, projections."""
    return {k: compression[k] for k in COMPRESSION_KEYS}


def storage(summary_: dict, compression: dict, schemes: dict | None = None) -> pd.DataFrame:
    """The storage-vs-accuracy frontier: bytes on disk for all T tasks' models (MB) against
    average normalized test accuracy, for the fine-tuned checkpoints, every store built (TALL
    and magnitude masks, EMR, TSV-C; each vector dtype) and single models (zero-shot, merged)."""
    one_model = compression["bytes"]["base"]  # a merged model is a checkpoint like the base
    stores = {**compression["stores"], **(schemes or {}).get("stores", {})}
    rows = [
        {
            "storage": "fine-tuned checkpoints",
            "kind": "fine-tuned",
            "megabytes": compression["bytes"]["finetuned"],
            "avg_normalized_test": summary_["finetuned"]["avg_normalized_test"],
        }
    ]
    rows += [
        {
            "storage": f"store: {name}",
            "kind": "store",
            "megabytes": s["bytes"]["total"],
            "avg_normalized_test": s["avg_normalized_test"],
        }
        for name, s in stores.items()
    ]
    rows += [
        {
            "storage": f"one model: {method_label(m)}",
            "kind": "one model",
            "megabytes": one_model,
            "avg_normalized_test": summary_[m]["avg_normalized_test"],
        }
        for m in summary_
        if m == "zeroshot" or m in METHODS
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


def markdown(
    results: Sequence[dict],
    summary_: dict,
    arch: str,
    compression: dict | None = None,
    schemes: dict | None = None,
    figures: Sequence[str] = (),
) -> str:
    """reports/results.md: our numbers beside the paper's ViT-B/32 8-task row."""
    frame = accuracy_frame(results)
    tasks = list(dict.fromkeys(frame.task))
    present = list(dict.fromkeys(r["method"] for r in results))
    sources: list[str] = []

    def cell(absolute: float | None, normalized: float | None) -> str:
        if absolute is None:  # a paper that reports only the normalized number
            return "" if normalized is None else f"({normalized:.1f})"
        return f"{absolute:.1f}" if normalized is None else f"{absolute:.1f} ({normalized:.1f})"

    def published(row: PaperRow | None) -> str:
        if row is None:
            return "-"
        if row.source not in sources:
            sources.append(row.source)
        return f"{cell(row.absolute, row.normalized)} [{sources.index(row.source) + 1}]"

    lines = [
        "# Results",
        "",
        "Written by the `report` stage of `dvc repro` from `metrics/methods/*.json`; do not edit by hand.",
        f"Ours: `{arch}` on the {len(tasks)}-task pocket benchmark ({', '.join(tasks)}).",
        "Test top-1 averaged over tasks, normalized accuracy (merged / fine-tuned, per task) in parentheses.",
        "Published numbers (CLIP ViT-B/32, 8 real tasks) are there for orientation, not as like-for-like targets;",
        "papers fine-tuned their own checkpoints, so compare methods within one source.",
        "",
        f"| method | ours: {arch}, {len(tasks)} tasks | published: ViT-B/32, 8 tasks | selected on validation |",
        "|---|---|---|---|",
    ]
    for method in present:
        label, paper = describe_method(method)
        ours = summary_[method]
        normalized = None if method == "finetuned" else ours["avg_normalized_test"]
        lines.append(
            f"| {label} | {cell(ours['avg_top1_test'], normalized)} | {published(paper)} | {_selection(ours)} |"
        )
    lines += [
        "",
        *(f"[{i}] {source}" + ("  " if i < len(sources) else "") for i, source in enumerate(sources, 1)),
    ]

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
            f"| {method_label(method)} | " + " | ".join(f"{test[(method, t)]:.1f}" for t in tasks) + " |"
        )

    gains = [
        (m, summary_[m]["avg_normalized_test"] - summary_[METHODS[m].recipe.method]["avg_normalized_test"])
        for m in present
        if m in METHODS and METHODS[m].consensus and METHODS[m].recipe.method in summary_
    ]
    if gains:
        lines += [
            "",
            "## Does consensus help?",
            "",
            "Consensus merge minus the single-model merge of the same recipe (normalized test points; "
            "the paper, ViT-B/32 x 8: TA +4.3, TIES -0.4):",
            "",
            "| recipe | consensus - merge |",
            "|---|---|",
            *(f"| {METHODS[m].recipe.label} | {gain:+.1f} |" for m, gain in gains),
        ]

    shares = overlap_shares(results).dropna(axis=1, how="all")
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
        for mtv in shares.columns[1:]:
            col = shares[mtv]
            lines.append(f"| {mtv} | {col[0]:.1f} | {col[1]:.1f} | {col[2:].sum():.1f} |")
    if compression is not None:
        lines += _compression_lines(summary_, compression, schemes or {})
        lines += _frontier_lines(storage(summary_, compression, schemes), "frontier" in figures)
    if "alpha" in figures or "lambda" in figures:
        lines += ["", "## Selection on validation", ""]
        lines += [f"![{name} curves](figures/{name}.png)" for name in ("alpha", "lambda") if name in figures]
    return "\n".join(lines) + "\n"


SCHEMES_PAPER = {  # published per-task schemes, CLIP ViT-B/32, 8 tasks, absolute test top-1
    "emr": "EMR-Merging 88.7 (Huang et al., NeurIPS 2024, on the task-vectors checkpoints)",
    "tsv-c": "TSV-C 92.6 at about 19 % of a model per task (Gargiulo et al., CVPR 2025)",
}


def _frontier_lines(frame: pd.DataFrame, figure: bool) -> list[str]:
    """Which points no other point beats on both storage and accuracy."""
    best = []
    for _, row in frame.sort_values(["megabytes", "avg_normalized_test"], ascending=[True, False]).iterrows():
        if not best or row.avg_normalized_test > best[-1].avg_normalized_test:
            best.append(row)
    lines = [
        "",
        "## Storage against accuracy",
        "",
        "Bytes on disk for all tasks' models against average normalized test accuracy "
        "(`plots/storage.csv`). Points no other point beats on both (the frontier):",
        "",
        "| storage | MB | avg normalized test |",
        "|---|---|---|",
    ]
    lines += [f"| {r.storage} | {r.megabytes:.2f} | {r.avg_normalized_test:.1f} |" for r in best]
    if figure:
        lines += ["", "![storage vs accuracy](figures/frontier.png)"]
    return lines


def _compression_lines(summary_: dict, compression: dict, schemes: dict) -> list[str]:
    n = compression["bytes"]["finetuned"]
    lines = [
        "",
        "## Compressed store",
        "",
        f"Kept: `{compression['store']}`, TALL masks of tau_MTL = {compression['mtv']}, merged vector stored as "
        f"{compression['vector_dtype']} (the smallest store within the tolerance on validation).",
        "Sizes are bytes on disk; normalized accuracy is of the models rebuilt from each store, on test.",
        "",
        "| storage | bytes | % of fine-tuned | vector bits/weight | per-task bits/weight | avg top-1 (normalized) "
        "| B/32 x 20 overhead (Gbit) |",
        "|---|---|---|---|---|---|---|",
        f"| fine-tuned checkpoints | {n:,} | 100.0 | | | {summary_['finetuned']['avg_top1_test']:.1f} (100.0) | |",
    ]
    for name, s in {**compression["stores"], **schemes.get("stores", {})}.items():
        b = s["bits_per_weight"]
        vector = f"{b['vector']:.2f}" if "vector" in b else ""
        per_task = b.get("mask", b.get("factors"))
        overhead = f"{overhead_gbit('ViT-B-32', 20, b['vector'], b['mask']):.2f}" if "mask" in b else ""
        lines.append(
            f"| store: {name} | {s['bytes']['total']:,} | {100 * s['bytes']['total'] / n:.1f} | {vector} | "
            f"{per_task:.3f} | {s['avg_top1_test']:.1f} ({s['avg_normalized_test']:.1f}) | {overhead} |"
        )
    if schemes.get("stores"):
        lines += [
            "",
            "EMR stores one unified vector, each task's mask (coded as TALL masks are) and one rescaler per task; "
            "TSV-C stores each task's rank-r/T factors (per-task bits/weight: its factors). Published, for "
            "orientation: " + "; ".join(SCHEMES_PAPER.values()) + ".",
        ]
    lines += [
        "",
        "Projected with the paper's accounting (the full fp32 zero-shot model, visual and text side, + the merged "
        "vector and 20 masks over the visual encoder at the kept store's measured bits per weight; the overhead "
        "is the vector and masks alone):",
        "",
        "| model, 20 tasks | ours (Gbit) | of which overhead | paper's TALL store (Gbit) | of which overhead |",
        "|---|---|---|---|---|",
    ]
    for arch, label in (("ViT-B-32", "ViT-B/32"), ("ViT-L-14", "ViT-L/14")):
        tag = arch.lower().replace("-", "").replace("vit", "vit_")
        paper_overhead = PAPER_GBIT[arch] - (projected_gbit(arch, 20, 0, 0))
        lines.append(
            f"| {label} | {compression[f'projected_gbit_{tag}_20tasks']:.2f} | "
            f"{compression[f'projected_overhead_gbit_{tag}_20tasks']:.2f} | {PAPER_GBIT[arch]} | {paper_overhead:.1f} |"
        )
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
