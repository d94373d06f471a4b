"""The checkpoints a merge reads, one state-dict entry at a time.

Memory holds, at any moment, one entry of the base and of each fine-tuned checkpoint (as a
[T, *shape] stack of task vectors) plus the outputs being written, never T whole models. Merge
methods' maths (:mod:`tallmerge.merging.maths`) are per-entry functions; what they need from the
whole model is computed exactly in earlier passes over the same files
(:mod:`tallmerge.merging.statistics`), and the merged vectors are streamed into models by
:mod:`tallmerge.merging.executor`.

Task vectors are taken in float32 over every floating-point entry; integer and bool entries are
copied from the base. Outputs keep the base's keys, order and dtypes.

Element-wise maths (task arithmetic, TIES, TALL masks and consensus: each weight's result
depends on that weight's task vectors only) can also take an entry in blocks of rows
(:meth:`Checkpoints.row_sweep`), so that the [T, *shape] stack never exceeds
:data:`BLOCK_BYTES`: a T5 embedding (32128 x 1024) of 11 tasks would otherwise take 1.45 GB.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from types import EllipsisType
from typing import TypeVar

import torch
from tqdm import tqdm

from tallmerge.errors import TallmergeError
from tallmerge.formats.files import Closable
from tallmerge.formats.tensorfile import TensorFile
from tallmerge.merging import maths

T = TypeVar("T")
BLOCK_BYTES = 128 << 20
"""The most that :meth:`Checkpoints.row_sweep` holds of one entry's float32 task vectors at once
(unless one aligned group of rows is larger): entries whose [T, *shape] stack is larger come in
blocks of rows."""
BLOCK_ALIGN = 1024
"""Every block but an entry's last holds a multiple of this many weights. torch's CPU sum over
the tasks adds in order t = 0, 1, ... except for the last (n mod 32) weights of a contiguous
run of n (its vectorised loop covers 32 floats at a time, threads split at multiples of 32; the
rest take 4 interleaved partial sums): aligned blocks put exactly the same weights in that tail
as the whole entry does, so sums in blocks equal the whole entry's bit for bit."""

Rows = tuple[slice | EllipsisType, torch.Tensor]  # which rows of an entry (... = all), their task vectors


def maths_device(device: str | torch.device | None) -> torch.device:
    """``device`` checked: a torch device that this machine has (None: the CPU)."""
    if device is None:
        return torch.device("cpu")
    try:
        device = torch.device(device)
        torch.ones(1, device=device).cpu()  # a round trip: it computes, and results come back
    except (RuntimeError, AssertionError, NotImplementedError) as e:  # unknown; not built; no data
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TallmergeError(f"device {str(device)!r} is not available here ({why})") from None
    return device


class Checkpoints(Closable):
    """A base checkpoint and T fine-tuned ones, validated against it up front.

    Every fine-tuned file must have exactly the base's keys, shapes and dtypes; values are
    checked to be finite as they are read. Use as a context manager.

    ``device`` (``"cuda"``, ``"cuda:1"``, ...; default the CPU) is where the merge methods'
    per-entry maths run (:meth:`on_device`); files are read, and results written, on the CPU.
    """

    def __init__(
        self,
        base: str | os.PathLike,
        finetuned: Mapping[str, str | os.PathLike],
        device: str | torch.device | None = None,
    ):
        if not finetuned:
            raise TallmergeError("no fine-tuned checkpoints given")
        self.device = maths_device(device)
        self.names = list(finetuned)
        self.base = TensorFile(base)
        self.files: list[TensorFile] = []
        try:
            for path in finetuned.values():
                self.files.append(TensorFile(path))
                self._check_matches_base(self.files[-1])
        except BaseException:
            self.close()
            raise
        self._checked: set[tuple[int, str]] = set()  # (file index, key) found finite
        self._cache: dict = {}  # see cached()
        self._sources: dict | None = None
        self.keys = self.base.keys
        self.float_keys = [k for k in self.keys if self.base.dtype(k).is_floating_point]
        self.numel = sum(math.prod(self.base.shape(k)) for k in self.float_keys)

    def _check_matches_base(self, other: TensorFile) -> None:
        base = self.base
        for key in base.keys:
            if key not in other:
                raise TallmergeError(f"{other.path}: missing tensor '{key}' (present in base {base.path})")
            if other.shape(key) != base.shape(key):
                raise TallmergeError(
                    f"{other.path}: tensor '{key}' has shape {list(other.shape(key))}, base has {list(base.shape(key))}"
                )
            if other.dtype(key) != base.dtype(key):
                raise TallmergeError(
                    f"{other.path}: tensor '{key}' is {other.dtype(key)}, base has {base.dtype(key)}"
                )
        extra = [k for k in other.keys if k not in base]
        if extra:
            raise TallmergeError(f"{other.path}: unexpected tensor '{extra[0]}' (not in base {base.path})")

    def __len__(self) -> int:
        return len(self.files)

    def sources(self) -> dict:
        """The fingerprints of the files (:meth:`TensorFile.fingerprint`): ``{"base": .., "tasks":
        {name: ..}}``, recorded by whatever is built from them (mask files, stores) so that it
        is never used with other checkpoints. Computed once (a read of every file)."""
        if self._sources is None:  # one file per thread: hashing and reading release the GIL
            with ThreadPoolExecutor(max_workers=min(len(self.files) + 1, os.cpu_count() or 1)) as pool:
                base, *tasks = pool.map(TensorFile.fingerprint, [self.base, *self.files])
            self._sources = {"base": base, "tasks": dict(zip(self.names, tasks))}
        return self._sources

    def check_sources(self, recorded, what: str) -> None:
        """``recorded`` (what :meth:`sources` gave when ``what`` was built) must be these files';
        an error names the first task (or the base) that differs."""
        mine = self.sources()
        if not isinstance(recorded, dict) or not isinstance(recorded.get("tasks"), dict):
            raise TallmergeError(f"{what}: records no fingerprints of the checkpoints it was built from")
        for name, f in zip(self.names, self.files):
            if recorded["tasks"].get(name) != mine["tasks"][name]:
                raise TallmergeError(f"{what}: task '{name}' was built from another checkpoint than {f.path}")
        if recorded.get("base") != mine["base"]:
            raise TallmergeError(f"{what}: built over another base model than {self.base.path}")

    def read(self, key: str) -> tuple[torch.Tensor, torch.Tensor]:
        """One entry: the base tensor and the task vectors, float32 [T, *shape]."""
        base = self._get(-1, self.base, key)
        base32 = base.float()
        taus = torch.empty((len(self.files), *base.shape), dtype=torch.float32)
        for i, f in enumerate(self.files):
            torch.sub(self._get(i, f, key).float(), base32, out=taus[i])
            if (
                i,
                "tau/" + key,
            ) not in self._checked:  # finite inputs can still differ by more than float32 holds
                if not maths.all_finite(taus[i]):
                    raise TallmergeError(f"{f.path}: tensor '{key}' minus the base's overflows float32")
                self._checked.add((i, "tau/" + key))
        return base, taus

    def _get(self, index: int, f: TensorFile, key: str) -> torch.Tensor:
        """Read one tensor; values are checked to be finite the first time it is read."""
        tensor = f.get(key)
        if (index, key) not in self._checked:
            if tensor.is_floating_point() and not maths.all_finite(tensor):
                raise TallmergeError(f"{f.path}: tensor '{key}' has NaN or Inf values")
            self._checked.add((index, key))
        return tensor

    def sweep(self, desc: str) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
        """``(key, base, taus)`` for every float entry, in file order, with a progress bar."""
        for key in tqdm(self.float_keys, desc=desc, unit="tensor", disable=None, leave=False):
            base, taus = self.read(key)
            yield key, base, taus

    def row_sweep(
        self, desc: str, block_bytes: int | None = BLOCK_BYTES
    ) -> Iterator[tuple[str, torch.Tensor, Iterator[Rows]]]:
        """``(key, base, blocks)`` for every float entry, in file order: ``blocks`` yields
        ``(rows, taus)``, the task vectors of ``base[rows]`` (float32 [T, n, *shape[1:]]), for
        consecutive ranges of rows that cover the entry, each stack within ``block_bytes`` (at
        least the rows of :data:`BLOCK_ALIGN` weights). An entry whose whole stack fits (every
        entry if ``block_bytes`` is None) is one block, ``rows`` = ``...`` and ``taus`` what
        :meth:`read` gives: only element-wise maths may take smaller blocks. Use up each
        ``blocks`` before the next entry."""
        for key in tqdm(self.float_keys, desc=desc, unit="tensor", disable=None, leave=False):
            shape = self.base.shape(key)
            row_bytes = len(self.files) * 4 * math.prod(shape[1:])
            if block_bytes is None or not shape or row_bytes * shape[0] <= block_bytes:
                base, taus = self.read(key)
                yield key, base, iter([(..., taus)])
            else:
                base = self._get(-1, self.base, key)
                unit = BLOCK_ALIGN // math.gcd(BLOCK_ALIGN, math.prod(shape[1:]))  # rows
                count = max(1, block_bytes // row_bytes // unit) * unit
                yield key, base, self._row_blocks(key, base, count)

    def _row_blocks(self, key: str, base: torch.Tensor, count: int) -> Iterator[Rows]:
        """The task vectors of ``key`` in blocks of ``count`` rows, checked as :meth:`read` does."""
        for start in range(0, base.shape[0], count):
            rows = slice(start, min(start + count, base.shape[0]))
            base32 = base[rows].float()
            taus = torch.empty((len(self.files), *base32.shape), dtype=torch.float32)
            for i, f in enumerate(self.files):
                tensor = f.rows(key, rows.start, rows.stop)
                if (i, key) not in self._checked and not maths.all_finite(tensor):
                    raise TallmergeError(f"{f.path}: tensor '{key}' has NaN or Inf values")
                torch.sub(tensor.float(), base32, out=taus[i])
                if (i, "tau/" + key) not in self._checked and not maths.all_finite(taus[i]):
                    raise TallmergeError(f"{f.path}: tensor '{key}' minus the base's overflows float32")
            yield rows, taus
        for i in range(len(self.files)):  # every row checked: later sweeps need not
            self._checked.update({(i, key), (i, "tau/" + key)})

    def on_device(self, function: Callable[[torch.Tensor], torch.Tensor]) -> Callable:
        """``function`` (taus -> a tensor) run on :attr:`device`: the task vectors are copied
        there, the result back to the CPU. On the CPU, ``function`` itself."""
        if self.device.type == "cpu":
            return function
        return lambda taus: function(taus.to(self.device)).cpu()

    def cached(self, key, compute: Callable[[], T]) -> T:
        """``compute()`` the first time ``key`` is asked for on these checkpoints, the same
        value after that: for the results of whole-model passes (a recipe's thresholds and
        majority sign, see :func:`tallmerge.merging.statistics.prepare_recipe`), which several
        steps of one run (masks, then the store's vector) share."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def specs(self) -> list[tuple[str, torch.dtype, tuple[int, ...]]]:
        return [(k, self.base.dtype(k), self.base.shape(k)) for k in self.keys]

    def close(self) -> None:
        for f in [self.base, *self.files]:
            f.close()
