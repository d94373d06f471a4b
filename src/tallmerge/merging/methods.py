"""Merge methods at work: a method of the registry (:mod:`tallmerge.merging.recipes`) with its
options resolved (:func:`plan`), the vectors it yields entry by entry, and merging files.

Single-model methods yield one vector per entry, applied as theta_0 + alpha * vector (weight
averaging: alpha = 1/T); consensus methods keep their recipe's vector where at least k tasks'
TALL masks are on. Per-task methods (TALL reconstruction, magnitude masking) yield a
[T, *shape] stack: row t is task t's vector, applied without alpha.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from tallmerge.errors import TallmergeError
from tallmerge.merging import maths
from tallmerge.merging.checkpoints import BLOCK_BYTES, Checkpoints
from tallmerge.merging.executor import write_model
from tallmerge.merging.masks import MaskFile, check_lambdas
from tallmerge.merging.recipes import OPTIONS, Method, MultiTaskVector, check_options, method_named
from tallmerge.merging.statistics import magnitude_thresholds, prepare_recipe

VectorStream = Iterator[tuple[str, torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class MergePlan:
    """A method with its options resolved and checked (see :func:`plan`)."""

    method: Method
    alpha: float | None  # None: 1/T (average)
    mtv: MultiTaskVector
    lam: float | None = None
    masks: str | None = None
    k: int | None = None

    def alpha_for(self, tasks: int) -> float:
        return 1.0 / tasks if self.alpha is None else self.alpha

    def describe(self, tasks: int) -> dict:
        """What the merged model's metadata records."""
        out: dict[str, Any] = {"method": self.method.name, "alpha": self.alpha_for(tasks)}
        for name, value in self.mtv.options.items():
            out[OPTIONS[name].cli[2:].replace("-", "_")] = value
        if self.method.consensus:
            out.update(k=self.k, lam=self.lam, masks=self.masks)
        return {k: v for k, v in out.items() if v is not None}


def plan(
    method: str,
    *,
    lam: float | None = None,
    masks: str | os.PathLike | None = None,
    mtv: str | None = None,
    **options: Any,
) -> MergePlan:
    """Resolve and check a method's options (``alpha``, its recipe's, ``k`` for consensus; None
    = not given: the registry's default). An option the method does not take is an error.
    Consensus needs ``lam`` (masks built on the fly) or ``masks`` (a mask file)."""
    entry = method_named(method)
    given = {name: value for name, value in options.items() if value is not None}
    for name in given:
        if name not in OPTIONS:
            raise TypeError(f"plan() got an unexpected option {name!r}")
    checked = check_options(entry.options, given, f"method '{method}'", lambda name: OPTIONS[name].cli)
    if entry.consensus:
        if mtv is not None and mtv != entry.recipe.name:
            raise TallmergeError(
                f"--mtv {mtv} contradicts method '{method}' (which uses --mtv {entry.recipe.name})"
            )
        if (lam is None) == (masks is None):
            raise TallmergeError(f"method '{method}' needs exactly one of --lambda L or --masks MASKS")
        if lam is not None:
            lam = check_lambdas([lam])[0]
    else:
        for flag, value in (("--lambda", lam), ("--masks", masks), ("--mtv", mtv)):
            if value is not None:
                raise TallmergeError(f"{flag} does not apply to method '{method}'")
    values = {**entry.defaults(), **checked}
    recipe_options = {name: values[name] for name in entry.recipe.options}
    return MergePlan(
        entry,
        values.get("alpha"),
        MultiTaskVector(entry.recipe.name, **recipe_options),
        lam,
        None if masks is None else str(masks),
        values.get("k"),
    )


def method_vectors(merge_plan: MergePlan, ckpts: Checkpoints) -> VectorStream:
    """``(key, base, vector)`` for every float entry of the merged model.

    With an element-wise recipe (task arithmetic, TIES) on the CPU, a large entry is computed in
    blocks of rows (:meth:`Checkpoints.row_sweep`): every weight goes through the same
    operations as in one piece, so the vector is the same bit for bit, and memory holds the task
    vectors of one block, not T copies of the largest entry. (On a GPU entries stay whole: how
    its sums are ordered depends on the tensor's size.)"""
    vector = prepare_recipe(merge_plan.mtv, ckpts)
    consensus = merge_plan.method.consensus
    if consensus and len(ckpts) < 2:
        raise TallmergeError(f"consensus merging needs at least 2 tasks, got {len(ckpts)}")
    masks = MaskFile(merge_plan.masks) if consensus and merge_plan.masks is not None else None
    block_bytes = BLOCK_BYTES if merge_plan.mtv.recipe.elementwise and ckpts.device.type == "cpu" else None
    try:
        if masks is not None:
            masks.check_matches(ckpts, merge_plan.mtv)
            selection = masks.selection()
        for key, base, blocks in ckpts.row_sweep(merge_plan.method.name, block_bytes):
            stacked = None if masks is None else masks.stacked(key, ckpts.names, selection)
            out = None
            for rows, taus in blocks:
                merged = _vector(merge_plan, vector, taus, None if stacked is None else stacked[:, rows])
                if rows is ...:  # the whole entry in one block
                    out = merged
                else:
                    if out is None:
                        out = torch.empty(base.shape, dtype=merged.dtype)
                    out[rows] = merged
            del taus, merged, stacked  # not held while the entry is written
            yield key, base, out
    finally:
        if masks is not None:
            masks.close()


def _vector(
    merge_plan: MergePlan, vector: Callable, taus: torch.Tensor, masks: torch.Tensor | None
) -> torch.Tensor:
    """The method's vector of one block: the recipe's, or for consensus tau_MTL where at least k
    tasks' masks are on (``masks`` from a mask file, or TALL masks at lambda if None)."""
    mtv = vector(taus)
    if not merge_plan.method.consensus:
        return mtv
    if masks is None:
        masks = maths.tall_masks(taus, mtv, merge_plan.lam)
    return maths.consensus(mtv, masks, merge_plan.k)


def merge_files(
    method: str,
    base: str | os.PathLike,
    finetuned: Mapping[str, str | os.PathLike],
    out: str | os.PathLike,
    device: str | None = None,
    **options,
) -> dict:
    """Merge checkpoint files into ``out`` (a full model, the base's keys and dtypes), streaming,
    with the method's maths on ``device`` (default the CPU).

    Returns the description recorded in the output's metadata."""
    merge_plan = plan(method, **options)
    with Checkpoints(base, finetuned, device) as ckpts:
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
    OPTIONS["topk"].validate(topk, "top-k")
    thresholds = magnitude_thresholds(ckpts, topk)
    for key, base, taus in ckpts.sweep("magnitude"):
        yield key, base, maths.task_sum(taus) * maths.magnitude_masks(taus, thresholds)


def pruned_vectors(ckpts: Checkpoints, topk: float = 10.0) -> VectorStream:
    """Row t: tau_t kept only at its own top-k% magnitudes (magnitude pruning, one model per task)."""
    OPTIONS["topk"].validate(topk, "top-k")
    thresholds = magnitude_thresholds(ckpts, topk)
    for key, base, taus in ckpts.sweep("magnitude"):
        yield key, base, taus * maths.magnitude_masks(taus, thresholds)
