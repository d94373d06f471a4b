"""Files in and out: atomic writes, safetensors with validation, small JSON/CSV outputs.

Every writer goes through :func:`atomic_write`: the content lands in a temporary file beside
the target and is renamed over it only when complete, so an interrupted or failed run never
leaves a partial output (nor a file DVC would cache as if it were whole).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator, Mapping

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from tallmerge.errors import TallmergeError


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; rename it to ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp's 0600 would make every output private
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


METADATA_KEY = "tallmerge"
"""Our metadata travels as ONE JSON string under this key: safetensors writes its metadata map in
a per-process random order, so several keys would make identical checkpoints differ in bytes."""


def save_tensors(tensors: Mapping[str, torch.Tensor], path: str | os.PathLike, metadata: Mapping | None = None) -> None:
    """Write ``tensors`` as safetensors, atomically, with JSON-serialisable ``metadata``."""
    contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    header = {METADATA_KEY: json.dumps(dict(metadata or {}), sort_keys=True)}
    with atomic_write(path) as tmp:
        save_file(contiguous, str(tmp), metadata=header)


def open_tensors(path: str | os.PathLike):
    """Open a safetensors file lazily (tensor by tensor), or fail with a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise TallmergeError(f"{path}: file not found")
    try:
        return safe_open(str(path), framework="pt")
    except (SafetensorError, OSError, ValueError) as e:
        raise TallmergeError(f"{path}: not a valid safetensors file ({one_line(e)})") from None


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a whole safetensors file: ``(tensors, metadata)``; truncated or corrupt files fail.

    ``metadata`` is what :func:`save_tensors` stored, or a foreign file's raw string map."""
    with open_tensors(path) as f:
        try:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise TallmergeError(f"{path}: corrupted safetensors file ({one_line(e)})") from None
        raw = dict(f.metadata() or {})
    return tensors, parse_metadata(path, raw)


def parse_metadata(path: str | os.PathLike, raw: Mapping) -> dict:
    """A safetensors metadata map -> what :func:`save_tensors` stored (or the raw map of a
    foreign file)."""
    if set(raw) != {METADATA_KEY}:
        return dict(raw)
    try:
        return json.loads(raw[METADATA_KEY])
    except json.JSONDecodeError:
        raise TallmergeError(f"{path}: corrupted metadata") from None


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(obj, path: str | os.PathLike) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike):
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise TallmergeError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise TallmergeError(f"{path}: invalid JSON ({e})") from None


def write_csv(frame, path: str | os.PathLike) -> None:
    """Write a pandas DataFrame as CSV (no index), atomically."""
    with atomic_write(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.2f")


def one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__
