"""The merge methods' math, one tensor at a time: pure functions, no files, no global state.

Every function takes the task vectors of ONE state-dict entry stacked as ``taus`` ([T, *shape],
float32, tau_t = theta_t - theta_0) and returns a vector of that entry's shape (or masks). What a
method needs from the whole model (the TIES trim thresholds, the majority sign) is computed by
the engine in earlier passes and handed in as plain numbers.

The formulas (after Wang et al., ICML 2024, and Yadav et al., 2023):

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


def task_sum(taus: torch.Tensor) -> torch.Tensor:
    return taus.sum(dim=0)


def trim(tau: torch.Tensor, threshold: float) -> torch.Tensor:
    """One task's entries with |tau| >= threshold (an infinite threshold keeps nothing)."""
    return torch.where(tau.abs() >= threshold, tau, torch.zeros((), dtype=tau.dtype))


def trimmed_sum(taus: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    total = torch.zeros_like(taus[0])
    for tau, threshold in zip(taus, thresholds.tolist()):
        total += trim(tau, threshold)
    return total


def sign_votes(taus: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """The per-weight sign of the trimmed sum (-1, 0, 1): TIES's vote before tie-breaking."""
    return torch.sign(trimmed_sum(taus, thresholds))


def elect_sign(taus: torch.Tensor, thresholds: torch.Tensor, majority: float) -> torch.Tensor:
    """Elected sign per weight; weights whose vote is 0 take the model-wide ``majority`` sign."""
    votes = sign_votes(taus, thresholds)
    return torch.where(votes == 0, torch.tensor(majority, dtype=votes.dtype), votes)


def ties(taus: torch.Tensor, thresholds: torch.Tensor, majority: float, agg: str) -> torch.Tensor:
    """Disjoint sum or mean of the trimmed entries whose sign agrees with the elected one
    (zeros never agree). Works task by task: memory is a few copies of one entry, not T."""
    if agg not in AGGREGATIONS:
        raise ValueError(f"unknown TIES aggregation {agg!r}")
    sign = elect_sign(taus, thresholds, majority)
    total = torch.zeros_like(taus[0])
    count = torch.zeros_like(taus[0])
    for tau, threshold in zip(taus, thresholds.tolist()):
        trimmed = trim(tau, threshold)
        agree = torch.where(sign > 0, trimmed > 0, trimmed < 0)
        total += trimmed * agree
        count += agree
    return total if agg == "sum" else total / count.clamp(min=1)


def tall_masks(taus: torch.Tensor, mtv: torch.Tensor, lam: float) -> torch.Tensor:
    """TALL masks of every task at one lambda: bool [T, *shape]."""
    return torch.stack([tau.abs() > lam * (mtv - tau).abs() for tau in taus])


def consensus(mtv: torch.Tensor, masks: torch.Tensor, k: int) -> torch.Tensor:
    """Keep tau_MTL only where at least ``k`` of the task masks ([T, *shape]) are on."""
    return mtv * (masks.sum(dim=0, dtype=torch.int32) >= k)


def magnitude_masks(taus: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Each task's top-k% mask: |tau_t| >= threshold_t, bool [T, *shape]."""
    return torch.stack([tau.abs() >= threshold for tau, threshold in zip(taus, thresholds.tolist())])
