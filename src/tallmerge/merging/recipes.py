"""Recipes: how the multi-task vector tau_MTL is formed from the task vectors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from tallmerge.errors import TallmergeError
from tallmerge.merging import maths, statistics
from tallmerge.merging.checkpoints import Checkpoints

MTVS = ("ta", "ties")

VectorFn = Callable[[torch.Tensor], torch.Tensor]  # taus [T, *shape] -> vector [*shape]


@dataclass(frozen=True)
class MTV:
    """How tau_MTL is formed: ``ta`` (sum of task vectors) or ``ties`` (with ``topk``, ``agg``)."""

    kind: str = "ta"
    topk: float = 20.0
    agg: str = "sum"

    def __post_init__(self) -> None:
        if self.kind not in MTVS:
            raise TallmergeError(f"unknown multi-task vector {self.kind!r} (choose from {', '.join(MTVS)})")
        if self.kind == "ties":
            check_topk(self.topk)
            if self.agg not in maths.AGGREGATIONS:
                raise TallmergeError(f"unknown TIES aggregation {self.agg!r} (choose from mean, sum)")

    def __str__(self) -> str:
        return "ta (sum of task vectors)" if self.kind == "ta" else f"ties (top-{self.topk:g}%, disjoint {self.agg})"

    def prepare(self, ckpts: Checkpoints) -> VectorFn:
        """Run the passes this vector needs (once per open ``ckpts``); return its per-entry function."""
        if self.kind == "ta":
            return maths.task_sum
        if self not in ckpts._prepared:
            thresholds = statistics.magnitude_thresholds(ckpts, self.topk)
            majority = statistics.majority_sign(ckpts, thresholds)
            ckpts._prepared[self] = lambda taus: maths.ties(taus, thresholds, majority, self.agg)
        return ckpts._prepared[self]


def check_topk(topk: float) -> None:
    if not (isinstance(topk, (int, float)) and 0 <= topk <= 100):
        raise TallmergeError(f"top-k must be a percentage in [0, 100], got {topk!r}")
