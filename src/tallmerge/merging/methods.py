"""The named merge methods: which options each takes, which passes it needs, what it yields.

Single-model methods yield one vector per entry, applied as theta_0 + alpha * vector:

=================  ===========================================  ===============
method             vector                                       alpha
=================  ===========================================  ===============
average            sum_t tau_t                                  1/T (fixed)
task-arithmetic    sum_t tau_t                                  --alpha (1.0)
ties               TIES(top-k, disjoint mean or sum)            --alpha (1.0)
consensus-ta       sum_t tau_t where >= k TALL masks are on     --alpha (1.0)
consensus-ties     TIES(top-k, sum) where >= k masks are on     --alpha (1.0)
=================  ===========================================  ===============

Per-task methods (TALL reconstruction, magnitude masking) yield a [T, *shape] stack: row t is
task t's vector, applied without alpha.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch

from tallmerge.errors import TallmergeError
from tallmerge.merging import maths
from tallmerge.merging.checkpoints import Checkpoints
from tallmerge.merging.executor import write_model
from tallmerge.merging.masks import MaskFile, check_lambdas
from tallmerge.merging.recipes import MultiTaskVector, check_topk
from tallmerge.merging.statistics import magnitude_thresholds, prepare_recipe

METHODS = ("average", "task-arithmetic", "ties", "consensus-ta", "consensus-ties")
CONSENSUS = {"consensus-ta": "ta", "consensus-ties": "ties"}
VectorStream = Iterator[tuple[str, torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class MergePlan:
    """A method with its options resolved and checked (see :func:`plan`)."""

    method: str
    alpha: float | None  # None: 1/T (average)
    mtv: MultiTaskVector
    lam: float | None = None
    masks: str | None = None
    k: int | None = None

    def alpha_for(self, tasks: int) -> float:
        return 1.0 / tasks if self.alpha is None else self.alpha

    def describe(self, tasks: int) -> dict:
        out = {"method": self.method, "alpha": self.alpha_for(tasks)}
        if self.mtv.kind == "ties":  # ties and consensus-ties
            out["topk"], out["ties_agg"] = self.mtv.topk, self.mtv.agg
        if self.method in CONSENSUS:
            out.update(k=self.k, lam=self.lam, masks=self.masks)
        return {k: v for k, v in out.items() if v is not None}


def plan(
    method: str,
    *,
    alpha: float | None = None,
    topk: float | None = None,
    ties_agg: str | None = None,
    lam: float | None = None,
    masks: str | os.PathLike | None = None,
    k: int | None = None,
    mtv: str | None = None,
) -> MergePlan:
    """Resolve a method's defaults; an option the method does not take is an error."""
    if method not in METHODS:
        raise TallmergeError(f"unknown merge method {method!r} (choose from {', '.join(METHODS)})")
    consensus = method in CONSENSUS

    def refuse(flag: str, value) -> None:
        if value is not None:
            raise TallmergeError(f"{flag} does not apply to method '{method}'")

    if method == "average":
        refuse("--alpha (average always uses 1/T)", alpha)
    elif alpha is not None and not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha >= 0):
        raise TallmergeError(f"alpha must be a non-negative number, got {alpha!r}")
    if consensus:
        implied = CONSENSUS[method]
        if mtv is not None and mtv != implied:
            raise TallmergeError(f"--mtv {mtv} contradicts method '{method}' (which uses --mtv {implied})")
        mtv = implied
        if (lam is None) == (masks is None):
            raise TallmergeError(f"method '{method}' needs exactly one of --lambda L or --masks MASKS")
        if lam is not None:
            lam = check_lambdas([lam])[0]
        k = 2 if k is None else k
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise TallmergeError(f"k must be a non-negative integer, got {k!r}")
    else:
        refuse("--lambda", lam)
        refuse("--masks", masks)
        refuse("--k", k)
        refuse("--mtv", mtv)
        mtv = "ties" if method == "ties" else "ta"
    if mtv == "ties":
        vector = MultiTaskVector(
            "ties", 20.0 if topk is None else topk, ties_agg or ("mean" if method == "ties" else "sum")
        )
    else:
        refuse("--topk", topk)
        refuse("--ties-agg", ties_agg)
        vector = MultiTaskVector("ta")
    default_alpha = None if method == "average" else 1.0
    return MergePlan(
        method,
        default_alpha if alpha is None else float(alpha),
        vector,
        lam,
        None if masks is None else str(masks),
        k,
    )


def method_vectors(merge_plan: MergePlan, ckpts: Checkpoints) -> VectorStream:
    """``(key, base, vector)`` for every float entry of the merged model."""
    vector = prepare_recipe(merge_plan.mtv, ckpts)
    if merge_plan.method not in CONSENSUS:
        for key, base, taus in ckpts.sweep(merge_plan.method):
            yield key, base, vector(taus)
        return
    if len(ckpts) < 2:
        raise TallmergeError(f"consensus merging needs at least 2 tasks, got {len(ckpts)}")
    masks = MaskFile(merge_plan.masks) if merge_plan.masks is not None else None
    try:
        if masks is not None:
            masks.check_matches(ckpts, merge_plan.mtv)
            selection = masks.selection()
        for key, base, taus in ckpts.sweep(merge_plan.method):
            mtv = vector(taus)
            if masks is None:
                task_masks = maths.tall_masks(taus, mtv, merge_plan.lam)
            else:
                task_masks = masks.stacked(key, ckpts.names, selection)
            yield key, base, maths.consensus(mtv, task_masks, merge_plan.k)
    finally:
        if masks is not None:
            masks.close()


def merge_files(
    method: str,
    base: str | os.PathLike,
    finetuned: Mapping[str, str | os.PathLike],
    out: str | os.PathLike,
    **options,
) -> dict:
    """Merge checkpoint files into ``out`` (a full model, the base's keys and dtypes), streaming.

    Returns the description recorded in the output's metadata."""
    merge_plan = plan(method, **options)
    with Checkpoints(base, finetuned) as ckpts:
        described = {**merge_plan.describe(len(ckpts)), "tasks": ckpts.names}
        write_model(
            out, ckpts, method_vectors(merge_plan, ckpts), merge_plan.alpha_for(len(ckpts)), described
        )
    return described


def mtv_vectors(ckpts: Checkpoints, mtv: MultiTaskVector) -> VectorStream:
    """tau_MTL itself, entry by entry."""
    vector = prepare_recipe(mtv, ckpts)
    for key, base, taus in ckpts.sweep(f"tau_MTL ({mtv.kind})"):
        yield key, base, vector(taus)


# -- per-task models ---------------------------------------------------------------------------
def tall_vectors(ckpts: Checkpoints, masks: MaskFile, selection: Mapping[str, int]) -> VectorStream:
    """Row t: m_t * tau_MTL, with tau_MTL formed as the masks were (TALL reconstruction)."""
    masks.check_matches(ckpts)
    vector = prepare_recipe(masks.mtv, ckpts)
    for key, base, taus in ckpts.sweep("tall"):
        yield key, base, vector(taus) * masks.stacked(key, ckpts.names, selection)


def magnitude_vectors(ckpts: Checkpoints, topk: float = 10.0) -> VectorStream:
    """Row t: the top-k% magnitudes of tau_t (over the whole model) as a mask on sum_t tau_t."""
    check_topk(topk)
    thresholds = magnitude_thresholds(ckpts, topk)
    for key, base, taus in ckpts.sweep("magnitude"):
        yield key, base, maths.task_sum(taus) * maths.magnitude_masks(taus, thresholds)
