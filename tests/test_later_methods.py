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


def authors_split(r, t, fraction):
    """Iso-CTS's directions per task and common ones, as the authors' code rounds them."""
    s_task = round((r - int(r * fraction)) / t)
    return r - s_task * t, s_task


def np_iso_cts(taus, fraction):
    t, m, n = taus.shape
    k_c, s_task = authors_split(min(m, n), t, fraction)
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


@pytest.mark.parametrize("shape", [(7,), (), (2, 3, 2, 2)], ids=["1-D", "0-D", "4-D"])
def test_non_matrix_entries_take_the_mean(shape):
    taus = _taus(4, 3, shape)
    for fn in (maths.tsv_merge, maths.iso_c, lambda x: maths.iso_cts(x, 0.8)):
        torch.testing.assert_close(fn(taus), taus.mean(0))
    torch.testing.assert_close(maths.low_rank(taus), taus)


# -- edge cases: one task, a zero task vector, fewer directions than tasks ----------------------------
SPECTRAL = {
    "tsv-m": maths.tsv_merge,
    "iso-c": maths.iso_c,
    "iso-cts": lambda taus: maths.iso_cts(taus, 0.8),
}


def test_one_task():
    """T = 1: TSV-M keeps the whole task vector; Iso-C and Iso-CTS flatten its spectrum."""
    tau = _taus(21, 1, (12, 9))
    torch.testing.assert_close(maths.tsv_merge(tau), tau[0])
    u, s, vh = torch.linalg.svd(tau[0], full_matrices=False)
    flat = (u * s.mean()) @ vh
    torch.testing.assert_close(maths.iso_c(tau), flat)
    torch.testing.assert_close(maths.iso_cts(tau, 0.8), flat)
    torch.testing.assert_close(maths.low_rank(tau), tau)


@pytest.mark.parametrize("name", SPECTRAL)
def test_zero_task_vectors_bring_no_directions(name):
    """A task that did not move (tau_t = 0) adds no arbitrary singular vectors: TSV-M equals the
    formula over the other tasks' triplets (k still r // T); all-zero task vectors merge to zero."""
    taus = _taus(22, 3, (12, 9))
    taus[1] = 0
    merged = SPECTRAL[name](taus)
    assert torch.isfinite(merged).all()
    if name == "tsv-m":
        k = 9 // 3  # r // T with T = 3, the zero task included
        blocks = [torch.linalg.svd(t, full_matrices=False) for t in taus[[0, 2]]]
        u = torch.cat([b[0][:, :k] for b in blocks], 1)
        v = torch.cat([b[2][:k].T for b in blocks], 1)
        s = torch.cat([b[1][:k] for b in blocks])
        torch.testing.assert_close(merged, (_orthonormal_np(u) * s) @ _orthonormal_np(v).T)
    if name == "iso-c":  # the sum has full rank: nothing dropped
        torch.testing.assert_close(merged, maths.iso_c(taus[[0, 2]]))
    assert torch.equal(
        SPECTRAL[name](torch.zeros(3, 12, 9, dtype=torch.float64)), torch.zeros(12, 9, dtype=torch.float64)
    )


def _orthonormal_np(x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(_polar(x.numpy()))


@pytest.mark.parametrize("shape", [(3, 2), (2, 5)])
def test_fewer_directions_than_tasks(shape):
    """rank r < T: each task keeps one triplet (k = 1), TSV-M by the formula; Iso-CTS gives every
    direction to the common subspace and is Iso-C."""
    taus = _taus(23, 4, shape)
    np.testing.assert_allclose(maths.tsv_merge(taus).numpy(), np_tsv_m(taus.numpy()), atol=1e-10)
    torch.testing.assert_close(maths.iso_cts(taus, 0.8), maths.iso_c(taus))
    for fn in SPECTRAL.values():
        assert fn(taus).shape == shape


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


@pytest.mark.parametrize(
    "rank,tasks,expected",
    [(768, 20, (608, 8)), (128, 14, (100, 2)), (768, 8, (616, 19)), (128, 8, (104, 3)), (24, 3, (18, 2))],
    ids=["B/32 x 20", "pocket x 14", "B/32 x 8", "pocket x 8", "24 x 40 x 3"],
)
def test_iso_cts_splits_the_rank_as_its_authors(rank, tasks, expected):
    """Round, not floor: at B/32 x 20 a floor gives 7 directions per task (628 common), the
    authors' code 8 (608); at the pocket encoder's r = 128 with 14 tasks, 1 against 2."""
    assert maths.iso_cts_split(rank, tasks, 0.8) == authors_split(rank, tasks, 0.8) == expected


def test_iso_cts_where_round_and_floor_differ_matches_the_authors_rule():
    taus = _taus(11, 3, (24, 40))  # r = 24: (24 - 19) / 3 = 1.67 -> 2 directions per task, not 1
    np.testing.assert_allclose(maths.iso_cts(taus, 0.8).numpy(), np_iso_cts(taus.numpy(), 0.8), atol=1e-10)


def test_iso_cts_at_the_pocket_shape_where_round_and_floor_differ():
    """The pocket encoder's MLP input matrix with 14 tasks: 2 directions per task, not 1, against
    the numpy formula. (At ViT-B/32 x 20 the split is checked above, and the whole merge against
    a float64 reference by benchmarks/spectral_accuracy.py: too slow for a test.)"""
    taus = _taus(14, 14, (512, 128))
    np.testing.assert_allclose(maths.iso_cts(taus, 0.8).numpy(), np_iso_cts(taus.numpy(), 0.8), atol=1e-10)


def test_iso_cts_split_never_leaves_a_negative_common_subspace():
    assert maths.iso_cts_split(6, 4, 0.1) == (2, 1)  # the authors' round(6 / 4) = 2 would leave -2 common


def test_iso_cts_spectrum_is_flat_over_the_full_rank():
    taus = _taus(8, 3, (12, 9))  # r = 9, fraction 0.5: round((9 - 4) / 3) = 2 per task, 3 common
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


# -- through the engine: the registry's merges of checkpoint files ----------------------------------
def np_iso_c(taus):
    u, s, vh = np.linalg.svd(taus.sum(0), full_matrices=False)
    return u @ np.diag(np.full_like(s, s.mean())) @ vh


@pytest.mark.parametrize(
    "method,options,formula",
    [
        ("tsv-m", {"alpha": 0.7}, np_tsv_m),
        ("iso-c", {}, np_iso_c),
        ("iso-cts", {"alpha": 1.3, "common_fraction": 0.5}, lambda taus: np_iso_cts(taus, 0.5)),
    ],
)
def test_spectral_merges_of_checkpoint_files(tmp_path, method, options, formula):
    """``merge_files`` streams each entry through the method's maths: matrices by the formula,
    other float entries the mean of the task vectors, integer entries the base's; stored in the
    base's dtypes."""
    from safetensors.torch import load_file

    from helpers import make_case, save_case
    from tallmerge.merging.methods import merge_files

    base, finetuned = make_case(seed=5, tasks=3, dyadic=False)
    base_path, paths = save_case(tmp_path, base, finetuned)
    described = merge_files(method, base_path, paths, tmp_path / "out.safetensors", **options)
    assert described["method"] == method and described["alpha"] == options.get("alpha", 1.0)
    merged = load_file(tmp_path / "out.safetensors")
    alpha = options.get("alpha", 1.0)
    for key, theta0 in base.items():
        if not theta0.is_floating_point():
            assert torch.equal(merged[key], theta0), key
            continue
        taus = np.stack([(ft[key].double() - theta0.double()).numpy() for ft in finetuned])
        vector = np.asarray(formula(taus) if taus.ndim == 3 else taus.mean(0))
        want = (theta0.double() + alpha * torch.from_numpy(vector)).to(theta0.dtype)
        assert merged[key].dtype == theta0.dtype
        torch.testing.assert_close(
            merged[key], want, atol=2e-3 if theta0.dtype == torch.float16 else 1e-5, rtol=0
        )


def test_an_svd_that_fails_to_converge_is_redone_in_float64(monkeypatch):
    """LAPACK's float32 SVD can fail on matrices with many repeated singular values (seen on
    Iso-CTS at ViT-B/32 shapes); the decomposition is then redone in float64, and the merge goes on."""
    taus = _taus(31, 3, (12, 9)).float()
    expected = maths.iso_cts(taus, 0.8)
    real = torch.linalg.svd

    def fails_in_float32(matrix, full_matrices=True):
        if matrix.dtype == torch.float32:
            raise torch.linalg.LinAlgError("linalg.svd: The algorithm failed to converge")
        return real(matrix, full_matrices=full_matrices)

    monkeypatch.setattr(torch.linalg, "svd", fails_in_float32)
    u, s, vh = maths.thin_svd(taus[0])
    assert u.dtype == s.dtype == vh.dtype == torch.float32
    torch.testing.assert_close((u * s) @ vh, taus[0])
    torch.testing.assert_close(maths.iso_cts(taus, 0.8), expected, atol=1e-5, rtol=1e-4)
    with pytest.raises(torch.linalg.LinAlgError):  # float64 failing too is not hidden
        monkeypatch.setattr(
            torch.linalg,
            "svd",
            lambda m, full_matrices=True: (_ for _ in ()).throw(torch.linalg.LinAlgError("x")),
        )
        maths.thin_svd(taus[0])


# -- the triplets the spectral merges keep -----------------------------------------------------------
@pytest.mark.parametrize("shape", [(40, 12), (12, 40), (16, 16)], ids=["tall", "wide", "square"])
@pytest.mark.parametrize("k", [1, 3, 8, 12])
def test_top_triplets_are_the_svds_leading_ones(shape, k):
    """Whether from the Gram matrix (k up to half the rank) or the full SVD: the k largest
    singular values, and vectors that rebuild the SVD's rank-k approximation."""
    matrix = _taus(12, 1, shape)[0]
    k = min(k, min(shape))
    u, s, v = maths.top_triplets(matrix, k)
    assert u.shape == (shape[0], k) and s.shape == (k,) and v.shape == (shape[1], k)
    uf, sf, vhf = np.linalg.svd(matrix.numpy(), full_matrices=False)
    np.testing.assert_allclose(s.numpy(), sf[:k], rtol=1e-12)
    np.testing.assert_allclose(((u * s) @ v.T).numpy(), (uf[:, :k] * sf[:k]) @ vhf[:k], atol=1e-12)
    np.testing.assert_allclose((u.T @ u).numpy(), np.eye(k), atol=1e-12)
    np.testing.assert_allclose((v.T @ v).numpy(), np.eye(k), atol=1e-12)


@pytest.mark.parametrize("shape", [(30, 10), (10, 30)], ids=["tall", "wide"])
def test_top_triplets_of_a_low_rank_matrix_end_in_zeros(shape):
    """Asked for more triplets than the rank, the extra singular values come out zero to
    rounding (norms of A v, not square roots of the Gram's rounding noise), so the spectral
    merges drop them."""
    g = torch.Generator().manual_seed(13)
    matrix = torch.randn(shape[0], 2, generator=g, dtype=torch.float64) @ torch.randn(
        2, shape[1], generator=g, dtype=torch.float64
    )
    _, s, _ = maths.top_triplets(matrix, 4)
    assert s[2:].max() < 1e-13 * s[0]
    assert len(maths._significant(*maths.top_triplets(matrix, 4))[1]) == 2
