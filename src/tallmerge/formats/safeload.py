"""Load untrusted torch checkpoints (``.pt`` / ``.pth`` / ``.bin``) without running code from them.

A torch checkpoint is a pickle, and a pickle is a small program: it names globals
(``module.name``), which the unpickler imports, and calls them. ``torch.load(weights_only=False)``
thus runs whatever a downloaded file asks for. This module has two safe ways in:

1. ``torch.load(weights_only=True)``, torch's own allowlist: enough for plain state dicts and
   ``{"state_dict": ...}`` training checkpoints.
2. Whole pickled modules (``torch.save(module)``, as the task-vectors and TALL-masks code save their
   ``ImageEncoder``) name their classes, which (1) refuses. For those, :func:`load_archive` reads
   the zip archive itself (``<name>/data.pkl``, and one ``<name>/data/<key>`` record per storage)
   with :class:`RestrictedUnpickler`, which resolves every global the pickle names to

   * the real object for a short allowlist (:data:`ALLOWED`): torch's dense tensor-rebuild
     functions, dtypes, storage types, ``OrderedDict`` and builtin containers;
   * otherwise, for a global of the Python standard library (``os.system``, ``builtins.eval``,
     ``subprocess.Popen``, ...), a refusal naming the file and the global: a checkpoint never
     needs one, a payload always does (a few inert data types are exempt, :data:`INERT_STDLIB`);
   * otherwise a :class:`Stub`, a class made on the spot and never imported: calling it or
     building it from a pickled state only records the arguments and state. An open_clip
     ``CLIP``, a ``torch.nn.Linear``, a torchvision transform or the project's ``ImageEncoder``
     becomes a tree of stubs whose ``_parameters``, ``_buffers`` and ``_modules`` hold real
     tensors.

   Nothing outside the allowlist is ever called, so nothing the file names runs. (Enum values and
   transforms in such files are calls to non-allowlisted classes: they become inert stubs.)

:func:`load_state_dict` then flattens what was loaded into ``{dotted key: tensor}``, the keys
``Module.state_dict()`` would give (non-persistent buffers left out).
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import os
import pickle
import sys
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tallmerge.errors import TallmergeError, one_line

WRAPPERS = ("state_dict", "model")
"""Keys under which training checkpoints keep the model: ``{"state_dict": ..., "epoch": ...}``."""
MODULE_DICTS = ("_parameters", "_buffers", "_modules")
"""Where a pickled ``nn.Module`` keeps its tensors and submodules, in ``state_dict()`` order."""

ALLOWED: dict[str, Any] = {
    **{
        f"torch._utils.{f.__name__}": f
        for f in (
            torch._utils._rebuild_tensor,
            torch._utils._rebuild_tensor_v2,
            torch._utils._rebuild_tensor_v3,
            torch._utils._rebuild_parameter,
            torch._utils._rebuild_parameter_with_state,
        )
    },
    "torch._tensor._rebuild_from_type_v2": torch._tensor._rebuild_from_type_v2,  # a tensor with attributes
    "torch.Tensor": torch.Tensor,  # the type _rebuild_from_type_v2 names for those
    **{f"torch.{name}": dtype for name, dtype in vars(torch).items() if isinstance(dtype, torch.dtype)},
    "collections.OrderedDict": collections.OrderedDict,
    **{f"builtins.{t.__name__}": t for t in (dict, list, tuple, set, frozenset)},
}
"""The globals a pickle may resolve to real objects (and call)."""

STORAGE_DTYPES = {
    "torch.storage.UntypedStorage": torch.uint8,
    "torch.DoubleStorage": torch.float64,
    "torch.FloatStorage": torch.float32,
    "torch.HalfStorage": torch.float16,
    "torch.BFloat16Storage": torch.bfloat16,
    "torch.ComplexDoubleStorage": torch.complex128,
    "torch.ComplexFloatStorage": torch.complex64,
    "torch.LongStorage": torch.int64,
    "torch.IntStorage": torch.int32,
    "torch.ShortStorage": torch.int16,
    "torch.CharStorage": torch.int8,
    "torch.ByteStorage": torch.uint8,
    "torch.BoolStorage": torch.bool,
}
"""The storage types torch.save names, with their element types."""

INERT_STDLIB = frozenset(
    {
        "argparse.Namespace",  # training arguments saved beside the weights
        "functools.partial",
        "types.SimpleNamespace",
        "pathlib.Path",
        "pathlib.PosixPath",
        "pathlib.WindowsPath",
        "pathlib.PurePosixPath",
        "pathlib.PureWindowsPath",
        "datetime.date",
        "datetime.datetime",
        "datetime.timedelta",
        "_codecs.encode",  # how pickle protocol 2 writes bytes
    }
)
"""Standard-library globals that become stubs instead of a refusal: data, found in real files."""


@dataclass(frozen=True)
class StorageType:
    """What a storage type global (``torch.FloatStorage``...) resolves to: its element type only."""

    dtype: torch.dtype


class Stub:
    """An object of a class the pickle names but that is never imported (or the result of calling
    such a global): it only records what unpickling passes to it."""

    target = "?"  # "module.name" of the global this stub class stands for

    def __new__(cls, *args, **kwargs):  # NEWOBJ: cls.__new__(cls, *args); REDUCE: cls(*args)
        stub = super().__new__(cls)
        stub.args, stub.kwargs, stub.state = args, kwargs, None
        return stub

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __setstate__(self, state) -> None:  # BUILD: an object's __dict__ (and slots)
        self.state = state

    def __repr__(self) -> str:
        return f"<stub {self.target}>"


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles a torch archive's ``data.pkl``: allowlisted globals are real, standard-library
    ones refused, all others stubs; storages are read from the archive's ``data/`` records."""

    def __init__(self, archive: zipfile.ZipFile, prefix: str, path: Path) -> None:
        super().__init__(io.BytesIO(archive.read(f"{prefix}data.pkl")), encoding="utf-8")
        self.archive, self.prefix, self.path = archive, prefix, path
        self.stubs: dict[str, type[Stub]] = {}
        self.storages: dict[str, torch.storage.TypedStorage] = {}

    def find_class(self, module: str, name: str) -> Any:
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)  # Python 2 names, as pickle does
        ref = f"{module}.{name}"
        if ref in STORAGE_DTYPES:
            return StorageType(STORAGE_DTYPES[ref])
        if ref in ALLOWED:
            return ALLOWED[ref]
        if module.partition(".")[0] in sys.stdlib_module_names and ref not in INERT_STDLIB:
            raise TallmergeError(
                f"{self.path}: refused to unpickle {ref}: a checkpoint does not need it (malicious file?)"
            )
        if ref not in self.stubs:
            self.stubs[ref] = type(name, (Stub,), {"target": ref, "__module__": __name__})
        return self.stubs[ref]

    def persistent_load(self, pid: Any) -> torch.storage.TypedStorage:
        match pid:
            case ("storage", StorageType(dtype=dtype), str(key), _location, int(numel)):
                if key not in self.storages:
                    self.storages[key] = self.read_storage(key, dtype, numel)
                return self.storages[key]
        raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")

    def read_storage(self, key: str, dtype: torch.dtype, numel: int) -> torch.storage.TypedStorage:
        """Storage ``key`` as torch.load builds it (always on the CPU)."""
        data = self.archive.read(f"{self.prefix}data/{key}")
        if len(data) != numel * dtype.itemsize:
            raise pickle.UnpicklingError(
                f"storage {key} has {len(data)} bytes, expected {numel * dtype.itemsize}"
            )
        untyped = torch.UntypedStorage.from_buffer(data, dtype=torch.uint8)
        return torch.storage.TypedStorage(wrap_storage=untyped, dtype=dtype, _internal=True)


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, keyed as ``state_dict()`` keys them, loaded safely."""
    path = Path(path)
    root = unwrap(load_checkpoint(path))
    if not (isinstance(root, dict) or is_module(root)):
        raise TallmergeError(f"{path}: holds {describe(root)}, not a state dict or a module")
    tensors: dict[str, torch.Tensor] = {}
    try:
        collect(root, "", tensors, path)
    except RecursionError:
        raise TallmergeError(f"{path}: nested too deeply, or a module that contains itself") from None
    if not tensors:
        raise TallmergeError(f"{path}: no tensors found")
    return tensors


def load_checkpoint(path: Path) -> Any:
    """What the file holds: real containers and tensors, stubs for everything else."""
    if not path.is_file():
        raise TallmergeError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():  # torch's notes on odd pickle protocols are not the user's concern
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a global outside torch's allowlist, or no checkpoint at all: see below
        pass
    if not zipfile.is_zipfile(path):
        raise TallmergeError(
            f"{path}: not a readable torch checkpoint (neither weights-only loadable nor a torch zip archive)"
        )
    return load_archive(path)


def load_archive(path: Path) -> Any:
    """Unpickle a torch zip archive with :class:`RestrictedUnpickler`."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            pickles = [n for n in names if n.count("/") == 1 and n.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise TallmergeError(
                    f"{path}: a zip archive, but not a torch checkpoint (no <name>/data.pkl)"
                )
            prefix = pickles[0].removesuffix("data.pkl")
            if f"{prefix}constants.pkl" in names:
                raise TallmergeError(
                    f"{path}: a TorchScript archive, not supported (save the model's state_dict())"
                )
            if f"{prefix}byteorder" in names and archive.read(f"{prefix}byteorder").decode() != sys.byteorder:
                raise TallmergeError(f"{path}: written on a machine of another byte order, not supported")
            return RestrictedUnpickler(archive, prefix, path).load()
    except TallmergeError:
        raise
    except Exception as e:
        raise TallmergeError(f"{path}: corrupted checkpoint ({one_line(e)})") from None


def unwrap(obj: Any) -> Any:
    """The model inside a ``{"state_dict": ...}`` or ``{"model": ...}`` checkpoint, else ``obj``."""
    if isinstance(obj, dict):
        for key in WRAPPERS:
            if isinstance(obj.get(key), dict) or is_module(obj.get(key)):
                return obj[key]
    return obj


def is_module(obj: Any) -> bool:
    """Whether ``obj`` is a stub of a pickled ``nn.Module`` (its state has ``_parameters``)."""
    return isinstance(obj, Stub) and isinstance(obj.state, dict) and "_parameters" in obj.state


def collect(obj: Any, key: str, out: dict[str, torch.Tensor], path: Path) -> None:
    """Add the tensors at and below ``obj`` to ``out``, under ``key`` and dotted names below it.

    A module contributes its parameters and persistent buffers, then its submodules' (the order
    of ``state_dict()``); a dict, its values. Other objects hold no weights and are skipped."""
    if isinstance(obj, torch.Tensor):
        out[key] = torch.Tensor.detach(obj)  # not obj.detach: a pickled state may shadow methods
    elif is_module(obj):
        parameters, buffers, modules = (module_part(obj, part, dict, key, path) for part in MODULE_DICTS)
        transient = module_part(obj, "_non_persistent_buffers_set", set, key, path)
        tensors = {**parameters, **{k: v for k, v in buffers.items() if k not in transient}}
        for name, tensor in tensors.items():
            if tensor is not None and not isinstance(tensor, torch.Tensor):
                raise TallmergeError(
                    f"{path}: tensor '{join(key, name)}' is {describe(tensor)}, which cannot be rebuilt safely"
                )
            collect(tensor, join(key, name), out, path)
        for name, child in modules.items():
            collect(child, join(key, name), out, path)
    elif isinstance(obj, dict):
        for name, value in obj.items():
            collect(value, join(key, str(name)), out, path)


def module_part(module: Stub, name: str, kind: type, key: str, path: Path):
    """A module's ``_parameters`` (etc.): a ``kind``, empty if absent, else a one-line error."""
    part = module.state.get(name) or kind()
    if not isinstance(part, kind):
        raise TallmergeError(f"{path}: module '{key}' has a malformed {name} ({describe(part)})")
    return part


def join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def describe(obj: Any) -> str:
    return f"a pickled {obj.target}" if isinstance(obj, Stub) else f"a {type(obj).__name__}"
