"""The compressed store: exact round trips against the oracle, the codecs, the paper's storage
accounting, and every bad-input path (corrupted, truncated or missing files, unknown tasks,
interrupted writes), through the library and the `tallmerge` command line."""

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from helpers import assert_same, fails, finetuned_args, make_case, run, save_case
from reference import ref_emr_model, ref_magnitude_model, ref_tall_model
from tallmerge.errors import TallmergeError
from tallmerge.merging.checkpoints import Checkpoints
from tallmerge.merging.masks import MaskFile, write_masks, write_selection
from tallmerge.merging.methods import mtv_vectors
from tallmerge.merging.recipes import MultiTaskVector
from tallmerge.store import codec
from tallmerge.store.accounting import finetuned_gbit, projected_gbit
from tallmerge.store.build import (
    compress,
    emr_mask_source,
    magnitude_mask_source,
    tall_mask_source,
    tall_mask_source_at,
)
from tallmerge.store.codec import BLOCK
from tallmerge.store.manifest import FILES, MANIFEST, MANIFEST_DIGEST, manifest_digest
from tallmerge.store.reader import Store


@pytest.fixture
def case(tmp_path):
    base, finetuned = make_case(seed=7, tasks=3, dyadic=False)
    base_path, paths = save_case(tmp_path, base, finetuned)
    return base, finetuned, base_path, paths


def build(tmp_path, base_path, paths, lam=0.4, mtv=MultiTaskVector("ta"), dtype="fp32", name="store"):
    out = tmp_path / name
    with Checkpoints(base_path, paths) as ckpts:
        compress(out, ckpts, tall_mask_source_at(ckpts, lam, mtv), dtype)
    return out


def assert_rebuilds(store, base, finetuned, update):
    """Every task of ``store`` is, bit for bit, theta_0 + ``update(t, taus)`` on each floating-point
    entry (taus: that entry's float32 task vectors [T, *shape]) and theta_0 on the others."""
    for t, task in enumerate(store.tasks):
        rebuilt = store.state(task)
        for key, theta in base.items():
            if not theta.is_floating_point():
                assert torch.equal(rebuilt[key], theta), (task, key)
                continue
            taus = torch.stack([ft[key].float() - theta.float() for ft in finetuned])
            expected = (theta.float() + update(t, taus)).to(theta.dtype)
            assert torch.equal(rebuilt[key], expected), (task, key)


# -- round trips --------------------------------------------------------------------------------
@pytest.mark.parametrize("mtv", [MultiTaskVector("ta"), MultiTaskVector("ties", topk=30.0, agg="sum")])
def test_fp32_store_rebuilds_every_task_exactly(case, tmp_path, mtv):
    base, finetuned, base_path, paths = case
    out = build(tmp_path, base_path, paths, lam=0.4, mtv=mtv)
    for t, task in enumerate(paths):
        rebuilt = tmp_path / f"{task}.safetensors"
        Store(out).reconstruct(task, rebuilt)
        expected = ref_tall_model(base, finetuned, t, 0.4, mtv=mtv.kind, topk=mtv.options.get("topk", 20.0))
        loaded = load_file(rebuilt)
        assert {k: v.dtype for k, v in loaded.items()} == {k: v.dtype for k, v in base.items()}
        assert_same(loaded, expected, exact=True)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


@pytest.mark.parametrize("tasks,zero", [(3, ()), (3, (1,)), (1, ())], ids=["T3", "zero-task", "T1"])
def test_emr_store_rebuilds_every_task_exactly(tmp_path, tasks, zero):
    """EMR: theta_0 + s_t * m_t * tau_uni, bit for bit against the formula (dyadic weights make
    the whole-model rescalers exact in any summation order); a task that did not move keeps an
    empty mask and rebuilds theta_0."""
    base, finetuned = make_case(seed=11, tasks=tasks, dyadic=True, zero_tasks=zero)
    base_path, paths = save_case(tmp_path, base, finetuned)
    with Checkpoints(base_path, paths) as ckpts:
        compress(tmp_path / "emr", ckpts, emr_mask_source(ckpts))
    store = Store(tmp_path / "emr")
    assert store.made["kind"] == "emr" and set(store.made["rescalers"]) == set(paths)
    for t, task in enumerate(paths):
        assert_same(store.state(task), ref_emr_model(base, finetuned, t), exact=True)
    for t in zero:
        assert_same(store.state(f"task{t}"), base, exact=True)
    assert "EMR masks" in store.describe()


def test_masks_file_and_lambda_give_the_same_store(case, tmp_path):
    _, _, base_path, paths = case
    grid, chosen = tmp_path / "grid.safetensors", tmp_path / "chosen.safetensors"
    with Checkpoints(base_path, paths) as ckpts:
        write_masks(grid, ckpts, [0.2, 0.4], MultiTaskVector("ta"))
        with MaskFile(grid) as masks:
            write_selection(masks, dict.fromkeys(paths, 0.4), chosen)
        with MaskFile(chosen) as masks:
            compress(tmp_path / "from-file", ckpts, tall_mask_source(masks, ckpts))
    build(tmp_path, base_path, paths, lam=0.4, name="from-lambda")
    for name in FILES.values():
        assert (tmp_path / "from-file" / name).read_bytes() == (tmp_path / "from-lambda" / name).read_bytes()


def test_a_tau_mtl_formed_once_gives_the_same_masks_and_stores(case, tmp_path):
    """The pipeline forms tau_MTL once and hands it to the masks and to every store it builds:
    the files are byte-identical to those of a run that forms it again for each."""
    _, _, base_path, paths = case
    mtv = MultiTaskVector("ties", topk=20.0, agg="sum")
    with Checkpoints(base_path, paths) as ckpts:
        formed = {key: vector for key, _, vector in mtv_vectors(ckpts, mtv)}
        write_masks(tmp_path / "own.safetensors", ckpts, [0.2, 0.4], mtv)
        write_masks(tmp_path / "given.safetensors", ckpts, [0.2, 0.4], mtv, formed)
        compress(tmp_path / "own", ckpts, tall_mask_source_at(ckpts, 0.4, mtv), "int4")
        compress(tmp_path / "given", ckpts, tall_mask_source_at(ckpts, 0.4, mtv), "int4", formed)
    assert (tmp_path / "own.safetensors").read_bytes() == (tmp_path / "given.safetensors").read_bytes()
    for name in FILES.values():
        assert (tmp_path / "own" / name).read_bytes() == (tmp_path / "given" / name).read_bytes()


def test_per_task_lambdas_are_recorded_and_used(case, tmp_path):
    base, finetuned, base_path, paths = case
    lambdas = {"task0": 0.2, "task1": 0.5, "task2": 0.8}
    grid, chosen = tmp_path / "grid.safetensors", tmp_path / "chosen.safetensors"
    with Checkpoints(base_path, paths) as ckpts:
        write_masks(grid, ckpts, sorted(set(lambdas.values())), MultiTaskVector("ta"))
        with MaskFile(grid) as masks:
            write_selection(masks, lambdas, chosen)
        with MaskFile(chosen) as masks:
            compress(tmp_path / "s", ckpts, tall_mask_source(masks, ckpts))
    s = Store(tmp_path / "s")
    assert s.made == {"kind": "tall", "lambdas": lambdas}
    for t, (task, lam) in enumerate(lambdas.items()):
        assert_same(s.state(task), ref_tall_model(base, finetuned, t, lam), exact=True)


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_reduced_precision_vector(case, tmp_path, dtype):
    base, finetuned, base_path, paths = case
    exact = Store(build(tmp_path, base_path, paths, name="fp32"))
    small = Store(build(tmp_path, base_path, paths, dtype=dtype, name=dtype))
    assert small.sizes()["bytes"]["vector"] < exact.sizes()["bytes"]["vector"]
    for task in paths:
        a, b = exact.state(task), small.state(task)
        for key in a:
            if a[key].dtype.is_floating_point:
                assert torch.allclose(a[key].float(), b[key].float(), rtol=1e-2, atol=2e-2), key
            else:
                assert torch.equal(a[key], b[key])


@pytest.mark.parametrize("fmt", ["int8", "int4", "int3", "int2"])
def test_quantized_store_rebuilds_theta_0_plus_the_mask_times_the_dequantized_vector(case, tmp_path, fmt):
    """Bit for bit: theta_0 + m_t * v_hat, with v_hat = q * s the block-quantized tau_MTL and m_t
    the TALL mask of the unquantized tau_MTL."""
    base, finetuned, base_path, paths = case
    store = Store(build(tmp_path, base_path, paths, dtype=fmt, name=fmt))

    def update(t, taus):
        mtv = taus.sum(0)
        v_hat = codec.dequantize(*codec.quantize(mtv, fmt), mtv.shape)
        return v_hat * (taus[t].abs() > 0.4 * (mtv - taus[t]).abs())

    assert_rebuilds(store, base, finetuned, update)
    assert f"stored as {fmt}" in store.describe()


def test_any_task_is_decoded_from_its_own_mask_streams(case, tmp_path, monkeypatch):
    """Random access: rebuilding task t reads the mask models, the stream lengths and task t's
    streams, nothing of the other tasks."""
    from tallmerge.formats.tensorfile import TensorFile

    _, _, base_path, paths = case
    out = build(tmp_path, base_path, paths, dtype="int4")
    read = []
    original = TensorFile.get

    def spy(self, key):
        if self.path.name == FILES["masks"]:
            read.append(key)
        return original(self, key)

    monkeypatch.setattr(TensorFile, "get", spy)
    store = Store(out)
    for t, task in enumerate(paths):
        read.clear()
        store.state(task)
        assert sorted(read) == sorted(["probabilities", "lengths", f"streams/{t}"])


def test_reconstruct_all_writes_what_each_reconstruct_writes(case, tmp_path, capsys):
    _, _, base_path, paths = case
    out = build(tmp_path, base_path, paths, dtype="int8")
    status, stdout, _ = run(["reconstruct", out, "--all", "--out", tmp_path / "all"], capsys)
    assert status == 0 and "3 tasks rebuilt" in stdout
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == [f"{t}.safetensors" for t in paths]
    for task in paths:
        Store(out).reconstruct(task, tmp_path / f"one-{task}.safetensors")
        assert (tmp_path / "all" / f"{task}.safetensors").read_bytes() == (
            tmp_path / f"one-{task}.safetensors"
        ).read_bytes()
    fails(["reconstruct", out, "--out", tmp_path / "x"], capsys, "exactly one of --task NAME or --all")
    fails(["reconstruct", out, "--all", "--task", "task0", "--out", tmp_path / "x"], capsys, "exactly one of")


def test_reconstruct_all_writes_nothing_when_a_task_fails(built, tmp_path):
    manifest = json.loads((built / MANIFEST).read_text())
    manifest["mask_sha256"]["task2"] = "0" * 64
    manifest[MANIFEST_DIGEST] = manifest_digest(manifest)
    (built / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(TallmergeError, match="task 'task2' decodes to masks that do not match"):
        Store(built).reconstruct_all(tmp_path / "all")
    assert not (tmp_path / "all").exists()  # not even an empty folder
    (tmp_path / "all").mkdir()  # into a folder that exists: nothing placed in it
    with pytest.raises(TallmergeError, match="task 'task2' decodes to masks that do not match"):
        Store(built).reconstruct_all(tmp_path / "all")
    assert not list((tmp_path / "all").iterdir())


def module_with(state: dict) -> torch.nn.Module:
    """A module whose state dict has ``state``'s keys (dotted paths), zero-filled."""
    root = torch.nn.Module()
    for key, value in state.items():
        *path, leaf = key.split(".")
        node = root
        for part in path:
            if not hasattr(node, part):
                node.add_module(part, torch.nn.Module())
            node = getattr(node, part)
        node.register_buffer(leaf, torch.zeros_like(value))
    return root


def test_apply_switches_a_loaded_model_between_tasks_in_place(built, case, tmp_path):
    base = case[0]
    store = Store(built)
    module = module_with(base)
    buffers = dict(module.named_buffers())
    for task in ("task2", "task0", "task1"):
        store.apply(task, module)
        assert_same(dict(module.state_dict()), store.state(task), exact=True)
    assert all(b is buffers[k] for k, b in module.named_buffers())  # the same tensors, updated in place
    before = {k: v.clone() for k, v in module.state_dict().items()}
    manifest = json.loads((built / MANIFEST).read_text())
    manifest["mask_sha256"]["task0"] = "0" * 64
    manifest[MANIFEST_DIGEST] = manifest_digest(manifest)
    (built / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(TallmergeError, match="do not match their checksum"):
        Store(built).apply("task0", module)
    assert_same(dict(module.state_dict()), before, exact=True)  # a failed switch changes nothing
    with pytest.raises(TallmergeError, match="does not have the store's weights"):
        Store(built).apply("task1", module_with({"other.weight": torch.zeros(2)}))


def test_a_version_1_store_says_how_to_convert_it(built, capsys):
    manifest = json.loads((built / MANIFEST).read_text())
    manifest["version"] = 1
    manifest[MANIFEST_DIGEST] = manifest_digest(manifest)
    (built / MANIFEST).write_text(json.dumps(manifest))
    line = fails(["info", built], capsys, "format version 1", "`tallmerge compress`")
    assert "\n" not in line


def test_magnitude_masks_store(case, tmp_path):
    base, finetuned, base_path, paths = case
    with Checkpoints(base_path, paths) as ckpts:
        compress(tmp_path / "s", ckpts, magnitude_mask_source(ckpts, 25.0))
    s = Store(tmp_path / "s")
    assert s.made == {"kind": "magnitude", "topk": 25.0}
    for t, task in enumerate(paths):
        assert_same(s.state(task), ref_magnitude_model(base, finetuned, t, 25.0), exact=True)


def test_compress_is_deterministic(case, tmp_path):
    _, _, base_path, paths = case
    a = build(tmp_path, base_path, paths, name="a", dtype="bf16")
    b = build(tmp_path, base_path, paths, name="b", dtype="bf16")
    for name in [*FILES.values(), MANIFEST]:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_rerun_over_an_existing_store_replaces_it(case, tmp_path):
    _, _, base_path, paths = case
    out = build(tmp_path, base_path, paths, lam=0.4)
    build(tmp_path, base_path, paths, lam=0.6, dtype="bf16")
    s = Store(out)
    assert s.made["lambdas"] == dict.fromkeys(paths, 0.6) and s.manifest["vector_dtype"] == "bf16"
    s.verify()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_interrupted_compress_leaves_no_store_and_keeps_the_old_one(case, tmp_path, monkeypatch):
    _, _, base_path, paths = case

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(codec, "encode_masks", crash)
    with pytest.raises(KeyboardInterrupt):
        build(tmp_path, base_path, paths, name="new")
    assert not (tmp_path / "new").exists()
    monkeypatch.undo()
    old = build(tmp_path, base_path, paths, lam=0.4)
    before = {p.name: p.read_bytes() for p in old.iterdir()}
    monkeypatch.setattr(codec, "encode_masks", crash)
    with pytest.raises(KeyboardInterrupt):
        build(tmp_path, base_path, paths, lam=0.6)
    assert {p.name: p.read_bytes() for p in old.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_refuses_to_replace_what_is_not_a_store(case, tmp_path):
    _, _, base_path, paths = case
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(TallmergeError, match="not a tallmerge store"):
        build(tmp_path, base_path, paths, name="notes")
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"
    (tmp_path / "empty").mkdir()
    build(tmp_path, base_path, paths, name="empty")  # an empty folder is fine
    Store(tmp_path / "empty").verify()


# -- codecs ---------------------------------------------------------------------------------------
def test_magnitude_buckets_are_half_exponent_cells_below_the_largest():
    v = torch.tensor([0.0, 1.0, 0.75, 0.7, 0.5, 0.36, 0.25, -1.0, 1e-30, 0.0])
    positions = codec.Positions(v)
    # cells [2^e, 1.5 2^e) and [1.5 2^e, 2^(e+1)): 1.0 and -1.0 share the top cell, 0.75 is in
    # [0.75, 1), 0.7 and 0.5 in [0.5, 0.75), 0.36 and 0.25 in [0.25, 0.375); 1e-30 clips at 15;
    # zeros are not coded. Coding order: by bucket, then by index.
    assert positions.order.tolist() == [1, 7, 2, 3, 4, 5, 6, 8]
    assert positions.runs == [(0, 0, 2), (1, 2, 3), (2, 3, 5), (4, 5, 7), (15, 7, 8)]
    assert positions.buckets().tolist() == [0, 0, 1, 2, 2, 4, 4, 15]


def test_magnitude_buckets_follow_the_logarithm():
    g = torch.Generator().manual_seed(3)
    v = torch.randn(50_000, generator=g) * 10 ** torch.randint(-12, 4, (50_000,), generator=g).float()
    v[0] = 1e-45  # a subnormal: below every cell, so the last bucket
    positions = codec.Positions(v)
    a = v.double().abs()[torch.from_numpy(positions.order)]
    exponent = torch.floor(torch.log2(a))
    level = 2 * exponent + (a / 2**exponent >= 1.5)
    expected = torch.clamp(level.max() - level, max=codec.BUCKETS - 1)
    assert torch.equal(torch.from_numpy(positions.buckets()), expected.long())
    v[::3] = 0  # zeros are left out; every other index once, ascending within its bucket
    positions = codec.Positions(v)
    assert sorted(positions.order.tolist()) == torch.nonzero(v).flatten().tolist()
    for _, start, end in positions.runs:
        assert (np.diff(positions.order[start:end]) > 0).all()


def code_masks(masks, vector):
    positions = codec.Positions(vector)
    table, streams = codec.encode_masks([positions.bits(m) for m in masks], positions)
    assert table.dtype == torch.uint16 and table.shape == (len(masks), codec.BUCKETS)
    return positions, table, streams


@pytest.mark.parametrize("tasks", [1, 2, 5])
def test_mask_coding_round_trips_each_task_from_its_own_stream(tasks):
    g = torch.Generator().manual_seed(tasks)
    vector = torch.randn(60, 50, generator=g) * torch.rand(60, 50, generator=g) ** 4
    vector[::7] = 0
    masks = torch.rand(tasks, 60, 50, generator=g) < torch.linspace(0.05, 0.95, tasks)[:, None, None]
    positions, table, streams = code_masks(masks, vector)
    for t in reversed(range(tasks)):  # any order: a task needs nothing but its own stream
        decoded = codec.decode_mask(streams[t], codec.Positions(vector), table[t])
        assert torch.equal(decoded, masks[t] & (vector != 0))


def test_mask_coding_of_empty_and_zero_entries():
    masks = torch.ones(2, 4, 3, dtype=torch.bool)
    for vector in (torch.zeros(4, 3), torch.zeros(0, 3), torch.tensor(0.0)):
        m = masks[:, : vector.shape[0]] if vector.dim() else masks[:, 0, 0]
        positions, table, streams = code_masks(m, vector)
        decoded = codec.decode_mask(streams[1], positions, table[1])
        assert decoded.shape == vector.shape and not decoded.any()


def test_masks_that_follow_the_vector_code_far_below_one_bit():
    """Context modelling pays: masks on where |v| is large cost about the entropy of their noise."""
    g = torch.Generator().manual_seed(0)
    n = 200_000
    vector = torch.randn(n, generator=g)
    masks = torch.stack([(vector.abs() > 0.7) ^ (torch.rand(n, generator=g) < 0.05) for _ in range(2)])
    _, _, streams = code_masks(masks, vector)
    bits_per_weight = 32 * sum(s.numel() for s in streams) / (2 * n)
    assert 0.2 < bits_per_weight < 0.5  # H(0.05) = 0.29 per bit; a plain packbits is 1.0
    plain = masks.float().mean().item()
    assert bits_per_weight < 0.6 * -(plain * math.log2(plain) + (1 - plain) * math.log2(1 - plain))


@pytest.mark.parametrize("fmt", ["fp32", "bf16", "fp16"])
def test_float_vector_coding_round_trips_bit_for_bit(fmt):
    g = torch.Generator().manual_seed(1)
    v = torch.randn(4, 1000, generator=g) * 1e-3
    v[0, :500] = 0
    v[1, 0] = -0.0
    name, parts = codec.encode_vector(v, fmt)
    dtype = codec.FLOAT_FORMATS[fmt]
    assert name == "zstd" and set(parts) == {"values"}
    assert parts["values"].numel() < v.numel() * dtype.itemsize
    back = codec.decode_vector(name, parts.__getitem__, fmt, v.shape)
    assert back.dtype == dtype and back.shape == v.shape
    assert torch.equal(back.reshape(-1).view(torch.uint8), v.to(dtype).reshape(-1).view(torch.uint8))


def test_incompressible_vector_is_kept_raw():
    v = torch.tensor([1.5], dtype=torch.float32)
    name, parts = codec.encode_vector(v, "fp32")
    assert name == "raw" and torch.equal(parts["values"], v)
    assert torch.equal(codec.decode_vector(name, parts.__getitem__, "fp32", (1,)), v)


@pytest.mark.parametrize("fmt", ["int8", "int4", "int3", "int2"])
@pytest.mark.parametrize("shape", [(3, 300), (129,), (), (0, 5)], ids=["matrix", "odd", "scalar", "empty"])
def test_quantized_vector_is_within_half_a_step_of_each_value(fmt, shape):
    g = torch.Generator().manual_seed(2)
    v = torch.randn(shape, generator=g) * torch.rand(shape, generator=g) ** 3 * 1e-2
    if v.numel() > 200:
        v.view(-1)[:BLOCK] = 0  # an all-zero block
    name, parts = codec.encode_vector(v, fmt)
    back = codec.decode_vector(name, parts.__getitem__, fmt, v.shape)
    assert back.dtype == torch.float32 and back.shape == v.shape
    qmax = (1 << (codec.INT_FORMATS[fmt] - 1)) - 1
    flat = torch.nn.functional.pad(v.reshape(-1), (0, -v.numel() % BLOCK)).reshape(-1, BLOCK)
    step, exact = parts["scales"].float(), flat.abs().amax(1) / qmax
    assert parts["scales"].dtype == torch.bfloat16
    assert (step >= exact).all() and (step <= exact * (1 + 2**-7)).all()  # rounded up, by < 1 ulp
    error = torch.nn.functional.pad(back.reshape(-1) - v.reshape(-1), (0, -v.numel() % BLOCK))
    assert (error.reshape(-1, BLOCK).abs() <= step[:, None] * (0.5 + 1e-6)).all()
    assert torch.equal(back.reshape(-1)[v.reshape(-1) == 0], torch.zeros(int((v == 0).sum())))
    if v.numel() > 200:
        assert parts["values"].numel() < v.numel() * codec.INT_FORMATS[fmt] / 8 + 64


@pytest.mark.parametrize("fmt", ["int8", "int4", "int3", "int2"])
def test_packing_round_trips_every_level(fmt):
    bits = codec.INT_FORMATS[fmt]
    qmax = (1 << (bits - 1)) - 1
    q = np.tile(np.arange(-qmax, qmax + 1, dtype=np.int8), 7)
    packed = codec._pack(q, bits)
    assert packed.size == -(-q.size * bits // 8)
    assert np.array_equal(codec._unpack(packed, bits, q.size), q)


def test_int3_packs_eight_values_in_three_bytes_first_value_highest():
    """The stored layout: q + 4 in 3 bits each, the first value in the highest bits."""
    q = np.array([-3, -2, -1, 0, 1, 2, 3, 0], np.int8)  # 001 010 011 100 101 110 111 100
    assert codec._pack(q, 3).tolist() == [0x29, 0xCB, 0xBC]
    assert codec._pack(q[:3], 3).tolist() == [0x29, 0x80]  # ceil(9 / 8) bytes, padding bits 0


@pytest.mark.parametrize("fmt,value", [("fp16", 1e6), ("int8", float("nan")), ("int4", float("inf"))])
def test_a_vector_that_does_not_fit_its_format_is_an_error(fmt, value):
    with pytest.raises(TallmergeError, match=f"does not fit --vector-dtype {fmt}; use fp32"):
        codec.encode_vector(torch.tensor([value, 1.0]), fmt)


# -- the paper's accounting ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "arch, tasks, paper_store, paper_finetuned",
    [
        ("ViT-B-32", 8, 7.1, 23.3),
        ("ViT-B-32", 14, 7.7, 40.2),
        ("ViT-B-32", 20, 8.2, 57.0),
        ("ViT-L-14", 8, 23.1, 79.1),
        ("ViT-L-14", 14, 24.9, 137.4),
        ("ViT-L-14", 20, 26.8, 195.8),
    ],
)
def test_accounting_reproduces_the_papers_storage_figures(arch, tasks, paper_store, paper_finetuned):
    assert round(projected_gbit(arch, tasks, vector_bits=32, mask_bits=1), 1) == paper_store
    assert round(finetuned_gbit(arch, tasks), 1) == paper_finetuned


# -- bad input -----------------------------------------------------------------------------------
@pytest.fixture
def built(case, tmp_path):
    _, _, base_path, paths = case
    return build(tmp_path, base_path, paths)


@pytest.mark.parametrize("part", sorted(FILES))
def test_altered_store_file_is_refused(built, tmp_path, part, capsys):
    path = built / FILES[part]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    out = tmp_path / "rebuilt.safetensors"
    line = fails(
        ["reconstruct", built, "--task", "task0", "--out", out],
        capsys,
        str(path),
        "corrupted store file (checksum does not match the manifest)",
    )
    assert "\n" not in line and not out.exists()
    # the same from the library, where verification runs beside the decoding: its error wins
    with pytest.raises(TallmergeError, match="checksum does not match the manifest"):
        Store(built).state("task1")


@pytest.mark.parametrize("part", sorted(FILES))
def test_truncated_or_missing_store_file_is_refused(built, tmp_path, part, capsys):
    path = built / FILES[part]
    path.write_bytes(path.read_bytes()[:-9])
    out = tmp_path / "rebuilt.safetensors"
    fails(["reconstruct", built, "--task", "task0", "--out", out], capsys, str(path), "the manifest records")
    path.unlink()
    fails(["reconstruct", built, "--task", "task0", "--out", out], capsys, str(path), "missing")
    assert not out.exists()


def test_bad_manifests_are_refused(built, tmp_path, capsys):
    manifest = built / MANIFEST
    good = json.loads(manifest.read_text())
    out = tmp_path / "rebuilt.safetensors"
    manifest.write_text(manifest.read_text()[:100])
    fails(["reconstruct", built, "--task", "task0", "--out", out], capsys, str(manifest), "not JSON")
    manifest.write_text(json.dumps({**good, "version": 99}))
    fails(["info", built], capsys, str(manifest), "version 99")
    manifest.write_text(json.dumps({k: v for k, v in good.items() if k != "tensors"}))
    fails(["info", built], capsys, str(manifest), "corrupted manifest")
    escaped = json.loads(json.dumps(good))
    escaped["files"]["base"]["name"] = "../base.safetensors"
    manifest.write_text(json.dumps(escaped))
    fails(["info", built], capsys, str(manifest), "unexpected file names")
    manifest.unlink()
    fails(["info", built], capsys, str(manifest), "not a complete tallmerge store")
    fails(["info", tmp_path / "nowhere"], capsys, "nowhere", "no such store")
    assert not out.exists()


def test_codec_mismatch_is_caught_by_the_mask_checksum(built, tmp_path):
    """A stream that decodes differently (e.g. another codec version), with file checksums intact."""
    manifest = json.loads((built / MANIFEST).read_text())
    manifest["mask_sha256"]["task1"] = "0" * 64
    manifest[MANIFEST_DIGEST] = manifest_digest(manifest)  # a consistent manifest
    (built / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(TallmergeError, match="task 'task1' decodes to masks that do not match"):
        Store(built).reconstruct("task1", tmp_path / "t1.safetensors")
    assert not (tmp_path / "t1.safetensors").exists()
    Store(built).reconstruct("task0", tmp_path / "t0.safetensors")


def test_unknown_task_lists_the_available_ones(built, tmp_path, capsys):
    fails(
        ["reconstruct", built, "--task", "cars", "--out", tmp_path / "x.safetensors"],
        capsys,
        "no task 'cars'",
        "available: task0, task1, task2",
    )


# -- the command line ----------------------------------------------------------------------------
def test_compress_reconstruct_info_commands(case, tmp_path, capsys):
    base, finetuned, base_path, paths = case
    out = tmp_path / "store"
    status, stdout, _ = run(
        [
            "compress",
            "--base",
            base_path,
            *finetuned_args(paths),
            "--lambda",
            "0.4",
            "--mtv",
            "ties",
            "--vector-dtype",
            "bf16",
            "--out",
            out,
        ],
        capsys,
    )
    assert status == 0 and "masks" in stdout and "bf16" in stdout
    status, stdout, _ = run(["info", out], capsys)
    assert status == 0
    for needle in (
        "format version 2",
        "task0, task1, task2",
        "task1=0.4",
        "base",
        "vector",
        "masks",
        "total",
        "bits/weight",
    ):
        assert needle in stdout, needle
    status, stdout, _ = run(
        ["reconstruct", out, "--task", "task2", "--out", tmp_path / "t2.safetensors"], capsys
    )
    assert status == 0 and "task2" in stdout
    assert set(load_file(tmp_path / "t2.safetensors")) == set(base)


# -- TSV-C: per-task low-rank task vectors ------------------------------------------------------
@pytest.mark.parametrize("tasks,zero", [(3, ()), (3, (0,)), (1, ())], ids=["T3", "zero-task", "T1"])
def test_tsv_c_store_rebuilds_each_tasks_low_rank_vector_exactly(tmp_path, tasks, zero):
    """fp32: theta_0 + (U_k diag(S_k)) V_k^T per matrix (k = r // T), the whole tau_t elsewhere,
    bit for bit with the factors of ``maths.top_triplets`` (whose product is the SVD's rank-k
    approximation up to rounding); T = 1 keeps the full rank, so it rebuilds the fine-tuned model
    up to rounding."""
    from tallmerge.merging import maths
    from tallmerge.store.lowrank import compress_low_rank, open_store

    base, finetuned = make_case(seed=19, tasks=tasks, dyadic=False, zero_tasks=zero)
    base_path, paths = save_case(tmp_path, base, finetuned)
    with Checkpoints(base_path, paths) as ckpts:
        compress_low_rank(tmp_path / "tsvc", ckpts)
    store = open_store(tmp_path / "tsvc")

    def update(t, taus):
        if taus.dim() != 3:
            return taus[t]
        k = maths.task_rank(taus)
        u, sv, vh = torch.linalg.svd(taus[t], full_matrices=False)
        uk, sk, vk = maths.top_triplets(taus[t], k)
        torch.testing.assert_close((uk * sk) @ vk.T, (u[:, :k] * sv[:k]) @ vh[:k], atol=1e-5, rtol=1e-5)
        return (uk * sk) @ vk.T

    assert_rebuilds(store, base, finetuned, update)
    if tasks == 1:
        rebuilt = store.state("task0")
        for key, theta in base.items():
            if theta.is_floating_point():
                torch.testing.assert_close(rebuilt[key].float(), finetuned[0][key].float(), atol=2e-3, rtol=0)
    for t in zero:
        assert_same(store.state(f"task{t}"), base, exact=True)
    assert "scheme tsv-c" in store.describe()


def test_emr_and_tsv_c_through_the_command_line(case, tmp_path, capsys):
    base, finetuned, base_path, paths = case
    for scheme in ("emr", "tsv-c"):
        out = tmp_path / scheme
        args = ["compress", "--base", base_path, *finetuned_args(paths), "--scheme", scheme, "--out", out]
        status, stdout, _ = run([*args, "--vector-dtype", "bf16"], capsys)
        assert status == 0 and "verified" in stdout and "bf16" in stdout
        status, stdout, _ = run(["info", out], capsys)
        assert status == 0 and ("EMR masks" if scheme == "emr" else "scheme tsv-c") in stdout
        status, _, _ = run(
            ["reconstruct", out, "--task", "task1", "--out", tmp_path / f"{scheme}.safetensors"], capsys
        )
        assert status == 0 and set(load_file(tmp_path / f"{scheme}.safetensors")) == set(base)
        fails(
            ["reconstruct", out, "--task", "nope", "--out", tmp_path / "x.safetensors"],
            capsys,
            "no task 'nope'",
        )
        # a damaged factor or mask file is named, and nothing is written
        victim = out / ("factors.safetensors" if scheme == "tsv-c" else "masks.safetensors")
        data = bytearray(victim.read_bytes())
        data[-1] ^= 0xFF
        victim.write_bytes(bytes(data))
        fails(
            ["reconstruct", out, "--task", "task0", "--out", tmp_path / "y.safetensors"],
            capsys,
            str(victim),
            "checksum",
        )
        assert not (tmp_path / "y.safetensors").exists()


def test_compress_bad_input(case, tmp_path, capsys):
    base, _, base_path, paths = case
    out = tmp_path / "store"
    args = ["compress", "--base", base_path, *finetuned_args(paths), "--out", out]
    fails(args, capsys, "exactly one of --lambda L or --masks MASKS")
    fails([*args, "--scheme", "emr", "--lambda", "0.4"], capsys, "--lambda does not apply to --scheme emr")
    fails([*args, "--scheme", "tsv-c", "--mtv", "ties"], capsys, "--mtv does not apply to --scheme tsv-c")
    fails([*args, "--scheme", "tsv-c", "--topk", "10"], capsys, "--topk does not apply to --scheme tsv-c")
    fails([*args, "--scheme", "lora"], capsys, "invalid choice: 'lora'")
    fails([*args, "--lambda", "0.4", "--masks", "m.safetensors"], capsys, "exactly one of")
    fails([*args, "--lambda", "-1"], capsys, "lambda must be a positive number")
    masks = tmp_path / "m.safetensors"
    with Checkpoints(base_path, paths) as ckpts:
        write_masks(masks, ckpts, [0.4], MultiTaskVector("ta"))
    fails([*args, "--masks", masks, "--mtv", "ties"], capsys, str(masks), "not --mtv ties")
    # a base of another model: names the file and the tensor
    from safetensors.torch import save_file

    other = {k: v for k, v in base.items() if k != "embed"}
    save_file(other, tmp_path / "other.safetensors")
    fails(
        [
            "compress",
            "--base",
            tmp_path / "other.safetensors",
            *finetuned_args(paths),
            "--lambda",
            "0.4",
            "--out",
            out,
        ],
        capsys,
        "unexpected tensor 'embed'",
    )
    # masks made for other checkpoints
    fails(
        [
            "compress",
            "--base",
            base_path,
            *finetuned_args({k: paths[k] for k in ("task0", "task1")}),
            "--masks",
            masks,
            "--out",
            out,
        ],
        capsys,
        str(masks),
        "masks are for tasks",
    )
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_ties_passes_run_once_per_compress(case, tmp_path, monkeypatch):
    """--lambda with TIES computes the masks and then the vector: the whole-model passes are shared."""
    from tallmerge.merging import statistics

    calls = []
    real = statistics.magnitude_thresholds
    monkeypatch.setattr(statistics, "magnitude_thresholds", lambda *a: calls.append(a) or real(*a))
    _, _, base_path, paths = case
    build(tmp_path, base_path, paths, mtv=MultiTaskVector("ties", topk=30.0, agg="sum"))
    assert len(calls) == 1


def test_the_overhead_is_the_projection_beyond_the_fp32_zero_shot_model():
    from tallmerge.store.accounting import overhead_gbit

    for arch in ("ViT-B-32", "ViT-L-14"):
        base = projected_gbit(arch, 20, vector_bits=0, mask_bits=0)
        assert overhead_gbit(arch, 20, 10.0, 0.5) == pytest.approx(projected_gbit(arch, 20, 10.0, 0.5) - base)
    assert round(projected_gbit("ViT-B-32", 20, 0, 0), 2) == 3.63  # the paper's fp32 ViT-B/32


def test_thread_count_comes_from_the_environment(monkeypatch):
    from tallmerge.store import pool

    monkeypatch.setenv("TALLMERGE_THREADS", "3")
    assert pool.workers() == 3
    assert list(pool.ordered_map(lambda x: x * x, range(10))) == [x * x for x in range(10)]
    monkeypatch.setenv("TALLMERGE_THREADS", "0")
    with pytest.raises(TallmergeError, match="TALLMERGE_THREADS must be a positive integer, got '0'"):
        pool.workers()
    monkeypatch.delenv("TALLMERGE_THREADS")
    assert pool.workers() >= 1


def test_a_failing_entry_stops_the_ordered_map():
    from tallmerge.store import pool

    def square_or_fail(x):
        if x == 5:
            raise ValueError("entry 5")
        return x * x

    seen = []
    with pytest.raises(ValueError, match="entry 5"):
        for value in pool.ordered_map(square_or_fail, range(100), threads=2):
            seen.append(value)
    assert seen == [0, 1, 4, 9, 16]
