"""Safetensors read and written one tensor at a time, so memory never holds a whole checkpoint.

:class:`TensorFile` parses and validates the header up front (dtypes, shapes, offsets that tile
the data exactly, the file's length) and then reads each tensor with a plain positioned read (``pread``, so threads may read one open file
at once): no memory map, so tensors already merged do not stay resident. :func:`write_tensors` writes the
header from a declared list of tensors and then their bytes as they are produced; the file is
renamed into place only when every declared tensor has been written; :func:`spool_tensors` does
the same for tensors whose sizes are known only once produced (coded streams). Both follow the public
safetensors format (8-byte little-endian header length, JSON header, raw little-endian data), so
the files are interchangeable with ``safetensors.torch``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import torch

from tallmerge.errors import TallmergeError
from tallmerge.formats.files import METADATA_KEY, Closable, atomic_write, parse_metadata, require_file

DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U32": torch.uint32,
    "U16": torch.uint16,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
_MAX_HEADER = 100 * 1024 * 1024


class TensorFile(Closable):
    """A safetensors file opened for tensor-by-tensor reading (use as a context manager)."""

    def __init__(self, path: str | os.PathLike):
        self.path = require_file(path)
        self._file = open(self.path, "rb")
        try:
            self._parse_header()
        except BaseException:
            self._file.close()
            raise

    def _fail(self, what: str) -> TallmergeError:
        return TallmergeError(f"{self.path}: not a valid safetensors file ({what})")

    def _parse_header(self) -> None:
        size = os.fstat(self._file.fileno()).st_size
        head = self._file.read(8)
        if len(head) < 8:
            raise self._fail("shorter than its 8-byte header length")
        (length,) = struct.unpack("<Q", head)
        if length > min(_MAX_HEADER, size - 8):
            raise self._fail(f"header length {length} exceeds the file")
        try:
            header = json.loads(self._file.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            raise self._fail("header is not JSON") from None
        if not isinstance(header, dict):
            raise self._fail("header is not a JSON object")
        raw_meta = header.pop("__metadata__", None)
        self._data_start = 8 + length
        self._specs: dict[str, tuple[torch.dtype, tuple[int, ...], int, int]] = {}
        for key, entry in header.items():
            if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
                raise self._fail(f"bad header entry for tensor '{key}'")
            if not isinstance(entry["dtype"], str) or entry["dtype"] not in DTYPES:
                raise self._fail(f"tensor '{key}' has an unsupported dtype {str(entry['dtype'])[:20]!r}")
            dtype, shape, offsets = DTYPES[entry["dtype"]], entry["shape"], entry["data_offsets"]
            if not (_naturals(shape) and _naturals(offsets) and len(offsets) == 2):
                raise self._fail(f"bad shape or offsets for tensor '{key}'")
            shape, (start, end) = tuple(shape), offsets
            nbytes = math.prod(shape) * dtype.itemsize
            if end - start != nbytes:
                raise self._fail(f"tensor '{key}' has offsets that do not match its shape")
            self._specs[key] = (dtype, shape, start, end)
        position = 0
        for key, (_, _, start, end) in sorted(self._specs.items(), key=lambda kv: kv[1][2:]):
            if start != position:
                raise self._fail(f"tensor '{key}' does not start where the previous one ends")
            position = end
        if size - self._data_start != position:
            raise TallmergeError(
                f"{self.path}: corrupted safetensors file (data is {size - self._data_start} bytes, "
                f"the header describes {position}; truncated?)"
            )
        self.keys = [k for k, _ in sorted(self._specs.items(), key=lambda kv: kv[1][2])]
        self.metadata = parse_metadata(self.path, {} if raw_meta is None else raw_meta)
        self._raw_metadata = {} if raw_meta is None else dict(raw_meta)

    def __contains__(self, key: str) -> bool:
        return key in self._specs

    def dtype(self, key: str) -> torch.dtype:
        return self._specs[key][0]

    def shape(self, key: str) -> tuple[int, ...]:
        return self._specs[key][1]

    def get(self, key: str) -> torch.Tensor:
        """Read one tensor (a fresh CPU tensor of the stored dtype and shape)."""
        if key not in self._specs:
            raise TallmergeError(f"{self.path}: no tensor '{key}'")
        dtype, shape, start, end = self._specs[key]
        if end == start:
            return torch.empty(shape, dtype=dtype)
        buffer = bytearray(end - start)
        if _read_at(self._file, buffer, self._data_start + start) != len(buffer):
            raise TallmergeError(f"{self.path}: corrupted safetensors file (tensor '{key}' is cut short)")
        return torch.frombuffer(buffer, dtype=dtype).reshape(shape)

    def rows(self, key: str, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` (along the first dimension) of an entry of at least one dimension,
        a fresh CPU tensor: a row-major tensor's rows are one contiguous range of the file."""
        if key not in self._specs:
            raise TallmergeError(f"{self.path}: no tensor '{key}'")
        dtype, shape, offset, _ = self._specs[key]
        row_bytes = math.prod(shape[1:]) * dtype.itemsize
        buffer = bytearray((stop - start) * row_bytes)
        position = self._data_start + offset + start * row_bytes
        if buffer and _read_at(self._file, buffer, position) != len(buffer):
            raise TallmergeError(f"{self.path}: corrupted safetensors file (tensor '{key}' is cut short)")
        out = torch.frombuffer(buffer, dtype=dtype) if buffer else torch.empty(0, dtype=dtype)
        return out.reshape((stop - start, *shape[1:]))

    def _hash_data(self, digest, start: int, end: int) -> None:
        self._file.seek(self._data_start + start)
        remaining = end - start
        while remaining:
            chunk = self._file.read(min(remaining, 1 << 22))
            if not chunk:
                raise TallmergeError(f"{self.path}: corrupted safetensors file (cut short)")
            digest.update(chunk)
            remaining -= len(chunk)

    def fingerprint(self) -> str:
        """SHA-256 of the tensors (names, dtypes, shapes and bytes, in file order), not of the
        metadata: the same weights saved twice have the same fingerprint. Reads the whole file."""
        digest = hashlib.sha256(_canonical({}, self._tensor_specs(self.keys)))
        end = self._specs[self.keys[-1]][3] if self.keys else 0
        self._hash_data(digest, 0, end)
        return digest.hexdigest()

    def verify_checksum(self) -> None:
        """Check the ``CHECKSUM`` entry that :func:`write_tensors` (``checksum=True``) appends:
        it covers the metadata, every other tensor's name, dtype and shape, and their bytes."""
        if (
            CHECKSUM not in self._specs
            or self.keys[-1] != CHECKSUM
            or self._specs[CHECKSUM][:2] != (torch.uint8, (32,))
        ):
            raise TallmergeError(
                f"{self.path}: has no checksum (not written by this version of tallmerge, or altered)"
            )
        digest = hashlib.sha256(_canonical(self._raw_metadata, self._tensor_specs(self.keys[:-1])))
        self._hash_data(digest, 0, self._specs[CHECKSUM][2])
        if digest.digest() != bytes(self.get(CHECKSUM).tolist()):
            raise TallmergeError(f"{self.path}: corrupted (its checksum does not match its content)")

    def _tensor_specs(self, keys) -> list[TensorSpec]:
        return [(k, self._specs[k][0], self._specs[k][1]) for k in keys]

    def close(self) -> None:
        self._file.close()


def _read_at(f, buffer: bytearray, offset: int) -> int:
    """Fill ``buffer`` from ``offset`` of the open file ``f`` without moving its position (safe
    from several threads); the number of bytes read."""
    view, done = memoryview(buffer), 0
    while done < len(buffer):
        n = os.preadv(f.fileno(), [view[done:]], offset + done)
        if n == 0:
            break
        done += n
    return done


def _naturals(values) -> bool:
    """A JSON list of non-negative integers (booleans and floats are not integers here)."""
    return isinstance(values, list) and all(type(v) is int and v >= 0 for v in values)


TensorSpec = tuple[str, torch.dtype, Sequence[int]]
CHECKSUM = "sha256"
"""The entry that a checksummed file (our own formats: mask files) ends with: uint8 [32]."""


def _canonical(raw_metadata: Mapping, specs: Sequence[TensorSpec]) -> bytes:
    """What a checksum covers besides the tensors' bytes: the metadata map and the layout."""
    layout = [[k, DTYPE_NAMES[d], list(s)] for k, d, s in specs]
    return json.dumps({"metadata": dict(raw_metadata), "tensors": layout}, sort_keys=True).encode()


def _raw_metadata(metadata: Mapping | None) -> dict[str, str]:
    return {METADATA_KEY: json.dumps(dict(metadata or {}), sort_keys=True)}


def _header(specs: Sequence[TensorSpec], metadata: Mapping | None) -> bytes:
    """The 8-byte length and the JSON header (padded to 8 bytes) for tensors laid out in order."""
    header: dict = {"__metadata__": _raw_metadata(metadata)}
    offset = 0
    for key, dtype, shape in specs:
        nbytes = math.prod(shape) * dtype.itemsize
        header[key] = {
            "dtype": DTYPE_NAMES[dtype],
            "shape": list(shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded


@contextlib.contextmanager
def write_tensors(
    path: str | os.PathLike,
    specs: Sequence[TensorSpec],
    metadata: Mapping | None = None,
    checksum: bool = False,
) -> Iterator[Callable[[str, torch.Tensor], None]]:
    """Declare the tensors up front, then ``put(key, tensor)`` each one in that order.

    The file appears at ``path`` only if every declared tensor was written and no exception
    was raised; otherwise nothing is left behind. With ``checksum``, a last entry
    :data:`CHECKSUM` holds the SHA-256 of the metadata, the layout and the data
    (:meth:`TensorFile.verify_checksum`).
    """
    expected = iter(specs)
    written = 0
    digest = hashlib.sha256(_canonical(_raw_metadata(metadata), specs))

    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        f.write(_header([*specs, (CHECKSUM, torch.uint8, (32,))] if checksum else specs, metadata))

        def put(key: str, tensor: torch.Tensor) -> None:
            nonlocal written
            want = next(expected, None)
            if want is None or want[0] != key:
                raise RuntimeError(f"write_tensors: got '{key}', expected {want[0] if want else 'nothing'}")
            if tensor.dtype != want[1] or tuple(tensor.shape) != tuple(want[2]):
                raise RuntimeError(
                    f"write_tensors: '{key}' is {tensor.dtype} {tuple(tensor.shape)}, declared {want[1]} {tuple(want[2])}"
                )
            if tensor.numel():
                data = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().data
                f.write(data)
                if checksum:
                    digest.update(data)
            written += 1

        yield put
        if written != len(specs):
            raise RuntimeError(f"write_tensors: {len(specs) - written} declared tensors were never written")
        if checksum:
            f.write(digest.digest())
        f.flush()


@contextlib.contextmanager
def spool_tensors(
    path: str | os.PathLike, metadata: Mapping | None = None
) -> Iterator[Callable[[str, torch.Tensor], None]]:
    """``put(key, tensor)`` tensors whose sizes are known only once produced (coded streams).

    Data is spooled to a temporary file beside ``path``, so memory holds one tensor at a time,
    and copied behind the header at the end; the file appears at ``path`` only if the block
    ends without an exception."""
    path = Path(path)
    specs: list[TensorSpec] = []
    keys: set[str] = set()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=path.parent) as spool:  # anonymous: gone however the block ends

        def put(key: str, tensor: torch.Tensor) -> None:
            if key in keys:
                raise RuntimeError(f"spool_tensors: '{key}' written twice")
            keys.add(key)
            specs.append((key, tensor.dtype, tuple(tensor.shape)))
            if tensor.numel():
                spool.write(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().data)

        yield put
        spool.seek(0)
        with atomic_write(path) as tmp, open(tmp, "wb") as f:
            f.write(_header(specs, metadata))
            shutil.copyfileobj(spool, f, 1 << 22)
