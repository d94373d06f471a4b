"""The checkpoints a merge reads, one state-dict entry at a time.

Memory holds, at any moment, one entry of the base and of each fine-tuned checkpoint (as a
[T, *shape] stack of task vectors) plus the outputs being written, never T whole models. Merge
methods' maths (:mod:`tallmerge.merging.maths`) are per-entry functions; what they need from the
whole model is computed exactly in earlier passes over the same files
(:mod:`tallmerge.merging.statistics`), and the merged vectors are streamed into models by
:mod:`tallmerge.merging.executor`.

Task vectors are taken in float32 over every floating-point entry; integer and bool entries are
copied from the base. Outputs keep the base's keys, order and dtypes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch
from tqdm import tqdm

from tallmerge.errors import TallmergeError
from tallmerge.formats.files import Closable
from tallmerge.formats.tensorfile import TensorFile
from tallmerge.merging import maths

T = TypeVar("T")


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
