"""The merge methods' math, one tensor at a time: pure functions, no files, no global state.

Every function takes the task vectors of ONE state-dict entry stacked as ``taus`` ([T, *shape],
float32, tau_t = theta_t - theta_0) and returns a vector of that entry's shape (or masks). What a
method needs from the whole model (the TIES trim thresholds, the majority sign) is computed by
the engine in earlier passes and handed in as plain numbers.

The formulas (DESIGN.md section 1, after Wang et al., ICML 2024, and Yadav et al., 2023):

- task arithmetic: sum_t tau_t (the engine scales by alpha; weight averaging uses alpha = 1/T);
- TIES: trim each tau_t to |tau_t| >= its threshold, elect a sign per weight, then take the
  disjoint mean (or sum) of the trimmed entries that agree with it;
- TALL mask: m_t = |tau_t| > lambda * |tau_MTL - tau_t|;
- consensus: tau_MTL where at least k tasks' masks are on;
- magnitude mask: |tau_t| >= its threshold.
"""

from __future__ import annotations

import torch

AGGREGATIONS = ("mean", "sum")


def _per_task(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a [T] vector to broadcast against a [T, *shape] stack."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def task_sum(taus: torch.Tensor) -> torch.Tensor:
    return taus.sum(dim=0)


def trim(taus: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Keep the entries with |tau_t| >= threshold_t (an infinite threshold keeps nothing)."""
    return torch.where(taus.abs() >= _per_task(thresholds, taus), taus, torch.zeros((), dtype=taus.dtype))


def sign_votes(trimmed: torch.Tensor) -> torch.Tensor:
    """The per-weight sign of the trimmed sum (-1, 0, 1): TIES's vote before tie-breaking."""
    return torch.sign(trimmed.sum(dim=0))


def elect_sign(trimmed: torch.Tensor, majority: float) -> torch.Tensor:
    """Elected sign per weight; weights whose vote is 0 take the model-wide ``majority`` sign."""
    votes = sign_votes(trimmed)
    return torch.where(votes == 0, torch.tensor(majority, dtype=votes.dtype), votes)


def disjoint_merge(trimmed: torch.Tensor, sign: torch.Tensor, agg: str) -> torch.Tensor:
    """Sum or mean of the trimmed entries whose sign agrees with ``sign`` (zeros never agree)."""
    agree = torch.where(sign > 0, trimmed > 0, trimmed < 0)
    total = (trimmed * agree).sum(dim=0)
    if agg == "sum":
        return total
    if agg == "mean":
        return total / agree.sum(dim=0).clamp(min=1)
    raise ValueError(f"unknown TIES aggregation {agg!r}")


def ties(taus: torch.Tensor, thresholds: torch.Tensor, majority: float, agg: str) -> torch.Tensor:
    trimmed = trim(taus, thresholds)
    return disjoint_merge(trimmed, elect_sign(trimmed, majority), agg)


def tall_masks(taus: torch.Tensor, mtv: torch.Tensor, lam: float) -> torch.Tensor:
    """TALL masks of every task at one lambda: bool [T, *shape]."""
    return taus.abs() > lam * (mtv.unsqueeze(0) - taus).abs()


def consensus(mtv: torch.Tensor, masks: torch.Tensor, k: int) -> torch.Tensor:
    """Keep tau_MTL only where at least ``k`` of the task masks ([T, *shape]) are on."""
    return mtv * (masks.sum(dim=0, dtype=torch.int32) >= k)


def magnitude_masks(taus: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Each task's top-k% mask: |tau_t| >= threshold_t, bool [T, *shape]."""
    return taus.abs() >= _per_task(thresholds, taus)
