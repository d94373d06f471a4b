"""The streaming merge executor: checkpoints are read one state-dict entry at a time.

Memory holds, at any moment, one entry of the base and of each fine-tuned checkpoint (as a
[T, *shape] stack of task vectors) plus the outputs being written, never T whole models. Merge
methods (:mod:`tallmerge.methods`) are per-entry functions; what they need from the whole model
is computed exactly in earlier passes over the same files:

- the top-k% magnitude threshold of each task vector (TIES trimming, magnitude masks) by a
  two-pass radix selection over the float32 bit patterns: 65,536 counters per task, exact;
- the TIES majority sign (the sign of the summed elected signs), one more pass.

Task vectors are taken in float32 over every floating-point entry; integer and bool entries are
copied from the base. Outputs keep the base's keys, order and dtypes.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping

import torch
from tqdm import tqdm

from tallmerge import methods
from tallmerge.errors import TallmergeError
from tallmerge.formats.tensorfile import TensorFile, write_tensors

MTVS = ("ta", "ties")
_HIGH = 1 << 15  # magnitudes are non-negative: their float32 bits' top half is < 2**15
_LOW = 1 << 16


class Checkpoints:
    """A base checkpoint and T fine-tuned ones, validated against it up front.

    Every fine-tuned file must have exactly the base's keys, shapes and dtypes; values are
    checked to be finite as they are read. Use as a context manager.
    """

    def __init__(self, base: str | os.PathLike, finetuned: Mapping[str, str | os.PathLike]):
        if not finetuned:
            raise TallmergeError("no fine-tuned checkpoints given")
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
        self._prepared: dict = {}  # MTV -> its per-entry function (whole-model passes run once)
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
                raise TallmergeError(f"{other.path}: tensor '{key}' is {other.dtype(key)}, base has {base.dtype(key)}")
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
            if (i, "tau/" + key) not in self._checked:  # finite inputs can still differ by more than float32 holds
                if not torch.isfinite(taus[i]).all():
                    raise TallmergeError(f"{f.path}: tensor '{key}' minus the base's overflows float32")
                self._checked.add((i, "tau/" + key))
        return base, taus

    def _get(self, index: int, f: TensorFile, key: str) -> torch.Tensor:
        """Read one tensor; values are checked to be finite the first time it is read."""
        tensor = f.get(key)
        if (index, key) not in self._checked:
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise TallmergeError(f"{f.path}: tensor '{key}' has NaN or Inf values")
            self._checked.add((index, key))
        return tensor

    def sweep(self, desc: str) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
        """``(key, base, taus)`` for every float entry, in file order, with a progress bar."""
        for key in tqdm(self.float_keys, desc=desc, unit="tensor", disable=None, leave=False):
            base, taus = self.read(key)
            yield key, base, taus

    def specs(self) -> list[tuple[str, torch.dtype, tuple[int, ...]]]:
        return [(k, self.base.dtype(k), self.base.shape(k)) for k in self.keys]

    def close(self) -> None:
        for f in [self.base, *self.files]:
            f.close()

    def __enter__(self) -> "Checkpoints":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- whole-model statistics --------------------------------------------------------------------
def magnitude_thresholds(ckpts: Checkpoints, topk: float) -> torch.Tensor:
    """Per task, the m-th largest |tau_t| over the whole model, m = floor(N * topk / 100).

    Exact, in two streaming passes: count each magnitude's upper 16 float32 bits, locate the
    bucket holding the m-th largest, then count the lower 16 bits inside that bucket. A task
    with m = 0 gets an infinite threshold (nothing kept). Returns float32 [T].
    """
    T = len(ckpts)
    m = int(ckpts.numel * topk / 100)
    if m <= 0:
        return torch.full((T,), math.inf)
    m = min(m, ckpts.numel)
    high_counts = torch.zeros(T, _HIGH, dtype=torch.int64)
    for _, _, taus in ckpts.sweep("thresholds 1/2"):
        for t, tau in enumerate(taus):
            high_counts[t] += torch.bincount(_bits(tau) >> 16, minlength=_HIGH)
    bucket, rank = _locate(high_counts, torch.full((T,), m))

    low_counts = torch.zeros(T, _LOW, dtype=torch.int64)
    for _, _, taus in ckpts.sweep("thresholds 2/2"):
        for t, tau in enumerate(taus):
            bits = _bits(tau)
            low_counts[t] += torch.bincount(bits[(bits >> 16) == bucket[t]] & 0xFFFF, minlength=_LOW)
    low, _ = _locate(low_counts, rank)
    return ((bucket << 16) | low).to(torch.int32).view(torch.float32)


def _bits(tau: torch.Tensor) -> torch.Tensor:
    """|tau| as int32 bit patterns, flattened: for non-negative floats, ordered like the values."""
    return tau.abs().view(torch.int32).reshape(-1)


def _locate(counts: torch.Tensor, rank: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row of ``counts`` (ascending value order), the bin holding the ``rank``-th
    largest value, and that value's rank within the bin."""
    above = counts.flip(1).cumsum(1)  # above[:, j] = count in the top j+1 bins
    j = torch.searchsorted(above, rank.view(-1, 1)).view(-1)
    before = torch.where(j > 0, above.gather(1, (j - 1).clamp(min=0).view(-1, 1)).view(-1), 0)
    return counts.shape[1] - 1 - j, rank - before


def majority_sign(ckpts: Checkpoints, thresholds: torch.Tensor) -> float:
    """TIES's tie-breaker: the sign of the sum of the per-weight sign votes over the model."""
    total = 0
    for _, _, taus in ckpts.sweep("majority sign"):
        total += int(methods.sign_votes(taus, thresholds).sum(dtype=torch.int64))
    return float((total > 0) - (total < 0))


# -- vectors -----------------------------------------------------------------------------------
VectorFn = Callable[[torch.Tensor], torch.Tensor]  # taus [T, *shape] -> vector [*shape]


@dataclass(frozen=True)
class MTV:
    """How tau_MTL is formed: ``ta`` (sum of task vectors) or ``ties`` (with ``topk``, ``agg``)."""

    kind: str = "ta"
    topk: float = 20.0
    agg: str = "sum"

    def __post_init__(self) -> None:
        if self.kind not in MTVS:
            raise TallmergeError(f"unknown multi-task vector {self.kind!r} (choose from {', '.join(MTVS)})")
        if self.kind == "ties":
            check_topk(self.topk)
            if self.agg not in methods.AGGREGATIONS:
                raise TallmergeError(f"unknown TIES aggregation {self.agg!r} (choose from mean, sum)")

    def __str__(self) -> str:
        return "ta (sum of task vectors)" if self.kind == "ta" else f"ties (top-{self.topk:g}%, disjoint {self.agg})"

    def prepare(self, ckpts: Checkpoints) -> VectorFn:
        """Run the passes this vector needs (once per open ``ckpts``); return its per-entry function."""
        if self.kind == "ta":
            return methods.task_sum
        if self not in ckpts._prepared:
            thresholds = magnitude_thresholds(ckpts, self.topk)
            majority = majority_sign(ckpts, thresholds)
            ckpts._prepared[self] = lambda taus: methods.ties(taus, thresholds, majority, self.agg)
        return ckpts._prepared[self]


def check_topk(topk: float) -> None:
    if not (isinstance(topk, (int, float)) and 0 <= topk <= 100):
        raise TallmergeError(f"top-k must be a percentage in [0, 100], got {topk!r}")


def write_model(
    path: str | os.PathLike,
    ckpts: Checkpoints,
    vectors: Iterator[tuple[str, torch.Tensor, torch.Tensor]],
    alpha: float,
    metadata: Mapping | None = None,
) -> None:
    """Write theta_0 + alpha * vector for every float entry (``vectors`` yields them in file
    order as ``(key, base, vector)``), the base's value for the others; atomically. A merged
    entry that is not finite (alpha too large for its dtype) is an error, and nothing is written."""
    vectors = iter(vectors)
    with write_tensors(path, ckpts.specs(), metadata) as put:
        for key in ckpts.keys:
            if key in ckpts.float_keys:
                vkey, base, vector = next(vectors)
                assert vkey == key, (vkey, key)
                merged = (base.float() + alpha * vector).to(base.dtype)
                if not torch.isfinite(merged).all():
                    raise TallmergeError(
                        f"merged tensor '{key}' is not finite in {str(base.dtype).removeprefix('torch.')} "
                        f"with --alpha {alpha:g}; use a smaller --alpha"
                    )
                put(key, merged)
            else:
                put(key, ckpts.base.get(key))


def to_state(
    ckpts: Checkpoints, vectors: Iterator[tuple[str, torch.Tensor, torch.Tensor]]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Collect a vector stream in memory: ``(base state, {key: vector})``, for small models
    whose vector is scanned over many alphas (the pipeline's selection)."""
    base, vector = {}, {}
    for key, entry, value in vectors:  # the stream has already read each float entry's base
        base[key], vector[key] = entry, value
    return {k: base[k] if k in base else ckpts.base.get(k) for k in ckpts.keys}, vector


def apply(base: dict[str, torch.Tensor], vector: Mapping[str, torch.Tensor], alpha: float = 1.0) -> dict[str, torch.Tensor]:
    """theta_0 + alpha * vector in the base's dtypes (entries without a vector stay as they are)."""
    return {k: (v.float() + alpha * vector[k]).to(v.dtype) if k in vector else v for k, v in base.items()}
