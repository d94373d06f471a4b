"""Building a compressed store (format: :mod:`tallmerge.store.manifest`) from checkpoints and
their masks: which masks go in (:class:`MaskSource`), and :func:`compress`, which writes the store
atomically (built in a hidden folder beside ``out``, renamed into place once complete).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from tallmerge.errors import TallmergeError
from tallmerge.formats.files import temporary_dir, temporary_name, write_json
from tallmerge.formats.tensorfile import DTYPE_NAMES, spool_tensors
from tallmerge.merging import maths
from tallmerge.merging.checkpoints import Checkpoints
from tallmerge.merging.masks import MaskFile, check_tall_inputs
from tallmerge.merging.recipes import OPTIONS, MultiTaskVector
from tallmerge.merging.statistics import entry_vector, magnitude_thresholds
from tallmerge.store import codec
from tallmerge.store.manifest import (
    FILES,
    FORMAT,
    LENGTHS,
    MANIFEST,
    MANIFEST_DIGEST,
    PROBABILITIES,
    VERSION,
    file_sha256,
    manifest_digest,
    replaceable_store,
    scales_key,
    streams_key,
)
from tallmerge.store.pool import ordered_map


# -- what goes in -------------------------------------------------------------------------------
@dataclass(frozen=True)
class MaskSource:
    """The masks to store: how tau_MTL is formed, how the masks were made (for the manifest),
    and ``stacked(key, taus, mtv)``: the masks of entry ``key``, bool [T, *shape] in the
    checkpoints' task order, given its task vectors [T, *shape] and tau_MTL (float32)."""

    mtv: MultiTaskVector
    made: dict
    stacked: Callable[[str, torch.Tensor, torch.Tensor], torch.Tensor]


def tall_mask_source(masks: MaskFile, ckpts: Checkpoints) -> MaskSource:
    """TALL masks from a mask file with one lambda per task (a selection)."""
    masks.check_matches(ckpts)
    selection = masks.selection()
    lambdas = {task: masks.lambdas[task][0] for task in ckpts.names}
    return MaskSource(
        masks.mtv,
        {"kind": "tall", "lambdas": lambdas},
        lambda key, taus, mtv: masks.stacked(key, ckpts.names, selection),
    )


def tall_mask_source_at(ckpts: Checkpoints, lam: float, mtv: MultiTaskVector) -> MaskSource:
    """TALL masks of every task at one lambda, computed as the store is written."""
    check_tall_inputs(ckpts, [lam])
    return MaskSource(
        mtv,
        {"kind": "tall", "lambdas": dict.fromkeys(ckpts.names, lam)},
        lambda key, taus, vector: maths.tall_masks(taus, vector, lam),
    )


def magnitude_mask_source(ckpts: Checkpoints, topk: float) -> MaskSource:
    """The magnitude-masking baseline: each task's top-k% |tau_t| as its mask on sum_t tau_t."""
    OPTIONS["topk"].validate(topk, "top-k")
    thresholds = magnitude_thresholds(ckpts, topk)
    return MaskSource(
        MultiTaskVector("ta"),
        {"kind": "magnitude", "topk": topk},
        lambda key, taus, mtv: maths.magnitude_masks(taus, thresholds),
    )


def emr_mask_source(ckpts: Checkpoints) -> MaskSource:
    """EMR-Merging (Huang et al., NeurIPS 2024): the unified vector tau_uni (sign of sum_t tau_t,
    the largest magnitude among the tasks agreeing with it), task t's mask where tau_t agrees
    with tau_uni, and one rescaler per task, s_t = sum |tau_t| / sum |m_t * tau_uni| over the
    whole model (one pass here); task t = theta_0 + s_t * m_t * tau_uni. No validation data."""
    totals = torch.zeros(len(ckpts), dtype=torch.float64)
    kept = torch.zeros(len(ckpts), dtype=torch.float64)
    for _, _, taus in ckpts.sweep("EMR rescalers"):
        unified = maths.emr_unified(taus)
        masks = maths.emr_masks(taus, unified)
        totals += taus.abs().reshape(len(taus), -1).sum(1, dtype=torch.float64)
        kept += (masks * unified.abs()).reshape(len(taus), -1).sum(1, dtype=torch.float64)
    rescalers = {
        task: float(total / k) if k > 0 else 1.0 for task, total, k in zip(ckpts.names, totals, kept)
    }
    return MaskSource(
        MultiTaskVector("emr"),
        {"kind": "emr", "rescalers": rescalers},
        lambda key, taus, unified: maths.emr_masks(taus, unified),
    )


def compress(
    out: str | os.PathLike,
    ckpts: Checkpoints,
    source: MaskSource,
    vector_dtype: str = "fp32",
    vectors: Mapping[str, torch.Tensor] | None = None,
) -> dict:
    """Write the store for ``ckpts`` with ``source``'s masks to the folder ``out``; return its
    manifest. One pass over the checkpoints: worker threads each take an entry (read it, form
    tau_MTL and the masks, code them; :mod:`tallmerge.store.pool`), this thread writes them in
    order. ``vectors``: tau_MTL already formed by ``source.mtv`` (entry -> tensor), for a caller
    that builds several stores of one vector; otherwise it is formed here."""
    codec.check_format(vector_dtype)
    tasks = ckpts.names
    out = Path(out)
    replaced = replaceable_store(out)  # refuse a folder that is not a store before any work
    clash = sorted(k for k in ckpts.float_keys if scales_key(k) in ckpts.float_keys)
    if clash:
        raise TallmergeError(
            f"tensor '{scales_key(clash[0])}' clashes with the store's name for the scales of '{clash[0]}'"
        )
    merged = entry_vector(source.mtv, ckpts, vectors)

    def code(key):  # in a worker thread: one entry, from the checkpoints to its coded streams
        _, taus = ckpts.read(key)
        vector = merged(key, taus)
        masks = source.stacked(key, taus, vector)
        del taus
        try:
            name, parts = codec.encode_vector(vector, vector_dtype)
        except TallmergeError as e:
            raise TallmergeError(f"tau_MTL tensor '{key}' {e}") from None
        stored = codec.decode_vector(name, parts.__getitem__, vector_dtype, vector.shape)
        positions = codec.Positions(stored)  # the decoder's view: as it will read the vector
        bits = [positions.bits(m) for m in masks]
        table, streams = codec.encode_masks(bits, positions)
        return key, name, parts, table, streams, [codec.bits_digest(b) for b in bits]

    with temporary_dir(out) as tmp:
        shutil.copyfile(ckpts.base.path, tmp / FILES["base"])
        codecs, digests = {}, {t: hashlib.sha256() for t in tasks}
        tables, lengths, coded = [], [], [[] for _ in tasks]  # the masks, held until the end
        with spool_tensors(tmp / FILES["vector"], {"format": FORMAT, "dtype": vector_dtype}) as put:
            keys = tqdm(ckpts.float_keys, desc="store", unit="tensor", disable=None, leave=False)
            for key, name, parts, table, streams, packed in ordered_map(code, keys):
                codecs[key] = name
                put(key, parts["values"])
                if "scales" in parts:
                    put(scales_key(key), parts["scales"])
                tables.append(table)
                lengths.append([stream.numel() for stream in streams])
                for t, (task, stream, bits) in enumerate(zip(tasks, streams, packed)):
                    coded[t].append(stream)
                    digests[task].update(bits)
        with spool_tensors(tmp / FILES["masks"], {"format": FORMAT}) as put:
            put(
                PROBABILITIES,
                torch.stack(tables)
                if tables
                else torch.zeros(0, len(tasks), codec.BUCKETS, dtype=torch.uint16),
            )
            put(LENGTHS, torch.tensor(lengths, dtype=torch.int64).reshape(-1, len(tasks)).T.contiguous())
            for t, streams in enumerate(coded):
                put(streams_key(t), torch.cat(streams) if streams else torch.zeros(0, dtype=torch.uint32))
        sizes = {task: 4 * sum(n[t] for n in lengths) for t, task in enumerate(tasks)}
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "tasks": tasks,
            "masks": source.made,
            "mtv": source.mtv.to_dict(),
            "vector_dtype": vector_dtype,
            "codecs": {
                "vector": VECTOR_CODING[vector_dtype in codec.INT_FORMATS],
                "masks": f"range coding per task, context = {codec.BUCKETS} magnitude buckets of the vector, "
                "one table per entry",
            },
            "tensors": tensor_entries(ckpts, "vector", codecs),
            "weights": ckpts.numel,
            "files": file_entries(tmp, FILES),
            "mask_sha256": {t: d.hexdigest() for t, d in digests.items()},
            "mask_bytes": sizes,
            "finetuned_bytes": sum(f.path.stat().st_size for f in ckpts.files),
            "sources": ckpts.sources(),
        }
        seal(manifest, tmp, out, replaced)
    return manifest


VECTOR_CODING = {
    False: f"byte planes, zstd level {codec.ZSTD_LEVEL}, or raw",
    True: f"blocks of {codec.BLOCK} with a bfloat16 absmax scale each, packed integers, zstd level {codec.ZSTD_LEVEL}, or raw",
}


def tensor_entries(ckpts: Checkpoints, name: str, values: dict) -> list[dict]:
    """The manifest's ``tensors``: every entry of the base (key, dtype, shape) and ``name``: its
    value in ``values`` (None for entries not there)."""
    return [
        {
            "key": k,
            "dtype": DTYPE_NAMES[ckpts.base.dtype(k)],
            "shape": list(ckpts.base.shape(k)),
            name: values.get(k),
        }
        for k in ckpts.keys
    ]


def file_entries(tmp: Path, files: dict[str, str]) -> dict:
    """The manifest's ``files``: each part's name, size and SHA-256 in the folder ``tmp``."""
    return {
        part: {"name": name, "bytes": (tmp / name).stat().st_size, "sha256": file_sha256(tmp / name)}
        for part, name in files.items()
    }


def seal(manifest: dict, tmp: Path, out: Path, replaced: set[str] | None) -> None:
    """Give the finished store in ``tmp`` its manifest (with its own digest, written last) and
    move it to ``out``."""
    manifest[MANIFEST_DIGEST] = manifest_digest(manifest)
    write_json(manifest, tmp / MANIFEST)
    _move_into_place(tmp, out, replaced)


def _move_into_place(tmp: Path, out: Path, replaced: set[str] | None) -> None:
    """Rename the finished store ``tmp`` to ``out``. An old store there is set aside first
    (under a name that the next run restores if this one dies in between), and then only the
    files it was found to hold are removed."""
    if replaced is None and not os.path.lexists(out):
        os.rename(tmp, out)
        return
    if replaceable_store(out) != replaced:
        raise TallmergeError(f"{out}: changed while the store was being built; refusing to replace it")
    old = temporary_name(out, "old")
    os.rename(out, old)
    os.rename(tmp, out)
    for name in replaced or ():
        Path(old, name).unlink(missing_ok=True)
    try:
        old.rmdir()
    except OSError:  # something was added meanwhile: keep it, visibly
        kept = out.parent / f"{out.name}.replaced-{os.getpid()}"
        os.rename(old, kept)
        raise TallmergeError(
            f"{out}: replaced, but files added to the old store meanwhile were kept in {kept}"
        ) from None
