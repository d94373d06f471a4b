"""Lossless coding of the compressed store's payloads: the merged vector and the task masks.

**Masks.** A reconstruction theta_0 + m_t * v only reads a mask bit where the stored merged
vector v is non-zero, so only those bits are coded (the others decode as 0, and the rebuilt
model is the same). Each bit is range-coded (``constriction``) with a static context model:

    P(m_t[i] = 1 | bucket(|v_i|), number of tasks before t in the store whose mask is on at i)

``bucket`` counts the half-octave cells [2^(k/2), 2^((k+1)/2)) from the cell of the largest |v|
in the tensor down to |v_i|'s (0 = the same cell, clipped at 15). It is computed exactly from
the float's exponent and mantissa (``frexp``), never with a logarithm, so encoder and decoder
agree bit for bit on any machine.
TALL masks depend strongly on both: a weight where v is large, or that earlier tasks use, is
more likely to be in the next task's mask. The model is one table of 16-bit probabilities per
task, [T, buckets, T], fitted on the masks being coded and stored beside them. Bits sharing a
context are coded as one run with one Bernoulli model (a stable sort by context), which is
about 20 times faster than a model per bit. Decoding task t needs tasks 0..t-1 (their counts).

**Vector.** The merged vector, in the chosen dtype, is split into byte planes (all first bytes,
then all second bytes, ...) and zstd-compressed: a float's sign-and-exponent byte is highly
predictable, its low mantissa bytes are not. A tensor whose coded form is not smaller is kept
raw.
"""

from __future__ import annotations

import math

import constriction
import numpy as np
import torch
import zstandard

from tallmerge.errors import TallmergeError

BUCKETS = 16
ZSTD_LEVEL = 6  # levels 3-19 differ by <4% in size on task vectors; 6 codes ~40 MB/s
_HALF_OCTAVE = np.float32(math.sqrt(0.5))  # frexp mantissas in [0.5, 1) split at sqrt(1/2)
_PRECISION = 1 << 16  # probabilities are stored as uint16 numerators over 2**16
MAX_TASKS = (1 << 16) // BUCKETS - 1  # contexts bucket * T + count fit in uint16


# -- masks --------------------------------------------------------------------------------------
def coded_positions(vector: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Where ``vector`` is non-zero (flat indices) and each such entry's magnitude bucket."""
    values = vector.reshape(-1).float().numpy()
    where = np.flatnonzero(values)
    if where.size == 0:
        return where, np.zeros(0, np.uint16)
    mantissa, exponent = np.frexp(np.abs(values[where]))
    level = 2 * exponent.astype(np.int32) + (mantissa >= _HALF_OCTAVE)
    return where, np.minimum(level.max() - level, BUCKETS - 1).astype(np.uint16)


class MaskModel:
    """Counts of (context, bit) over every coded mask bit; then the probability table."""

    def __init__(self, tasks: int):
        if not 1 <= tasks <= MAX_TASKS:
            raise TallmergeError(f"the mask coding takes 1 to {MAX_TASKS} tasks, got {tasks}")
        self.tasks = tasks
        self.ones = np.zeros((tasks, BUCKETS * tasks), np.int64)
        self.total = np.zeros((tasks, BUCKETS * tasks), np.int64)

    def observe(self, masks: torch.Tensor, vector: torch.Tensor) -> None:
        """One entry: ``masks`` bool [T, *shape], ``vector`` the stored merged vector."""
        where, bucket = coded_positions(vector)
        contexts = self.ones.shape[1]
        for t, bits, ctx in _contexts(masks, where, bucket, self.tasks):
            pairs = np.bincount((ctx.astype(np.int32) << 1) | bits, minlength=2 * contexts).reshape(
                contexts, 2
            )
            self.ones[t] += pairs[:, 1]
            self.total[t] += pairs.sum(axis=1)

    def table(self) -> torch.Tensor:
        """uint16 [T, buckets * T]: P(bit = 1) * 2**16 per task and context (Laplace-smoothed)."""
        p = (self.ones + 0.5) / (self.total + 1.0)
        q = np.clip(np.rint(p * _PRECISION), 1, _PRECISION - 1).astype(np.uint16)
        return torch.from_numpy(q)


def _contexts(masks: torch.Tensor, where: np.ndarray, bucket: np.ndarray, tasks: int):
    """``(t, bits, ctx)`` per task in store order; ctx = bucket * T + earlier tasks on (uint16,
    which numpy sorts by radix)."""
    count = np.zeros(where.size, np.uint16)
    flat = masks.reshape(tasks, -1)
    for t in range(tasks):
        bits = flat[t].numpy()[where].view(np.uint8)
        yield t, bits, bucket * np.uint16(tasks) + count
        count += bits


def encode_masks(masks: torch.Tensor, vector: torch.Tensor, table: torch.Tensor) -> list[torch.Tensor]:
    """One entry's masks (bool [T, *shape]) -> T coded streams (uint32 words)."""
    where, bucket = coded_positions(vector)
    tasks = masks.shape[0]
    return [_encode(bits, ctx, table[t].numpy()) for t, bits, ctx in _contexts(masks, where, bucket, tasks)]


def decode_mask(streams, task: int, vector: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Task ``task``'s mask (bool, ``vector``'s shape); ``streams(s)`` gives task s's words.

    Bits where the vector is zero come out 0."""
    where, bucket = coded_positions(vector)
    tasks = table.shape[0]
    count = np.zeros(where.size, np.uint16)
    for s in range(task + 1):
        bits = _decode(streams(s), bucket * np.uint16(tasks) + count, table[s].numpy())
        count += bits
    mask = np.zeros(vector.numel(), np.bool_)
    mask[where] = bits.astype(np.bool_)
    return torch.from_numpy(mask).reshape(vector.shape)


def _runs(ctx: np.ndarray, contexts: int):
    """A stable order grouping equal contexts, and each context's (start, end) in it."""
    order = np.argsort(ctx, kind="stable")
    ends = np.cumsum(np.bincount(ctx, minlength=contexts))
    return order, [
        (c, int(e - n), int(e)) for c, (n, e) in enumerate(zip(np.diff(ends, prepend=0), ends)) if n
    ]


def _model(q: int):
    return constriction.stream.model.Bernoulli(int(q) / _PRECISION, perfect=False)


def _encode(bits: np.ndarray, ctx: np.ndarray, probs: np.ndarray) -> torch.Tensor:
    encoder = constriction.stream.queue.RangeEncoder()
    order, runs = _runs(ctx, probs.size)
    symbols = bits[order].astype(np.int32)
    for c, start, end in runs:
        encoder.encode(symbols[start:end], _model(probs[c]))
    return torch.from_numpy(encoder.get_compressed().astype(np.uint32, copy=False))


def _decode(words: torch.Tensor, ctx: np.ndarray, probs: np.ndarray) -> np.ndarray:
    decoder = constriction.stream.queue.RangeDecoder(words.numpy().astype(np.uint32, copy=False))
    order, runs = _runs(ctx, probs.size)
    bits = np.zeros(ctx.size, np.uint8)
    for c, start, end in runs:
        bits[order[start:end]] = decoder.decode(_model(probs[c]), end - start)
    return bits


# -- vector -------------------------------------------------------------------------------------
def encode_vector(vector: torch.Tensor) -> tuple[str, torch.Tensor]:
    """``("zstd", uint8 stream)`` of the byte planes, or ``("raw", vector)`` if that is smaller."""
    size = vector.element_size()
    raw = vector.contiguous().reshape(-1).view(torch.uint8).numpy().reshape(-1, size)
    coded = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(np.ascontiguousarray(raw.T).tobytes())
    if len(coded) >= raw.size:
        return "raw", vector
    return "zstd", torch.frombuffer(bytearray(coded), dtype=torch.uint8)


def decode_vector(codec: str, stored: torch.Tensor, dtype: torch.dtype, shape) -> torch.Tensor:
    """Inverse of :func:`encode_vector`."""
    if codec == "raw":
        if stored.dtype != dtype or tuple(stored.shape) != tuple(shape):
            raise TallmergeError(
                f"stored vector is {stored.dtype} {list(stored.shape)}, expected {dtype} {list(shape)}"
            )
        return stored
    if codec != "zstd":
        raise TallmergeError(f"unknown vector codec {codec!r}")
    size, count = torch.empty(0, dtype=dtype).element_size(), math.prod(shape)
    try:
        planes = zstandard.ZstdDecompressor().decompress(
            stored.numpy().tobytes(), max_output_size=size * count
        )
    except zstandard.ZstdError as e:
        raise TallmergeError(f"corrupted vector stream ({e})") from None
    if len(planes) != size * count:
        raise TallmergeError(f"corrupted vector stream ({len(planes)} bytes, expected {size * count})")
    raw = np.frombuffer(planes, np.uint8).reshape(size, count).T.copy()
    return torch.from_numpy(raw.reshape(-1)).view(dtype).reshape(tuple(shape))
