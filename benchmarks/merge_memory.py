"""Consensus merging: the streaming engine versus the naive in-memory way, time and peak memory;
with --spectral, the later methods (TSV-M, Iso-C, Iso-CTS) against Task Arithmetic.

What it measures
    For each (model, T, method) configuration, two ways of computing the same consensus merge
    (TALL masks with lambda = 0.4, k = 2, alpha = 1.0) of T fine-tuned checkpoints into one model:

    - streaming: ``tallmerge.merging.methods.merge_files`` (the project's engine), which reads the checkpoints one
      state-dict entry at a time;
    - naive: what the paper's reference code does: load every checkpoint with
      ``safetensors.torch.load_file``, flatten each into one vector, stack them into a [T, N]
      matrix, compute tau_MTL, the masks and the consensus on the full matrix, split the result
      back into tensors and write it with ``safetensors.torch.save_file``.

    Each approach runs in a fresh subprocess (2 torch threads) that reports its own wall time
    (the merge call only: reading, computing and writing the output; interpreter and library
    imports excluded) and its peak resident set size (``VmHWM``, which includes the ~0.5 GB an
    idle Python + torch process already holds; see ``_rss_kib`` for why not ``ru_maxrss``). The
    checkpoint files are read once by the parent right before each run, so both approaches start
    with them in the page cache (as much of them as it holds).

    The checkpoints are random float32 tensors with the shapes of a real open_clip visual encoder
    (ViT-B-32: 87,849,216 parameters; ViT-L-14: 303,966,208) or, with ``--model t5-large``, of
    google/t5-large-lm-adapt, the paper's NLP model (783,150,080 parameters: ``shared`` and
    ``lm_head``, 32128 x 1024 each, and 24 + 24 blocks; built from a ``transformers.T5Config`` on
    the meta device, nothing downloaded; ``--layers L`` keeps L + L blocks, every tensor still of
    T5-large's shapes, for a naive run that fits in memory): base ~ N(0, 0.02), each fine-tuned
    one = base + N(0, 1e-3) noise with 1% of the entries given an extra N(0, 1e-2) kick; seeded,
    generated once for the largest T (smaller T use the first tasks) and deleted at the end.

    The naive approach holds about 3-4 x T x N x 4 bytes at its peak (see ``NAIVE_FACTOR``); it is
    skipped, with the reason printed, when that exceeds 75% of MemTotal (or what is available at
    the time, less 1 GB). Wherever
    both ran, the two outputs are compared tensor by tensor (``torch.allclose``).

How to run
    make bench                                        # runs every benchmarks/*.py (this one: defaults)
    python benchmarks/merge_memory.py                 # ViT-B-32, T = 8 14 20, consensus-ta and -ties
    python benchmarks/merge_memory.py --model ViT-L-14 --tasks 8
    python benchmarks/merge_memory.py --model t5-large --tasks 11 --methods consensus-ta \
        --workdir DIR --keep --json benchmarks/results/merge_memory.t5-large.json   # 12 x 3.1 GB
    python benchmarks/merge_memory.py --model t5-large --layers 1 --tasks 11 --methods consensus-ta
    python benchmarks/merge_memory.py --quick         # a few-MB smoke test, T = 3, seconds
    python benchmarks/merge_memory.py --spectral      # tsv-m, iso-c, iso-cts against task-arithmetic,
                                                      # streamed in the same run, T = 8 20
    python benchmarks/merge_memory.py --spectral --device cuda   # the merges' maths on a GPU

    Results: a table on stdout and JSON in benchmarks/results/merge_memory.json (``--json``;
    --quick writes merge_memory.quick.json). ``--workdir DIR --keep`` keeps the checkpoints in DIR
    for the next run. Timings assume an otherwise idle machine: each run uses 2 threads.

What the numbers mean
    ``stream s`` / ``naive s``: seconds for the whole merge, files to file. ``stream GB`` /
    ``naive GB``: peak RSS of the process doing it (1 GB = 1e9 bytes). ``time s/n`` and
    ``mem s/n``: streaming divided by naive; below 1 means the streaming engine is faster /
    lighter. ``outputs``: whether the two merged models agree (allclose on every tensor).
    The streaming engine's peak should not grow with T much beyond the T-task stack of the
    largest single tensor; the naive one grows as T x the checkpoint size.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "merge_memory.json"
GB = 1e9
THREADS = 2
LAM, K, ALPHA, TOPK = 0.4, 2, 1.0, 20.0
MEM_FRACTION = 0.75  # run the naive approach only if its estimated peak fits in this share of MemTotal

# Peak memory of the naive approach in units of T x N x 4 bytes (the [T, N] float32 matrix).
# consensus-ta: about 3x: while stacking, the loaded checkpoints, their flattened copies and the
#   stacked matrix coexist; the masks later need the task vectors, |tau_MTL - tau_t| and |tau_t|.
# consensus-ties: one more, as `trimmed * agree` materialises the bool mask as float32 on CPU.
# On top come the base (twice), the pages safetensors maps while loading and the ~0.6 GB of an
# idle torch process: measured on ViT-B-32, T = 8, the ratios are 3.8 and 4.7, used here. The
# first naive run of each method replaces them by its own measured ratio (which, counting the
# fixed part too, errs on the high side for larger T).
NAIVE_FACTOR = {"consensus-ta": 3.8, "consensus-ties": 4.7}
# The later methods run streaming only (no in-memory reference implementation here); their time
# and peak memory are compared with task-arithmetic's, streamed in the same run.
SPECTRAL = ("task-arithmetic", "tsv-m", "iso-c", "iso-cts")

DTYPE_NAMES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
}

# --model t5-large: the shapes of google/t5-large-lm-adapt (T5 v1.1 with the LM adaptation), as its
# config.json on the Hugging Face Hub gives them. 783,150,080 parameters: `shared` and `lm_head`
# (32128 x 1024 each, untied) and 24 + 24 blocks with a gated-GELU MLP (wi_0, wi_1: 2816 x 1024).
T5_CONFIGS = {
    "t5-large": {
        "vocab_size": 32128,
        "d_model": 1024,
        "d_kv": 64,
        "d_ff": 2816,
        "num_layers": 24,
        "num_decoder_layers": 24,
        "num_heads": 16,
        "feed_forward_proj": "gated-gelu",
        "tie_word_embeddings": False,
    }
}

# --quick: a tiny visual-encoder-like layout (~1.7M parameters, 6.6 MB per checkpoint) with a
# float16 and an integer entry, so the dtype handling of both approaches is exercised too.
QUICK_SPECS = [
    ("class_embedding", "F32", [256]),
    ("positional_embedding", "F32", [17, 256]),
    ("conv1.weight", "F32", [256, 3, 16, 16]),
    *[
        (f"transformer.resblocks.{i}.{name}", "F32", shape)
        for i in range(2)
        for name, shape in [
            ("ln_1.weight", [256]),
            ("ln_1.bias", [256]),
            ("attn.in_proj_weight", [768, 256]),
            ("attn.in_proj_bias", [768]),
            ("attn.out_proj.weight", [256, 256]),
            ("attn.out_proj.bias", [256]),
            ("mlp.c_fc.weight", [1024, 256]),
            ("mlp.c_fc.bias", [1024]),
            ("mlp.c_proj.weight", [256, 1024]),
            ("mlp.c_proj.bias", [256]),
        ]
    ],
    ("ln_post.weight", "F32", [256]),
    ("proj", "F16", [256, 128]),
    ("position_ids", "I64", [17]),
]


# -- children ------------------------------------------------------------------------------------
def _rss_kib() -> int:
    """This process's peak resident set size so far, in KiB: ``VmHWM``, the high-water mark of
    the program's own memory. Not ``ru_maxrss``: Linux carries that over an exec from the forked
    copy of the parent, so a child started while the parent held 3 GB (after comparing two
    outputs) reported at least 3 GB whatever it used itself."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def child_shapes(job: dict) -> dict:
    """The state-dict layout of an open_clip model's visual encoder (or of a T5, see
    :func:`t5_shapes`), built on the meta device."""
    if job["model"] in T5_CONFIGS:
        return {"specs": t5_shapes(job["model"], job.get("layers"))}
    import open_clip

    names = {v: k for k, v in DTYPE_NAMES.items()}
    logging.disable(logging.WARNING)  # "No pretrained weights loaded ..." is what we asked for
    try:
        model = open_clip.create_model(job["model"], pretrained=None, device="meta")
    except Exception:  # an architecture that cannot be built on meta: build it for real, once
        model = open_clip.create_model(job["model"], pretrained=None)
    finally:
        logging.disable(logging.NOTSET)
    specs = [
        (k, names[str(v.dtype).removeprefix("torch.")], list(v.shape))
        for k, v in model.visual.state_dict().items()
    ]
    del model
    return {"specs": specs}


def t5_shapes(model: str, layers: int | None = None) -> list:
    """The state-dict layout of a Hugging Face T5 (``T5_CONFIGS``), built on the meta device from
    its config alone (nothing downloaded, nothing allocated); ``layers``: that many encoder and
    decoder blocks instead of the model's, every tensor still of the model's shapes.

    ``encoder.embed_tokens`` and ``decoder.embed_tokens`` are views of ``shared`` in every T5 and
    are left out, as a saved checkpoint leaves them. ``lm_head`` is kept: T5 v1.1 / LM-adapt
    does not tie it to ``shared`` (its checkpoints store both), although transformers 5 ties them
    when it builds the model whatever the config says."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    options = dict(T5_CONFIGS[model])
    if layers is not None:
        options.update(num_layers=layers, num_decoder_layers=layers)
    with torch.device("meta"):
        state = T5ForConditionalGeneration(T5Config(**options)).state_dict()
    names = {v: k for k, v in DTYPE_NAMES.items()}
    aliases = {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight"}
    if not aliases <= set(state) or "lm_head.weight" not in state:
        raise RuntimeError(f"unexpected T5 state dict: {sorted(state)[:5]} ...")
    return [
        (k, names[str(v.dtype).removeprefix("torch.")], list(v.shape))
        for k, v in state.items()
        if k not in aliases
    ]


def child_stream(job: dict) -> dict:
    from tallmerge.merging.methods import merge_files

    tasks = {f"task{i:02d}": p for i, p in enumerate(job["tasks"])}
    before = _rss_kib()
    start = time.perf_counter()
    options = (
        {"lam": LAM, "k": K, "alpha": ALPHA} if job["method"].startswith("consensus-") else {"alpha": ALPHA}
    )
    merge_files(job["method"], job["base"], tasks, job["out"], device=job.get("device"), **options)
    return {"wall_s": time.perf_counter() - start, "peak_rss_kib": _rss_kib(), "idle_rss_kib": before}


def naive_ties(tv, topk: float):
    """TIES (trim to each task's top-k% magnitudes, elect signs, disjoint sum) on the [T, N] matrix."""
    import torch

    T, N = tv.shape
    m = int(N * topk / 100)
    thresholds = torch.full((T, 1), math.inf)
    if m > 0:
        for t in range(T):  # row by row, so the selection's scratch space is one row, not the matrix
            thresholds[t, 0] = tv[t].abs().kthvalue(N - m + 1).values  # the m-th largest |tau_t|
    trimmed = torch.where(tv.abs() >= thresholds, tv, torch.zeros((), dtype=tv.dtype))
    votes = torch.sign(trimmed.sum(dim=0))
    total = int(votes.sum(dtype=torch.int64))
    majority = torch.tensor(float((total > 0) - (total < 0)), dtype=votes.dtype)
    sign = torch.where(votes == 0, majority, votes)
    del votes
    agree = torch.where(sign > 0, trimmed > 0, trimmed < 0)
    del sign
    return (trimmed * agree).sum(dim=0)


def naive_merge(method: str, base_path: str, task_paths: list[str], out_path: str) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    base = load_file(base_path)
    keys = [k for k, v in base.items() if v.is_floating_point()]

    def flatten(state: dict) -> torch.Tensor:
        return torch.cat([state[k].float().reshape(-1) for k in keys])

    finetuned = [load_file(p) for p in task_paths]  # every checkpoint in memory, as the reference does
    flat_base = flatten(base)
    tv = torch.vstack([flatten(state) for state in finetuned])  # [T, N]
    del finetuned
    tv.sub_(flat_base)  # task vectors

    mtv = tv.sum(dim=0) if method == "consensus-ta" else naive_ties(tv, TOPK)
    distance = (mtv.unsqueeze(0) - tv).abs_().mul_(LAM)
    masks = tv.abs() > distance  # TALL masks, bool [T, N]
    del distance, tv
    consensus = masks.sum(dim=0, dtype=torch.int32) >= K
    del masks
    merged = flat_base + ALPHA * (mtv * consensus)
    del mtv, consensus, flat_base

    out, offset = {}, 0
    for key, value in base.items():
        if value.is_floating_point():
            n = value.numel()
            out[key] = merged[offset : offset + n].reshape(value.shape).to(value.dtype, copy=True)
            offset += n
        else:
            out[key] = value
    del merged
    save_file(out, out_path, metadata={"format": "pt"})


def child_naive(job: dict) -> dict:
    before = _rss_kib()
    start = time.perf_counter()
    naive_merge(job["method"], job["base"], job["tasks"], job["out"])
    return {"wall_s": time.perf_counter() - start, "peak_rss_kib": _rss_kib(), "idle_rss_kib": before}


CHILDREN = {"shapes": child_shapes, "stream": child_stream, "naive": child_naive}


def run_child(kind: str, job: dict) -> dict:
    """Run one job in a fresh interpreter; its last stdout line is the JSON result."""
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS)}
    src = str(ROOT / "src")
    env["PYTHONPATH"] = src + os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else src
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, json.dumps(job)], capture_output=True, text=True, env=env
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        why = (
            f"killed by signal {-proc.returncode:d} (out of memory?)"
            if proc.returncode < 0
            else f"exit {proc.returncode}"
        )
        tail = [line[:200] for line in proc.stderr.strip().splitlines()[-3:]]
        return {"error": why + (": " + " | ".join(tail) if tail else "")}
    return json.loads(lines[-1])


# -- checkpoints ---------------------------------------------------------------------------------
def _header(specs: list) -> bytes:
    import torch

    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for key, dtype, shape in specs:
        nbytes = math.prod(shape) * getattr(torch, DTYPE_NAMES[dtype]).itemsize
        header[key] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded


def generate(specs: list, tasks: int, folder: Path, seed: int) -> list[Path]:
    """Write base.safetensors and task00..safetensors into ``folder``, one tensor at a time.

    Each file has its own generator (task t's seed depends on t only), so the first n tasks are
    the same whatever the total; files already there (from a run with --keep) are reused."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"seed": seed, "specs": specs}
    manifest_path = folder / "manifest.json"
    if not manifest_path.exists() or json.loads(manifest_path.read_text()) != manifest:
        for old in folder.glob("*.safetensors"):
            old.unlink()
        manifest_path.write_text(json.dumps(manifest))
    paths = [folder / "base.safetensors"] + [folder / f"task{t:02d}.safetensors" for t in range(tasks)]
    missing = [i for i, p in enumerate(paths) if not p.exists()]
    if not missing:
        return paths
    print(f"generating {len(missing)} checkpoint(s) in {folder} ...", flush=True)
    start = time.perf_counter()
    header = _header(specs)
    gens = [torch.Generator().manual_seed(seed * 1000 + i) for i in range(len(paths))]
    tmps = {i: paths[i].with_suffix(".tmp") for i in missing}
    files = {i: open(tmps[i], "wb") for i in missing}
    try:
        for f in files.values():
            f.write(header)
        for _key, dtype, shape in specs:
            dt = getattr(torch, DTYPE_NAMES[dtype])
            n = math.prod(shape)
            if dt.is_floating_point:
                base = torch.empty(n).normal_(0.0, 0.02, generator=gens[0])
            else:
                base = torch.arange(n) % 7
            if 0 in files:
                files[0].write(base.to(dt).view(torch.uint8).numpy().data)
            for i in range(1, len(paths)):  # every task's generator advances, written or not
                if dt.is_floating_point:
                    noise = torch.empty(n).normal_(0.0, 1e-3, generator=gens[i])
                    kicks = max(1, n // 100)
                    where = torch.randint(0, n, (kicks,), generator=gens[i])
                    # index_add_ sums repeated positions; `noise[where] += ...` would keep one of them
                    # at random (parallel writes), making the data differ from run to run
                    noise.index_add_(0, where, torch.empty(kicks).normal_(0.0, 1e-2, generator=gens[i]))
                    tensor = (base + noise).to(dt)
                else:
                    tensor = base.to(dt)
                if i in files:
                    files[i].write(tensor.view(torch.uint8).numpy().data)
    finally:
        for f in files.values():
            f.close()
    for i in missing:
        os.replace(tmps[i], paths[i])
    print(f"  done in {time.perf_counter() - start:.1f} s", flush=True)
    return paths


def warm(paths: list[Path]) -> None:
    """Read the files once so every measured run starts with them in the page cache."""
    buffer = bytearray(64 << 20)
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while f.readinto(buffer):
                pass


def compare(path_a: Path, path_b: Path) -> dict:
    """Tensor by tensor: allclose (default tolerances), bitwise equality, largest difference."""
    import torch
    from safetensors.torch import load_file

    a, b = load_file(path_a), load_file(path_b)
    if set(a) != set(b):
        return {"allclose": False, "why": f"different keys: {sorted(set(a) ^ set(b))[:5]}"}
    allclose, identical, max_diff, mismatched = True, True, 0.0, 0
    for key in a:
        x, y = a[key], b[key]
        if x.dtype != y.dtype or x.shape != y.shape:
            return {
                "allclose": False,
                "why": f"'{key}': {x.dtype} {tuple(x.shape)} vs {y.dtype} {tuple(y.shape)}",
            }
        identical &= torch.equal(x, y)
        if x.is_floating_point():
            close = torch.isclose(x.float(), y.float())
            mismatched += int((~close).sum())
            allclose &= bool(close.all())
            max_diff = max(max_diff, float((x.float() - y.float()).abs().max()) if x.numel() else 0.0)
        else:
            allclose &= torch.equal(x, y)
    return {"allclose": allclose, "identical": identical, "max_abs_diff": max_diff, "mismatched": mismatched}


def meminfo(field: str) -> int:
    """A /proc/meminfo field in bytes (MemTotal, MemAvailable)."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/meminfo")


def write_json_atomic(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# -- the benchmark -------------------------------------------------------------------------------
def _gb(kib: int) -> float:
    return kib * 1024 / GB


def _fmt(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def table(rows: list[dict]) -> str:
    head = [
        "model",
        "T",
        "method",
        "stream s",
        "stream GB",
        "naive s",
        "naive GB",
        "time s/n",
        "mem s/n",
        "outputs",
    ]
    lines = []
    for r in rows:
        s, n = r["streaming"], r["naive"]
        cells = [r["model"], str(r["tasks"]), r["method"]]
        cells += ["failed", "-"] if "error" in s else [f"{s['wall_s']:.1f}", f"{s['peak_rss_gb']:.2f}"]
        if "skipped" in n and n.get("estimate_gb") is None:
            ta = r.get("vs_ta")
            cells.append(
                f"vs task-arithmetic: time {ta['time']:.2f}x, memory {ta['mem']:.2f}x" if ta else "-"
            )
        elif "skipped" in n:  # one cell spanning the naive columns
            cells.append(f"skipped (needs ~{n['estimate_gb']:.1f} GB)")
        elif "error" in n:
            cells.append(f"failed ({n['error'].split(':')[0]})")
        else:
            check = r.get("check")
            outputs = (
                "-"
                if not check
                else "MISMATCH"
                if not check.get("allclose")
                else ("identical" if check.get("identical") else "allclose")
            )
            cells += [
                f"{n['wall_s']:.1f}",
                f"{n['peak_rss_gb']:.2f}",
                _fmt(r.get("time_ratio"), ".2f"),
                _fmt(r.get("mem_ratio"), ".3f"),
                outputs,
            ]
        lines.append(cells)
    full = [c for c in lines if len(c) == len(head)]
    widths = [max([len(h)] + [len(c[i]) for c in (full if i >= 5 else lines)]) for i, h in enumerate(head)]

    def join(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i in (0, 2) else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        )

    out = [join(head)]
    for c in lines:
        out.append(join(c) if len(c) == len(head) else join(c[:5]) + "  " + c[5])
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--model",
        default="ViT-B-32",
        help="open_clip model whose visual encoder shapes to use, or t5-large (google/t5-large-lm-adapt)",
    )
    ap.add_argument(
        "--layers",
        type=int,
        help="T5 only: this many encoder and decoder blocks instead of 24 (the same tensor shapes, "
        "fewer of them), for a naive run that fits in memory",
    )
    ap.add_argument(
        "--tasks", type=int, nargs="+", default=[8, 14, 20], help="numbers of fine-tuned checkpoints T"
    )
    ap.add_argument(
        "--methods",
        nargs="+",
        default=["consensus-ta", "consensus-ties"],
        choices=[*NAIVE_FACTOR, *SPECTRAL],
    )
    ap.add_argument(
        "--spectral",
        action="store_true",
        help="the later methods (tsv-m, iso-c, iso-cts) against task-arithmetic in the same run, "
        "streaming only; default T = 8 20",
    )
    ap.add_argument("--quick", action="store_true", help="smoke run: a tiny custom layout, T = 3")
    ap.add_argument("--device", help="where the streaming merges' maths run (e.g. cuda; default the CPU)")
    ap.add_argument(
        "--workdir", type=Path, help="where to generate the checkpoints (default: a new temp folder)"
    )
    ap.add_argument(
        "--keep", action="store_true", help="keep the generated checkpoints (reused by a later --workdir run)"
    )
    ap.add_argument(
        "--json",
        type=Path,
        help=f"results file (default {DEFAULT_JSON.relative_to(ROOT)}; "
        "with --quick, merge_memory.quick.json beside it)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child", nargs=2, metavar=("KIND", "JOB"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        import torch

        torch.set_num_threads(THREADS)
        print(json.dumps(CHILDREN[args.child[0]](json.loads(args.child[1]))), flush=True)
        return 0

    started = time.perf_counter()
    if args.spectral:
        args.methods = list(SPECTRAL)
        if args.tasks == [8, 14, 20]:
            args.tasks = [8, 20]
    if args.quick:
        model, specs, tasks_list = "quick", [list(s) for s in QUICK_SPECS], [3]
    else:
        model, tasks_list = args.model, sorted(set(args.tasks))
        if args.layers is not None:
            if model not in T5_CONFIGS or args.layers < 1:
                ap.error(f"--layers takes a positive number of blocks with --model {' or '.join(T5_CONFIGS)}")
            model = f"{model}-{args.layers}L"  # also names the checkpoints' folder
        got = run_child("shapes", {"model": args.model, "layers": args.layers})
        if "error" in got:
            library = "transformers" if args.model in T5_CONFIGS else "open_clip"
            print(f"cannot build {args.model!r} with {library}: {got['error']}", file=sys.stderr)
            return 2
        specs = got["specs"]
    if min(tasks_list) < 2:
        ap.error("consensus merging needs T >= 2")
    json_path = args.json or (
        DEFAULT_JSON.with_name(
            f"merge_memory{'.spectral' if args.spectral else ''}{'.quick' if args.quick else ''}.json"
        )
        if args.quick or args.spectral
        else DEFAULT_JSON
    )

    import torch

    torch.set_num_threads(THREADS)
    itemsize = {d: getattr(torch, DTYPE_NAMES[d]).itemsize for d in DTYPE_NAMES}
    numel = sum(math.prod(s) for _, d, s in specs if getattr(torch, DTYPE_NAMES[d]).is_floating_point)
    ckpt_bytes = sum(math.prod(s) * itemsize[d] for _, d, s in specs)
    memory = meminfo("MemTotal")
    print(
        f"{model}: {len(specs)} tensors, {numel:,} float parameters, checkpoint {ckpt_bytes / GB:.2f} GB; "
        f"tasks {tasks_list}; MemTotal {memory / GB:.1f} GB (naive runs if its estimate is under "
        f"{MEM_FRACTION * memory / GB:.1f} GB); {THREADS} torch threads per run",
        flush=True,
    )

    own_workdir = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="merge_memory_")) if own_workdir else args.workdir
    folder = workdir / f"merge_memory-{model}-seed{args.seed}"
    rows, failed = [], False
    factors = dict(NAIVE_FACTOR)
    calibrated: set[str] = set()
    try:
        paths = generate(specs, max(tasks_list), folder, args.seed)
        outs = {"stream": folder / "out-stream.safetensors", "naive": folder / "out-naive.safetensors"}
        for T in tasks_list:
            files = paths[: T + 1]
            job_base = {"base": str(files[0]), "tasks": [str(p) for p in files[1:]], "device": args.device}
            matrix = T * numel * 4
            for method in args.methods:
                row = {
                    "model": model,
                    "tasks": T,
                    "method": method,
                    "params": numel,
                    "checkpoint_gb": ckpt_bytes / GB,
                }
                print(f"T={T} {method}: streaming ...", end="", flush=True)
                warm(files)
                s = run_child("stream", {**job_base, "method": method, "out": str(outs["stream"])})
                if "error" not in s:
                    s["peak_rss_gb"], s["idle_rss_gb"] = _gb(s["peak_rss_kib"]), _gb(s["idle_rss_kib"])
                    print(f" {s['wall_s']:.1f} s, {s['peak_rss_gb']:.2f} GB", end="", flush=True)
                else:
                    failed = True
                    print(f" FAILED: {s['error']}", end="", flush=True)
                row["streaming"] = s

                if method not in factors:  # a later method: compared with task-arithmetic below
                    row["naive"] = {"skipped": "no in-memory reference", "estimate_gb": None}
                    print(flush=True)
                    rows.append(row)
                    outs["stream"].unlink(missing_ok=True)
                    continue
                estimate = factors[method] * matrix
                available = meminfo("MemAvailable") - 1e9  # whatever else runs on the machine keeps 1 GB
                if estimate > MEM_FRACTION * memory or estimate > available:
                    why = (
                        f"{MEM_FRACTION:.0%} of MemTotal ({MEM_FRACTION * memory / GB:.1f} GB)"
                        if estimate > MEM_FRACTION * memory
                        else f"MemAvailable - 1 GB ({available / GB:.1f} GB) now"
                    )
                    n = {
                        "skipped": f"estimated peak {estimate / GB:.1f} GB > {why}",
                        "estimate_gb": estimate / GB,
                    }
                    print(f"; naive skipped ({n['skipped']})", flush=True)
                else:
                    print("; naive ...", end="", flush=True)
                    warm(files)
                    n = run_child("naive", {**job_base, "method": method, "out": str(outs["naive"])})
                    n["estimate_gb"] = estimate / GB
                    if "error" in n:
                        print(f" FAILED: {n['error']}", flush=True)
                    else:
                        n["peak_rss_gb"], n["idle_rss_gb"] = _gb(n["peak_rss_kib"]), _gb(n["idle_rss_kib"])
                        print(f" {n['wall_s']:.1f} s, {n['peak_rss_gb']:.2f} GB", end="", flush=True)
                        if method not in calibrated:  # the measured ratio, idle process included: errs high
                            factors[method] = n["peak_rss_kib"] * 1024 / matrix
                            calibrated.add(method)
                        if "error" not in s:
                            row["time_ratio"] = s["wall_s"] / n["wall_s"]
                            row["mem_ratio"] = s["peak_rss_kib"] / n["peak_rss_kib"]
                            check = compare(outs["stream"], outs["naive"])
                            row["check"] = check
                            if not check.get("allclose"):
                                failed = True
                                print(f"; outputs DIFFER: {check}", end="")
                        print(flush=True)
                row["naive"] = n
                rows.append(row)
                for p in outs.values():
                    p.unlink(missing_ok=True)
    finally:
        if not args.keep:
            shutil.rmtree(workdir if own_workdir else folder, ignore_errors=True)
        elif rows or folder.exists():
            print(f"checkpoints kept in {folder}")

    for r in rows:  # the later methods against task-arithmetic at the same T, same run
        ta = next((x for x in rows if x["tasks"] == r["tasks"] and x["method"] == "task-arithmetic"), None)
        if (
            r["method"] in SPECTRAL
            and ta
            and "error" not in ta["streaming"]
            and "error" not in r["streaming"]
        ):
            r["vs_ta"] = {
                "time": r["streaming"]["wall_s"] / ta["streaming"]["wall_s"],
                "mem": r["streaming"]["peak_rss_kib"] / ta["streaming"]["peak_rss_kib"],
            }
    total = time.perf_counter() - started
    print()
    print(table(rows))
    print(
        f"\ncheckpoint size: {ckpt_bytes / GB:.3f} GB ({numel:,} parameters, float32); "
        f"ratios are streaming / naive; total run time {total:.0f} s"
    )
    if model == "t5-large":
        for r in rows:
            s = r["streaming"]
            if r["tasks"] == 11 and r["method"] == "consensus-ta" and "error" not in s:
                ok = "ok" if s["peak_rss_gb"] <= 2.5 else "ABOVE the 2.5 GB target"
                print(f"check: streaming peak, T=11 consensus-ta: {s['peak_rss_gb']:.2f} GB ({ok})")
    if model == "ViT-B-32":
        for r in rows:
            s = r["streaming"]
            if r["tasks"] == 20 and "error" not in s:
                ok = "ok" if s["peak_rss_gb"] <= 1.5 else "ABOVE the 1.5 GB target"
                print(f"check: streaming peak, T=20 {r['method']}: {s['peak_rss_gb']:.2f} GB ({ok})")
            if r["tasks"] == 8 and "time_ratio" in r:
                ok = "ok" if r["time_ratio"] <= 1.0 else "SLOWER than naive"
                print(f"check: streaming / naive time, T=8 {r['method']}: {r['time_ratio']:.2f} ({ok})")

    write_json_atomic(
        {
            "benchmark": "merge_memory",
            "settings": {
                "model": model,
                "layers": args.layers,
                "tasks": tasks_list,
                "methods": args.methods,
                "seed": args.seed,
                "lam": LAM,
                "k": K,
                "alpha": ALPHA,
                "ties_topk": TOPK,
                "threads": THREADS,
                "device": args.device or "cpu",
                "mem_total_gb": memory / GB,
                "naive_mem_fraction": MEM_FRACTION,
            },
            "checkpoint": {"params": numel, "tensors": len(specs), "gb": ckpt_bytes / GB},
            "environment": {
                "python": sys.version.split()[0],
                "torch": torch.__version__,
                "cpus": os.cpu_count(),
            },
            "total_s": total,
            "results": rows,
        },
        json_path,
    )
    print(f"results written to {json_path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
