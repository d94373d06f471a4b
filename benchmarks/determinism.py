"""Which kernels this machine runs, and the bytes they produce: a probe for comparing machines.

The pipeline is byte-identical from one run to the next on one machine (tests/test_pipeline.py
checks it), but float arithmetic is not associative, and PyTorch picks its CPU kernels by the
instruction set it finds (AVX2, AVX-512, ...) and by the thread count: two machines may train
slightly different weights from the same params. This probe records what decides that (CPU
model, PyTorch's CPU capability, threads, library versions) and fingerprints three small
computations with the pipeline's own code paths: a float32 matmul, a few steps of contrastive
pre-training, a few steps of fine-tuning. Machines whose fingerprints agree reproduce each other's
artifacts; machines whose fingerprints differ will not, and `dvc repro` there rewrites dvc.lock
with their own hashes (the metrics then move by a few tenths of a point).

    python benchmarks/determinism.py [--json benchmarks/results/determinism_<capability>.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import time
from pathlib import Path

import torch


def fingerprint(state) -> str:
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def probe() -> dict:
    from tallmerge.clip.batches import ImageSplit
    from tallmerge.clip.heads import Classifier, zeroshot_head
    from tallmerge.clip.models import create_clip, image_stats, tokenizer
    from tallmerge.clip.train import finetune, pretrain_clip
    from tallmerge.params import PretrainConfig, TrainConfig
    from tallmerge.tasks import get_task
    from tallmerge.tasks.web import caption_tokens, web_mix

    started = time.perf_counter()
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(256, 512, generator=g), torch.randn(512, 256, generator=g)
    matmul = fingerprint({"ab": a @ b})

    clip = create_clip("pocket-vit", seed=0)
    images, concepts, concept_list = web_mix(["colors", "shapes"], 256, seed=0, variety=0.25)
    captions, counts = caption_tokens(concept_list, tokenizer("pocket-vit"))
    pretrain_clip(
        clip,
        images,
        concepts,
        captions,
        counts,
        *image_stats(clip),
        PretrainConfig(
            steps=5, batch_size=64, lr=1e-3, weight_decay=0.1, warmup=1, images=256, web_variety=0.25
        ),
        seed=0,
    )
    pretrained = fingerprint(clip.state_dict())

    task = get_task("colors")
    train = ImageSplit(*map(torch.from_numpy, task.generate("train", 256, 0)), *image_stats(clip))
    head = zeroshot_head(clip, tokenizer("pocket-vit"), task.classnames, task.templates)
    finetune(
        Classifier(clip.visual, head),
        train,
        TrainConfig(steps=5, batch_size=64, lr=1e-3, weight_decay=0.1, warmup=1),
        seed=0,
    )
    finetuned = fingerprint(clip.visual.state_dict())

    import numpy
    import open_clip

    return {
        "cpu": cpu_model(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "open_clip": open_clip.__version__,
        "fingerprints": {"matmul": matmul, "pretrain_5_steps": pretrained, "finetune_5_steps": finetuned},
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", type=Path, help="also write the record here")
    args = parser.parse_args()
    record = probe()
    print(json.dumps(record, indent=2))
    if args.json:
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
