"""The merge methods' math, one tensor at a time: pure functions, no files, no global state.

Every function takes the task vectors of ONE state-dict entry stacked as ``taus`` ([T, *shape],
float32, tau_t = theta_t - theta_0) and returns a vector of that entry's shape (or masks). What a
method needs from the whole model (the TIES trim thresholds, the majority sign) is computed by
:mod:`tallmerge.merging.statistics` in earlier passes and handed in as plain numbers.

The formulas (after Wang et al., ICML 2024, and Yadav et al., 2023):

- task arithmetic: sum_t tau_t (the executor scales by alpha; weight averaging uses alpha = 1/T);
- TIES: trim each tau_t to |tau_t| >= its threshold, elect a sign per weight, then take the
  disjoint mean (or sum) of the trimmed entries that agree with it;
- TALL mask: m_t = |tau_t| > lambda * |tau_MTL - tau_t|;
- consensus: tau_MTL where at least k tasks' masks are on;
- magnitude mask: |tau_t| >= its threshold.

Later methods, on matrices (2-D entries; any other entry takes the mean of the tau_t), with
r = min(rows, columns) and k = r // T (at least 1):

- TSV-M (Gargiulo et al., CVPR 2025): each task's top-k singular triplets, concatenated; U and V
  replaced by their polar factors (the nearest matrices with orthonormal columns); U diag(S) V^T;
- Iso-C (Marczak et al., ICML 2025): the SVD of sum_t tau_t with every singular value set to
  their mean; Iso-CTS: the top directions of that spectrum (about ``common_fraction`` of the
  rank, split as the authors' code rounds it) plus each task's own top directions outside them,
  orthogonalised as in TSV-M, singular values set to their mean;
- TSV-C: each task's rank-k approximation (a per-task low-rank store);
- the few top triplets of a task matrix come from the eigenvectors of its smaller Gram matrix
  (:func:`top_triplets`), not from a full SVD: as accurate as float32 allows, about 3x faster;
- in all of these, singular triplets whose value is zero up to rounding are left out (a task
  vector of zeros, a sum of lower rank than asked for), so they bring no arbitrary directions
  into the orthogonalisation or the flattened spectrum; for generic task vectors none is;
- EMR-Merging (Huang et al., NeurIPS 2024): a unified vector with the sign of sum_t tau_t and, per
  weight, the largest |tau_t| among the tasks that agree with it; task t's mask is where tau_t
  agrees with the unified vector, and one scalar per task (computed over the whole model in
  an earlier pass) rescales it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from tallmerge.merging.recipes import AGGREGATIONS


def all_finite(tensor: torch.Tensor) -> bool:
    """Every value finite. The sum is a fast first test (an inf or a nan makes it non-finite);
    only when it is not finite (or overflows) is every value checked."""
    return bool(torch.isfinite(tensor.sum())) or bool(torch.isfinite(tensor).all())


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


def tall_mask_grid(
    taus: torch.Tensor, mtv: torch.Tensor, lambdas: Sequence[float], out: torch.Tensor | None = None
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """TALL masks of every task at every lambda, as ``(t, i, mask)`` for task t and lambda i
    (written into ``out[i, t]`` if given, a bool [L, T, *shape]). Per task, |tau_t| and
    |tau_MTL - tau_t| are computed once into reused buffers of one entry's size; only the
    scaling and the comparison are done per lambda (no temporaries of T entries: on a 20-task
    ViT-B/32 MLP weight that alone made the masks 4x faster)."""
    size, gap, scaled = torch.empty_like(mtv), torch.empty_like(mtv), torch.empty_like(mtv)
    for t, tau in enumerate(taus):
        torch.abs(tau, out=size)
        torch.sub(mtv, tau, out=gap).abs_()
        for i, lam in enumerate(lambdas):
            torch.mul(gap, lam, out=scaled)
            yield t, i, torch.gt(size, scaled) if out is None else torch.gt(size, scaled, out=out[i, t])


def tall_masks(taus: torch.Tensor, mtv: torch.Tensor, lam: float) -> torch.Tensor:
    """TALL masks of every task at one lambda, m_t = |tau_t| > lam |tau_MTL - tau_t|: bool
    [T, *shape], the same values as ``taus.abs() > lam * (mtv - taus).abs()``."""
    out = torch.empty((1, *taus.shape), dtype=torch.bool, device=taus.device)
    for _ in tall_mask_grid(taus, mtv, [lam], out):
        pass
    return out[0]


def consensus(mtv: torch.Tensor, masks: torch.Tensor, k: int) -> torch.Tensor:
    """Keep tau_MTL only where at least ``k`` of the task masks ([T, *shape]) are on."""
    return mtv * (masks.sum(dim=0, dtype=torch.int32) >= k)


def magnitude_masks(taus: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Each task's top-k% mask: |tau_t| >= threshold_t, bool [T, *shape]."""
    return torch.stack([tau.abs() >= threshold for tau, threshold in zip(taus, thresholds.tolist())])


# -- later methods: spectral merges and per-task low-rank / EMR parts ---------------------------
def task_rank(taus: torch.Tensor) -> int:
    """k = r // T singular triplets per task (at least one) for a stack of T matrices."""
    return max(1, min(taus.shape[1:]) // len(taus))


def iso_cts_split(rank: int, tasks: int, common_fraction: float) -> tuple[int, int]:
    """Iso-CTS's split of a rank r between the common subspace and the T tasks, as its authors'
    code does it: s = round((r - int(common_fraction r)) / T) directions per task (Python's
    round: halves to even), the k_c = r - T s others common. At ViT-B/32's r = 768 and 20 tasks:
    s = 8, k_c = 608 (a floor would give 7 and 628). s is capped at r // T so that k_c is never
    negative (the authors' code has no cap; it binds only at fractions far below their 0.8)."""
    per_task = min(round((rank - int(common_fraction * rank)) / tasks), rank // tasks)
    return rank - per_task * tasks, per_task


def thin_svd(matrix: torch.Tensor):
    """Thin SVD. LAPACK's divide-and-conquer can fail to converge on a matrix with many (nearly)
    repeated singular values, such as a task vector with a subspace projected out or a stack of
    near-orthonormal columns; such a matrix is decomposed again in float64 (then cast back)."""
    try:
        return torch.linalg.svd(matrix, full_matrices=False)
    except torch.linalg.LinAlgError:
        if matrix.dtype == torch.float64:
            raise
        u, s, vh = torch.linalg.svd(matrix.double(), full_matrices=False)
        return u.to(matrix.dtype), s.to(matrix.dtype), vh.to(matrix.dtype)


def top_triplets(matrix: torch.Tensor, k: int):
    """The ``k`` largest singular triplets of ``matrix`` (m x n): ``u`` [m, k], ``s`` [k], ``v``
    [n, k], singular values descending.

    Up to half the rank they come from the eigendecomposition of the smaller Gram matrix (A^T A
    or A A^T): one matrix product and a symmetric eigensolver, about 3x faster than the full SVD
    at ViT-B/32's shapes. Each singular value is then the norm of A v (of A^T u), exact to
    rounding even where it is zero, and the other singular vector that product divided by it.
    Beyond half the rank, where the Gram's squared condition number would cost the small
    values their accuracy, the thin SVD."""
    rows, cols = matrix.shape
    if 2 * k > min(rows, cols):
        u, s, vh = thin_svd(matrix)
        return u[:, :k], s[:k], vh[:k].T
    if rows < cols:  # eigenvectors of A A^T: the left singular vectors
        u = _top_eigenvectors(matrix @ matrix.T, k)
        v, s = _normalized(matrix.T @ u)
        return u, s, v
    v = _top_eigenvectors(matrix.T @ matrix, k)
    u, s = _normalized(matrix @ v)
    return u, s, v


def _normalized(columns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``columns`` divided by their norms (zero columns left as they are), and the norms."""
    norms = torch.linalg.vector_norm(columns, dim=0)
    return columns / torch.where(norms > 0, norms, 1), norms


def _top_eigenvectors(gram: torch.Tensor, k: int) -> torch.Tensor:
    """The eigenvectors of the ``k`` largest eigenvalues of a symmetric matrix, largest first
    (redone in float64 if the float32 solver fails to converge, as :func:`thin_svd`)."""
    try:
        _, vectors = torch.linalg.eigh(gram)
    except torch.linalg.LinAlgError:
        if gram.dtype == torch.float64:
            raise
        vectors = torch.linalg.eigh(gram.double())[1].to(gram.dtype)
    return vectors[:, -k:].flip(1) if k else vectors[:, :0]


def _orthonormal(columns: torch.Tensor) -> torch.Tensor:
    """The polar factor P Q^T of ``columns`` = P Sigma Q^T (no more columns than rows): the
    closest matrix whose columns are orthonormal. Computed as C (C^T C)^(-1/2) from the float64
    eigendecomposition of the columns' Gram matrix, 17-25 % faster than the SVD at ViT-B/32
    shapes and as accurate while the columns' condition number is below 1e4 (the Gram squares
    it); beyond that, by the SVD."""
    gram = columns.double().T @ columns.double()
    values, vectors = torch.linalg.eigh(gram)
    if values.numel() == 0 or values[0] > values[-1] * 1e-8:
        return columns @ ((vectors * values.rsqrt()) @ vectors.T).to(columns.dtype)
    p, _, qh = thin_svd(columns)
    return p @ qh


def _significant_mask(s: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Which singular values of a rows x cols matrix are not zero up to rounding (numpy's
    matrix-rank tolerance, against the largest): a zero task vector, or a sum of lower rank than
    asked for, brings no arbitrary directions into the orthogonalisation or the flat spectrum."""
    if s.numel() == 0:
        return s > 0
    return s > s.max() * max(rows, cols) * torch.finfo(s.dtype).eps


def _significant(u: torch.Tensor, s: torch.Tensor, v: torch.Tensor):
    """Triplets without those whose singular value is zero up to rounding."""
    keep = _significant_mask(s, u.shape[0], v.shape[0])
    return u[:, keep], s[keep], v[:, keep]


def _recombine(us: list, ss: list, vs: list, shape, flatten: bool) -> torch.Tensor:
    s = torch.cat(ss)
    if s.numel() == 0:
        return torch.zeros(shape, dtype=s.dtype, device=s.device)
    u, v = _orthonormal(torch.cat(us, dim=1)), _orthonormal(torch.cat(vs, dim=1))
    if flatten:
        s = s.mean().expand_as(s)
    return (u * s) @ v.T


def tsv_merge(taus: torch.Tensor) -> torch.Tensor:
    """TSV-M: every task's top-k singular triplets, U and V orthogonalised, U diag(S) V^T."""
    if taus.dim() != 3:
        return taus.mean(dim=0)
    k = task_rank(taus)
    us, ss, vs = [], [], []
    for tau in taus:
        u, s, v = _significant(*top_triplets(tau, k))
        us.append(u), ss.append(s), vs.append(v)
    return _recombine(us, ss, vs, taus.shape[1:], flatten=False)


def iso_c(taus: torch.Tensor) -> torch.Tensor:
    """Iso-C: sum_t tau_t with its singular values all set to their mean."""
    if taus.dim() != 3:
        return taus.mean(dim=0)
    u, s, vh = thin_svd(taus.sum(dim=0))
    u, s, v = _significant(u, s, vh.T)
    return (u * s.mean()) @ v.T if s.numel() else torch.zeros_like(taus[0])


def iso_cts(taus: torch.Tensor, common_fraction: float) -> torch.Tensor:
    """Iso-CTS: the common subspace (top directions of sum_t tau_t, about ``common_fraction`` of
    the rank: :func:`iso_cts_split`) plus each task's top directions once the common ones are
    projected out; orthogonalised, singular values set to their mean.

    Where the sum's SVD spans the whole column space (a matrix no taller than wide), its other
    left singular vectors Q are an orthonormal basis of what the projection leaves, so each
    task's directions are those of the small Q^T tau_t (T s rows), mapped back by Q."""
    if taus.dim() != 3:
        return taus.mean(dim=0)
    common, per_task = iso_cts_split(min(taus.shape[1:]), len(taus), common_fraction)
    u, s, vh = thin_svd(taus.sum(dim=0))
    kept = _significant_mask(s, *taus.shape[1:]) & (torch.arange(len(s), device=s.device) < common)
    us, ss, vs = [u[:, kept]], [s[kept]], [vh[kept].T]
    rest = u[:, ~kept] if u.shape[0] == u.shape[1] else None  # the complement of the common space
    for tau in taus if per_task else ():
        if rest is None:
            ut, st, vt = _significant(*top_triplets(tau - us[0] @ (us[0].T @ tau), per_task))
        else:
            ut, st, vt = _significant(*top_triplets(rest.T @ tau, per_task))
            ut = rest @ ut
        us.append(ut), ss.append(st), vs.append(vt)
    return _recombine(us, ss, vs, taus.shape[1:], flatten=True)


def low_rank(taus: torch.Tensor) -> torch.Tensor:
    """TSV-C's per-task parts: each tau_t at rank k on matrices, whole elsewhere; [T, *shape]."""
    if taus.dim() != 3:
        return taus.clone()
    k = task_rank(taus)
    out = torch.empty_like(taus)
    for t, tau in enumerate(taus):
        u, s, v = top_triplets(tau, k)
        out[t] = (u * s) @ v.T
    return out


def emr_unified(taus: torch.Tensor) -> torch.Tensor:
    """EMR's unified vector: sign of sum_t tau_t, magnitude of the largest agreeing tau_t."""
    sign = torch.sign(taus.sum(dim=0))
    agreeing = torch.where(taus * sign > 0, taus.abs(), torch.zeros((), dtype=taus.dtype))
    return sign * agreeing.amax(dim=0)


def emr_masks(taus: torch.Tensor, unified: torch.Tensor) -> torch.Tensor:
    """Each task's EMR mask: where tau_t has the unified vector's (non-zero) sign; bool [T, *shape]."""
    return taus * unified > 0
