"""The compressed multi-task store: T fine-tuned models as theta_0 + one merged vector + T masks.

Task t is rebuilt as theta_0 + m_t * v (the paper's TALL reconstruction when v = tau_MTL and
m_t is the task's TALL mask). A store is a folder, format ``tallmerge.store`` version 1::

    manifest.json        what is stored and how (below); written last
    base.safetensors     theta_0, a byte copy of the base checkpoint (every key and dtype)
    vector.safetensors   v per floating-point entry, in the store's vector dtype (fp32, bf16 or
                         fp16); each entry either raw (its dtype and shape) or, where smaller,
                         its byte planes zstd-coded (a uint8 stream under the same key)
    masks.safetensors    ``probabilities`` (uint16 [T, 16 * T], the context model); per entry,
                         ``<key>``: the T tasks' coded mask bits, one stream of uint32 words per
                         task, concatenated in task order; ``lengths`` (int64 [entries, T]): each
                         stream's length in words

See :mod:`tallmerge.codec` for both codings. The manifest (JSON) records the format and
version, the tasks in coding order, how the masks were made (``{"kind": "tall", "lambdas":
{task: lambda}}`` or ``{"kind": "magnitude", "topk": k}``), tau_MTL's recipe, the vector dtype,
every tensor (key, dtype, shape, vector codec or ``null`` for entries copied from the base), the
number of weights, each file's size and SHA-256, a SHA-256 of each task's decoded mask bits, and
the fine-tuned checkpoints' total size.

Writing is atomic: the store is built in a hidden folder beside ``out`` and renamed into place
once complete (replacing an earlier store there), so an interrupted ``compress`` leaves no
folder that looks like a store. Reading verifies every file's checksum before decoding, and
each decoded mask against its own checksum.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from tallmerge import codec, methods
from tallmerge.engine import MTV, Checkpoints, check_topk, magnitude_thresholds
from tallmerge.errors import TallmergeError
from tallmerge.io import current_umask, write_json
from tallmerge.masks import MaskFile, check_lambdas, write_masks
from tallmerge.streaming import DTYPE_NAMES, DTYPES, TensorFile, spool_tensors, write_tensors

FORMAT = "tallmerge.store"
VERSION = 1
MANIFEST = "manifest.json"
FILES = {"base": "base.safetensors", "vector": "vector.safetensors", "masks": "masks.safetensors"}
VECTOR_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
PROBABILITIES = "probabilities"
LENGTHS = "lengths"


# -- what goes in -------------------------------------------------------------------------------
@dataclass(frozen=True)
class MaskSource:
    """The masks to store: how tau_MTL is formed, how the masks were made (for the manifest),
    and ``stacked(key)``: bool [T, *shape] in the checkpoints' task order."""

    mtv: MTV
    made: dict
    stacked: Callable[[str], torch.Tensor]


def tall_masks(masks: MaskFile, ckpts: Checkpoints) -> MaskSource:
    """TALL masks from a mask file with one lambda per task (a selection)."""
    masks.check_matches(ckpts)
    selection = masks.selection()
    lambdas = {task: masks.lambdas[task][0] for task in ckpts.names}
    return MaskSource(masks.mtv, {"kind": "tall", "lambdas": lambdas},
                      lambda key: masks.stacked(key, ckpts.names, selection))


def magnitude_masks(ckpts: Checkpoints, topk: float) -> MaskSource:
    """The magnitude-masking baseline: each task's top-k% |tau_t| as its mask on sum_t tau_t."""
    check_topk(topk)
    thresholds = magnitude_thresholds(ckpts, topk)
    return MaskSource(MTV("ta"), {"kind": "magnitude", "topk": topk},
                      lambda key: methods.magnitude_masks(ckpts.read(key)[1], thresholds))


@contextlib.contextmanager
def tall_masks_at(ckpts: Checkpoints, lam: float, mtv: MTV, scratch: str | os.PathLike) -> Iterator[MaskSource]:
    """TALL masks of every task at one lambda, computed into a temporary file in ``scratch``."""
    check_lambdas([lam])
    Path(scratch).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".tallmerge-masks.", dir=scratch) as tmp:
        write_masks(Path(tmp) / "masks.safetensors", ckpts, [lam], mtv)
        with MaskFile(Path(tmp) / "masks.safetensors") as masks:
            yield tall_masks(masks, ckpts)


# -- writing ------------------------------------------------------------------------------------
def compress(out: str | os.PathLike, ckpts: Checkpoints, source: MaskSource, vector_dtype: str = "fp32") -> dict:
    """Write the store for ``ckpts`` with ``source``'s masks to the folder ``out``; return its
    manifest. Two passes: the vector (and the mask statistics), then the coded masks."""
    if vector_dtype not in VECTOR_DTYPES:
        raise TallmergeError(f"unknown vector dtype {vector_dtype!r} (choose from {', '.join(VECTOR_DTYPES)})")
    dtype, tasks = VECTOR_DTYPES[vector_dtype], ckpts.names
    merged = source.mtv.prepare(ckpts)
    with _building(Path(out)) as tmp:
        shutil.copyfile(ckpts.base.path, tmp / FILES["base"])
        model, codecs = codec.MaskModel(len(tasks)), {}
        with spool_tensors(tmp / FILES["vector"], {"format": FORMAT, "dtype": vector_dtype}) as put:
            for key, _, taus in ckpts.sweep("store: vector"):
                vector = merged(taus).to(dtype)
                codecs[key], stored = codec.encode_vector(vector)
                put(key, stored)
                model.observe(source.stacked(key), vector)
        table = model.table()
        digests, lengths = {t: hashlib.sha256() for t in tasks}, []
        with TensorFile(tmp / FILES["vector"]) as vectors, spool_tensors(tmp / FILES["masks"], {"format": FORMAT}) as put:
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
            "mtv": dataclasses.asdict(source.mtv),
            "vector_dtype": vector_dtype,
            "codecs": {"vector": f"byte planes, zstd level {codec.ZSTD_LEVEL}, or raw",
                       "masks": f"range coding, context = ({codec.BUCKETS} magnitude buckets, earlier tasks on)"},
            "tensors": [
                {"key": k, "dtype": DTYPE_NAMES[ckpts.base.dtype(k)], "shape": list(ckpts.base.shape(k)),
                 "vector": codecs.get(k)}
                for k in ckpts.keys
            ],
            "weights": ckpts.numel,
            "files": {part: {"name": name, "bytes": (tmp / name).stat().st_size, "sha256": _sha256(tmp / name)}
                      for part, name in FILES.items()},
            "mask_sha256": {t: d.hexdigest() for t, d in digests.items()},
            "mask_bytes": dict(zip(tasks, (4 * sum(n) for n in zip(*lengths)) if lengths else [0] * len(tasks))),
            "finetuned_bytes": sum(f.path.stat().st_size for f in ckpts.files),
        }
        write_json(manifest, tmp / MANIFEST)
    return manifest


@contextlib.contextmanager
def _building(out: Path) -> Iterator[Path]:
    """A hidden folder beside ``out``, renamed to ``out`` if the block completes."""
    if out.exists() and not (out.is_dir() and ((out / MANIFEST).is_file() or not any(out.iterdir()))):
        raise TallmergeError(f"{out}: exists and is not a tallmerge store; refusing to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp's 0700 would make the store private
    try:
        yield tmp
        if out.exists():  # replace the old store: move it aside, move the new one in, delete the old
            old = tmp.with_suffix(".old")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


# -- reading ------------------------------------------------------------------------------------
class Store:
    """A store opened for reading: the manifest is checked on open, the files' checksums on
    :meth:`verify` (done once, before the first model is rebuilt)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not self.path.is_dir():
            raise TallmergeError(f"{self.path}: no such store (not a folder)")
        if not manifest_path.is_file():
            raise TallmergeError(f"{manifest_path}: missing; {self.path} is not a complete tallmerge store")
        try:
            manifest = json.loads(manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise TallmergeError(f"{manifest_path}: corrupted manifest (not JSON)") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise TallmergeError(f"{manifest_path}: not a tallmerge store manifest")
        if manifest.get("version") != VERSION:
            raise TallmergeError(f"{manifest_path}: store format version {manifest.get('version')!r}, this tallmerge reads {VERSION}")
        try:
            self.tasks: list[str] = [str(t) for t in manifest["tasks"]]
            self.vector_dtype = VECTOR_DTYPES[manifest["vector_dtype"]]
            self.tensors = [(e["key"], DTYPES[e["dtype"]], tuple(int(d) for d in e["shape"]), e["vector"])
                            for e in manifest["tensors"]]
            self.files = {part: (self.path / name, int(manifest["files"][part]["bytes"]), str(manifest["files"][part]["sha256"]))
                          for part, name in FILES.items() if manifest["files"][part]["name"] == name}
            self.mask_sha256 = {t: str(manifest["mask_sha256"][t]) for t in self.tasks}
            self.mtv = MTV(**manifest["mtv"])
            self.made, self.weights = dict(manifest["masks"]), int(manifest["weights"])
        except (KeyError, TypeError, ValueError, AttributeError, TallmergeError):
            raise TallmergeError(f"{manifest_path}: corrupted manifest") from None
        if len(self.files) != len(FILES):  # the names are fixed: a manifest never points elsewhere
            raise TallmergeError(f"{manifest_path}: corrupted manifest (unexpected file names)")
        self.manifest = manifest
        self._verified = False

    def verify(self) -> None:
        """Every file present, of the recorded size and SHA-256; an error names the first bad one."""
        for path, size, digest in self.files.values():
            if not path.is_file():
                raise TallmergeError(f"{path}: missing from the store")
            if path.stat().st_size != size:
                raise TallmergeError(f"{path}: corrupted store file ({path.stat().st_size} bytes, the manifest records {size})")
            if _sha256(path) != digest:
                raise TallmergeError(f"{path}: corrupted store file (checksum does not match the manifest)")
        self._verified = True

    def _check_task(self, task: str) -> None:
        if task not in self.tasks:
            raise TallmergeError(f"{self.path}: no task '{task}' in this store (available: {', '.join(self.tasks)})")

    def model(self, task: str) -> Iterator[tuple[str, torch.Tensor]]:
        """Task ``task``'s rebuilt weights, ``(key, tensor)`` one entry at a time in file order:
        theta_0 + m_t * v for floating-point entries (computed in float32, stored in the base's
        dtype), theta_0 for the others. The files are verified first; the decoded masks'
        checksum is checked after the last entry, so consume the whole iterator (as
        :meth:`state` and :meth:`reconstruct` do) before trusting the result."""
        self._check_task(task)
        if not self._verified:
            self.verify()
        index = self.tasks.index(task)
        base_path, vector_path, masks_path = (self.files[p][0] for p in FILES)
        with TensorFile(base_path) as base, TensorFile(vector_path) as vectors, TensorFile(masks_path) as masks:
            table, lengths = masks.get(PROBABILITIES), masks.get(LENGTHS)
            digest, entry = hashlib.sha256(), 0
            for key, dtype, shape, vector_codec in self.tensors:
                theta = base.get(key)
                if vector_codec is None:
                    yield key, theta
                    continue
                vector = codec.decode_vector(vector_codec, vectors.get(key), self.vector_dtype, shape)
                streams = masks.get(key).split(lengths[entry].tolist())
                mask = codec.decode_mask(streams.__getitem__, index, vector, table)
                entry += 1
                digest.update(np.packbits(mask.reshape(-1).numpy()).tobytes())
                yield key, (theta.float() + vector.float() * mask).to(dtype)
            if digest.hexdigest() != self.mask_sha256[task]:
                raise TallmergeError(f"{masks_path}: task '{task}' decodes to masks that do not match their checksum")

    def state(self, task: str) -> dict[str, torch.Tensor]:
        """Task ``task``'s rebuilt weights in memory (for small models and evaluation)."""
        return dict(self.model(task))

    def reconstruct(self, task: str, out: str | os.PathLike) -> None:
        """Write task ``task``'s rebuilt model to ``out`` (safetensors, the base's keys and
        dtypes), atomically: a failed check leaves nothing behind."""
        self._check_task(task)
        specs = [(key, dtype, shape) for key, dtype, shape, _ in self.tensors]
        metadata = {"store": str(self.path), "task": task, "masks": self.made, "vector_dtype": self.manifest["vector_dtype"]}
        with write_tensors(out, specs, metadata) as put:
            for key, tensor in self.model(task):
                put(key, tensor)

    # -- sizes --
    def sizes(self) -> dict:
        """Bytes on disk by component, bits per weight, and the fine-tuned checkpoints' bytes."""
        nbytes = {part: size for part, (_, size, _) in self.files.items()}
        nbytes["manifest"] = (self.path / MANIFEST).stat().st_size
        nbytes["total"] = sum(nbytes.values())
        tasks = len(self.tasks)
        return {
            "bytes": nbytes,
            "finetuned_bytes": int(self.manifest["finetuned_bytes"]),
            "bits_per_weight": {"vector": 8 * nbytes["vector"] / self.weights,
                                "mask": 8 * nbytes["masks"] / (self.weights * tasks)},
            "mask_bits_per_weight_by_task": {t: 8 * int(b) / self.weights for t, b in self.manifest["mask_bytes"].items()},
        }

    def describe(self) -> str:
        """What ``tallmerge info`` prints."""
        sizes = self.sizes()
        made = self.made
        if made.get("kind") == "tall":
            how = "TALL masks, lambda " + ", ".join(f"{t}={made['lambdas'][t]:g}" for t in self.tasks)
        else:
            how = f"magnitude masks, top-{made.get('topk')}% of each task vector"
        nbytes, bpw = sizes["bytes"], sizes["bits_per_weight"]
        lines = [
            f"{self.path}: {FORMAT} format version {VERSION}",
            f"tasks ({len(self.tasks)}, in coding order): {', '.join(self.tasks)}",
            f"masks: {how}",
            f"merged vector: {self.mtv}, stored as {self.manifest['vector_dtype']}",
            f"weights per model: {self.weights:,} (floating-point entries of {sum(1 for *_, c in self.tensors if c is not None)} tensors)",
            "",
            f"{'component':<10} {'bytes':>14} {'bits/weight':>12}",
            f"{'base':<10} {nbytes['base']:>14,} {8 * nbytes['base'] / self.weights:>12.2f}",
            f"{'vector':<10} {nbytes['vector']:>14,} {bpw['vector']:>12.2f}",
            f"{'masks':<10} {nbytes['masks']:>14,} {bpw['mask']:>12.3f}  per task mask",
            f"{'manifest':<10} {nbytes['manifest']:>14,}",
            f"{'total':<10} {nbytes['total']:>14,}   "
            f"({100 * nbytes['total'] / sizes['finetuned_bytes']:.1f}% of the fine-tuned checkpoints' {sizes['finetuned_bytes']:,})",
            "",
            "mask bits per weight by task: "
            + ", ".join(f"{t} {b:.3f}" for t, b in sizes["mask_bits_per_weight_by_task"].items()),
        ]
        return "\n".join(lines)


# -- the paper's storage accounting (DESIGN.md) ---------------------------------------------------
PAPER_MODELS = {  # visual-encoder parameters, text-side parameters (embedding and projection)
    "ViT-B-32": (87_849_216, 25_599_489),
    "ViT-L-14": (303_966_208, 38_595_841),
}


def projected_gbit(arch: str, tasks: int, vector_bits: float, mask_bits: float) -> float:
    """Storage in Gbit (1e9 bits) of ``tasks`` models of ``arch`` kept as the paper counts them:
    the full fp32 zero-shot model (visual + text side) + one merged vector over the visual
    encoder at ``vector_bits`` per weight + ``tasks`` masks at ``mask_bits`` per weight."""
    visual, text = PAPER_MODELS[arch]
    return ((visual + text) * 32 + visual * (vector_bits + tasks * mask_bits)) / 1e9


def finetuned_gbit(arch: str, tasks: int) -> float:
    """The fine-tuned checkpoints in the same accounting: text side once + T fp32 visual encoders."""
    visual, text = PAPER_MODELS[arch]
    return (text + tasks * visual) * 32 / 1e9

