"""Coding of the compressed store's payloads: the merged vector and the task masks.

**Masks** (lossless). A reconstruction theta_0 + m_t * v only reads a mask bit where the stored
merged vector v is non-zero, so only those bits are coded (the others decode as 0, and the rebuilt
model is the same). Each task's bits are range-coded (``constriction``) on their own, with a
static context model

    P(m_t[i] = 1 | bucket(|v_i|))

so that task t decodes from its own stream and v alone, in the same time for every task.
``bucket`` counts the cells [2^e, 1.5 * 2^e) and [1.5 * 2^e, 2^(e+1)) (the float32's exponent e
and its first mantissa bit: one shift of its bits) from the cell of the largest |v| in the tensor
down to |v_i|'s (0 = the same cell, clipped at 15). It is integer arithmetic on the bits, never a
logarithm, so encoder and decoder agree bit for bit on any machine. A TALL mask depends strongly on it: a weight where v is large
is more likely to be in each task's mask. The model is one table of 16-bit probabilities per
entry, [T, buckets], fitted on the entry's masks and stored beside them (on the pocket
benchmark's masks, one table per entry costs the same as one for the whole model, 0.698 bits
per weight and mask, tables included, and it lets a store be written in one pass). Bits sharing
a context are coded as one run with one Bernoulli model (a stable sort by bucket, the same for
every task of an entry), about 20 times faster than a model per bit, and within a run 8 bits
are one symbol of the equivalent byte model (a third of the time of single bits).

Conditioning on the other tasks' masks buys little: on the pocket benchmark's TALL + TIES masks
(8 tasks) the empirical entropy given the bucket is 0.698 bits per weight and mask, given the
bucket and the number of earlier tasks on (format version 1, which made task t decode tasks
0..t-1 first) 0.680, and even the joint entropy of all eight masks given the bucket is 0.675
per mask. Version 2 pays those 3 % for random access.

**Vector.** Stored in one of :data:`FORMATS`. Floating-point formats (fp32, bf16, fp16) are
exact in their dtype: the values' byte planes (all first bytes, then all second bytes, ...) are
zstd-compressed, as a float's sign-and-exponent byte is highly predictable and its low
mantissa bytes are not. Integer formats (int8, int4, int3, int2) quantize: the flattened tensor is
cut into blocks of :data:`BLOCK` values, each block gets the scale s = max|v| / q_max (rounded
up to a bfloat16, so no value is clipped) and each value the integer q = round(v / s) in
[-q_max, q_max] (q_max = 127, 7, 3, 1); the decoder reads v = q * s in float32, so every value is
within s / 2 of tau_MTL's. Symmetric block-wise absmax quantization with a 16-bit scale per
block is the layout of common 8- and 4-bit weight formats; bfloat16 rather than float16 because
task-vector scales (1e-6 to 1e-4) fall in float16's subnormal range, and 128 values per block
make the scales cost 0.125 bits per weight. The integers are packed (8 / bits per byte; int3: 8 values in 3 bytes) and zstd-compressed. A tensor whose
coded form is not smaller is kept raw.
"""

from __future__ import annotations

import functools
import math

import constriction
import numpy as np
import torch
import zstandard

from tallmerge.errors import TallmergeError
from tallmerge.merging.maths import all_finite
from tallmerge.merging.recipes import QUANTIZED_VECTOR_BITS, STORED_VECTOR_DTYPES, VECTOR_FORMATS

BUCKETS = 16
ZSTD_LEVEL = 6  # levels 3-19 differ by <4% in size on task vectors; 6 codes ~40 MB/s
_PRECISION = 1 << 16  # probabilities are stored as uint16 numerators over 2**16

FLOAT_FORMATS = {name: getattr(torch, dtype) for name, dtype in STORED_VECTOR_DTYPES.items()}
INT_FORMATS = QUANTIZED_VECTOR_BITS  # name -> bits per value
FORMATS = VECTOR_FORMATS  # the floating-point ones, then the integer ones
BLOCK = 128


# -- masks --------------------------------------------------------------------------------------
class Positions:
    """Where and in which order an entry's mask bits are coded: ``order``, the flat indices where
    the stored vector is non-zero grouped by magnitude bucket (in index order within a bucket),
    and ``runs``, each bucket's ``(bucket, start, end)`` in that order. Shared by every task."""

    def __init__(self, vector: torch.Tensor):
        values = vector.reshape(-1).float().numpy()
        self.numel, self.shape = values.size, tuple(vector.shape)
        magnitude = values.view(np.uint32) & np.uint32(0x7FFFFFFF)  # |v|'s bits: exponent, mantissa
        level = (magnitude >> np.uint32(22)).astype(np.int16)  # 2 * exponent + first mantissa bit
        top = level.max() if level.size else 0
        below = np.minimum(top - level, BUCKETS - 1).astype(np.uint8)
        bucket = np.where(magnitude == 0, np.uint8(BUCKETS), below)  # zeros: never coded (sorted last)
        counts = torch.bincount(torch.from_numpy(bucket), minlength=BUCKETS + 1).numpy()
        self.order = np.argsort(bucket, kind="stable")[: self.numel - counts[BUCKETS]]  # a radix sort
        ends = np.cumsum(counts[:BUCKETS])
        self.runs = [(c, int(e - n), int(e)) for c, (n, e) in enumerate(zip(counts, ends)) if n]

    @property
    def coded(self) -> int:
        return self.order.size

    def buckets(self) -> np.ndarray:
        """Each coded bit's bucket, in coding order."""
        return np.repeat([c for c, _, _ in self.runs], [b - a for _, a, b in self.runs]).astype(np.int64)

    def bits(self, mask: torch.Tensor) -> np.ndarray:
        """A mask's coded bits (uint8), in coding order."""
        return mask.reshape(-1).numpy()[self.order].view(np.uint8)

    def mask(self, bits: np.ndarray) -> torch.Tensor:
        """The full mask (bool, the vector's shape) from its coded bits."""
        out = np.zeros(self.numel, np.bool_)
        out[self.order] = bits.view(np.bool_)
        return torch.from_numpy(out).reshape(self.shape)


def encode_masks(bits: list[np.ndarray], positions: Positions) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One entry's masks, as each task's coded bits (:meth:`Positions.bits`) -> its probability
    table (uint16 [T, buckets]: P(bit = 1) * 2**16 per task and bucket, fitted on these bits,
    Laplace-smoothed) and one coded stream (uint32 words) per task."""
    present = [c for c, _, _ in positions.runs]
    starts = np.array([start for _, start, _ in positions.runs], np.int64)
    sizes = np.array([end - start for _, start, end in positions.runs], np.int64)
    table = np.full((len(bits), BUCKETS), _PRECISION // 2, np.uint16)
    streams = []
    for t, symbols in enumerate(bits):
        if starts.size:
            ones = np.add.reduceat(symbols, starts, dtype=np.int64)
            table[t, present] = np.clip(np.rint((ones + 0.5) / (sizes + 1.0) * _PRECISION), 1, _PRECISION - 1)
        encoder = constriction.stream.queue.RangeEncoder()
        for c, start, end in positions.runs:
            _encode_run(encoder, symbols[start:end], table[t, c])
        streams.append(torch.from_numpy(encoder.get_compressed().astype(np.uint32, copy=False)))
    return torch.from_numpy(table), streams


def decode_bits(words: torch.Tensor, positions: Positions, probs: torch.Tensor) -> np.ndarray:
    """Inverse of :func:`encode_masks`, for one task: its coded bits (uint8), in coding order."""
    decoder = constriction.stream.queue.RangeDecoder(words.numpy().astype(np.uint32, copy=False))
    bits = np.empty(positions.coded, np.uint8)
    for c, start, end in positions.runs:
        bits[start:end] = _decode_run(decoder, end - start, probs[c])
    return bits


def decode_mask(words: torch.Tensor, positions: Positions, probs: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`encode_masks`, for one task: the task's mask (bool, the vector's shape)."""
    return positions.mask(decode_bits(words, positions, probs))


def bits_digest(bits: np.ndarray) -> bytes:
    """What a mask's checksum covers: its coded bits, packed, in coding order."""
    return np.packbits(bits).tobytes()


# Bits of one run (one bucket, so one probability q) are coded 8 at a time, as bytes under the
# categorical model P(byte) = q^k (1 - q)^(8 - k) (k of its bits on): the same model as 8
# Bernoulli(q) bits, in an eighth of the coder's steps; the last n % 8 bits as single bits.
_ONES_IN_BYTE = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(1)


def _encode_run(encoder, bits: np.ndarray, q) -> None:
    whole = bits.size - bits.size % 8
    if whole:
        encoder.encode(np.packbits(bits[:whole]).astype(np.int32), _byte_model(int(q)))
    if whole < bits.size:
        encoder.encode(bits[whole:].astype(np.int32), _bit_model(int(q)))


def _decode_run(decoder, n: int, q) -> np.ndarray:
    whole = n - n % 8
    out = np.empty(n, np.uint8)
    if whole:
        out[:whole] = np.unpackbits(decoder.decode(_byte_model(int(q)), whole // 8).astype(np.uint8))
    if whole < n:
        out[whole:] = decoder.decode(_bit_model(int(q)), n - whole)
    return out


@functools.lru_cache(maxsize=4096)
def _bit_model(q: int) -> constriction.stream.model.Bernoulli:
    return constriction.stream.model.Bernoulli(q / _PRECISION, perfect=False)


@functools.lru_cache(maxsize=4096)
def _byte_model(q: int) -> constriction.stream.model.Categorical:
    """The byte model of Bernoulli(q / 2**16) bits, its powers by repeated multiplication (exact
    IEEE arithmetic, the same on every machine)."""
    p1, p0 = q / _PRECISION, (_PRECISION - q) / _PRECISION
    on, off = [1.0], [1.0]
    for _ in range(8):
        on.append(on[-1] * p1)
        off.append(off[-1] * p0)
    probabilities = np.array([on[k] * off[8 - k] for k in _ONES_IN_BYTE], np.float64)
    return constriction.stream.model.Categorical(probabilities, perfect=False)


# -- vector -------------------------------------------------------------------------------------
def check_format(name: str) -> None:
    if name not in FORMATS:
        raise TallmergeError(f"unknown vector dtype {name!r} (choose from {', '.join(FORMATS)})")


def encode_vector(vector: torch.Tensor, fmt: str) -> tuple[str, dict[str, torch.Tensor]]:
    """``vector`` in format ``fmt`` -> ``(codec, parts)``: the codec of its values (``"zstd"``
    or ``"raw"``) and the tensors to store, ``{"values": ...}`` plus ``{"scales": fp16}`` for an
    integer format. Raises if a value does not fit the format."""
    if fmt in FLOAT_FORMATS:
        stored = vector.to(FLOAT_FORMATS[fmt])
        if not all_finite(stored):
            raise _does_not_fit(fmt)
        codec, values = _zstd_planes(stored)
        return codec, {"values": values}
    q, scales = quantize(vector, fmt)
    codec, values = _zstd_planes(torch.from_numpy(_pack(q, INT_FORMATS[fmt])))
    return codec, {"values": values, "scales": scales}


def decode_vector(codec: str, parts, fmt: str, shape) -> torch.Tensor:
    """Inverse of :func:`encode_vector`; ``parts(name)`` gives a stored part. A float format
    decodes to its dtype, an integer one to float32 (q * s)."""
    count = math.prod(shape)
    if fmt in FLOAT_FORMATS:
        dtype = FLOAT_FORMATS[fmt]
        return _planes(codec, parts("values"), dtype, count).reshape(tuple(shape))
    bits = INT_FORMATS[fmt]
    packed = _planes(codec, parts("values"), torch.uint8, -(-count * bits // 8)).numpy()
    scales = parts("scales")
    blocks = -(-count // BLOCK)
    if scales.dtype != torch.bfloat16 or tuple(scales.shape) != (blocks,):
        raise TallmergeError(
            f"stored scales are {scales.dtype} {list(scales.shape)}, expected bfloat16 [{blocks}]"
        )
    q = _unpack(packed, bits, count)
    return dequantize(q, scales, shape)


def quantize(vector: torch.Tensor, fmt: str) -> tuple[np.ndarray, torch.Tensor]:
    """Block-wise symmetric absmax quantization: (q int8 [numel], scales bfloat16 [blocks]).
    Each scale is max|v| / q_max rounded up to a bfloat16, so that no value needs clipping."""
    qmax = (1 << (INT_FORMATS[fmt] - 1)) - 1
    flat = vector.reshape(-1).float()
    count = flat.numel()
    if not all_finite(flat):
        raise _does_not_fit(fmt)
    blocks = torch.nn.functional.pad(flat, (0, -count % BLOCK)).reshape(-1, BLOCK)
    exact = blocks.abs().amax(1) / qmax
    scales = exact.to(torch.bfloat16)
    low = scales.float() < exact  # rounded down: take the next bfloat16 up (positive: bits + 1)
    scales[low] = (scales[low].view(torch.int16) + 1).view(torch.bfloat16)
    if not torch.isfinite(scales).all():
        raise _does_not_fit(fmt)
    s = scales.float()[:, None]
    q = torch.where(s > 0, torch.round(blocks / s.clamp_min(torch.finfo(torch.float32).tiny)), 0.0)
    return q.clamp(-qmax, qmax).to(torch.int8).reshape(-1)[:count].numpy(), scales


def dequantize(q: np.ndarray, scales: torch.Tensor, shape) -> torch.Tensor:
    """v = q * s in float32, the vector's ``shape``."""
    count = q.size
    values = torch.from_numpy(np.pad(q, (0, -count % BLOCK))).float().reshape(-1, BLOCK)
    return (values * scales.float()[:, None]).reshape(-1)[:count].reshape(tuple(shape))


def _pack(q: np.ndarray, bits: int) -> np.ndarray:
    """int8 values in [-2^(bits-1)+1, 2^(bits-1)-1] -> bytes holding 8 / bits values each (3
    bits: 8 values in 3 bytes), the first value in the highest bits, ceil(n * bits / 8) bytes."""
    if bits == 8:
        return q.view(np.uint8)
    if bits == 3:
        return _pack3(q)
    per = 8 // bits
    u = (q.astype(np.int16) + (1 << (bits - 1))).astype(np.uint8)
    u = np.pad(u, (0, -u.size % per)).reshape(-1, per)
    out = np.zeros(u.shape[0], np.uint8)
    for i in range(per):
        out |= u[:, i] << np.uint8(bits * (per - 1 - i))
    return out


def _unpack(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    if bits == 8:
        return packed.view(np.int8)[:count]
    if bits == 3:
        return _unpack3(packed, count)
    per, low = 8 // bits, np.uint8((1 << bits) - 1)
    u = np.stack([(packed >> np.uint8(bits * (per - 1 - i))) & low for i in range(per)], 1)
    return (u.reshape(-1)[:count].astype(np.int16) - (1 << (bits - 1))).astype(np.int8)


def _pack3(q: np.ndarray) -> np.ndarray:
    u = (q.astype(np.int16) + 4).astype(np.uint32)
    u = np.pad(u, (0, -u.size % 8)).reshape(-1, 8)
    word = np.zeros(len(u), np.uint32)  # 8 values, 24 bits
    for i in range(8):
        word |= u[:, i] << np.uint32(21 - 3 * i)
    out = np.empty((len(u), 3), np.uint8)
    for j in range(3):
        out[:, j] = word >> np.uint32(16 - 8 * j)  # big-endian: the first value's bits first
    return out.reshape(-1)[: -(-q.size * 3 // 8)]


def _unpack3(packed: np.ndarray, count: int) -> np.ndarray:
    groups = -(-count // 8)
    b = np.pad(packed, (0, groups * 3 - packed.size)).reshape(groups, 3).astype(np.uint32)
    word = (b[:, 0] << np.uint32(16)) | (b[:, 1] << np.uint32(8)) | b[:, 2]
    u = np.empty((groups, 8), np.int8)
    for i in range(8):
        u[:, i] = (word >> np.uint32(21 - 3 * i)) & np.uint32(7)
    q = u.reshape(-1)[:count]
    q -= 4
    return q


def _does_not_fit(fmt: str) -> TallmergeError:
    return TallmergeError(f"does not fit --vector-dtype {fmt}; use fp32")


def _zstd_planes(stored: torch.Tensor) -> tuple[str, torch.Tensor]:
    """``("zstd", uint8 stream)`` of the byte planes, or ``("raw", stored)`` if that is smaller."""
    size = stored.element_size()
    raw = stored.contiguous().reshape(-1).view(torch.uint8).numpy().reshape(-1, size)
    coded = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(np.ascontiguousarray(raw.T).tobytes())
    if len(coded) >= raw.size:
        return "raw", stored.reshape(-1) if stored.dtype == torch.uint8 else stored
    return "zstd", torch.frombuffer(bytearray(coded), dtype=torch.uint8)


def _planes(codec: str, stored: torch.Tensor, dtype: torch.dtype, count: int) -> torch.Tensor:
    """Inverse of :func:`_zstd_planes`: ``count`` values of ``dtype`` (flat)."""
    if codec == "raw":
        if stored.dtype != dtype or stored.numel() != count:
            raise TallmergeError(
                f"stored vector is {stored.dtype} {list(stored.shape)}, expected {count} values of {dtype}"
            )
        return stored.reshape(-1)
    if codec != "zstd":
        raise TallmergeError(f"unknown vector codec {codec!r}")
    size = torch.empty(0, dtype=dtype).element_size()
    try:
        planes = zstandard.ZstdDecompressor().decompress(
            stored.numpy().tobytes(), max_output_size=size * count
        )
    except zstandard.ZstdError as e:
        raise TallmergeError(f"corrupted vector stream ({e})") from None
    if len(planes) != size * count:
        raise TallmergeError(f"corrupted vector stream ({len(planes)} bytes, expected {size * count})")
    planes = np.frombuffer(planes, np.uint8).reshape(size, count)
    if size == 1:
        return torch.from_numpy(planes[0].copy()).view(dtype)
    word = {2: np.uint16, 4: np.uint32, 8: np.uint64}[size]  # little-endian: plane i is byte i
    out = planes[0].astype(word)
    for i in range(1, size):
        out |= planes[i].astype(word) << word(8 * i)
    return torch.from_numpy(out).view(dtype)
