"""The streaming engine against the brute-force oracle (tests/reference.py), on small random
state dicts: every method, exact on dyadic values (where float sums are exact whatever the
order), close on Gaussian ones; with ties in magnitudes, zero task vectors, one task, k > T."""

import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from helpers import assert_same, make_case, save_case
from reference import (
    ref_magnitude_model,
    ref_merge,
    ref_pruned_model,
    ref_tall_masks,
    ref_tall_model,
    ref_topk_threshold,
)
from tallmerge.merging.checkpoints import Checkpoints
from tallmerge.merging.executor import apply, to_state
from tallmerge.merging.masks import MaskFile, usage_counts, write_masks, write_selection
from tallmerge.merging.methods import magnitude_vectors, merge_files, pruned_vectors, tall_vectors
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


@pytest.mark.parametrize(
    "vectors_of, reference",
    [(magnitude_vectors, ref_magnitude_model), (pruned_vectors, ref_pruned_model)],
    ids=["masking", "pruning"],
)
def test_magnitude_baselines(tmp_path, vectors_of, reference):
    base, finetuned = make_case(seed=19, tasks=3, zero_tasks=(1,))
    base_path, paths = save_case(tmp_path, base, finetuned)
    with Checkpoints(base_path, paths) as ckpts:
        state, vectors = to_state(ckpts, vectors_of(ckpts, 10.0))
    for t in range(3):
        rebuilt = apply(state, {k: v[t] for k, v in vectors.items()})
        assert_same(rebuilt, reference(base, finetuned, t, 10.0), exact=True)


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


# -- large entries in blocks of rows ---------------------------------------------------------------
BLOCKED_CASES = [
    ("consensus-ta", {"lam": 0.4}),
    ("consensus-ta", {"lam": 0.3, "k": 3, "alpha": 0.7}),
    ("consensus-ties", {"lam": 0.4}),
    ("task-arithmetic", {"alpha": 0.3}),
    ("average", {}),
    ("ties", {"topk": 30.0}),
    ("tsv-m", {}),  # not element-wise: never split, the same bytes too
]


def _wide_case(tmp_path, tasks: int = 5):
    """Gaussian entries (where another order of the additions changes the last bits) whose
    sizes are not multiples of 32 (the tail that torch sums in another order), split into
    aligned blocks of 128 rows (24 columns), 64 rows (16 bfloat16 columns), 1024 weights (a
    vector); an entry smaller than one aligned group; a scalar; an integer entry."""
    g = torch.Generator().manual_seed(29)
    shapes = {
        "embed": ((301, 24), torch.float32),
        "conv": ((9, 3, 4), torch.float32),
        "head": ((701, 16), torch.bfloat16),
        "vector": ((2500,), torch.float32),
        "scale": ((), torch.float32),
        "position_ids": ((5,), torch.int64),
    }

    def values(shape, dtype):
        if not dtype.is_floating_point:
            return torch.arange(math.prod(shape)).reshape(shape).to(dtype)
        return torch.randn(shape, generator=g).to(dtype)

    base = {k: values(*spec) for k, spec in shapes.items()}
    finetuned = [
        {  # task 1 equals the base: zero task vectors
            k: v
            if not v.is_floating_point() or t == 1
            else (v.float() + 0.1 * values(v.shape, torch.float32)).to(v.dtype)
            for k, v in base.items()
        }
        for t in range(tasks)
    ]
    return save_case(tmp_path, base, finetuned)


def _count_blocks(monkeypatch) -> dict:
    """Record the rows of every block that Checkpoints._row_blocks yields: {key: [rows, ...]}."""
    blocks: dict[str, list[int]] = {}
    row_blocks = Checkpoints._row_blocks

    def counted(self, key, base, count):
        for rows, taus in row_blocks(self, key, base, count):
            blocks.setdefault(key, []).append(rows.stop - rows.start)
            yield rows, taus

    monkeypatch.setattr(Checkpoints, "_row_blocks", counted)
    return blocks


# block_bytes -> the blocks' rows (entries absent: whole); 5 tasks x 4 bytes x 24 columns = 480
BLOCKINGS = {
    1: {"embed": [128, 128, 45], "conv": [9], "head": [64] * 10 + [61], "vector": [1024, 1024, 452]},
    480 * 256: {"embed": [256, 45], "head": [384, 317]},
}


@pytest.mark.parametrize(
    "method,options", BLOCKED_CASES, ids=[f"{m}-{i}" for i, (m, _) in enumerate(BLOCKED_CASES)]
)
def test_blocked_rows_give_the_same_bytes(tmp_path, monkeypatch, method, options):
    """Entries merged in blocks of rows give the same file, byte for byte, as whole entries."""
    import tallmerge.merging.methods as methods

    base_path, paths = _wide_case(tmp_path)
    monkeypatch.setattr(methods, "BLOCK_BYTES", None)  # every entry whole
    merge_files(method, base_path, paths, tmp_path / "whole.safetensors", **options)
    whole = (tmp_path / "whole.safetensors").read_bytes()

    blocks = _count_blocks(monkeypatch)
    for block_bytes, expected in BLOCKINGS.items():
        blocks.clear()
        monkeypatch.setattr(methods, "BLOCK_BYTES", block_bytes)
        merge_files(method, base_path, paths, tmp_path / "blocked.safetensors", **options)
        assert (tmp_path / "blocked.safetensors").read_bytes() == whole, block_bytes
        assert blocks == ({} if method == "tsv-m" else expected)  # TSV-M is not element-wise


def test_blocked_rows_from_a_mask_file(tmp_path, monkeypatch):
    import tallmerge.merging.methods as methods

    base_path, paths = _wide_case(tmp_path)
    with Checkpoints(base_path, paths) as ckpts:
        write_masks(tmp_path / "masks.safetensors", ckpts, [0.5], MultiTaskVector("ta"))
    blocks = _count_blocks(monkeypatch)
    outputs = []
    for block_bytes in (None, 1):
        monkeypatch.setattr(methods, "BLOCK_BYTES", block_bytes)
        out = tmp_path / f"out-{block_bytes}.safetensors"
        merge_files("consensus-ta", base_path, paths, out, masks=tmp_path / "masks.safetensors")
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] and blocks == BLOCKINGS[1]


def test_blocked_rows_are_checked(tmp_path, monkeypatch):
    """A value that is not finite, in any block, is found as in a whole entry."""
    import tallmerge.merging.methods as methods
    from tallmerge.errors import TallmergeError

    base_path, paths = _wide_case(tmp_path, tasks=3)
    state = load_file(paths["task2"])
    state["embed"][300, 5] = float("nan")  # in the last block
    save_file(state, paths["task2"])
    monkeypatch.setattr(methods, "BLOCK_BYTES", 1)
    with pytest.raises(TallmergeError, match="'embed' has NaN or Inf values"):
        merge_files("consensus-ta", base_path, paths, tmp_path / "out.safetensors", lam=0.4)
    assert not (tmp_path / "out.safetensors").exists()
