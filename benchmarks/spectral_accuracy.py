"""The spectral merges' maths against full SVDs: how far apart, and how much faster, at ViT-B/32 shapes.

What it measures
    tallmerge computes TSV-M's and Iso-CTS's singular triplets from the eigendecomposition of
    each task matrix's smaller Gram matrix (``maths.top_triplets``) rather than from full SVDs.
    For the four matrices of one ViT-B/32 transformer block (attention in 2304 x 768 and out
    768 x 768, MLP 3072 x 768 and 768 x 3072) and T tasks, this script computes each merge three
    ways from the same float32 task vectors:

    - reference: the published formula with full SVDs in float64, written here from the formula
      (TSV-M: every task's top r // T triplets, U and V replaced by their polar factors; Iso-CTS:
      the authors' rank split, the common subspace of the sum, each task's top directions of its
      residual, polar factors, the mean singular value);
    - full SVD in float32: the same formula run in float32, as tallmerge computed it before;
    - tallmerge in float32 (``maths.tsv_merge``, ``maths.iso_cts``).

    For each, the largest entry of |merge - reference| relative to the reference's largest
    entry, and the seconds of the two float32 ways (best of ``--repeat``), whose ratio is the
    speed-up of the maths alone (reading and writing checkpoints excluded: see
    ``merge_memory.py --spectral`` for whole merges). Task vectors as in merge_memory.py:
    N(0, 1e-3) noise with 1 % of the entries given an extra N(0, 1e-2) kick, seeded.

How to run
    python benchmarks/spectral_accuracy.py                  # T = 8 and 20, about 5 minutes
    python benchmarks/spectral_accuracy.py --tasks 20 --repeat 1

    Results: a table on stdout and JSON in benchmarks/results/spectral_accuracy.json (--json).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "spectral_accuracy.json"
BLOCK = {
    "attn.in_proj": (2304, 768),
    "attn.out_proj": (768, 768),
    "mlp.c_fc": (3072, 768),
    "mlp.c_proj": (768, 3072),
}
FRACTION = 0.8  # Iso-CTS's common_fraction, the authors' default


# -- the formulas with full SVDs (any dtype) --------------------------------------------------------
def _polar(x: torch.Tensor) -> torch.Tensor:
    p, _, qh = torch.linalg.svd(x, full_matrices=False)
    return p @ qh


def svd_tsv_m(taus: torch.Tensor) -> torch.Tensor:
    k = max(1, min(taus.shape[1:]) // len(taus))
    blocks = [torch.linalg.svd(tau, full_matrices=False) for tau in taus]
    u = torch.cat([b[0][:, :k] for b in blocks], 1)
    s = torch.cat([b[1][:k] for b in blocks])
    v = torch.cat([b[2][:k].T for b in blocks], 1)
    return (_polar(u) * s) @ _polar(v).T


def svd_iso_cts(taus: torch.Tensor) -> torch.Tensor:
    r = min(taus.shape[1:])
    per_task = round((r - int(r * FRACTION)) / len(taus))
    common = r - per_task * len(taus)
    u, s, vh = torch.linalg.svd(taus.sum(0), full_matrices=False)
    us, ss, vs = [u[:, :common]], [s[:common]], [vh[:common].T]
    for tau in taus:
        ut, st, vht = torch.linalg.svd(tau - us[0] @ (us[0].T @ tau), full_matrices=False)
        us.append(ut[:, :per_task]), ss.append(st[:per_task]), vs.append(vht[:per_task].T)
    s = torch.cat(ss)
    return (_polar(torch.cat(us, 1)) * s.mean()) @ _polar(torch.cat(vs, 1)).T


def task_vectors(shape: tuple[int, int], tasks: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = shape[0] * shape[1]
    taus = torch.empty(tasks, *shape).normal_(0.0, 1e-3, generator=g)
    for tau in taus:
        where = torch.randint(0, n, (n // 100,), generator=g)
        tau.view(-1).index_add_(0, where, torch.empty(n // 100).normal_(0.0, 1e-2, generator=g))
    return taus


def timed(fn, taus, repeat: int):
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn(taus)
        best = min(best, time.perf_counter() - start)
    return out, best


def main() -> int:
    from tallmerge.merging import maths

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, nargs="+", default=[8, 20])
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each float32 way (the best counts)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    torch.set_num_threads(args.threads)
    methods = {
        "tsv-m": (svd_tsv_m, maths.tsv_merge),
        "iso-cts": (svd_iso_cts, lambda taus: maths.iso_cts(taus, FRACTION)),
    }
    rows = []
    print(
        "T  method   matrix         shape        full-SVD s  tallmerge s  speed-up  err full-SVD  err tallmerge"
    )
    for tasks in args.tasks:
        for name, (formula, fast) in methods.items():
            for matrix, shape in BLOCK.items():
                taus = task_vectors(shape, tasks, args.seed)
                reference = formula(taus.double())
                scale = reference.abs().max().item()
                full, full_s = timed(formula, taus, args.repeat)
                ours, ours_s = timed(fast, taus, args.repeat)
                row = {
                    "tasks": tasks,
                    "method": name,
                    "matrix": matrix,
                    "shape": list(shape),
                    "full_svd_s": full_s,
                    "tallmerge_s": ours_s,
                    "speedup": full_s / ours_s,
                    "rel_err_full_svd": (full.double() - reference).abs().max().item() / scale,
                    "rel_err_tallmerge": (ours.double() - reference).abs().max().item() / scale,
                }
                rows.append(row)
                print(
                    f"{tasks:<2d} {name:8s} {matrix:14s} {str(shape):12s} {full_s:10.2f}  {ours_s:11.2f}  "
                    f"{row['speedup']:7.2f}x  {row['rel_err_full_svd']:12.1e}  {row['rel_err_tallmerge']:13.1e}",
                    flush=True,
                )
    summary = {}
    for tasks in args.tasks:
        for name in methods:
            sel = [r for r in rows if r["tasks"] == tasks and r["method"] == name]
            summary[f"{name} T={tasks}"] = {
                "speedup_block": sum(r["full_svd_s"] for r in sel) / sum(r["tallmerge_s"] for r in sel),
                "max_rel_err_full_svd": max(r["rel_err_full_svd"] for r in sel),
                "max_rel_err_tallmerge": max(r["rel_err_tallmerge"] for r in sel),
            }
    for key, value in summary.items():
        print(
            f"{key}: one block {value['speedup_block']:.2f}x faster; largest relative error "
            f"{value['max_rel_err_tallmerge']:.1e} (full SVD in float32: {value['max_rel_err_full_svd']:.1e})"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.json.with_suffix(".tmp")
    tmp.write_text(
        json.dumps(
            {
                "benchmark": "spectral_accuracy",
                "settings": {
                    "tasks": args.tasks,
                    "repeat": args.repeat,
                    "threads": args.threads,
                    "seed": args.seed,
                },
                "environment": {"python": sys.version.split()[0], "torch": torch.__version__},
                "summary": summary,
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )
    tmp.replace(args.json)
    print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
