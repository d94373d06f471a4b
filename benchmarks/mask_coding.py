"""How many bits a TALL mask costs per weight, by coding, on the pipeline's own masks.

Codings of the same selected masks (``models/masks/tall-<mtv>.safetensors``, one lambda per
task) with the merged vector they index:

- ``bool bytes``: one byte per weight (what a naive implementation stores);
- ``packbits``: 1 bit per weight, the baseline every ratio is against;
- ``packbits + zstd-19`` / ``+ lzma``: general-purpose codecs on the packed bits;
- ``nonzero only + zstd-19``: packed bits of the weights where the merged vector is non-zero
  (the others never matter for a reconstruction), then zstd;
- ``tallmerge``: the store's coding (:mod:`tallmerge.store.codec`): the same bits, range-coded with the
  context model P(bit | magnitude bucket, earlier tasks on); it includes its probability table.

Reported per weight and mask (bits over T x weights), with encode and decode times of the
codings that have both. Run after `dvc repro` (it needs the masks and fine-tuned models)::

    python benchmarks/mask_coding.py [--mtv ties|ta] [--vector-dtype fp32|bf16|fp16] [--json OUT]
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
from tallmerge.store.manifest import VECTOR_DTYPES


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mtv", choices=("ta", "ties"), default="ties")
    parser.add_argument("--vector-dtype", choices=tuple(VECTOR_DTYPES), default="bf16")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    params = Params.load()
    dtype = VECTOR_DTYPES[args.vector_dtype]
    with (
        MaskFile(layout.selected_masks(args.mtv)) as masks,
        Checkpoints(layout.PRETRAINED_VISUAL, layout.finetuned_checkpoints(params.tasks)) as ckpts,
    ):
        masks.check_matches(ckpts)
        selection = masks.selection()
        vectors = {key: v.to(dtype) for key, _, v in mtv_vectors(ckpts, masks.mtv)}
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
        model = codec.MaskModel(tasks)
        for key in vectors:
            model.observe(stacks[key], vectors[key])
        table = model.table()
        return table, {key: codec.encode_masks(stacks[key], vectors[key], table) for key in vectors}

    (table, streams), t_enc = timed(encode)
    coded = table.numel() * 2 + sum(w.numel() * 4 for s in streams.values() for w in s)

    def decode_all():  # every task, as T separate reconstructions would (task t decodes 0..t)
        for key, vector in vectors.items():
            for t in range(tasks):
                mask = codec.decode_mask(streams[key].__getitem__, t, vector, table)
                assert torch.equal(mask, stacks[key][t] & (vector != 0)), (key, t)

    _, t_dec = timed(decode_all)
    results["tallmerge (context range coding)"] = {
        "bits": per_mask(coded),
        "encode_s": t_enc,
        "decode_all_tasks_s": t_dec,
    }

    base = results["packbits"]["bits"]
    print(
        f"{tasks} tasks x {weights:,} weights, tau_MTL = {masks.mtv}, vector {args.vector_dtype}; "
        f"merged vector non-zero at {100 * nonzero.mean():.1f}% of weights"
    )
    print(f"{'coding':<34} {'bits/weight/mask':>16} {'vs packbits':>12}  time")
    for name, r in results.items():
        r["ratio_vs_packbits"] = r["bits"] / base
        times = ", ".join(f"{k} {v:.2f}" for k, v in r.items() if k.endswith("_s"))
        print(f"{name:<34} {r['bits']:>16.3f} {r['ratio_vs_packbits']:>12.3f}  {times}")
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
