"""The later methods' per-tensor maths (tallmerge.merging.maths): TSV-M, Iso-C, Iso-CTS, TSV-C and
EMR-Merging, against independent numpy implementations of the published formulas and against
properties that pin them down (what they do on orthogonal tasks, their spectra, their ranks)."""

import numpy as np
import pytest
import torch

from tallmerge.merging import maths


def _taus(seed, t=4, shape=(12, 9)):
    return torch.randn((t, *shape), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# -- numpy references, written from the formulas ---------------------------------------------------
def _polar(x):
    p, _, qh = np.linalg.svd(x, full_matrices=False)
    return p @ qh


def np_tsv_m(taus):
    t, m, n = taus.shape
    k = max(1, min(m, n) // t)
    blocks = [np.linalg.svd(tau, full_matrices=False) for tau in taus]
    u = np.concatenate([b[0][:, :k] for b in blocks], axis=1)
    s = np.concatenate([b[1][:k] for b in blocks])
    v = np.concatenate([b[2][:k].T for b in blocks], axis=1)
    return _polar(u) @ np.diag(s) @ _polar(v).T


def np_iso_cts(taus, fraction):
    t, m, n = taus.shape
    r = min(m, n)
    s_task = (r - int(fraction * r)) // t
    k_c = r - s_task * t
    u, s, vh = np.linalg.svd(taus.sum(0), full_matrices=False)
    us, ss, vs = [u[:, :k_c]], [s[:k_c]], [vh[:k_c].T]
    for tau in taus if s_task else []:
        resid = tau - us[0] @ us[0].T @ tau
        ut, st, vht = np.linalg.svd(resid, full_matrices=False)
        us.append(ut[:, :s_task]), ss.append(st[:s_task]), vs.append(vht[:s_task].T)
    s_all = np.concatenate(ss)
    return (
        _polar(np.concatenate(us, 1))
        @ np.diag(np.full_like(s_all, s_all.mean()))
        @ _polar(np.concatenate(vs, 1)).T
    )


# -- TSV-M --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(12, 9), (9, 12), (16, 16)])
def test_tsv_merge_matches_the_formula(shape):
    taus = _taus(1, 4, shape)
    np.testing.assert_allclose(maths.tsv_merge(taus).numpy(), np_tsv_m(taus.numpy()), atol=1e-10)


def test_tsv_merge_of_orthogonal_low_rank_tasks_is_their_sum():
    """Tasks living in orthogonal subspaces, each of rank <= k, do not interfere: TSV-M keeps them whole."""
    q1, _ = torch.linalg.qr(
        torch.randn(12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    )
    q2, _ = torch.linalg.qr(
        torch.randn(10, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    )
    taus = torch.stack(
        [
            (q1[:, 2 * t : 2 * t + 2] * torch.tensor([3.0, 1.5], dtype=torch.float64))
            @ q2[:, 2 * t : 2 * t + 2].T
            for t in range(4)
        ]
    )  # rank 2 each; k = 10 // 4 = 2
    torch.testing.assert_close(maths.tsv_merge(taus), taus.sum(0))


def test_non_matrix_entries_take_the_mean():
    taus = _taus(4, 3, (7,))
    for fn in (maths.tsv_merge, maths.iso_c, lambda x: maths.iso_cts(x, 0.8)):
        torch.testing.assert_close(fn(taus), taus.mean(0))
    torch.testing.assert_close(maths.low_rank(taus), taus)


def test_task_rank_is_at_least_one():
    assert maths.task_rank(torch.zeros(4, 12, 9)) == 2
    assert maths.task_rank(torch.zeros(20, 12, 9)) == 1  # more tasks than the rank


# -- Iso-C / Iso-CTS ----------------------------------------------------------------------------------
def test_iso_c_flattens_the_spectrum_of_the_sum():
    taus = _taus(5)
    merged = maths.iso_c(taus)
    u, s, vh = torch.linalg.svd(taus.sum(0), full_matrices=False)
    sm = torch.linalg.svdvals(merged)
    torch.testing.assert_close(sm, torch.full_like(sm, s.mean().item()))
    torch.testing.assert_close(merged, (u * s.mean()) @ vh)  # same singular vectors


@pytest.mark.parametrize("fraction", [0.5, 0.8])
@pytest.mark.parametrize("shape", [(12, 9), (9, 16)])
def test_iso_cts_matches_the_formula(fraction, shape):
    taus = _taus(6, 3, shape)
    np.testing.assert_allclose(
        maths.iso_cts(taus, fraction).numpy(), np_iso_cts(taus.numpy(), fraction), atol=1e-10
    )


def test_iso_cts_with_the_whole_common_subspace_is_iso_c():
    taus = _taus(7)
    torch.testing.assert_close(maths.iso_cts(taus, 1.0), maths.iso_c(taus))


def test_iso_cts_spectrum_is_flat_over_the_full_rank():
    taus = _taus(8, 3, (12, 9))  # r = 9; at fraction 0.5: (9 - 4) // 3 = 1 direction per task, 6 common
    s = torch.linalg.svdvals(maths.iso_cts(taus, 0.5))
    assert torch.allclose(s, s[0].expand_as(s))


# -- TSV-C and EMR ------------------------------------------------------------------------------------
def test_low_rank_is_each_tasks_best_rank_k_approximation():
    taus = _taus(9, 4, (12, 9))
    parts = maths.low_rank(taus)
    for tau, part in zip(taus, parts):
        assert torch.linalg.matrix_rank(part) == 2
        s = torch.linalg.svdvals(tau)
        torch.testing.assert_close(
            torch.linalg.norm(tau - part), torch.sqrt((s[2:] ** 2).sum())
        )  # Eckart-Young


def test_emr_by_hand():
    taus = torch.tensor([[0.5, -1.0, 0.2, 0.0], [-0.25, -0.5, 0.4, 0.0], [0.75, 2.0, -0.1, 0.0]])
    unified = maths.emr_unified(taus)
    # sums: 1.0, 0.5, 0.5, 0 -> signs +, +, +, 0; largest agreeing magnitudes 0.75, 2.0, 0.4, 0
    torch.testing.assert_close(unified, torch.tensor([0.75, 2.0, 0.4, 0.0]))
    masks = maths.emr_masks(taus, unified)
    assert masks.tolist() == [
        [True, False, True, False],
        [False, False, True, False],
        [True, True, False, False],
    ]


def test_emr_matches_a_numpy_reference():
    taus = _taus(10, 5, (6, 7))
    x = taus.numpy()
    sign = np.sign(x.sum(0))
    ref = sign * np.where(x * sign > 0, np.abs(x), 0).max(0)
    np.testing.assert_allclose(maths.emr_unified(taus).numpy(), ref)
    np.testing.assert_array_equal(maths.emr_masks(taus, maths.emr_unified(taus)).numpy(), x * ref > 0)
