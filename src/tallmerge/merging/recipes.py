"""Recipes: how the multi-task vector tau_MTL is formed from the task vectors, and the precisions
a stored tau_MTL may take. Plain, validated settings (no torch): :mod:`tallmerge.params` reads
them from params.yaml, and :func:`tallmerge.merging.statistics.prepare_recipe` turns one into
the per-entry function that computes tau_MTL over a set of checkpoints."""

from __future__ import annotations

from dataclasses import dataclass

from tallmerge.errors import TallmergeError

MTVS = ("ta", "ties")
AGGREGATIONS = ("mean", "sum")  # TIES's disjoint aggregation of the agreeing entries
STORED_VECTOR_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}  # name -> torch dtype


@dataclass(frozen=True)
class MultiTaskVector:
    """How tau_MTL is formed: ``ta`` (sum of task vectors) or ``ties`` (with ``topk``, ``agg``)."""

    kind: str = "ta"
    topk: float = 20.0
    agg: str = "sum"

    def __post_init__(self) -> None:
        if self.kind not in MTVS:
            raise TallmergeError(f"unknown multi-task vector {self.kind!r} (choose from {', '.join(MTVS)})")
        if self.kind == "ties":
            check_topk(self.topk)
            if self.agg not in AGGREGATIONS:
                raise TallmergeError(f"unknown TIES aggregation {self.agg!r} (choose from mean, sum)")

    def __str__(self) -> str:
        return (
            "ta (sum of task vectors)"
            if self.kind == "ta"
            else f"ties (top-{self.topk:g}%, disjoint {self.agg})"
        )


def check_topk(topk: float) -> None:
    if not (isinstance(topk, (int, float)) and 0 <= topk <= 100):
        raise TallmergeError(f"top-k must be a percentage in [0, 100], got {topk!r}")
