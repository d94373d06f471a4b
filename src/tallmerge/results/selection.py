"""The paper's selection rules, for any benchmark (vision or text) that scores weights per task:

- alpha is chosen from a grid by the **average normalized validation accuracy** over tasks
  (normalized = merged top-1 / fine-tuned top-1 of that task);
- lambda is chosen **per task** by that task's validation top-1;
- ties go to the first grid value; test numbers are reported at the selection.

A benchmark has ``tasks`` and ``top1(state, task, split)``; :func:`rows` evaluates every task on
both splits. A method's result is a small JSON document (``metrics/methods/<method>.json``)::

    {"method": ..., "selected": {"alpha": a} | {"lambda": {task: l}} | {},
     "accuracy": [{"task", "split", "top1"}, ...], "search": [...], ...}
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from tallmerge.errors import TallmergeError
from tallmerge.formats.files import read_json

if TYPE_CHECKING:
    import torch

SPLITS = ("val", "test")
State = Mapping[str, "torch.Tensor"]


class Scored:
    """A benchmark: its ``tasks`` and ``top1(state, task, split)``, a task's accuracy in percent
    with the weights ``state`` (the vision and the text benchmark both derive from this)."""

    tasks: list[str]

    def top1(self, state: State, task: str, split: str) -> float:
        raise NotImplementedError

    def rows(
        self, state_of: Callable[[str], State], known: Mapping[tuple[str, str], float] | None = None
    ) -> list[dict]:
        """Accuracy rows (val and test) for every task, each evaluated with ``state_of(task)``'s
        weights; ``known`` top-1 values, keyed ``(task, split)``, are reused, not recomputed."""
        known = known or {}
        rows = []
        for task in self.tasks:
            state = None
            for split in SPLITS:
                if (task, split) not in known:
                    state = state_of(task) if state is None else state
                top1 = known.get((task, split))
                top1 = self.top1(state, task, split) if top1 is None else top1
                rows.append({"task": task, "split": split, "top1": round(top1, 2)})
        return rows


def reference_top1(path: str | os.PathLike, split: str = "val") -> dict[str, float]:
    """Per-task top-1 of the fine-tuned models (the normalization reference) from a result file."""
    result = read_json(path)
    try:
        return {r["task"]: r["top1"] for r in result["accuracy"] if r["split"] == split}
    except (KeyError, TypeError):
        raise TallmergeError(f"{path}: not a method result file") from None


def avg_normalized(top1: Mapping[str, float], reference: Mapping[str, float]) -> float:
    missing = [t for t in top1 if t not in reference]
    if missing:
        raise TallmergeError(f"no fine-tuned accuracy for task '{missing[0]}' to normalize with")
    zero = [t for t in top1 if reference[t] <= 0]
    if zero:
        raise TallmergeError(
            f"task '{zero[0]}': its fine-tuned model scores 0 % on validation, so normalized accuracy is "
            "undefined (is its fine-tuned checkpoint or dataset right?)"
        )
    return sum(100.0 * top1[t] / reference[t] for t in top1) / len(top1)


def search_alpha(
    bench: Scored,
    state_at: Callable[[float], State],
    grid: Sequence[float],
    reference: Mapping[str, float],
) -> tuple[float, list[dict], dict[tuple[str, str], float]]:
    """The grid's alpha with the best average normalized validation accuracy, the curve, and
    the validation top-1 at that alpha (keyed ``(task, "val")``, for :meth:`Benchmark.rows`)."""
    curve, scores = [], []
    for alpha in grid:
        state = state_at(alpha)
        scores.append({(t, "val"): bench.top1(state, t, "val") for t in bench.tasks})
        top1 = {t: v for (t, _), v in scores[-1].items()}
        curve.append(
            {
                "alpha": alpha,
                "avg_normalized_val": round(avg_normalized(top1, reference), 2),
                "avg_top1_val": round(sum(top1.values()) / len(top1), 2),
            }
        )
    best = max(range(len(curve)), key=lambda i: (curve[i]["avg_normalized_val"], -i))
    return grid[best], curve, scores[best]


def search_lambda(
    bench: Scored, state_at: Callable[[str, int], State], lambdas: Mapping[str, Sequence[float]]
) -> tuple[dict[str, float], list[dict], dict[tuple[str, str], float]]:
    """Per task, the lambda whose model has the best validation top-1 on that task; the
    curve; and those best validation top-1 values (keyed ``(task, "val")``)."""
    chosen, curve, known = {}, [], {}
    for task in bench.tasks:
        scores = [bench.top1(state_at(task, i), task, "val") for i in range(len(lambdas[task]))]
        best = max(range(len(scores)), key=lambda i: (scores[i], -i))
        chosen[task], known[(task, "val")] = lambdas[task][best], scores[best]
        curve += [
            {"task": task, "lambda": lam, "top1_val": round(s, 2)} for lam, s in zip(lambdas[task], scores)
        ]
    return chosen, curve, known


def method_result(method: str, accuracy_rows: list[dict], selected: Mapping | None = None, **extra) -> dict:
    return {"method": method, "selected": dict(selected or {}), "accuracy": accuracy_rows, **extra}


def store_result(store, bench: Scored, reference: Mapping[str, Mapping[str, float]]) -> dict:
    """Rebuild every task from a compressed store (any scheme: its ``state(task)`` and
    ``sizes()``) and evaluate it: accuracy rows, per-split averages (normalized by
    ``reference[split]``, the fine-tuned top-1 per task) and the store's sizes."""
    rows = bench.rows(store.state)
    out = {"accuracy": rows, **store.sizes()}
    for split in SPLITS:
        top1 = {r["task"]: r["top1"] for r in rows if r["split"] == split}
        out[f"avg_top1_{split}"] = round(sum(top1.values()) / len(top1), 2)
        out[f"avg_normalized_{split}"] = round(avg_normalized(top1, reference[split]), 2)
    return out
