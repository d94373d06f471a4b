"""Task data files: one safetensors file per task (``data/tasks/<task>.safetensors``), written
by :func:`prepare` and read by :class:`TaskData`.

A task's file is self-describing: its metadata carries the class names and prompt templates.
It holds one of two things:

- **generated** (pocket tasks): every split's images, uint8 ``[N, H, W, 3]`` at the model's
  resolution, and labels: ``<split>.images``, ``<split>.labels``;
- **an index** (real datasets under ``data.root``): for every split, positions into the
  dataset's official ``train`` or ``test`` split and their labels: ``<split>.index``,
  ``<split>.labels``. ``val`` is held out of the official train split with the seed, as the
  task-vectors literature does: 10 % of it, at most 5,000 images. The pixels stay in the
  dataset's own files and are read, preprocessed by the model's own open_clip transform, by
  DataLoader workers. The root itself is not recorded, so moving the datasets changes no
  artifact; opening an index checks that the folder still has the same images and labels.

This module knows nothing of models: :func:`tallmerge.clip.batches.split_for` turns a split of
the file into model-ready batches.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tallmerge.errors import TallmergeError
from tallmerge.formats.files import load_tensors, save_tensors
from tallmerge.tasks import SPLITS, DatasetTask, Task
from tallmerge.tasks.samples import Samples

VAL_FRACTION, VAL_MAX = 0.1, 5000
SOURCE = {"train": "train", "val": "train", "test": "test"}  # the official split each comes from


def prepare(
    task: Task,
    sizes: dict[str, int | None],
    seed: int,
    root: str | os.PathLike | None,
    path: str | os.PathLike,
) -> None:
    """Write ``task``'s data file: generated splits, or an index into its dataset under ``root``.

    ``sizes`` gives images per split; ``None`` (datasets only) means all of them."""
    metadata = {"task": task.name, "seed": seed, "templates": list(task.templates)}
    if isinstance(task, DatasetTask):
        tensors, classnames, totals = _index(task, sizes, seed, root)
        metadata.update(classnames=list(classnames), sizes=totals)
    else:
        tensors = {}
        for split in SPLITS:
            if sizes[split] is None:
                raise TallmergeError(
                    f"data.{split}: '{task.name}' is a generated task, give a number of images"
                )
            images, labels = task.generate(split, sizes[split], seed)
            tensors[f"{split}.images"] = torch.from_numpy(images)
            tensors[f"{split}.labels"] = torch.from_numpy(labels)
        metadata["classnames"] = list(task.classnames)
    save_tensors(tensors, path, dict(sorted(metadata.items())))


def _index(task: DatasetTask, sizes, seed: int, root) -> tuple[dict[str, torch.Tensor], Sequence[str], dict]:
    if root is None:
        raise TallmergeError(
            f"data.root: task '{task.name}' reads a dataset; set data.root to the folder holding it"
        )
    official = {s: task.read(Path(root), s) for s in ("train", "test")}
    if official["train"].classnames != official["test"].classnames:
        raise TallmergeError(f"{task.name}: the train and test splits name different classes")
    n_train = len(official["train"])
    n_val = min(int(VAL_FRACTION * n_train), VAL_MAX) if sizes["val"] is None else sizes["val"]
    order = np.random.default_rng(seed).permutation(n_train)
    chosen = {"val": order[:n_val], "train": order[n_val:], "test": np.arange(len(official["test"]))}
    tensors = {}
    for split in SPLITS:
        index = chosen[split]
        wanted = sizes[split]
        if wanted is not None:
            if wanted > len(index):
                raise TallmergeError(
                    f"data.{split}: {wanted} images asked, {task.name} has {len(index)} for this split"
                )
            if split != "val":  # val is already a random draw of exactly this size
                index = np.random.default_rng([seed, SPLITS.index(split)]).choice(
                    index, wanted, replace=False
                )
        index = np.sort(index)
        tensors[f"{split}.index"] = torch.from_numpy(index.astype(np.int64))
        tensors[f"{split}.labels"] = torch.from_numpy(official[SOURCE[split]].labels[index])
    return tensors, official["train"].classnames, {s: len(official[s]) for s in official}


@dataclass(frozen=True)
class GeneratedSplit:
    """A generated split: uint8 images ``[N, H, W, 3]`` and their int64 labels ``[N]``."""

    images: torch.Tensor
    labels: torch.Tensor


@dataclass(frozen=True)
class IndexedSplit:
    """A dataset's split: the official split's ``samples``, the int64 positions into it that
    make this split, and their labels."""

    samples: Samples
    index: torch.Tensor
    labels: torch.Tensor


class TaskData:
    """An opened task data file (see the module docstring)."""

    def __init__(self, path: str | os.PathLike, root: str | os.PathLike | None = None):
        self.path = Path(path)
        self.tensors, meta = load_tensors(path)
        try:
            self.task, self.classnames, self.templates = (
                meta["task"],
                tuple(meta["classnames"]),
                tuple(meta["templates"]),
            )
        except (KeyError, TypeError):
            raise TallmergeError(
                f"{path}: not a task data file (no task, classnames and templates in its metadata)"
            ) from None
        self.sizes = meta.get("sizes")
        self.root = root
        self._official: dict[str, Samples] = {}

    def read_split(self, name: str) -> GeneratedSplit | IndexedSplit:
        """Split ``name`` as the file holds it: generated images, or positions into the task's
        dataset under the root (checked to still hold the same images and labels)."""
        labels = self._tensor(f"{name}.labels", torch.int64, 1)
        if f"{name}.images" in self.tensors:
            images = self._tensor(f"{name}.images", torch.uint8, 4)
            if images.shape[:1] != labels.shape:
                raise TallmergeError(
                    f"{self.path}: split '{name}' has {len(images)} images and {len(labels)} labels"
                )
            return GeneratedSplit(images, labels)
        index = self._tensor(f"{name}.index", torch.int64, 1)
        samples = self._samples(SOURCE.get(name, name))
        if (
            index.shape != labels.shape
            or (len(index) and int(index.max()) >= len(samples))
            or not torch.equal(torch.from_numpy(samples.labels[index.numpy()]), labels)
        ):
            raise TallmergeError(
                f"{self.path}: the {self.task} images under data.root {self.root} no longer match this index; "
                f"rerun `dvc repro --force prepare@{self.task}`"
            )
        return IndexedSplit(samples, index, labels)

    def _samples(self, official: str) -> Samples:
        if official not in self._official:
            from tallmerge.tasks import get_task

            if self.root is None:
                raise TallmergeError(
                    f"{self.path}: task '{self.task}' reads a dataset; set data.root to the folder holding it"
                )
            samples = get_task(self.task).read(Path(self.root), official)
            if self.sizes and len(samples) != self.sizes.get(official):
                raise TallmergeError(
                    f"{self.path}: {self.task} has {len(samples)} {official} images under data.root {self.root}, "
                    f"{self.sizes.get(official)} when prepared; rerun `dvc repro --force prepare@{self.task}`"
                )
            self._official[official] = samples
        return self._official[official]

    def _tensor(self, key: str, dtype: torch.dtype, ndim: int) -> torch.Tensor:
        try:
            tensor = self.tensors[key]
        except KeyError:
            raise TallmergeError(f"{self.path}: no tensor '{key}' in this task data file") from None
        if tensor.dtype != dtype or tensor.ndim != ndim:
            raise TallmergeError(
                f"{self.path}: tensor '{key}' is malformed ({tensor.dtype}, shape {tuple(tensor.shape)})"
            )
        return tensor
