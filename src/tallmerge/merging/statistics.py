"""Whole-model statistics of the task vectors, computed exactly in streaming passes over the
checkpoints (:class:`~tallmerge.merging.checkpoints.Checkpoints`):

- the top-k% magnitude threshold of each task vector (TIES trimming, magnitude masks) by a
  two-pass radix selection over the float32 bit patterns: 65,536 counters per task, exact;
- the TIES majority sign (the sign of the summed elected signs), one more pass.

:func:`prepare_recipe` runs the passes a recipe needs and binds their results into the recipe's
per-entry function.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping

import torch

from tallmerge.merging import maths
from tallmerge.merging.checkpoints import Checkpoints
from tallmerge.merging.recipes import MultiTaskVector

_HIGH = 1 << 15  # magnitudes are non-negative: their float32 bits' top half is < 2**15
_LOW = 1 << 16


def magnitude_thresholds(ckpts: Checkpoints, topk: float) -> torch.Tensor:
    """Per task, the m-th largest |tau_t| over the whole model, m = floor(N * topk / 100).

    Exact, in two streaming passes: count each magnitude's upper 16 float32 bits, locate the
    bucket holding the m-th largest, then count the lower 16 bits inside that bucket. A task
    with m = 0 gets an infinite threshold (nothing kept). Returns float32 [T].
    """
    T = len(ckpts)
    m = int(ckpts.numel * topk / 100)
    if m <= 0:
        return torch.full((T,), math.inf)
    m = min(m, ckpts.numel)
    high_counts = torch.zeros(T, _HIGH, dtype=torch.int64)
    for _, _, taus in ckpts.sweep("thresholds 1/2"):
        for t, tau in enumerate(taus):
            high_counts[t] += torch.bincount(_bits(tau) >> 16, minlength=_HIGH)
    bucket, rank = _locate(high_counts, torch.full((T,), m))

    low_counts = torch.zeros(T, _LOW, dtype=torch.int64)
    for _, _, taus in ckpts.sweep("thresholds 2/2"):
        for t, tau in enumerate(taus):
            bits = _bits(tau)
            low_counts[t] += torch.bincount(bits[(bits >> 16) == bucket[t]] & 0xFFFF, minlength=_LOW)
    low, _ = _locate(low_counts, rank)
    return ((bucket << 16) | low).to(torch.int32).view(torch.float32)


def _bits(tau: torch.Tensor) -> torch.Tensor:
    """|tau| as int32 bit patterns, flattened: for non-negative floats, ordered like the values."""
    return tau.abs().view(torch.int32).reshape(-1)


def _locate(counts: torch.Tensor, rank: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row of ``counts`` (ascending value order), the bin holding the ``rank``-th
    largest value, and that value's rank within the bin."""
    above = counts.flip(1).cumsum(1)  # above[:, j] = count in the top j+1 bins
    j = torch.searchsorted(above, rank.view(-1, 1)).view(-1)
    before = torch.where(j > 0, above.gather(1, (j - 1).clamp(min=0).view(-1, 1)).view(-1), 0)
    return counts.shape[1] - 1 - j, rank - before


def majority_sign(ckpts: Checkpoints, thresholds: torch.Tensor) -> float:
    """TIES's tie-breaker: the sign of the sum of the per-weight sign votes over the model."""
    total = 0
    for _, _, taus in ckpts.sweep("majority sign"):
        total += int(maths.sign_votes(taus, thresholds).sum(dtype=torch.int64))
    return float((total > 0) - (total < 0))


VectorFn = Callable[[torch.Tensor], torch.Tensor]  # taus [T, *shape] -> vector [*shape]


def prepare_recipe(recipe: MultiTaskVector, ckpts: Checkpoints) -> VectorFn:
    """The per-entry function of ``recipe``, taus [T, *shape] -> vector [*shape], as its
    registry entry declares it (:data:`~tallmerge.merging.recipes.RECIPES`): a function of
    :mod:`~tallmerge.merging.maths` bound to the options, or a preparer here whose whole-model
    passes run once per open ``ckpts`` (:meth:`Checkpoints.cached`); run on the checkpoints'
    device (:meth:`Checkpoints.on_device`)."""
    module, name = recipe.recipe.vector.split(".")
    options = recipe.options
    if module == "maths":
        function = getattr(maths, name)
        return ckpts.on_device(functools.partial(function, **options) if options else function)
    preparer = globals()[name]
    return ckpts.on_device(ckpts.cached(recipe, lambda: preparer(ckpts, **options)))


def entry_vector(
    recipe: MultiTaskVector, ckpts: Checkpoints, formed: Mapping[str, torch.Tensor] | None = None
) -> Callable[[str, torch.Tensor], torch.Tensor]:
    """``(key, taus) -> recipe's vector of that entry``: taken from ``formed`` (entry -> tensor,
    already formed by ``recipe``, for a caller that uses one vector several times), or computed
    by :func:`prepare_recipe`."""
    if formed is not None:
        return lambda key, taus: formed[key]
    vector = prepare_recipe(recipe, ckpts)
    return lambda key, taus: vector(taus)


def ties_vector(ckpts: Checkpoints, topk: float, agg: str) -> VectorFn:
    """TIES: each task vector trimmed to its top-k% magnitudes over the whole model, the
    majority sign as the tie-breaker (two and one passes), then the per-entry disjoint merge."""
    thresholds = magnitude_thresholds(ckpts, topk)
    majority = majority_sign(ckpts, thresholds)
    return lambda taus: maths.ties(taus, thresholds, majority, agg)
