"""How many bits a TALL mask costs per weight, by coding, on the pipeline's own masks.

Codings of the same selected masks (``models/masks/tall-<mtv>.safetensors``, one lambda per
task) with the merged vector they index:

- ``bool bytes``: one byte per weight (what a naive implementation stores);
- ``packbits``: 1 bit per weight, the baseline every ratio is against;
- ``packbits + zstd-19`` / ``+ lzma``: general-purpose codecs on the packed bits;
- ``nonzero only + zstd-19``: packed bits of the weights where the merged vector is non-zero
  (the others never matter for a reconstruction), then zstd;
- ``tallmerge``: the store's coding (:mod:`tallmerge.store.codec`): the same bits, each task's
  range-coded on its own with the context model P(bit | magnitude bucket); it includes its
  probability tables (one per entry).

And empirical entropies of the coded bits (no table, no coder: the bounds of a static model
with that context): given the bucket (what the store codes with), given the bucket and the
number of earlier tasks on (format version 1's context, which made task t decode tasks 0..t-1
first), the joint entropy of all T bits of a weight given its bucket, per mask, and three
contexts from a weight matrix's layout: its row's or its column's share of mask bits on (8
levels, their side information counted) and its bucket counted within its row.

Reported per weight and mask (bits over T x weights), with encode and decode times of the
codings that have both. Run after `dvc repro` (it needs the masks and fine-tuned models)::

    python benchmarks/mask_coding.py [--mtv ties|ta] [--vector-dtype fp32|bf16|int4|...] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import lzma
import time

import numpy as np
import torch
import zstandard

from tallmerge import layout
from tallmerge.merging.checkpoints import Checkpoints
from tallmerge.merging.masks import MaskFile
from tallmerge.merging.methods import mtv_vectors
from tallmerge.params import Params
from tallmerge.store import codec


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def stored(vector: torch.Tensor, fmt: str) -> torch.Tensor:
    """tau_MTL as a store in format ``fmt`` holds it."""
    name, parts = codec.encode_vector(vector, fmt)
    return codec.decode_vector(name, parts.__getitem__, fmt, vector.shape)


def entropy(symbols: np.ndarray, context: np.ndarray) -> float:
    """Empirical conditional entropy in bits (total over the symbols) of ``symbols`` given
    ``context``: what a static model fitted to them would code them in, at best."""
    _, joint = np.unique(np.stack([context, symbols]), axis=1, return_counts=True)
    _, marginal = np.unique(context, return_counts=True)
    return float(-(joint * np.log2(joint)).sum() + (marginal * np.log2(marginal)).sum())


def structural_entropies(vectors: dict, positions: dict, stacks: dict) -> dict[str, float]:
    """Entropies (total bits) of the coded bits, fitted per entry as the store's tables are:
    given the bucket alone, and given it and a context from the matrix's layout, for every 2-D
    entry (others: given the bucket alone). A row's (column's) rate is the
    share of its coded bits that are on in the task's mask, in 8 levels, sent as side
    information (3 bits per row or column and task, counted); the bucket within the row is the
    bucket counted from the row's largest |v| instead of the tensor's."""
    names = ("bucket, per entry", "bucket, row rate", "bucket, column rate", "bucket, bucket within row")
    totals = dict.fromkeys(names, 0.0)
    for key, vector in vectors.items():
        where_coded = positions[key]
        bucket = where_coded.buckets()
        on = [where_coded.bits(m).astype(np.int64) for m in stacks[key]]
        if vector.dim() != 2 or min(vector.shape) < 2:
            for name in totals:
                totals[name] += sum(entropy(bits, bucket) for bits in on)
            continue
        rows_n, cols_n = vector.shape
        rows, cols = np.divmod(where_coded.order, cols_n)
        level = (np.abs(vector.float().numpy()).view(np.uint32) >> np.uint32(22)).astype(np.int64)
        in_row = np.minimum(level.max(1, keepdims=True) - level, codec.BUCKETS - 1).reshape(-1)[
            where_coded.order
        ]
        for bits in on:
            totals["bucket, per entry"] += entropy(bits, bucket)
            for name, where, count in (
                ("bucket, row rate", rows, rows_n),
                ("bucket, column rate", cols, cols_n),
            ):
                rate = np.bincount(where, bits, count) / np.maximum(np.bincount(where, minlength=count), 1)
                level8 = np.minimum((rate * 8).astype(np.int64), 7)
                totals[name] += entropy(bits, bucket * 8 + level8[where]) + 3 * count
            totals["bucket, bucket within row"] += entropy(bits, bucket * codec.BUCKETS + in_row)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mtv", choices=("ta", "ties"), default="ties")
    parser.add_argument("--vector-dtype", choices=codec.FORMATS, default="bf16")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    params = Params.load()
    fmt = args.vector_dtype
    with (
        MaskFile(layout.selected_masks(args.mtv)) as masks,
        Checkpoints(layout.PRETRAINED_VISUAL, layout.finetuned_checkpoints(params.tasks)) as ckpts,
    ):
        masks.check_matches(ckpts)
        selection = masks.selection()
        vectors = {key: stored(v, fmt) for key, _, v in mtv_vectors(ckpts, masks.mtv)}
        stacks = {key: masks.stacked(key, ckpts.names, selection) for key in vectors}
    tasks, weights = len(ckpts.names), sum(v.numel() for v in vectors.values())
    per_mask = lambda nbytes: 8 * nbytes / (tasks * weights)  # noqa: E731

    flat = np.concatenate([s.reshape(tasks, -1).numpy() for s in stacks.values()], axis=1)
    nonzero = np.concatenate([v.reshape(-1).float().numpy() != 0 for v in vectors.values()])
    packed = np.packbits(flat, axis=1).tobytes()
    packed_nonzero = np.packbits(flat[:, nonzero], axis=1).tobytes()
    results = {"bool bytes": {"bits": per_mask(flat.size)}, "packbits": {"bits": per_mask(len(packed))}}
    zstd19, t_enc = timed(lambda: zstandard.ZstdCompressor(level=19).compress(packed))
    _, t_dec = timed(lambda: zstandard.ZstdDecompressor().decompress(zstd19))
    results["packbits + zstd-19"] = {"bits": per_mask(len(zstd19)), "encode_s": t_enc, "decode_s": t_dec}
    xz, t_enc = timed(lambda: lzma.compress(packed, preset=9))
    _, t_dec = timed(lambda: lzma.decompress(xz))
    results["packbits + lzma-9"] = {"bits": per_mask(len(xz)), "encode_s": t_enc, "decode_s": t_dec}
    nz19 = zstandard.ZstdCompressor(level=19).compress(packed_nonzero)
    results["nonzero only + zstd-19"] = {"bits": per_mask(len(nz19))}

    def encode():
        coded = {}
        for key, vector in vectors.items():
            positions = codec.Positions(vector)
            coded[key] = codec.encode_masks([positions.bits(m) for m in stacks[key]], positions)
        return coded

    coded_masks, t_enc = timed(encode)
    coded = sum(table.numel() * 2 + sum(w.numel() * 4 for w in s) for table, s in coded_masks.values())

    def decode_all():  # every task, each from its own streams
        for key, vector in vectors.items():
            positions = codec.Positions(vector)
            table, streams = coded_masks[key]
            for t in range(tasks):
                mask = codec.decode_mask(streams[t], positions, table[t])
                assert torch.equal(mask, stacks[key][t] & (vector != 0)), (key, t)

    _, t_dec = timed(decode_all)
    results["tallmerge (context range coding)"] = {
        "bits": per_mask(coded),
        "encode_s": t_enc,
        "decode_all_tasks_s": t_dec,
    }
    positions = {key: codec.Positions(v) for key, v in vectors.items()}
    bucket = np.concatenate([p.buckets() for p in positions.values()])
    on = np.concatenate(
        [np.stack([p.bits(m) for m in stacks[key]]) for key, p in positions.items()], axis=1
    ).astype(np.int64)
    earlier = np.cumsum(on, axis=0) - on
    pattern = (on << np.arange(tasks)[:, None]).sum(0)
    entropies = {
        "given bucket (this store)": sum(entropy(on[t], bucket) for t in range(tasks)),
        "given bucket, earlier tasks on (v1)": sum(
            entropy(on[t], bucket * tasks + earlier[t]) for t in range(tasks)
        ),
        "joint, given bucket": entropy(pattern, bucket),
    }
    entropies.update(structural_entropies(vectors, positions, stacks))
    for name, total in entropies.items():
        results[f"entropy {name}"] = {"bits": total / (tasks * weights)}

    base = results["packbits"]["bits"]
    print(
        f"{tasks} tasks x {weights:,} weights, tau_MTL = {masks.mtv}, vector {args.vector_dtype}; "
        f"merged vector non-zero at {100 * nonzero.mean():.1f}% of weights"
    )
    print(f"{'coding':<40} {'bits/weight/mask':>16} {'vs packbits':>12}  time")
    for name, r in results.items():
        r["ratio_vs_packbits"] = r["bits"] / base
        times = ", ".join(f"{k} {v:.2f}" for k, v in r.items() if k.endswith("_s"))
        print(f"{name:<40} {r['bits']:>16.3f} {r['ratio_vs_packbits']:>12.3f}  {times}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "tasks": tasks,
                    "weights": weights,
                    "mtv": str(masks.mtv),
                    "vector_dtype": args.vector_dtype,
                    "nonzero_share": float(nonzero.mean()),
                    "results": results,
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
