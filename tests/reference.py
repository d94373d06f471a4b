"""Deliberately naive, in-memory reference oracle for property tests.

Implements the merging methods of "Localizing Task Information for Improved
Model Merging and Compression" (TALL masks / Consensus merging) by flattening
every floating-point tensor of the model into one vector per task and doing
all arithmetic on the full [T, N] float32 matrix at once. Nothing here is
meant to be fast or memory-friendly; it is meant to be obviously correct so
that the streaming implementation can be compared against it.
"""

from __future__ import annotations

import torch


def _float_keys(base):
    return [k for k in sorted(base) if base[k].is_floating_point()]


def task_vectors(base, finetuned):
    """Float keys (sorted) and task vectors stacked as a float32 [T, N] matrix."""
    keys = _float_keys(base)
    rows = []
    for ft in finetuned:
        parts = [(ft[k].float() - base[k].float()).reshape(-1) for k in keys]
        rows.append(torch.cat(parts) if parts else torch.zeros(0))
    return keys, torch.stack(rows)


def _unflatten(base, keys, flat):
    out, pos = {}, 0
    for k in keys:
        n = base[k].numel()
        out[k] = flat[pos : pos + n].reshape(base[k].shape)
        pos += n
    assert pos == flat.numel()
    return out


def _apply_delta(base, keys, delta):
    pieces = _unflatten(base, keys, delta)
    out = {}
    for k in sorted(base):
        if k in pieces:
            out[k] = (base[k].float() + pieces[k]).to(base[k].dtype)
        else:
            out[k] = base[k].clone()
    return out


def ref_topk_threshold(values, topk):
    """m-th largest of |values| with m = int(N * topk / 100); inf if m == 0."""
    mags = values.reshape(-1).abs().float()
    m = min(int(mags.numel() * topk / 100), mags.numel())
    if m == 0:
        return float("inf")
    return float(torch.sort(mags, descending=True).values[m - 1])


def _topk_mask(tau, topk):
    return tau.abs() >= ref_topk_threshold(tau, topk)


def _ties_merged(taus, topk, agg):
    trimmed = torch.stack([torch.where(_topk_mask(t, topk), t, torch.zeros_like(t)) for t in taus])
    s = torch.sign(trimmed.sum(0))
    majority = torch.sign(s.sum())
    s = torch.where(s == 0, majority, s)
    agree = ((trimmed > 0) & (s > 0)) | ((trimmed < 0) & (s < 0))
    merged = torch.where(agree, trimmed, torch.zeros_like(trimmed)).sum(0)
    if agg == "sum":
        return merged
    if agg == "mean":
        return merged / agree.sum(0).clamp(min=1).float()
    raise ValueError(f"unknown TIES aggregation {agg!r}")


def _mtv(taus, mtv, topk):
    if mtv == "ta":
        return taus.sum(0)
    if mtv == "ties":
        return _ties_merged(taus, topk, "sum")
    raise ValueError(f"unknown mtv {mtv!r}")


def _flat_masks(taus, lam, mtv, topk):
    tau_mtl = _mtv(taus, mtv, topk)
    return taus.abs() > lam * (tau_mtl - taus).abs()


def ref_tall_masks(base, finetuned, lam, *, mtv="ta", topk=20.0):
    keys, taus = task_vectors(base, finetuned)
    flat = _flat_masks(taus, lam, mtv, topk)
    return [_unflatten(base, keys, row) for row in flat]


def ref_tall_model(base, finetuned, task, lam, *, mtv="ta", topk=20.0):
    keys, taus = task_vectors(base, finetuned)
    mask = _flat_masks(taus, lam, mtv, topk)[task]
    return _apply_delta(base, keys, mask.float() * _mtv(taus, mtv, topk))


def ref_magnitude_model(base, finetuned, task, topk=10.0):
    keys, taus = task_vectors(base, finetuned)
    mask = _topk_mask(taus[task], topk)
    return _apply_delta(base, keys, mask.float() * taus.sum(0))


def ref_pruned_model(base, finetuned, task, topk=10.0):
    """Magnitude pruning: the task's own vector at its top-k% magnitudes."""
    keys, taus = task_vectors(base, finetuned)
    return _apply_delta(base, keys, _topk_mask(taus[task], topk).float() * taus[task])


def ref_merge(
    method, base, finetuned, *, alpha=1.0, topk=20.0, ties_agg="mean", lam=None, masks=None, k=2, mtv=None
):
    keys, taus = task_vectors(base, finetuned)
    T = taus.shape[0]
    if method == "average":
        delta = taus.sum(0) * (1.0 / T)
    elif method == "task-arithmetic":
        delta = alpha * taus.sum(0)
    elif method == "ties":
        delta = alpha * _ties_merged(taus, topk, ties_agg)
    elif method in ("consensus-ta", "consensus-ties"):
        implied = method.split("-", 1)[1]
        if mtv is not None and mtv != implied:
            raise ValueError(f"{method} implies mtv={implied!r}, got {mtv!r}")
        tau_mtl = _mtv(taus, implied, topk)
        if masks is not None:
            rows = [torch.cat([m[key].reshape(-1).bool() for key in keys]) for m in masks]
            flat = torch.stack(rows)
        elif lam is not None:
            flat = _flat_masks(taus, lam, implied, topk)
        else:
            raise ValueError("consensus needs lam or masks")
        consensus = flat.sum(0) >= k
        delta = alpha * tau_mtl * consensus.float()
    else:
        raise ValueError(f"unknown method {method!r}")
    return _apply_delta(base, keys, delta)


def ref_emr_model(base, finetuned, task):
    """EMR-Merging from its formula, over the whole model flattened: tau_uni = sign(sum_t tau_t) *
    the largest |tau_t| among the tasks agreeing with that sign; m_t = [tau_t * tau_uni > 0];
    s_t = sum |tau_t| / sum |m_t * tau_uni|; task t = theta_0 + s_t * m_t * tau_uni."""
    keys, taus = task_vectors(base, finetuned)
    sign = torch.sign(taus.sum(0))
    agreeing = torch.where(taus * sign > 0, taus.abs(), torch.zeros(()))
    unified = sign * agreeing.max(0).values
    mask = taus[task] * unified > 0
    kept = (mask * unified).abs().double().sum()
    scale = float(taus[task].abs().double().sum() / kept) if kept > 0 else 1.0
    return _apply_delta(base, keys, (unified * mask) * scale)
