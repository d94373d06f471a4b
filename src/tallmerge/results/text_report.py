"""The text benchmark's results, per suite: the metrics contract (``metrics/text/summary.json``,
``metrics/text/accuracy.csv``), plot data, and the NLP section of reports/results.md beside the
paper's NLP table (T5-large-LM-adapt; accuracy, normalized in parentheses)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from tallmerge.results.report import accuracy_frame, method_label, summary

SUITE_TITLES = {"nlp7": "7 NLP tasks", "qa8": "8 QA tasks", "all11": "all 11 tasks"}

PAPER = {  # method -> per suite (nlp7, qa8, all11): (accuracy, normalized or None)
    "zeroshot": ((44.9, None), (33.1, None), (36.9, None)),
    "average": ((60.5, 72.7), (56.4, 69.9), (55.2, 71.6)),
    "task-arithmetic": ((71.9, 85.3), (63.8, 79.6), (63.6, 81.8)),
    "ties": ((69.6, 83.5), (62.8, 78.9), (64.0, 82.6)),
    "consensus-ta": ((73.5, 87.7), (68.6, 85.4), (67.5, 86.8)),
    "consensus-ties": ((71.0, 84.2), (69.1, 85.8), (66.8, 85.7)),
    "finetuned": ((85.9, None), (80.7, None), (78.7, None)),
    "magnitude-pruning": ((81.6, 93.5), (70.8, 85.7), (65.8, 81.4)),
    "magnitude-masking": ((78.9, 90.7), (72.5, 88.8), (69.8, 87.2)),
    "tall-ta": ((86.8, 102.2), (79.6, 98.7), (76.5, 96.2)),
    "tall-ties": ((83.4, 95.4), (79.7, 98.8), (77.4, 97.5)),
}
PAPER_GBIT = {  # storage of all the suite's models as the paper counts it (fp32)
    "zeroshot": (25.1, 25.1, 25.1),
    "finetuned": (169.1, 193.1, 265.1),
    "tall": (54.3, 55.1, 57.3),
}
SUITE_ORDER = ("nlp7", "qa8", "all11")


def on_tasks(result: dict, tasks: Sequence[str]) -> dict:
    """A result of every text task (zero-shot, fine-tuned) restricted to one suite's tasks."""
    return {**result, "accuracy": [r for r in result["accuracy"] if r["task"] in tasks]}


def text_summary(results: Mapping[str, list[dict]], compression: Mapping[str, dict]) -> dict:
    """``{suite: {method: {avg_top1_*, avg_normalized_*, selection}, "compression": {...}}}``."""
    out = {}
    for suite, rows in results.items():
        kept = compression[suite]
        out[suite] = {
            **summary(rows),
            "compression": {
                k: v for k, v in kept.items() if k not in ("accuracy", "stores", "store", "magnitude_topk")
            },
        }
    return out


def text_accuracy(results: Mapping[str, list[dict]]) -> pd.DataFrame:
    frames = [accuracy_frame(rows).assign(suite=suite) for suite, rows in results.items()]
    frame = pd.concat(frames, ignore_index=True)
    return frame[["suite", "method", "task", "split", "top1"]]


def methods_frame(summary_: Mapping[str, dict]) -> pd.DataFrame:
    """Average normalized test accuracy per suite and method (one row each), for the plots."""
    rows = [
        {"suite": suite, "method": m, "avg_normalized_test": s["avg_normalized_test"]}
        for suite, entries in summary_.items()
        for m, s in entries.items()
        if m not in ("compression", "finetuned")
    ]
    return pd.DataFrame(rows)


def _paper(method: str, suite: str) -> str:
    if method not in PAPER or suite not in SUITE_ORDER:
        return ""
    acc, norm = PAPER[method][SUITE_ORDER.index(suite)]
    return f"{acc}" + (f" ({norm})" if norm is not None else "")


def markdown_section(
    summary_: Mapping[str, dict],
    suites: Mapping[str, Sequence[str]],
    arch: str,
    compression: Mapping[str, dict],
) -> str:
    """The NLP half of reports/results.md: one table per suite, ours beside the paper's."""
    lines = [
        "## The NLP half: T5 fine-tuned per text task, scored by rank classification",
        "",
        f"Model `{arch}`; each answer choice is scored by its mean token log-likelihood as the target "
        "and the best is the prediction. Test accuracy (%) averaged over the suite's tasks, normalized "
        "(merged / fine-tuned, per task) in parentheses; alpha and lambda chosen on validation. The paper's "
        "column is T5-large-LM-adapt on the real tasks.",
        "",
    ]
    for suite, tasks in suites.items():
        entries = summary_[suite]
        store = compression[suite]
        lines += [
            f"### {SUITE_TITLES.get(suite, suite)} ({suite}): {', '.join(tasks)}",
            "",
            "| method | ours: accuracy (normalized) | paper | selected |",
            "|---|---|---|---|",
        ]
        for method, s in entries.items():
            if method == "compression":
                continue
            ours = f"{s['avg_top1_test']:.1f}"
            if method not in ("zeroshot", "finetuned"):
                ours += f" ({s['avg_normalized_test']:.1f})"
            chosen = ", ".join(
                f"{k} {v}" for k, v in s.items() if k in ("alpha", "k", "topk") and not isinstance(v, dict)
            )
            if isinstance(s.get("lambda"), dict):
                chosen = "lambda " + ", ".join(f"{v}" for v in s["lambda"].values())
            lines.append(f"| {method_label(method)} | {ours} | {_paper(method, suite)} | {chosen} |")
        lines.append(
            f"| Compressed store ({store['mtv']} masks, {store['vector_dtype']} vector) | "
            f"{store['avg_top1_test']:.1f} ({store['avg_normalized_test']:.1f}) | "
            f"{PAPER['tall-' + store['mtv']][SUITE_ORDER.index(suite)][0] if 'tall-' + store['mtv'] in PAPER and suite in SUITE_ORDER else ''} | "
            f"{store['bytes']['total'] / 1e6:.2f} MB of {store['bytes']['finetuned'] / 1e6:.2f} MB |"
        )
        lines.append("")
    return "\n".join(lines)
