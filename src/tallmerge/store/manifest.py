"""The compressed store's format: its files, its manifest and how the manifest is checked.

Task t is rebuilt as theta_0 + m_t * v (the paper's TALL reconstruction when v = tau_MTL and
m_t is the task's TALL mask). A store is a folder, format ``tallmerge.store`` version 2::

    manifest.json        what is stored and how (below); written last
    base.safetensors     theta_0, a byte copy of the base checkpoint (every key and dtype)
    vector.safetensors   v per floating-point entry, in the store's vector dtype: fp32, bf16 or
                         fp16 (its byte planes zstd-coded, a uint8 stream under the entry's key,
                         or raw where that is smaller), or int8, int4, int3 or int2 (the packed
                         block-quantized integers under the key, coded the same way, and
                         ``scales/<key>``: one bfloat16 scale per block of 128 values)
    masks.safetensors    ``probabilities`` (uint16 [entries, T, 16]: each floating-point entry's
                         context model), ``lengths`` (int64 [T, entries]: the words of each
                         task's stream of each entry) and, per task index t, ``streams/<t>``:
                         task t's coded mask bits of every entry, one after the other (uint32
                         words), so a task is decoded from its own streams alone

Version 1 coded task t's mask given the masks of tasks 0..t-1 (one stream per entry, with a
``lengths`` table); this tallmerge does not read it and says so: rebuild such a store from its
checkpoints with ``tallmerge compress``, whose options the old manifest records.

See :mod:`tallmerge.store.codec` for both codings. The manifest (JSON) records the format and
version, the tasks in coding order, how the masks were made (``{"kind": "tall", "lambdas":
{task: lambda}}`` or ``{"kind": "magnitude", "topk": k}``), tau_MTL's recipe, the vector dtype,
every tensor (key, dtype, shape, vector codec or ``null`` for entries copied from the base), the
number of weights, each file's size and SHA-256, a SHA-256 of each task's decoded mask bits
(packed, where the vector is non-zero, in order), the
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

import hashlib
import json
import os
import re
from pathlib import Path

from tallmerge.errors import TallmergeError

FORMAT = "tallmerge.store"
VERSION = 2
MANIFEST = "manifest.json"
MANIFEST_DIGEST = "manifest_sha256"
FILES = {"base": "base.safetensors", "vector": "vector.safetensors", "masks": "masks.safetensors"}


PROBABILITIES = "probabilities"  # masks.safetensors: uint16 [entries, T, 16], each entry's model
LENGTHS = "lengths"  # masks.safetensors: int64 [T, entries], words of each task's stream per entry


def streams_key(task_index: int) -> str:
    """Where task ``task_index``'s coded masks are, in masks.safetensors: its streams of every
    entry (uint32 words), one after the other in entry order."""
    return f"streams/{task_index}"


def scales_key(key: str) -> str:
    """Where entry ``key``'s block scales are, in vector.safetensors (integer vector dtypes)."""
    return f"scales/{key}"


def stored_parts(vectors, key: str):
    """``parts(name)`` for :func:`tallmerge.store.codec.decode_vector`: entry ``key``'s stored
    values and scales in the open vector file ``vectors``."""
    return lambda part: vectors.get(key if part == "values" else scales_key(key))


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
        raise TallmergeError(
            f"{out}: holds '{foreign[0]}', which is not part of the store; refusing to replace it "
            "(move it elsewhere or choose another --out)"
        )
    return present


def _listed_files(manifest_path: Path) -> set[str] | None:
    """The files a store manifest (of any version) lists, with itself; None if ``manifest_path``
    is not a tallmerge store manifest."""
    try:
        if (
            manifest_path.is_symlink()
            or not manifest_path.is_file()
            or manifest_path.stat().st_size > (64 << 20)
        ):
            return None
        manifest = json.loads(manifest_path.read_text())
        if not (
            isinstance(manifest, dict)
            and manifest.get("format") == FORMAT
            and type(manifest.get("version")) is int
        ):
            return None
        names = {entry["name"] for entry in manifest["files"].values()}
    except (OSError, ValueError, RecursionError, KeyError, TypeError, AttributeError):
        return None
    if not all(isinstance(n, str) and re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", n) for n in names):
        return None
    return {MANIFEST, *names}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


class Corrupted(Exception):
    """A manifest field that is missing, mistyped or inconsistent (what, in a few words)."""


MISSING = object()


def field(mapping: dict, key: str, kind: type):
    value = mapping.get(key, MISSING)
    if value is MISSING:
        raise Corrupted(f"missing key '{key}'")
    if type(value) is not kind and not (kind is dict and isinstance(value, dict)):
        raise Corrupted(f"'{key}' is not {'an' if kind is int else 'a'} {kind.__name__}")
    return value
