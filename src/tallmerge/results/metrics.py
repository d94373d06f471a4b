"""The metrics contract: ``accuracy.csv`` (long: method, task, split, top1) and its summary.

Normalised accuracy of a method on a task is its top-1 divided by the fine-tuned model's top-1
on that task (in percent), as in the paper; averages are plain means over tasks.
"""

from __future__ import annotations

import pandas as pd


def summarize(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    """``{method: {avg_top1_val, avg_top1_test, avg_normalized_val, avg_normalized_test}}``."""
    finetuned = frame[frame.method == "finetuned"].set_index(["task", "split"]).top1
    summary: dict[str, dict[str, float]] = {}
    for method, rows in frame.groupby("method", sort=False):
        entry = {}
        for split, part in rows.groupby("split", sort=False):
            part = part.set_index("task").top1
            reference = finetuned.xs(split, level="split").reindex(part.index)
            entry[f"avg_top1_{split}"] = round(float(part.mean()), 2)
            entry[f"avg_normalized_{split}"] = round(float((100.0 * part / reference).mean()), 2)
        summary[str(method)] = dict(sorted(entry.items()))
    return summary
