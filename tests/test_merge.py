"""The streaming engine against the brute-force oracle (tests/reference.py), on small random
state dicts: every method, exact on dyadic values (where float sums are exact whatever the
order), close on Gaussian ones; with ties in magnitudes, zero task vectors, one task, k > T."""

import math

import pytest
import torch
from safetensors.torch import load_file

from helpers import assert_same, make_case, save_case
from reference import ref_magnitude_model, ref_merge, ref_tall_masks, ref_tall_model, ref_topk_threshold
from tallmerge.merging.checkpoints import Checkpoints
from tallmerge.merging.executor import apply, to_state
from tallmerge.merging.masks import MaskFile, usage_counts, write_masks, write_selection
from tallmerge.merging.methods import magnitude_vectors, merge_files, tall_vectors
from tallmerge.merging.recipes import MultiTaskVector
from tallmerge.merging.statistics import magnitude_thresholds

CASES = [
    ("average", {}),
    ("task-arithmetic", {"alpha": 0.3}),
    ("task-arithmetic", {}),
    ("ties", {}),
    ("ties", {"alpha": 0.7, "topk": 50.0, "agg": "sum"}),
    ("ties", {"topk": 100.0}),
    ("ties", {"topk": 0.0}),
    ("consensus-ta", {"lam": 0.4}),
    ("consensus-ta", {"lam": 0.2, "k": 1, "alpha": 0.5}),
    ("consensus-ta", {"lam": 0.6, "k": 0}),
    ("consensus-ta", {"lam": 0.4, "k": 9}),
    ("consensus-ties", {"lam": 0.4}),
    ("consensus-ties", {"lam": 0.3, "k": 3, "topk": 40.0, "alpha": 0.8}),
]


def _reference_options(options: dict) -> dict:
    out = dict(options)
    out["ties_agg"] = out.pop("agg", "mean")
    return out


@pytest.mark.parametrize("dyadic", [True, False], ids=["dyadic", "gaussian"])
@pytest.mark.parametrize("method,options", CASES, ids=[f"{m}-{i}" for i, (m, _) in enumerate(CASES)])
def test_merge_equals_brute_force(tmp_path, method, options, dyadic):
    base, finetuned = make_case(seed=len(options) + 7 * dyadic, tasks=4, dyadic=dyadic, zero_tasks=(2,))
    base_path, paths = save_case(tmp_path, base, finetuned)
    merge_files(method, base_path, paths, tmp_path / "out.safetensors", **options)
    assert_same(
        load_file(tmp_path / "out.safetensors"),
        ref_merge(method, base, finetuned, **_reference_options(options)),
        dyadic,
    )


@pytest.mark.parametrize("method", ["average", "task-arithmetic", "ties"])
def test_single_task(tmp_path, method):
    base, finetuned = make_case(seed=3, tasks=1)
    base_path, paths = save_case(tmp_path, base, finetuned)
    merge_files(method, base_path, paths, tmp_path / "out.safetensors")
    assert_same(load_file(tmp_path / "out.safetensors"), ref_merge(method, base, finetuned), exact=True)
    if method != "ties":  # a lone task vector, scaled by 1 (alpha or 1/T) is the fine-tuned model
        for key, value in load_file(tmp_path / "out.safetensors").items():
            expected = finetuned[0][key] if value.is_floating_point() else base[key]
            assert torch.equal(value, expected)


def test_consensus_k_above_tasks_is_zero_shot(tmp_path):
    base, finetuned = make_case(seed=5, tasks=3)
    base_path, paths = save_case(tmp_path, base, finetuned)
    merge_files("consensus-ta", base_path, paths, tmp_path / "out.safetensors", lam=0.3, k=4)
    assert_same(load_file(tmp_path / "out.safetensors"), base, exact=True)


@pytest.mark.parametrize("topk", [0.0, 0.5, 10.0, 20.0, 37.5, 100.0])
@pytest.mark.parametrize("dyadic", [True, False])
def test_thresholds_are_exact(tmp_path, topk, dyadic):
    base, finetuned = make_case(seed=11, tasks=3, dyadic=dyadic, zero_tasks=(1,))
    base_path, paths = save_case(tmp_path, base, finetuned)
    with Checkpoints(base_path, paths) as ckpts:
        got = magnitude_thresholds(ckpts, topk)
    for t, ft in enumerate(finetuned):
        taus = torch.cat(
            [
                (ft[k].float() - base[k].float()).reshape(-1)
                for k in sorted(base)
                if base[k].is_floating_point()
            ]
        )
        want = ref_topk_threshold(taus, topk)
        assert got[t].item() == want or (math.isinf(want) and math.isinf(got[t].item()))


@pytest.mark.parametrize(
    "mtv",
    [
        MultiTaskVector("ta"),
        MultiTaskVector("ties", topk=20.0, agg="sum"),
        MultiTaskVector("ties", topk=60.0, agg="sum"),
    ],
)
def test_mask_file_equals_brute_force(tmp_path, mtv):
    base, finetuned = make_case(seed=13, tasks=3, zero_tasks=(0,))
    base_path, paths = save_case(tmp_path, base, finetuned)
    lambdas = [0.2, 0.5, 1.0]
    with Checkpoints(base_path, paths) as ckpts:
        write_masks(tmp_path / "masks.safetensors", ckpts, lambdas, mtv)
    with MaskFile(tmp_path / "masks.safetensors") as masks:
        assert masks.tasks == list(paths) and masks.mtv == mtv
        for i, lam in enumerate(lambdas):
            expected = ref_tall_masks(base, finetuned, lam, mtv=mtv.kind, topk=mtv.options.get("topk", 20.0))
            for t, task in enumerate(masks.tasks):
                for key, want in expected[t].items():
                    assert torch.equal(masks.mask(task, i, key), want), (task, lam, key)
                    assert masks.packed(task, i, key).numel() == math.ceil(
                        want.numel() / 8
                    )  # 1 bit per weight
        assert not any(t.is_floating_point() is False and k in masks.shapes for k, t in base.items())


def test_consensus_from_selected_masks(tmp_path):
    """Per-task lambdas: a selection from the grid, consumed by consensus merging."""
    base, finetuned = make_case(seed=17, tasks=4)
    base_path, paths = save_case(tmp_path, base, finetuned)
    chosen = {"task0": 0.2, "task1": 0.6, "task2": 0.4, "task3": 0.2}
    with Checkpoints(base_path, paths) as ckpts:
        write_masks(tmp_path / "grid.safetensors", ckpts, [0.2, 0.4, 0.6], MultiTaskVector("ties"))
    with MaskFile(tmp_path / "grid.safetensors") as grid:
        write_selection(grid, chosen, tmp_path / "selected.safetensors")
    merge_files(
        "consensus-ties",
        base_path,
        paths,
        tmp_path / "out.safetensors",
        masks=tmp_path / "selected.safetensors",
        alpha=0.9,
    )
    masks = [ref_tall_masks(base, finetuned, lam, mtv="ties")[t] for t, lam in enumerate(chosen.values())]
    expected = ref_merge("consensus-ties", base, finetuned, masks=masks, alpha=0.9)
    assert_same(load_file(tmp_path / "out.safetensors"), expected, exact=True)

    with MaskFile(tmp_path / "selected.safetensors") as selected:
        counts = usage_counts(selected)
        stacked = torch.stack([torch.cat([m[k].reshape(-1) for k in sorted(m)]) for m in masks])
        assert counts == torch.bincount(stacked.sum(0), minlength=5).tolist()
        assert sum(counts) == sum(v.numel() for v in base.values() if v.is_floating_point())

        with Checkpoints(base_path, paths) as ckpts:
            state, vectors = to_state(ckpts, tall_vectors(ckpts, selected, selected.selection()))
        for t, lam in enumerate(chosen.values()):
            rebuilt = apply(state, {k: v[t] for k, v in vectors.items()})
            assert_same(rebuilt, ref_tall_model(base, finetuned, t, lam, mtv="ties"), exact=True)


def test_magnitude_masking(tmp_path):
    base, finetuned = make_case(seed=19, tasks=3, zero_tasks=(1,))
    base_path, paths = save_case(tmp_path, base, finetuned)
    with Checkpoints(base_path, paths) as ckpts:
        state, vectors = to_state(ckpts, magnitude_vectors(ckpts, 10.0))
    for t in range(3):
        rebuilt = apply(state, {k: v[t] for k, v in vectors.items()})
        assert_same(rebuilt, ref_magnitude_model(base, finetuned, t, 10.0), exact=True)


def test_output_keeps_base_layout_and_metadata(tmp_path):
    base, finetuned = make_case(seed=23, tasks=2)
    base_path, paths = save_case(tmp_path, base, finetuned)
    described = merge_files("ties", base_path, paths, tmp_path / "out.safetensors", alpha=0.5)
    assert described == {
        "method": "ties",
        "alpha": 0.5,
        "topk": 20.0,
        "ties_agg": "mean",
        "tasks": ["task0", "task1"],
    }
    out = load_file(tmp_path / "out.safetensors")
    assert {k: (v.dtype, v.shape) for k, v in out.items()} == {k: (v.dtype, v.shape) for k, v in base.items()}
    from tallmerge.formats.tensorfile import TensorFile

    with TensorFile(tmp_path / "out.safetensors") as f:
        assert f.metadata == described
