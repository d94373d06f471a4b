"""Task data on disk: one safetensors file per task holding its train / val / test splits.

Images are uint8 ``[N, H, W, 3]``, labels int64 ``[N]``; the class names and prompt templates
travel in the file's metadata so that a data file is self-describing.
"""

from __future__ import annotations

import os
from typing import Sequence

import torch

from tallmerge.errors import TallmergeError
from tallmerge.io import load_tensors, save_tensors
from tallmerge.tasks import SPLITS, Task


def write_task_data(task: Task, sizes: dict[str, int], seed: int, path: str | os.PathLike) -> None:
    """Generate every split of ``task`` and write them to one file, atomically."""
    tensors = {}
    for split in SPLITS:
        images, labels = task.generate(split, sizes[split], seed)
        tensors[f"{split}.images"] = torch.from_numpy(images)
        tensors[f"{split}.labels"] = torch.from_numpy(labels)
    metadata = {
        "task": task.name,
        "seed": seed,
        "classnames": list(task.classnames),
        "templates": list(task.templates),
    }
    save_tensors(tensors, path, metadata)


def read_splits(path: str | os.PathLike, splits: Sequence[str]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{split: (images, labels)}`` for the given splits, reading the task data file once."""
    tensors, _ = load_tensors(path)
    out = {}
    for split in splits:
        try:
            images, labels = tensors[f"{split}.images"], tensors[f"{split}.labels"]
        except KeyError:
            raise TallmergeError(f"{path}: no split {split!r} in this task data file") from None
        if images.dtype != torch.uint8 or images.ndim != 4 or labels.shape != images.shape[:1]:
            raise TallmergeError(
                f"{path}: split {split!r} is malformed (images {tuple(images.shape)}, labels {tuple(labels.shape)})"
            )
        out[split] = (images, labels)
    return out


def read_split(path: str | os.PathLike, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)`` of one split from a task data file."""
    return read_splits(path, [split])[split]
