"""Building a compressed store (format: :mod:`tallmerge.store.manifest`) from checkpoints and
their masks: which masks go in (:class:`MaskSource`), and :func:`compress`, which writes the store
atomically (built in a hidden folder beside ``out``, renamed into place once complete).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tallmerge.errors import TallmergeError
from tallmerge.formats.files import temporary_dir, temporary_name, write_json
from tallmerge.formats.tensorfile import DTYPE_NAMES, TensorFile, spool_tensors
from tallmerge.merging import maths
from tallmerge.merging.checkpoints import Checkpoints
from tallmerge.merging.masks import MaskFile, check_lambdas, write_masks
from tallmerge.merging.recipes import OPTIONS, MultiTaskVector
from tallmerge.merging.statistics import magnitude_thresholds, prepare_recipe
from tallmerge.store import codec
from tallmerge.store.manifest import (
    FILES,
    FORMAT,
    LENGTHS,
    MANIFEST,
    MANIFEST_DIGEST,
    PROBABILITIES,
    VECTOR_DTYPES,
    VERSION,
    file_sha256,
    manifest_digest,
    replaceable_store,
)


# -- what goes in -------------------------------------------------------------------------------
@dataclass(frozen=True)
class MaskSource:
    """The masks to store: how tau_MTL is formed, how the masks were made (for the manifest),
    and ``stacked(key)``: bool [T, *shape] in the checkpoints' task order."""

    mtv: MultiTaskVector
    made: dict
    stacked: Callable[[str], torch.Tensor]


def tall_mask_source(masks: MaskFile, ckpts: Checkpoints) -> MaskSource:
    """TALL masks from a mask file with one lambda per task (a selection)."""
    masks.check_matches(ckpts)
    selection = masks.selection()
    lambdas = {task: masks.lambdas[task][0] for task in ckpts.names}
    return MaskSource(
        masks.mtv,
        {"kind": "tall", "lambdas": lambdas},
        lambda key: masks.stacked(key, ckpts.names, selection),
    )


def magnitude_mask_source(ckpts: Checkpoints, topk: float) -> MaskSource:
    """The magnitude-masking baseline: each task's top-k% |tau_t| as its mask on sum_t tau_t."""
    OPTIONS["topk"].validate(topk, "top-k")
    thresholds = magnitude_thresholds(ckpts, topk)
    return MaskSource(
        MultiTaskVector("ta"),
        {"kind": "magnitude", "topk": topk},
        lambda key: maths.magnitude_masks(ckpts.read(key)[1], thresholds),
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
        lambda key: maths.emr_masks(ckpts.read(key)[1], maths.emr_unified(ckpts.read(key)[1])),
    )


@contextlib.contextmanager
def tall_mask_source_at(
    ckpts: Checkpoints, lam: float, mtv: MultiTaskVector, beside: str | os.PathLike
) -> Iterator[MaskSource]:
    """TALL masks of every task at one lambda, computed into a temporary folder beside the
    path ``beside`` (the store being written)."""
    check_lambdas([lam])
    with temporary_dir(Path(beside).parent / f"{Path(beside).name}-masks") as tmp:
        write_masks(Path(tmp) / "masks.safetensors", ckpts, [lam], mtv)
        with MaskFile(Path(tmp) / "masks.safetensors") as masks:
            yield tall_mask_source(masks, ckpts)


def compress(
    out: str | os.PathLike, ckpts: Checkpoints, source: MaskSource, vector_dtype: str = "fp32"
) -> dict:
    """Write the store for ``ckpts`` with ``source``'s masks to the folder ``out``; return its
    manifest. Two passes: the vector (and the mask statistics), then the coded masks."""
    if vector_dtype not in VECTOR_DTYPES:
        raise TallmergeError(
            f"unknown vector dtype {vector_dtype!r} (choose from {', '.join(VECTOR_DTYPES)})"
        )
    dtype, tasks = VECTOR_DTYPES[vector_dtype], ckpts.names
    out = Path(out)
    replaced = replaceable_store(out)  # refuse a folder that is not a store before any work
    merged = prepare_recipe(source.mtv, ckpts)
    with temporary_dir(out) as tmp:
        shutil.copyfile(ckpts.base.path, tmp / FILES["base"])
        model, codecs = codec.MaskModel(len(tasks)), {}
        with spool_tensors(tmp / FILES["vector"], {"format": FORMAT, "dtype": vector_dtype}) as put:
            for key, _, taus in ckpts.sweep("store: vector"):
                vector = merged(taus).to(dtype)
                if not torch.isfinite(vector).all():
                    raise TallmergeError(
                        f"tau_MTL tensor '{key}' does not fit --vector-dtype {vector_dtype}; use fp32"
                    )
                codecs[key], stored = codec.encode_vector(vector)
                put(key, stored)
                model.observe(source.stacked(key), vector)
        table = model.table()
        digests, lengths = {t: hashlib.sha256() for t in tasks}, []
        with (
            TensorFile(tmp / FILES["vector"]) as vectors,
            spool_tensors(tmp / FILES["masks"], {"format": FORMAT}) as put,
        ):
            put(PROBABILITIES, table)
            for key in ckpts.float_keys:  # the vector as the decoder will see it
                vector = codec.decode_vector(codecs[key], vectors.get(key), dtype, ckpts.base.shape(key))
                masks = source.stacked(key) & (vector != 0)
                streams = codec.encode_masks(masks, vector, table)
                put(key, torch.cat(streams))
                lengths.append([s.numel() for s in streams])
                for task, mask in zip(tasks, masks):
                    digests[task].update(np.packbits(mask.reshape(-1).numpy()).tobytes())
            put(LENGTHS, torch.tensor(lengths, dtype=torch.int64).reshape(len(lengths), len(tasks)))
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "tasks": tasks,
            "masks": source.made,
            "mtv": source.mtv.to_dict(),
            "vector_dtype": vector_dtype,
            "codecs": {
                "vector": f"byte planes, zstd level {codec.ZSTD_LEVEL}, or raw",
                "masks": f"range coding, context = ({codec.BUCKETS} magnitude buckets, earlier tasks on)",
            },
            "tensors": tensor_entries(ckpts, "vector", codecs),
            "weights": ckpts.numel,
            "files": file_entries(tmp, FILES),
            "mask_sha256": {t: d.hexdigest() for t, d in digests.items()},
            "mask_bytes": dict(
                zip(tasks, (4 * sum(n) for n in zip(*lengths)) if lengths else [0] * len(tasks))
            ),
            "finetuned_bytes": sum(f.path.stat().st_size for f in ckpts.files),
            "sources": ckpts.sources(),
        }
        seal(manifest, tmp, out, replaced)
    return manifest


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
