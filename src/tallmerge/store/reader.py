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

See :mod:`tallmerge.store.codec` for both codings. The manifest (JSON) records the format and
version, the tasks in coding order, how the masks were made (``{"kind": "tall", "lambdas":
{task: lambda}}`` or ``{"kind": "magnitude", "topk": k}``), tau_MTL's recipe, the vector dtype,
every tensor (key, dtype, shape, vector codec or ``null`` for entries copied from the base), the
number of weights, each file's size and SHA-256, a SHA-256 of each task's decoded mask bits, the
fine-tuned checkpoints' total size, the fingerprints of the checkpoints the store was built from
(``sources``, see :meth:`Checkpoints.sources`), and ``manifest_sha256``: a SHA-256 of all the
rest (:func:`manifest_digest`), so that any edit of the manifest is detected.

Writing is atomic: the store is built in a hidden folder beside ``out`` and renamed into place
once complete, so an interrupted ``compress`` leaves no folder that looks like a store. A folder
already at ``out`` is replaced only if it is a store (recognised by its manifest's format, and
holding nothing but the files that manifest lists); anything else is refused. Reading verifies
the manifest's checksum and every file's size and checksum before decoding, and each decoded
mask against its own checksum.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from tallmerge.store import codec
from tallmerge.merging import maths
from tallmerge.merging.checkpoints import Checkpoints
from tallmerge.merging.recipes import MTV, check_topk
from tallmerge.merging.statistics import magnitude_thresholds
from tallmerge.errors import TallmergeError, one_line
from tallmerge.formats.files import clean_stale_temporaries, temporary_dir, temporary_name, write_json
from tallmerge.merging.masks import MaskFile, check_lambdas, write_masks
from tallmerge.formats.tensorfile import DTYPE_NAMES, DTYPES, TensorFile, spool_tensors, write_tensors

FORMAT = "tallmerge.store"
VERSION = 1
MANIFEST = "manifest.json"
MANIFEST_DIGEST = "manifest_sha256"
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
                      lambda key: maths.magnitude_masks(ckpts.read(key)[1], thresholds))


@contextlib.contextmanager
def tall_masks_at(ckpts: Checkpoints, lam: float, mtv: MTV, beside: str | os.PathLike) -> Iterator[MaskSource]:
    """TALL masks of every task at one lambda, computed into a temporary folder beside the
    path ``beside`` (the store being written)."""
    check_lambdas([lam])
    with temporary_dir(Path(beside).parent / f"{Path(beside).name}-masks") as tmp:
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
    out = Path(out)
    replaced = replaceable_store(out)  # refuse a folder that is not a store before any work
    merged = source.mtv.prepare(ckpts)
    with temporary_dir(out) as tmp:
        shutil.copyfile(ckpts.base.path, tmp / FILES["base"])
        model, codecs = codec.MaskModel(len(tasks)), {}
        with spool_tensors(tmp / FILES["vector"], {"format": FORMAT, "dtype": vector_dtype}) as put:
            for key, _, taus in ckpts.sweep("store: vector"):
                vector = merged(taus).to(dtype)
                if not torch.isfinite(vector).all():
                    raise TallmergeError(f"tau_MTL tensor '{key}' does not fit --vector-dtype {vector_dtype}; use fp32")
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
            "sources": ckpts.sources(),
        }
        manifest[MANIFEST_DIGEST] = manifest_digest(manifest)
        write_json(manifest, tmp / MANIFEST)
        _move_into_place(tmp, out, replaced)
    return manifest


def manifest_digest(manifest: dict) -> str:
    """SHA-256 of a manifest's content without its own digest (key order and spacing aside)."""
    content = {k: v for k, v in manifest.items() if k != MANIFEST_DIGEST}
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def replaceable_store(out: Path) -> set[str] | None:
    """What may be removed at ``out`` to put a new store there: None if nothing is there,
    else the names of the store's own files (an empty folder: none). Anything else at ``out``
    (a file, a folder with other content, a manifest of another format) is refused, naming it."""
    if not os.path.lexists(out):
        return None
    if out.is_symlink() or not out.is_dir():
        raise TallmergeError(f"{out}: exists and is not a tallmerge store; refusing to replace it")
    present = {entry.name for entry in os.scandir(out)}
    if not present:
        return set()
    listed = _listed_files(out / MANIFEST)
    if listed is None:
        raise TallmergeError(f"{out}: exists and is not a tallmerge store; refusing to replace it")
    foreign = sorted(present - listed)
    if foreign:
        raise TallmergeError(f"{out}: holds '{foreign[0]}', which is not part of the store; refusing to replace it "
                             "(move it elsewhere or choose another --out)")
    return present


def _listed_files(manifest_path: Path) -> set[str] | None:
    """The files a store manifest (of any version) lists, with itself; None if ``manifest_path``
    is not a tallmerge store manifest."""
    try:
        if manifest_path.is_symlink() or not manifest_path.is_file() or manifest_path.stat().st_size > (64 << 20):
            return None
        manifest = json.loads(manifest_path.read_text())
        if not (isinstance(manifest, dict) and manifest.get("format") == FORMAT and type(manifest.get("version")) is int):
            return None
        names = {entry["name"] for entry in manifest["files"].values()}
    except (OSError, ValueError, RecursionError, KeyError, TypeError, AttributeError):
        return None
    if not all(isinstance(n, str) and re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", n) for n in names):
        return None
    return {MANIFEST, *names}


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
        raise TallmergeError(f"{out}: replaced, but files added to the old store meanwhile were kept in {kept}") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


# -- reading ------------------------------------------------------------------------------------
class _Corrupted(Exception):
    """A manifest field that is missing, mistyped or inconsistent (what, in a few words)."""


_MISSING = object()


def _field(mapping: dict, key: str, kind: type):
    value = mapping.get(key, _MISSING)
    if value is _MISSING:
        raise _Corrupted(f"missing key '{key}'")
    if type(value) is not kind and not (kind is dict and isinstance(value, dict)):
        raise _Corrupted(f"'{key}' is not {'an' if kind is int else 'a'} {kind.__name__}")
    return value


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
            manifest = json.loads(manifest_path.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            raise TallmergeError(f"{manifest_path}: corrupted manifest (not JSON)") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise TallmergeError(f"{manifest_path}: not a tallmerge store manifest")
        if manifest.get("version") != VERSION:
            raise TallmergeError(f"{manifest_path}: store format version {manifest.get('version')!r}, this tallmerge reads {VERSION}")
        try:
            self._read_manifest(manifest)
        except _Corrupted as e:
            raise TallmergeError(f"{manifest_path}: corrupted manifest ({e})") from None
        if manifest.get(MANIFEST_DIGEST) != manifest_digest(manifest):
            what = "has no checksum: written by an older tallmerge, rebuild it with `tallmerge compress`" \
                if MANIFEST_DIGEST not in manifest else "altered since it was written: its checksum does not match"
            raise TallmergeError(f"{manifest_path}: {what}")
        self.manifest = manifest
        self._verified = False

    def _read_manifest(self, manifest: dict) -> None:
        """Every field, typed and consistent with the others (else :class:`_Corrupted`)."""
        tasks = _field(manifest, "tasks", list)
        if not tasks or not all(isinstance(t, str) and t for t in tasks) or len(set(tasks)) != len(tasks):
            raise _Corrupted("'tasks' must list distinct task names")
        self.tasks: list[str] = tasks
        dtype = _field(manifest, "vector_dtype", str)
        if dtype not in VECTOR_DTYPES:
            raise _Corrupted(f"unknown vector_dtype {dtype[:20]!r}")
        self.vector_dtype = VECTOR_DTYPES[dtype]
        self.tensors = []
        for entry in _field(manifest, "tensors", list):
            if not isinstance(entry, dict):
                raise _Corrupted("a 'tensors' entry is not an object")
            key, name, shape = _field(entry, "key", str), _field(entry, "dtype", str), _field(entry, "shape", list)
            vector_codec = entry.get("vector", _MISSING)
            if name not in DTYPES or not all(type(d) is int and d >= 0 for d in shape):
                raise _Corrupted(f"tensor '{key}' has a bad dtype or shape")
            if vector_codec is _MISSING or (vector_codec is not None) != DTYPES[name].is_floating_point \
                    or not (vector_codec is None or isinstance(vector_codec, str)):
                raise _Corrupted(f"tensor '{key}' has a bad vector codec")
            self.tensors.append((key, DTYPES[name], tuple(shape), vector_codec))
        if len({key for key, *_ in self.tensors}) != len(self.tensors):
            raise _Corrupted("a tensor is listed twice")
        files = _field(manifest, "files", dict)
        self.files = {}
        for part, name in FILES.items():
            entry = _field(files, part, dict)
            size, digest = _field(entry, "bytes", int), _field(entry, "sha256", str)
            if _field(entry, "name", str) != name:  # the names are fixed: a manifest never points elsewhere
                raise _Corrupted(f"unexpected file names: {entry['name'][:40]!r} for the {part} file")
            if size < 0 or not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise _Corrupted(f"bad size or checksum for the {part} file")
            self.files[part] = (self.path / name, size, digest)
        masks = _field(manifest, "mask_sha256", dict)
        if set(masks) != set(self.tasks) or not all(isinstance(v, str) for v in masks.values()):
            raise _Corrupted("'mask_sha256' must have one checksum per task")
        self.mask_sha256 = dict(masks)
        try:
            self.mtv = MTV(**_field(manifest, "mtv", dict))
        except (TypeError, TallmergeError):
            raise _Corrupted("bad 'mtv'") from None
        self.made = _field(manifest, "masks", dict)
        if self.made.get("kind") == "tall":
            lambdas = self.made.get("lambdas")
            if not isinstance(lambdas, dict) or set(lambdas) != set(self.tasks) \
                    or not all(type(v) in (int, float) for v in lambdas.values()):
                raise _Corrupted("'masks' must give a lambda per task")
        elif self.made.get("kind") != "magnitude" or type(self.made.get("topk")) not in (int, float):
            raise _Corrupted("'masks' must be TALL masks with lambdas or magnitude masks with a top-k")
        self.weights = _field(manifest, "weights", int)
        counted = sum(math.prod(shape) for _, _, shape, c in self.tensors if c is not None)
        if self.weights != counted:
            raise _Corrupted(f"'weights' is {self.weights}, the tensors hold {counted}")
        mask_bytes = _field(manifest, "mask_bytes", dict)
        if set(mask_bytes) != set(self.tasks) or not all(type(v) is int and v >= 0 for v in mask_bytes.values()):
            raise _Corrupted("'mask_bytes' must have one size per task")
        if _field(manifest, "finetuned_bytes", int) < 0:
            raise _Corrupted("negative 'finetuned_bytes'")

    def verify(self) -> None:
        """Every file present, of the recorded size and SHA-256, and the base's tensors those
        the manifest lists; an error says what is wrong with each file that is."""
        problems = []
        for path, size, digest in self.files.values():
            try:
                if not path.is_file():
                    problems.append(f"{path}: missing from the store")
                elif path.stat().st_size != size:
                    problems.append(f"{path}: corrupted store file ({path.stat().st_size} bytes, the manifest records {size})")
                elif _sha256(path) != digest:
                    problems.append(f"{path}: corrupted store file (checksum does not match the manifest)")
            except OSError as e:
                problems.append(f"{path}: could not be verified ({e.strerror or one_line(e)})")
        if problems:
            raise TallmergeError("; ".join(problems))
        with TensorFile(self.files["base"][0]) as base:
            listed = [(key, dtype, shape) for key, dtype, shape, _ in self.tensors]
            if listed != [(key, base.dtype(key), base.shape(key)) for key in base.keys]:
                raise TallmergeError(f"{self.path / MANIFEST}: corrupted manifest (its tensors are not the base's)")
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
                rebuilt = (theta.float() + vector.float() * mask).to(dtype)
                if not torch.isfinite(rebuilt).all():
                    raise TallmergeError(f"{self.path}: task '{task}' rebuilds tensor '{key}' beyond what {dtype} holds")
                yield key, rebuilt
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
        tasks, weights = len(self.tasks), max(self.weights, 1)
        return {
            "bytes": nbytes,
            "finetuned_bytes": int(self.manifest["finetuned_bytes"]),
            "bits_per_weight": {"vector": 8 * nbytes["vector"] / weights,
                                "mask": 8 * nbytes["masks"] / (weights * tasks)},
            "mask_bits_per_weight_by_task": {t: 8 * int(b) / weights for t, b in self.manifest["mask_bytes"].items()},
        }

    def describe(self) -> str:
        """What ``tallmerge info`` prints, once every file is verified."""
        if not self._verified:
            self.verify()
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
            f"({100 * nbytes['total'] / max(sizes['finetuned_bytes'], 1):.1f}% of the fine-tuned checkpoints' {sizes['finetuned_bytes']:,})",
            "",
            "mask bits per weight by task: "
            + ", ".join(f"{t} {b:.3f}" for t, b in sizes["mask_bits_per_weight_by_task"].items()),
            "",
            "verified: every file has the size and SHA-256 that the manifest records",
        ]
        return "\n".join(lines)


# -- the paper's storage accounting (Wang et al., ICML 2024) ---------------------------------------------
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

