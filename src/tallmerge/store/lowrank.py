"""The per-task low-rank store (TSV-C, Gargiulo et al., CVPR 2025): task t is rebuilt as
theta_0 + its own low-rank task vector, with no merged vector and no masks.

A folder, format ``tallmerge.store`` version 2 (the same as version 1, which is read too) with
``"scheme": "tsv-c"``::

    manifest.json        as a mask store's (tasks, vector dtype, tensors, weights, files with
                         sizes and SHA-256, fine-tuned bytes, sources, manifest_sha256), and the
                         rank kept per matrix
    base.safetensors     theta_0, a byte copy of the base checkpoint
    factors.safetensors  per task index t and floating-point entry: for a matrix, ``t/<key>/us``
                         (U_k diag(S_k), [rows, k]) and ``t/<key>/vh`` (V_k^T, [k, columns]),
                         k = max(1, min(rows, columns) // T); any other entry whole as ``t/<key>``;
                         in the vector dtype (fp32, bf16 or fp16: the factors are not quantized)

Task t = theta_0 + us @ vh on matrices (computed in float32), theta_0 + tau_t elsewhere, stored
in the base's dtypes. Writing is atomic and reading verifies the manifest and every file as for
mask stores (:mod:`tallmerge.store.manifest`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import torch

from tallmerge.errors import TallmergeError
from tallmerge.formats.files import temporary_dir
from tallmerge.formats.tensorfile import DTYPES, TensorFile, spool_tensors
from tallmerge.merging import maths
from tallmerge.merging.checkpoints import Checkpoints
from tallmerge.store.build import file_entries, seal, tensor_entries
from tallmerge.store.codec import FLOAT_FORMATS
from tallmerge.store.manifest import (
    FORMAT,
    MANIFEST,
    VERSION,
    Corrupted,
    field,
    replaceable_store,
)
from tallmerge.store.reader import Store

SCHEME = "tsv-c"
FILES = {"base": "base.safetensors", "factors": "factors.safetensors"}


def compress_low_rank(out: str | os.PathLike, ckpts: Checkpoints, vector_dtype: str = "fp32") -> dict:
    """Write the TSV-C store of ``ckpts`` to the folder ``out`` (one pass); return its manifest."""
    if vector_dtype not in FLOAT_FORMATS:
        raise TallmergeError(
            f"--scheme {SCHEME} stores its factors as {', '.join(FLOAT_FORMATS)}, not {vector_dtype!r}"
        )
    dtype, out = FLOAT_FORMATS[vector_dtype], Path(out)
    replaced = replaceable_store(out)
    ranks = {}
    with temporary_dir(out) as tmp:
        shutil.copyfile(ckpts.base.path, tmp / FILES["base"])
        with spool_tensors(tmp / FILES["factors"], {"format": FORMAT, "scheme": SCHEME}) as put:
            for key, _, taus in ckpts.sweep("store: low-rank factors"):
                if taus.dim() != 3:
                    for t, tau in enumerate(taus):
                        put(f"{t}/{key}", _fits(tau.to(dtype), key, vector_dtype))
                    continue
                k = ranks[key] = maths.task_rank(taus)
                for t, tau in enumerate(taus):
                    u, s, v = maths.top_triplets(tau.to(ckpts.device), k)
                    put(f"{t}/{key}/us", _fits((u * s).to("cpu", dtype), key, vector_dtype))
                    put(f"{t}/{key}/vh", _fits(v.T.to("cpu", dtype).contiguous(), key, vector_dtype))
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "scheme": SCHEME,
            "tasks": ckpts.names,
            "vector_dtype": vector_dtype,
            "tensors": tensor_entries(ckpts, "rank", ranks),
            "weights": ckpts.numel,
            "files": file_entries(tmp, FILES),
            "finetuned_bytes": sum(f.path.stat().st_size for f in ckpts.files),
            "sources": ckpts.sources(),
        }
        seal(manifest, tmp, out, replaced)
    return manifest


def _fits(tensor: torch.Tensor, key: str, vector_dtype: str) -> torch.Tensor:
    if not maths.all_finite(tensor):
        raise TallmergeError(
            f"a low-rank factor of '{key}' does not fit --vector-dtype {vector_dtype}; use fp32"
        )
    return tensor


class LowRankStore(Store):
    """A TSV-C store opened for reading: :class:`Store`'s manifest and file checks, with the
    factors in place of the vector and masks."""

    READS = (1, VERSION)  # the format did not change in version 2

    def _read_manifest(self, manifest: dict) -> None:
        tasks = field(manifest, "tasks", list)
        if not tasks or not all(isinstance(t, str) and t for t in tasks) or len(set(tasks)) != len(tasks):
            raise Corrupted("'tasks' must list distinct task names")
        self.tasks = tasks
        dtype = field(manifest, "vector_dtype", str)
        if dtype not in FLOAT_FORMATS:
            raise Corrupted(f"unknown vector_dtype {dtype[:20]!r}")
        self.tensors = []
        for entry in field(manifest, "tensors", list):
            if not isinstance(entry, dict):
                raise Corrupted("a 'tensors' entry is not an object")
            key, name, shape = (
                field(entry, "key", str),
                field(entry, "dtype", str),
                field(entry, "shape", list),
            )
            rank = entry.get("rank")
            if name not in DTYPES or not all(type(d) is int and d >= 0 for d in shape):
                raise Corrupted(f"tensor '{key}' has a bad dtype or shape")
            if rank is not None and (type(rank) is not int or rank < 1 or len(shape) != 2):
                raise Corrupted(f"tensor '{key}' has a bad rank")
            self.tensors.append((key, DTYPES[name], tuple(shape), rank))
        self.weights = field(manifest, "weights", int)
        files = field(manifest, "files", dict)
        self.files = {}
        for part, name in FILES.items():
            entry = field(files, part, dict)
            if field(entry, "name", str) != name:
                raise Corrupted(f"unexpected file name for the {part} file")
            self.files[part] = (self.path / name, field(entry, "bytes", int), field(entry, "sha256", str))
        if field(manifest, "finetuned_bytes", int) < 0:
            raise Corrupted("negative 'finetuned_bytes'")

    def model(self, task: str) -> Iterator[tuple[str, torch.Tensor]]:
        """Task ``task``'s rebuilt weights, one entry at a time; only its own factors are read."""
        self._check_task(task)
        if not self._verified:
            self.verify()
        t = self.tasks.index(task)
        with TensorFile(self.files["base"][0]) as base, TensorFile(self.files["factors"][0]) as factors:
            for key, dtype, _, rank in self.tensors:
                theta = base.get(key)
                if not dtype.is_floating_point:
                    yield key, theta
                    continue
                if rank is None:
                    update = factors.get(f"{t}/{key}").float()
                else:
                    update = factors.get(f"{t}/{key}/us").float() @ factors.get(f"{t}/{key}/vh").float()
                rebuilt = (theta.float() + update).to(dtype)
                if not maths.all_finite(rebuilt):
                    raise TallmergeError(
                        f"{self.path}: task '{task}' rebuilds tensor '{key}' beyond what {dtype} holds"
                    )
                yield key, rebuilt

    def _rebuild(self, tasks: list[str]) -> Iterator[tuple[str, list[torch.Tensor]]]:
        """Every task asked for, entry by entry (:meth:`Store.reconstruct_all`)."""
        models = [self.model(task) for task in tasks]
        for entries in zip(*models):
            yield entries[0][0], [tensor for _, tensor in entries]

    def _made_how(self) -> dict:
        return {"scheme": SCHEME}

    def sizes(self) -> dict:
        nbytes = {part: size for part, (_, size, _) in self.files.items()}
        nbytes["manifest"] = (self.path / MANIFEST).stat().st_size
        nbytes["total"] = sum(nbytes.values())
        weights = max(self.weights, 1)
        return {
            "bytes": nbytes,
            "finetuned_bytes": int(self.manifest["finetuned_bytes"]),
            "bits_per_weight": {"factors": 8 * nbytes["factors"] / (weights * len(self.tasks))},
        }

    def describe(self) -> str:
        if not self._verified:
            self.verify()
        sizes = self.sizes()
        nbytes = sizes["bytes"]
        ranks = sorted({r for *_, r in self.tensors if r is not None})
        return "\n".join(
            [
                f"{self.path}: {FORMAT} format version {self.manifest['version']}, scheme {SCHEME} (per-task low-rank task vectors)",
                f"tasks ({len(self.tasks)}): {', '.join(self.tasks)}",
                f"rank kept per matrix: {', '.join(map(str, ranks)) or 'none'}; factors stored as {self.manifest['vector_dtype']}",
                f"weights per model: {self.weights:,}",
                "",
                f"{'component':<10} {'bytes':>14} {'bits/weight':>12}",
                f"{'base':<10} {nbytes['base']:>14,} {8 * nbytes['base'] / max(self.weights, 1):>12.2f}",
                f"{'factors':<10} {nbytes['factors']:>14,} {sizes['bits_per_weight']['factors']:>12.3f}  per task",
                f"{'manifest':<10} {nbytes['manifest']:>14,}",
                f"{'total':<10} {nbytes['total']:>14,}   "
                f"({100 * nbytes['total'] / max(sizes['finetuned_bytes'], 1):.1f}% of the fine-tuned checkpoints' {sizes['finetuned_bytes']:,})",
                "",
                "verified: every file has the size and SHA-256 that the manifest records",
            ]
        )


def open_store(path: str | os.PathLike):
    """A store of any scheme: :class:`LowRankStore` for TSV-C, else a mask store
    (:class:`tallmerge.store.reader.Store`, which checks everything else)."""
    manifest_path = Path(path) / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_bytes())
    except (OSError, ValueError, RecursionError):
        manifest = None
    if (
        isinstance(manifest, dict)
        and manifest.get("format") == FORMAT
        and manifest.get("version") in LowRankStore.READS
        and manifest.get("scheme") == SCHEME
    ):
        return LowRankStore(path)
    return Store(path)
