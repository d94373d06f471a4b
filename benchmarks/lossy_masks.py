"""What lossy masks would buy: bits per mask weight against rebuilt accuracy, on the pipeline's own
TALL + TIES masks and the kept store's vector format (``--vector-dtype`` for another).

The store codes every mask bit where the stored vector v is non-zero, losslessly. A lossy
variant leaves the bits of the smallest |v| uncoded: those at magnitude bucket ``cut`` or below
(bucket 0 is the cell of the tensor's largest |v|; see ``tallmerge.store.codec``), decoded as
``fill`` (0: theta_0 there, as if v were zero; 1: theta_0 + v, for every task). For each
(cut, fill) it reports the share of weights whose bits are dropped, the empirical entropy of
the bits still coded (given the bucket, one table per entry, as the store fits them: what the
store's coder would reach, tables aside) and the average normalized accuracy, validation and
test, of the 8 models rebuilt as theta_0 + m'_t * v. The lossless row is the store itself.

Run after ``dvc repro`` (it needs the masks, the fine-tuned models and the evaluation data)::

    python benchmarks/lossy_masks.py [--vector-dtype FORMAT] [--json OUT]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from mask_coding import entropy, stored
from tallmerge import layout
from tallmerge.merging.checkpoints import Checkpoints
from tallmerge.merging.masks import MaskFile
from tallmerge.merging.methods import mtv_vectors
from tallmerge.params import Params
from tallmerge.results.evaluation import Benchmark
from tallmerge.results.selection import SPLITS, avg_normalized, reference_top1
from tallmerge.store import codec

CUTS = (None, 9, 8, 7, 6)  # None: lossless
FILLS = (0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vector-dtype", choices=codec.FORMATS, help="default: the kept store's")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    fmt = args.vector_dtype or json.loads(layout.COMPRESSION.read_text())["vector_dtype"]

    params = Params.load()
    bench = Benchmark.from_params(params)
    reference = {s: reference_top1(layout.method_metrics_path("finetuned"), s) for s in SPLITS}
    with (
        MaskFile(layout.selected_masks("ties")) as masks,
        Checkpoints(layout.PRETRAINED_VISUAL, layout.finetuned_checkpoints(params.tasks)) as ckpts,
    ):
        masks.check_matches(ckpts)
        selection = masks.selection()
        vectors = {key: stored(v, fmt) for key, _, v in mtv_vectors(ckpts, masks.mtv)}
        stacks = {key: masks.stacked(key, ckpts.names, selection) for key in vectors}
        base = {key: ckpts.base.get(key) for key in ckpts.keys}
        tasks = ckpts.names
    weights = sum(v.numel() for v in vectors.values())
    buckets = {}  # every weight's bucket (BUCKETS where v = 0: never coded)
    for key, vector in vectors.items():
        positions = codec.Positions(vector)
        bucket = np.full(vector.numel(), codec.BUCKETS, np.int64)
        bucket[positions.order] = positions.buckets()
        buckets[key] = bucket

    def measure(cut: int | None, fill: int) -> dict:
        bits, dropped, kept_masks = 0.0, 0, {}
        for key, bucket in buckets.items():
            coded = bucket < (codec.BUCKETS if cut is None else cut)
            lost = (bucket < codec.BUCKETS) & ~coded
            mask = stacks[key].reshape(len(tasks), -1).numpy().copy()
            mask[:, lost] = bool(fill)
            bits += sum(entropy(m[coded].astype(np.int64), bucket[coded]) for m in mask)
            dropped += int(lost.sum())
            kept_masks[key] = torch.from_numpy(mask)

        def state_of(task: str) -> dict[str, torch.Tensor]:
            t, state = tasks.index(task), dict(base)
            for key, vector in vectors.items():
                theta = base[key].float()
                on = kept_masks[key][t].reshape(vector.shape)
                state[key] = torch.where(on, theta + vector, theta).to(base[key].dtype)
            return state

        rows = bench.rows(state_of)
        result = {
            "cut": cut,
            "fill": fill,
            "dropped_share": dropped / weights,
            "bits_per_mask_weight": bits / (len(tasks) * weights),
        }
        for split in SPLITS:
            top1 = {r["task"]: r["top1"] for r in rows if r["split"] == split}
            result[f"avg_normalized_{split}"] = round(avg_normalized(top1, reference[split]), 2)
        return result

    results = [measure(None, 0)] + [measure(cut, fill) for cut in CUTS[1:] for fill in FILLS]
    print(f"{len(tasks)} tasks x {weights:,} weights, TALL + TIES masks, {fmt} vector")
    print(f"{'bits dropped':<22} {'share':>6} {'bits/mask weight':>17} {'val':>6} {'test':>6}")
    for r in results:
        what = "none (lossless)" if r["cut"] is None else f"bucket >= {r['cut']} as {r['fill']}"
        print(
            f"{what:<22} {100 * r['dropped_share']:>5.1f}% {r['bits_per_mask_weight']:>17.3f} "
            f"{r['avg_normalized_val']:>6.2f} {r['avg_normalized_test']:>6.2f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"tasks": len(tasks), "weights": weights, "vector_dtype": fmt, "results": results},
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
