"""The compressed store: ``tallmerge compress`` and ``reconstruct`` time and peak memory at CLIP sizes.

What it measures
    On T fine-tuned checkpoints of a real open_clip visual encoder's shapes (ViT-B-32 by
    default, T = 8), the wall time and peak resident memory of these commands, each as a ratio
    to the baseline, one streaming merge pass over the same files:

    - ``merge one``: ``tallmerge merge average --finetuned ONE`` (read the base and one
      checkpoint, write one model): the baseline of every rebuild;
    - ``merge all``: ``tallmerge merge task-arithmetic --alpha 0.4`` over the T checkpoints: the
      baseline of compress;
    - ``compress fp32`` / ``bf16`` / ``int4`` / ``int3``: ``tallmerge compress --lambda 0.4
      --mtv ta --vector-dtype ...`` (one pass over the checkpoints: worker threads each take an
      entry, form tau_MTL and the TALL masks and code them); ``compress bf16 (1 thread)``: the
      same with ``TALLMERGE_THREADS=1``, to see what the threads buy;
    - ``reconstruct first`` / ``reconstruct last``: ``tallmerge reconstruct`` of the first and
      the last task from the bf16 store (format version 2: every task decodes from its own
      streams, so they should take the same time); ``reconstruct last (fp32)`` / ``(int4)`` /
      ``(int3)``: the last task from the other stores;
    - ``switch first`` / ``switch last``: the in-memory switch, ``Store.state(task)`` on a
      store opened and verified beforehand (not timed), no file written;
    - ``reconstruct --all``: every task from the bf16 store in one pass.

    Each command runs in a fresh subprocess (2 torch threads) that calls ``tallmerge.cli.main``
    with the command's arguments and reports its own wall time (the command only; interpreter
    and library imports excluded) and its peak resident set size (``ru_maxrss``, which includes
    the ~0.3 GB an idle Python + torch process already holds). Each command runs ``--repeat``
    times (default 3) and its median time is the one compared: single runs of the same command
    on this 2-core machine have differed by a third (merge one: 2.2 s in one run, 3.0 s in
    another), enough to move a ratio across a target. A command's input files are read
    once by the parent right before it runs, so every run starts with them in the page cache.

    Every reconstruction written to a file is checked: for the first, the largest and the last
    floating-point tensors and every integer one (read one tensor at a time with safetensors'
    ``safe_open``), the rebuilt tensor must equal theta_0 + m_t * v bit for bit, with tau_MTL =
    sum_t tau_t, the TALL mask m_t = |tau_t| > 0.4 |tau_MTL - tau_t| and v = tau_MTL as the
    store's vector dtype holds it, computed here directly from the checkpoints.

    The checkpoints are ``merge_memory.generate``'s: seeded random float32 tensors (base ~
    N(0, 0.02), each task = base + small noise), generated once and deleted at the end. Random
    task vectors make random masks, so the store sizes and bits per weight reported here are NOT
    representative of real TALL masks or task vectors (``benchmarks/mask_coding.py`` measures
    those on the pipeline's models): this benchmark is about time and memory.

How to run
    python benchmarks/store_speed.py                  # ViT-B-32, T = 8
    python benchmarks/store_speed.py --model ViT-L-14 --tasks 14
    python benchmarks/store_speed.py --quick          # a few-MB smoke test, T = 3, seconds

    Results: a table on stdout and JSON in benchmarks/results/store_speed.json (``--json``;
    --quick prints only, unless --json is given). ``--workdir DIR --keep`` keeps the checkpoints
    in DIR for the next run. Timings assume an otherwise idle machine: each run uses 2 threads.

What the numbers mean
    ``wall s``: seconds for the command, files to files, the median of the repeats (``range
    s``: the fastest and the slowest). ``peak GB``: the largest peak RSS of the processes
    running it (1 GB = 1e9 bytes). ``vs``: the baseline; ``time x`` / ``mem x``: the run's wall
    time / peak RSS divided by the baseline's. ``output``: ``exact`` when the reconstruction
    matched bit for bit.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import merge_memory as mm  # noqa: E402  (its checkpoint generator, page-cache warming, JSON writer)

ROOT = mm.ROOT
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "store_speed.json"
LAM = 0.4  # compress: the TALL masks' lambda
ALPHA = 0.4  # the baseline merge's scaling
QUICK_TASKS = 3
STORES = ("fp32", "bf16", "int4", "int3")
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")


# -- the child: one tallmerge command --------------------------------------------------------------
def child(argv: list[str]) -> dict:
    """Run ``tallmerge ARGV`` in this process; time and peak memory of the command alone."""
    import torch

    torch.set_num_threads(mm.THREADS)
    from tallmerge import cli  # noqa: F401  (the commands' imports, outside the timing)
    from tallmerge.merging import methods  # noqa: F401
    from tallmerge.store import build, reader  # noqa: F401

    if argv[0] == "switch":  # the in-memory switch: open and verify, then time state(task)
        store = reader.Store(argv[1])
        store.verify()
        before = mm._rss_kib()
        start = time.perf_counter()
        state = store.state(argv[2])
        wall = time.perf_counter() - start
        assert len(state) == len(store.tensors)
        return {"wall_s": wall, "peak_rss_kib": mm._rss_kib(), "idle_rss_kib": before}
    before = mm._rss_kib()
    start = time.perf_counter()
    cli.main(argv)
    return {"wall_s": time.perf_counter() - start, "peak_rss_kib": mm._rss_kib(), "idle_rss_kib": before}


def run_command(argv: list[str], inputs: list[Path], extra_env: dict | None = None) -> dict:
    """Warm ``inputs`` into the page cache, then run the command in a fresh interpreter."""
    mm.warm(inputs)
    env = {**os.environ, "OMP_NUM_THREADS": str(mm.THREADS), "MKL_NUM_THREADS": str(mm.THREADS)}
    env.update(extra_env or {})
    src = str(ROOT / "src")
    env["PYTHONPATH"] = src + os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else src
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(argv)], capture_output=True, text=True, env=env
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = " | ".join(line[:200] for line in proc.stderr.strip().splitlines()[-3:])
        return {"error": f"exit {proc.returncode}" + (f": {tail}" if tail else "")}
    result = json.loads(lines[-1])
    result["peak_rss_gb"] = result["peak_rss_kib"] * 1024 / mm.GB
    result["idle_rss_gb"] = result["idle_rss_kib"] * 1024 / mm.GB
    return result


# -- the runs --------------------------------------------------------------------------------------
def plan_runs(paths: list[Path], out: Path) -> list[dict]:
    """The commands, in order: each with its arguments, the files it reads, the baseline it is
    compared with and, for a reconstruction, what to check its output against."""
    base, tasks = paths[0], paths[1:]
    names = [p.stem for p in tasks]
    inputs = ["--base", str(base), "--finetuned", *(f"{n}={p}" for n, p in zip(names, tasks))]
    stores = {d: out / f"store-{d}" for d in STORES}

    def store_files(dtype: str) -> list[Path]:
        folder = stores[dtype]
        return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []

    one = ["--base", str(base), "--finetuned", f"{names[0]}={tasks[0]}"]
    runs = [
        {
            "run": "merge one",
            "files": paths[:2],
            "argv": ["merge", "average", *one, "--out", str(out / "one.safetensors")],
        },
        {
            "run": "merge all",
            "files": paths,
            "argv": [
                "merge",
                "task-arithmetic",
                *inputs,
                "--alpha",
                str(ALPHA),
                "--out",
                str(out / "all.safetensors"),
            ],
        },
    ]
    runs.append(
        {
            "run": "compress bf16 (1 thread)",
            "vs": "merge all",
            "files": paths,
            "env": {"TALLMERGE_THREADS": "1"},
            "argv": ["compress", *inputs, "--lambda", str(LAM), "--mtv", "ta", "--vector-dtype", "bf16"]
            + ["--out", str(out / "store-bf16-1thread")],
        }
    )
    for dtype in stores:
        runs.append(
            {
                "run": f"compress {dtype}",
                "vs": "merge all",
                "files": paths,
                "argv": ["compress", *inputs, "--lambda", str(LAM), "--mtv", "ta", "--vector-dtype", dtype]
                + ["--out", str(stores[dtype])],
            }
        )
    last = len(tasks) - 1
    for label, index, dtype in [
        ("first", 0, "bf16"),
        ("last", last, "bf16"),
        ("last (fp32)", last, "fp32"),
        ("last (int4)", last, "int4"),
        ("last (int3)", last, "int3"),
    ]:
        rebuilt = out / f"{names[index]}-{dtype}.safetensors"
        runs.append(
            {
                "run": f"reconstruct {label}",
                "vs": "merge one",
                "files": lambda d=dtype: store_files(d),
                "argv": ["reconstruct", str(stores[dtype]), "--task", names[index], "--out", str(rebuilt)],
                "check": {"rebuilt": rebuilt, "task": index, "vector_dtype": dtype},
            }
        )
    for label, index in [("first", 0), ("last", last)]:
        runs.append(
            {
                "run": f"switch {label}",
                "vs": "merge one",
                "files": lambda: store_files("bf16"),
                "argv": ["switch", str(stores["bf16"]), names[index]],
            }
        )
    runs.append(
        {
            "run": "reconstruct --all",
            "vs": "merge one",
            "files": lambda: store_files("bf16"),
            "argv": ["reconstruct", str(stores["bf16"]), "--all", "--out", str(out / "all-tasks")],
            "check": {
                "rebuilt": out / "all-tasks" / f"{names[last]}.safetensors",
                "task": last,
                "vector_dtype": "bf16",
            },
        }
    )
    return runs


def checked_keys(specs: list) -> list[str]:
    """The tensors a reconstruction is checked on: first, largest and last float ones, all others."""
    floats = [(key, math.prod(shape)) for key, dtype, shape in specs if dtype in FLOAT_DTYPES]
    chosen = {floats[0][0], max(floats, key=lambda kv: kv[1])[0], floats[-1][0]}
    return [key for key, dtype, _ in specs if key in chosen or dtype not in FLOAT_DTYPES]


def check_reconstruction(
    rebuilt: Path, paths: list[Path], task: int, vector_dtype: str, keys: list[str]
) -> dict:
    """Compare ``rebuilt`` with theta_0 + m_t * v computed from the checkpoints, tensor by tensor."""
    import torch
    from safetensors import safe_open

    from tallmerge.store import codec

    with ExitStack() as stack:
        out, base, *tasks = (
            stack.enter_context(safe_open(str(p), framework="pt")) for p in [rebuilt, *paths]
        )
        if set(out.keys()) != set(base.keys()):
            return {"exact": False, "why": "the rebuilt model's keys differ from the base's"}
        for key in keys:
            theta = base.get_tensor(key)
            if theta.is_floating_point():
                taus = torch.stack([t.get_tensor(key).float() - theta.float() for t in tasks])
                mtv = taus.sum(dim=0)
                mask = taus[task].abs() > LAM * (mtv - taus[task]).abs()
                name, parts = codec.encode_vector(mtv, vector_dtype)
                vector = codec.decode_vector(name, parts.__getitem__, vector_dtype, mtv.shape).float()
                expected = (theta.float() + vector * mask).to(theta.dtype)
            else:
                expected = theta
            if not torch.equal(out.get_tensor(key), expected):
                return {"exact": False, "why": f"tensor '{key}' differs"}
    return {"exact": True}


def store_sizes(store: Path, finetuned_bytes: int, weights: int, tasks: int) -> dict:
    """Bytes on disk by component (from the manifest), against the fine-tuned checkpoints'."""
    files = json.loads((store / "manifest.json").read_text())["files"]
    nbytes = {part: int(entry["bytes"]) for part, entry in files.items()}
    nbytes["manifest"] = (store / "manifest.json").stat().st_size
    nbytes["total"] = sum(nbytes.values())
    return {
        "bytes": nbytes,
        "fraction_of_finetuned": nbytes["total"] / finetuned_bytes,
        "vector_bits_per_weight": 8 * nbytes["vector"] / weights,
        "mask_bits_per_weight": 8 * nbytes["masks"] / (weights * tasks),
    }


# -- reporting -------------------------------------------------------------------------------------
def runs_table(rows: list[dict]) -> str:
    head = ["run", "wall s", "range s", "peak GB", "vs", "time x", "mem x", "output"]
    lines = [head]
    for r in rows:
        if "error" in r:
            lines.append([r["run"], "failed", "-", "-", "-", "-", "-", "-"])
            continue
        check = r.get("check")
        output = "-" if check is None else "exact" if check["exact"] else "MISMATCH"
        ratios = [f"{r[k]:.2f}" if k in r else "-" for k in ("time_ratio", "mem_ratio")]
        lines.append(
            [
                r["run"],
                f"{r['wall_s']:.2f}",
                spread(r),
                f"{r['peak_rss_gb']:.2f}",
                r.get("vs", "-"),
                *ratios,
                output,
            ]
        )
    return _columns(lines)


def spread(row: dict) -> str:
    walls = row.get("wall_s_runs", [])
    return f"{min(walls):.2f}-{max(walls):.2f}" if len(walls) > 1 else "-"


def sizes_table(stores: dict, finetuned_bytes: int) -> str:
    parts = ["base", "vector", "masks", "manifest", "total"]
    lines = [["store", *parts, "% fine-tuned", "vector b/w", "mask b/w"]]
    for name, s in stores.items():
        lines.append(
            [
                name,
                *(f"{s['bytes'][p]:,}" for p in parts),
                f"{100 * s['fraction_of_finetuned']:.1f}",
                f"{s['vector_bits_per_weight']:.2f}",
                f"{s['mask_bits_per_weight']:.3f}",
            ]
        )
    lines.append(["fine-tuned", "", "", "", "", f"{finetuned_bytes:,}", "100.0", "", ""])
    return _columns(lines)


def _columns(lines: list[list[str]]) -> str:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
        for line in lines
    )


# -- the benchmark ---------------------------------------------------------------------------------
def repeated(argv: list[str], files: list[Path], env: dict | None, repeat: int) -> dict:
    """The command run ``repeat`` times: the median wall time (every run's kept in
    ``wall_s_runs``) and the largest peak memory; the first failure if one fails."""
    results = []
    for _ in range(repeat):
        result = run_command(argv, files, env)
        if "error" in result:
            return result
        results.append(result)
    walls = [r["wall_s"] for r in results]
    peak = max(results, key=lambda r: r["peak_rss_kib"])
    return {**peak, "wall_s": statistics.median(walls), "wall_s_runs": walls}


def measure(runs: list[dict], paths: list[Path], keys: list[str], repeat: int = 1) -> list[dict]:
    """Run every command in order (each ``repeat`` times); ratios of the median times against
    the baseline's; check the reconstructions."""
    rows = []
    for run in runs:
        print(f"{run['run']} ...", end="", flush=True)
        files = run["files"]() if callable(run["files"]) else run["files"]
        row = {
            "run": run["run"],
            "command": "tallmerge " + " ".join(run["argv"]),
            **repeated(run["argv"], files, run.get("env"), repeat),
        }
        if "error" in row:
            print(f" FAILED: {row['error']}", flush=True)
            rows.append(row)
            continue
        baseline = next((r for r in rows if r["run"] == run.get("vs")), None)
        if baseline is not None and "error" not in baseline:
            row["vs"] = baseline["run"]
            row["time_ratio"] = row["wall_s"] / baseline["wall_s"]
            row["mem_ratio"] = row["peak_rss_kib"] / baseline["peak_rss_kib"]
        runs = f" ({spread(row)})" if repeat > 1 else ""
        print(f" {row['wall_s']:.2f} s{runs}, {row['peak_rss_gb']:.2f} GB", end="", flush=True)
        if "check" in run:
            c = run["check"]
            row["check"] = check_reconstruction(c["rebuilt"], paths, c["task"], c["vector_dtype"], keys)
            print(", exact" if row["check"]["exact"] else f", MISMATCH: {row['check']['why']}", end="")
        print(flush=True)
        rows.append(row)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="ViT-B-32", help="open_clip model whose visual encoder shapes to use")
    ap.add_argument("--tasks", type=int, default=8, help="number of fine-tuned checkpoints T")
    ap.add_argument(
        "--quick", action="store_true", help=f"smoke run: a tiny custom layout, T = {QUICK_TASKS}"
    )
    ap.add_argument(
        "--workdir", type=Path, help="where to generate the checkpoints (default: a new temp folder)"
    )
    ap.add_argument(
        "--keep", action="store_true", help="keep the generated checkpoints (reused by a later --workdir run)"
    )
    ap.add_argument(
        "--json",
        type=Path,
        help=f"results file (default {DEFAULT_JSON.relative_to(ROOT)}; none with --quick)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of each command; times are medians (default 3; 1 with --quick)",
    )
    ap.add_argument("--child", metavar="ARGV", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")

    if args.child:
        print(json.dumps(child(json.loads(args.child))), flush=True)
        return 0

    started = time.perf_counter()
    if args.quick:
        model, specs, tasks = "quick", [list(s) for s in mm.QUICK_SPECS], QUICK_TASKS
    else:
        model, tasks = args.model, args.tasks
        got = mm.run_child("shapes", {"model": model})
        if "error" in got:
            print(f"cannot build {model!r} with open_clip: {got['error']}", file=sys.stderr)
            return 2
        specs = got["specs"]
    if tasks < 2:
        ap.error("TALL masks need T >= 2")
    repeat = 1 if args.quick else args.repeat
    json_path = args.json or (None if args.quick else DEFAULT_JSON)

    import torch

    weights = sum(math.prod(s) for _, d, s in specs if d in FLOAT_DTYPES)
    keys = checked_keys(specs)
    print(
        f"{model}: {len(specs)} tensors, {weights:,} float parameters; T = {tasks}; lambda {LAM}; "
        f"{mm.THREADS} torch threads per run",
        flush=True,
    )

    own_workdir = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="store_speed_")) if own_workdir else args.workdir
    folder = workdir / f"store_speed-{model}-seed{args.seed}"
    out = folder / "outputs"
    try:
        paths = mm.generate(specs, tasks, folder, args.seed)
        shutil.rmtree(out, ignore_errors=True)
        rows = measure(plan_runs(paths, out), paths, keys, repeat)
        finetuned_bytes = sum(p.stat().st_size for p in paths[1:])
        stores = {
            d: store_sizes(out / f"store-{d}", finetuned_bytes, weights, tasks)
            for d in STORES
            if (out / f"store-{d}" / "manifest.json").is_file()
        }
    finally:
        shutil.rmtree(out, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(workdir if own_workdir else folder, ignore_errors=True)
        elif folder.exists():
            print(f"checkpoints kept in {folder}")

    total = time.perf_counter() - started
    print()
    print(runs_table(rows))
    print(
        "\ntime x, mem x: wall time and peak RSS over the baseline in 'vs' (merge one: base + one "
        "checkpoint -> one model; merge all: a task-arithmetic pass over the T checkpoints)"
    )
    print("\nstore size on disk, bytes (b/w: bits per weight; per task for the masks):")
    print(sizes_table(stores, finetuned_bytes))
    print(
        "random task vectors make random masks: these sizes and bits per weight are NOT representative "
        f"of real TALL masks (see benchmarks/mask_coding.py); total run time {total:.0f} s"
    )

    if json_path is not None:
        mm.write_json_atomic(
            {
                "benchmark": "store_speed",
                "settings": {
                    "model": model,
                    "tasks": tasks,
                    "seed": args.seed,
                    "lam": LAM,
                    "alpha": ALPHA,
                    "mtv": "ta",
                    "threads": mm.THREADS,
                    "checked_keys": keys,
                },
                "checkpoint": {"params": weights, "tensors": len(specs), "finetuned_bytes": finetuned_bytes},
                "environment": {
                    "python": sys.version.split()[0],
                    "torch": torch.__version__,
                    "cpus": os.cpu_count(),
                },
                "total_s": total,
                "runs": rows,
                "stores": stores,
                "note": "random task vectors: store sizes and mask bits per weight are not representative",
            },
            json_path,
        )
        print(f"results written to {json_path}")
    failed = any("error" in r or not r.get("check", {"exact": True})["exact"] for r in rows)
    return 1 if failed or len(stores) < len(STORES) else 0


if __name__ == "__main__":
    sys.exit(main())
