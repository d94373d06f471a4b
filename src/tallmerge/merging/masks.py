"""TALL masks on disk: one bit per weight, per task and lambda, in a safetensors file.

A mask file holds, for every floating-point entry of the model, every task and every lambda
of the task's grid, the packed bits of m_t = |tau_t| > lambda |tau_MTL - tau_t| (numpy
``packbits`` order: ceil(n / 8) bytes, most significant bit first), stored as the uint8 tensor
``<task>/<i>/<key>`` where ``i`` indexes the task's lambdas. The metadata records the format
version, the tasks, each task's lambdas, how tau_MTL was formed, the entries' shapes, and the
fingerprints of the checkpoints the masks were computed from (``sources``, see
:meth:`Checkpoints.sources`): masks are only ever used with those checkpoints. The file ends
with a SHA-256 of its metadata and bits (:data:`tallmerge.formats.tensorfile.CHECKSUM`), verified on
open. A file with one lambda per task is a *selection*: what consensus merging and the
compressed store consume.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from tallmerge.errors import TallmergeError
from tallmerge.formats.files import Closable
from tallmerge.formats.tensorfile import TensorFile, write_tensors
from tallmerge.merging import maths
from tallmerge.merging.checkpoints import Checkpoints
from tallmerge.merging.recipes import MultiTaskVector
from tallmerge.merging.statistics import entry_vector

FORMAT = "tallmerge.masks"
VERSION = 2


def pack(mask: torch.Tensor) -> torch.Tensor:
    """Bool tensor -> uint8 [ceil(numel / 8)]."""
    return torch.from_numpy(np.packbits(mask.reshape(-1).numpy()))


def unpack(packed: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`pack`."""
    count = math.prod(shape)
    return torch.from_numpy(np.unpackbits(packed.numpy(), count=count).view(np.bool_)).reshape(tuple(shape))


def check_lambdas(lambdas: Sequence[float]) -> list[float]:
    if not lambdas:
        raise TallmergeError("at least one lambda is needed")
    out = []
    for lam in lambdas:
        if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not math.isfinite(lam) or lam <= 0:
            raise TallmergeError(f"lambda must be a positive number, got {lam!r}")
        out.append(float(lam))
    if len(set(out)) != len(out):
        raise TallmergeError(f"lambdas must be distinct, got {out}")
    return out


def check_tall_inputs(ckpts: Checkpoints, lambdas: Sequence[float]) -> list[float]:
    """The lambdas as floats, checked, for TALL masks of ``ckpts``' tasks (which need at least 2)."""
    lambdas = check_lambdas(lambdas)
    if len(ckpts) < 2:
        raise TallmergeError(f"TALL masks need at least 2 tasks, got {len(ckpts)}")
    return lambdas


def write_masks(
    path: str | os.PathLike,
    ckpts: Checkpoints,
    lambdas: Sequence[float],
    mtv: MultiTaskVector,
    vectors: Mapping[str, torch.Tensor] | None = None,
) -> None:
    """Compute every task's TALL masks at every lambda in one pass over the checkpoints.
    ``vectors``: tau_MTL already formed by ``mtv`` (entry -> tensor), as a stage that also
    rebuilds models from it has it; otherwise it is formed here (after its recipe's own passes)."""
    lambdas = check_tall_inputs(ckpts, lambdas)
    vector = entry_vector(mtv, ckpts, vectors)
    names = ckpts.names
    specs = [
        (_name(task, i, key), torch.uint8, (math.ceil(math.prod(ckpts.base.shape(key)) / 8),))
        for key in ckpts.float_keys
        for i in range(len(lambdas))
        for task in names
    ]
    shapes = {key: ckpts.base.shape(key) for key in ckpts.float_keys}
    metadata = _metadata(mtv, {task: lambdas for task in names}, shapes, ckpts.sources())
    with write_tensors(path, specs, metadata, checksum=True) as put:
        for key, _, taus in ckpts.sweep("masks"):
            packed = {
                (i, t): pack(mask) for t, i, mask in maths.tall_mask_grid(taus, vector(key, taus), lambdas)
            }
            for i in range(len(lambdas)):
                for t, task in enumerate(names):
                    put(_name(task, i, key), packed[i, t])


def _name(task: str, index: int, key: str) -> str:
    return f"{task}/{index}/{key}"


def _metadata(
    mtv: MultiTaskVector,
    lambdas: Mapping[str, Sequence[float]],
    shapes: Mapping[str, Sequence[int]],
    sources: dict,
) -> dict:
    return {
        "format": FORMAT,
        "version": VERSION,
        "mtv": mtv.to_dict(),
        "tasks": list(lambdas),
        "lambdas": {task: list(values) for task, values in lambdas.items()},
        "shapes": {key: list(shape) for key, shape in shapes.items()},
        "sources": sources,
    }


class MaskFile(Closable):
    """A mask file opened for reading; validated on open."""

    def __init__(self, path: str | os.PathLike):
        self._file = TensorFile(path)
        self.path = self._file.path
        try:
            self._read_metadata(self._file.metadata)
        except BaseException:
            self._file.close()
            raise

    def _read_metadata(self, meta: dict) -> None:
        if meta.get("format") != FORMAT:
            raise TallmergeError(f"{self.path}: not a tallmerge mask file")
        if meta.get("version") != VERSION:
            hint = "; rebuild it with `tallmerge masks` (or `dvc repro`)" if meta.get("version") == 1 else ""
            raise TallmergeError(
                f"{self.path}: mask format version {meta.get('version')!r}, this tallmerge reads {VERSION}{hint}"
            )
        self._file.verify_checksum()
        try:
            self.tasks: list[str] = [_text(t) for t in meta["tasks"]]
            self.lambdas: dict[str, list[float]] = {
                t: [float(v) for v in meta["lambdas"][t]] for t in self.tasks
            }
            self.mtv = MultiTaskVector.from_dict(meta["mtv"])
            self.shapes: dict[str, tuple[int, ...]] = {
                _text(k): tuple(int(d) for d in v) for k, v in meta["shapes"].items()
            }
            self.sources: dict = dict(meta["sources"])
        except (KeyError, TypeError, ValueError, AttributeError, TallmergeError):
            raise TallmergeError(f"{self.path}: corrupted mask metadata") from None

    def packed(self, task: str, index: int, key: str) -> torch.Tensor:
        name = _name(task, index, key)
        if name not in self._file:
            raise TallmergeError(f"{self.path}: no mask '{name}'")
        return self._file.get(name)

    def mask(self, task: str, index: int, key: str) -> torch.Tensor:
        return unpack(self.packed(task, index, key), self.shapes[key])

    def selection(self) -> dict[str, int]:
        """Each task's single lambda index; an error if the file still holds a grid."""
        for task, lambdas in self.lambdas.items():
            if len(lambdas) != 1:
                raise TallmergeError(
                    f"{self.path}: task '{task}' has {len(lambdas)} lambdas {lambdas}; "
                    "consensus needs one per task (select them first, or pass --lambda)"
                )
        return {task: 0 for task in self.tasks}

    def check_matches(self, ckpts: Checkpoints, mtv: MultiTaskVector | None = None) -> None:
        """The masks must be of these tasks, built from these very checkpoints (and of ``mtv``
        if given)."""
        if sorted(self.tasks) != sorted(ckpts.names):
            raise TallmergeError(
                f"{self.path}: masks are for tasks {', '.join(self.tasks)}, "
                f"the fine-tuned checkpoints are {', '.join(ckpts.names)}"
            )
        expected = {k: tuple(ckpts.base.shape(k)) for k in ckpts.float_keys}
        if self.shapes != expected:
            wrong = next(
                k for k in sorted(set(self.shapes) | set(expected)) if self.shapes.get(k) != expected.get(k)
            )
            raise TallmergeError(f"{self.path}: masks do not fit the base model (tensor '{wrong}')")
        ckpts.check_sources(self.sources, f"{self.path}: masks")
        if mtv is not None and self.mtv != mtv:
            raise TallmergeError(
                f"{self.path}: masks were built with tau_MTL = {self.mtv}, this merge uses {mtv} (see --topk, --ties-agg)"
            )

    def stacked(self, key: str, names: Sequence[str], selection: Mapping[str, int]) -> torch.Tensor:
        """The selected masks of ``names`` for one entry, stacked: bool [T, *shape]."""
        return torch.stack([self.mask(task, selection[task], key) for task in names])

    def close(self) -> None:
        self._file.close()


def _text(value) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    return value


def write_selection(source: MaskFile, chosen: Mapping[str, float], path: str | os.PathLike) -> None:
    """Copy each task's mask at its chosen lambda into a new file (one lambda per task)."""
    indices = {}
    for task in source.tasks:
        if task not in chosen or chosen[task] not in source.lambdas[task]:
            raise TallmergeError(f"{source.path}: no mask for task '{task}' at lambda {chosen.get(task)!r}")
        indices[task] = source.lambdas[task].index(chosen[task])
    keys = list(source.shapes)
    specs = [
        (_name(t, 0, k), torch.uint8, (math.ceil(math.prod(source.shapes[k]) / 8),))
        for k in keys
        for t in source.tasks
    ]
    metadata = _metadata(source.mtv, {t: [chosen[t]] for t in source.tasks}, source.shapes, source.sources)
    with write_tensors(path, specs, metadata, checksum=True) as put:
        for key in keys:
            for task in source.tasks:
                put(_name(task, 0, key), source.packed(task, indices[task], key))


def usage_counts(masks: MaskFile) -> list[int]:
    """How many weights are used by exactly 0, 1, ..., T tasks' selected masks."""
    selection = masks.selection()
    counts = torch.zeros(len(masks.tasks) + 1, dtype=torch.int64)
    for key in masks.shapes:
        used = masks.stacked(key, masks.tasks, selection).sum(dim=0, dtype=torch.int64)
        counts += torch.bincount(used.reshape(-1), minlength=len(masks.tasks) + 1)
    return counts.tolist()
