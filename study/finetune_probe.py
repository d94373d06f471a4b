"""A quick probe of one lever of the regime study: how far fine-tuning alone takes a task.

    python study/finetune_probe.py shapes counting --steps 1000 --lr 1e-3
    python study/finetune_probe.py shapes --steps 500 --train-images 30000

Fine-tunes each named task from the pipeline's pre-trained model (``models/pretrained``, so run
``dvc repro`` first) with the given recipe, everything else as the ``finetune`` stage does it,
and prints one JSON line per task: zero-shot and fine-tuned validation top-1, training-split
top-1 (to tell under- from over-fitting) and the seconds it took. With ``--train-images`` the
task's training split is generated afresh at that size (pocket tasks only; validation keeps the
size of params.yaml). Nothing is written to the pipeline's outputs; a probe is not a candidate
world (reports/regime.md), only a cheap way to see where a lever stops paying.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from tallmerge import layout
from tallmerge.clip.batches import split_for
from tallmerge.clip.heads import Classifier, zeroshot_head
from tallmerge.clip.models import load_clip, tokenizer
from tallmerge.clip.train import accuracy, finetune
from tallmerge.params import Params, TrainConfig
from tallmerge.tasks import get_task
from tallmerge.tasks.datafile import TaskData, prepare


def probe(name: str, cfg: TrainConfig, train_images: int | None, scratch: Path) -> dict:
    params = Params.load()
    path = layout.task_data(name)
    if train_images:
        path = scratch / f"{name}.safetensors"
        prepare(get_task(name), {**params.data.sizes, "train": train_images}, params.seed, None, path)
    started = time.monotonic()
    task = TaskData(path, params.data.root)
    model = load_clip(params.arch, layout.PRETRAINED_VISUAL, layout.PRETRAINED_TEXT)
    classifier = Classifier(
        model.visual, zeroshot_head(model, tokenizer(params.arch), task.classnames, task.templates)
    )
    val = split_for(task, "val", model)
    zeroshot = accuracy(classifier, val)
    finetune(classifier, split_for(task, "train", model, train=True), cfg, params.seed, desc=f"probe {name}")
    return {
        "task": name, "steps": cfg.steps, "lr": cfg.lr, "batch_size": cfg.batch_size,
        "train_images": train_images or params.data.sizes["train"],
        "zeroshot_val": round(zeroshot, 2), "finetuned_val": round(accuracy(classifier, val), 2),
        "finetuned_train": round(accuracy(classifier, split_for(task, "train", model)), 2),
        "seconds": round(time.monotonic() - started),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("tasks", nargs="+")
    parser.add_argument("--steps", type=int, default=None, help="default: params.yaml's finetune.steps")
    parser.add_argument("--lr", type=float, default=None, help="default: params.yaml's finetune.lr")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument(
        "--train-images", type=int, default=None, help="regenerate the training split at this size"
    )
    args = parser.parse_args()
    base = Params.load().finetune(args.tasks[0])
    steps = args.steps or base.steps
    cfg = TrainConfig(
        steps, args.batch_size or base.batch_size, args.lr or base.lr, base.weight_decay, max(1, steps // 10)
    )
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.tasks:
            print(json.dumps(probe(name, cfg, args.train_images, Path(scratch))), flush=True)


if __name__ == "__main__":
    main()
