"""Files in and out: atomic writes, safetensors with validation, small JSON/CSV outputs, and
the guards that keep a command from losing anything.

Every writer goes through :func:`atomic_write` (or :func:`temporary_dir` for a folder): the
content lands in a temporary beside the target and is renamed over it only when complete, so an
interrupted or failed run never leaves a partial output (nor a file DVC would cache as if it were
whole). Temporaries are named ``.<target>.tallmerge-<host>-<pid>-<token>.tmp``: a run that is
killed outright (SIGKILL, power loss) leaves them behind, and the next write into the same
folder removes those whose process is gone (:func:`clean_stale_temporaries`).

Commands also call :func:`check_output` (``--out`` is never one of the inputs, nor inside or
around one) and hold :func:`output_lock` while they write, so two runs never race for one output.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Self

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from tallmerge.errors import TallmergeError, one_line


class Closable:
    """A reader that is also a context manager: ``with Reader(path) as r:`` closes it on exit."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"
_TEMPORARY = re.compile(
    r"^\.(?P<target>.+)\.tallmerge-(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-[0-9a-f]+\.(?P<kind>tmp|old)$"
)


def temporary_name(path: Path, kind: str = "tmp") -> Path:
    """A fresh temporary name beside ``path`` that says which process owns it."""
    return path.parent / f".{path.name}.tallmerge-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}.{kind}"


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # someone else's process (or a pid we cannot ask about)
        return True
    return True


def clean_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporaries in ``folder`` left by tallmerge processes of this machine that
    are gone; a store set aside while being replaced (``.old``) goes back to its place when
    the replacement never arrived. Returns what was removed or restored."""
    folder = Path(folder)
    done = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return done
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if not match or match["host"] != _HOST or _process_alive(int(match["pid"])):
            continue
        path = Path(entry.path)
        try:
            target = folder / match["target"]
            if match["kind"] == "old" and not os.path.lexists(target):
                os.rename(path, target)  # killed between moving the old store aside and the new one in
            elif entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
            done.append(path)
        except OSError:  # another run cleaned it first, or it is not ours to remove
            pass
    return done


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return those created, deepest last."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    created = []
    for path in reversed(missing):
        try:
            path.mkdir()
        except FileExistsError:
            continue
        created.append(path)
    return created


def _remove_empty(folders: list[Path]) -> None:
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            break


def shown(path: str | os.PathLike) -> Path:
    """``path`` as a user knows it: each temporary along it (a file or a store's folder being
    built, see :func:`temporary_name`) replaced by the target it stands for."""
    parts = [(m["target"] if (m := _TEMPORARY.match(part)) else part) for part in Path(path).parts]
    return Path(*parts) if parts else Path(path)


@contextlib.contextmanager
def _naming_write_errors(path: Path) -> Iterator[None]:
    """A failed write says which output it was: an OS error that names no file or only a
    temporary (a full disk, a quota, a read-only filesystem) and the serialization library's own
    I/O errors become one line naming ``path``, as the user gave it."""
    try:
        yield
    except OSError as e:
        named = [Path(os.fsdecode(name)) for name in (e.filename, e.filename2) if name is not None]
        if named and not any(_TEMPORARY.match(part) for name in named for part in name.parts):
            raise
        raise TallmergeError(f"{shown(path)}: {e.strerror or one_line(e)}") from None
    except SafetensorError as e:  # only writing raises it here: readers turn theirs into TallmergeError
        raise TallmergeError(f"{shown(path)}: cannot write it ({one_line(e)})") from None


def refuse_special(path: str | os.PathLike, flag: str = "--out") -> None:
    """Refuse to write over something that is neither a file nor a folder (a device, a FIFO, a
    socket): renaming over it would replace the node itself. A symlink is left to the rules for
    what it points to."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:  # nothing there (or nothing we can see): nothing to protect
        return
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode):
        return
    kind = next((name for test, name in _SPECIAL if test(mode)), "special file")
    raise TallmergeError(f"{flag} {path} is a {kind}, not a file or a folder; refusing to replace it")


_SPECIAL = (
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISFIFO, "FIFO"),
    (stat.S_ISSOCK, "socket"),
)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` on success. On failure
    nothing is left: not the temporary, nor the folders created for it; a failed write names
    ``path`` (:func:`_naming_write_errors`)."""
    path = Path(path)
    if path.is_dir():
        raise TallmergeError(f"{path}: is a folder; give a file name to write")
    refuse_special(path, "output")
    created = _make_parents(path.parent)
    clean_stale_temporaries(path.parent)
    tmp = temporary_name(path)
    done = False
    try:
        with _naming_write_errors(path):
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies
            yield tmp
            os.replace(tmp, path)
        done = True
    finally:
        tmp.unlink(missing_ok=True)
        if not done:
            _remove_empty(created)


@contextlib.contextmanager
def temporary_dir(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder beside ``path`` (created with its parents), removed however the block
    ends; the block may rename it into place first. A failed write in it names ``path``."""
    path = Path(path)
    created = _make_parents(path.parent)
    clean_stale_temporaries(path.parent)
    tmp = temporary_name(path)
    done = False
    try:
        with _naming_write_errors(path):
            tmp.mkdir(0o777)  # the umask applies
            yield tmp
        done = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not done:
            _remove_empty(created)


# -- guarding outputs ----------------------------------------------------------------------------
def check_output(out: str | os.PathLike, inputs: Iterable[str | os.PathLike], flag: str = "--out") -> Path:
    """Refuse an output that is one of the inputs, lies inside one (a store's folder), or
    contains one (an output folder around a checkpoint): paths are compared after resolving
    symlinks, and existing files by identity (hard links too). A device, FIFO or socket is
    refused too (:func:`refuse_special`). Returns ``out`` as a Path."""
    if not str(out).strip():
        raise TallmergeError(f"{flag} is empty; give a path to write")
    out = Path(out)
    refuse_special(out, flag)
    real_out = Path(os.path.realpath(out))
    for given in inputs:
        real_in = Path(os.path.realpath(given))
        same = real_out == real_in
        if not same and out.exists() and Path(given).exists():
            with contextlib.suppress(OSError):
                same = os.path.samefile(out, given)
        if same:
            raise TallmergeError(f"{flag} {out} is the input {given}; writing there would destroy it")
        if real_out.is_relative_to(real_in):
            raise TallmergeError(f"{flag} {out} lies inside the input {given}; writing there would alter it")
        if real_in.is_relative_to(real_out):
            raise TallmergeError(f"{flag} {out} contains the input {given}; writing there could destroy it")
    return out


def _lock_folder() -> Path:
    folder = Path(tempfile.gettempdir()) / f"tallmerge-locks-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


@contextlib.contextmanager
def output_lock(out: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on the output ``out`` (any spelling of the same path) for this
    machine; a second writer fails at once with a message naming the holder. The lock file lives
    in the system's temporary folder, never beside the output, and goes when the lock does."""
    real = os.path.realpath(out)
    lock = _lock_folder() / (hashlib.sha256(os.fsencode(real)).hexdigest()[:32] + ".lock")
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise TallmergeError(
                    f"{out}: another tallmerge process (pid {holder}) is writing it; wait for it to finish"
                ) from None
            raise
        try:  # the file we locked may have been unlinked by the previous holder: then retry
            current = os.stat(lock)
            mine = os.fstat(fd)
            if (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)


METADATA_KEY = "tallmerge"
"""Our metadata travels as ONE JSON string under this key: safetensors writes its metadata map in
a per-process random order, so several keys would make identical checkpoints differ in bytes."""


def save_tensors(
    tensors: Mapping[str, torch.Tensor], path: str | os.PathLike, metadata: Mapping | None = None
) -> None:
    """Write ``tensors`` as safetensors, atomically, with JSON-serialisable ``metadata``."""
    contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    header = {METADATA_KEY: json.dumps(dict(metadata or {}), sort_keys=True)}
    with atomic_write(path) as tmp:
        save_file(contiguous, str(tmp), metadata=header)


def require_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path if it is a regular file (or a link to one); else a one-line error
    that says what is there instead."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        raise TallmergeError(f"{path}: is a folder, not a file")
    if path.exists():
        raise TallmergeError(f"{path}: not a regular file")
    raise TallmergeError(f"{path}: file not found")


def open_tensors(path: str | os.PathLike):
    """Open a safetensors file lazily (tensor by tensor), or fail with a one-line error."""
    path = require_file(path)
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
    foreign file). The format allows only a map of strings to strings."""
    if not isinstance(raw, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise TallmergeError(f"{path}: not a valid safetensors file (__metadata__ is not a map of strings)")
    if set(raw) != {METADATA_KEY}:
        return dict(raw)
    try:
        metadata = json.loads(raw[METADATA_KEY])
    except (json.JSONDecodeError, RecursionError):
        raise TallmergeError(f"{path}: corrupted metadata") from None
    if not isinstance(metadata, dict):
        raise TallmergeError(f"{path}: corrupted metadata (not a JSON object)")
    return metadata


def write_json(obj, path: str | os.PathLike) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike):
    path = require_file(path)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise TallmergeError(f"{path}: invalid JSON ({e})") from None


def write_csv(frame, path: str | os.PathLike) -> None:
    """Write a pandas DataFrame as CSV (no index), atomically."""
    with atomic_write(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.2f")
