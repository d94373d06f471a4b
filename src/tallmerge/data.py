"""Task data: one safetensors file per task (``data/tasks/<task>.safetensors``), and the batches
that training and evaluation draw from it.

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

:meth:`TaskData.split` turns either into a :class:`Split`, whose ``batches`` yield model-ready
``(images, labels)`` float batches for any sequence of index batches.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from tallmerge.errors import TallmergeError
from tallmerge.formats.files import load_tensors, save_tensors
from tallmerge.clip.models import image_stats, image_transform
from tallmerge.tasks import SPLITS, DatasetTask, Task
from tallmerge.tasks.samples import Samples

VAL_FRACTION, VAL_MAX = 0.1, 5000
SOURCE = {"train": "train", "val": "train", "test": "test"}  # the official split each comes from


def prepare(task: Task, sizes: dict[str, int | None], seed: int, root: str | os.PathLike | None,
            path: str | os.PathLike) -> None:
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
                raise TallmergeError(f"data.{split}: '{task.name}' is a generated task, give a number of images")
            images, labels = task.generate(split, sizes[split], seed)
            tensors[f"{split}.images"] = torch.from_numpy(images)
            tensors[f"{split}.labels"] = torch.from_numpy(labels)
        metadata["classnames"] = list(task.classnames)
    save_tensors(tensors, path, dict(sorted(metadata.items())))


def _index(task: DatasetTask, sizes, seed: int, root) -> tuple[dict[str, torch.Tensor], Sequence[str], dict]:
    if root is None:
        raise TallmergeError(f"data.root: task '{task.name}' reads a dataset; set data.root to the folder holding it")
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
                index = np.random.default_rng([seed, SPLITS.index(split)]).choice(index, wanted, replace=False)
        index = np.sort(index)
        tensors[f"{split}.index"] = torch.from_numpy(index.astype(np.int64))
        tensors[f"{split}.labels"] = torch.from_numpy(official[SOURCE[split]].labels[index])
    return tensors, official["train"].classnames, {s: len(official[s]) for s in official}


class Split:
    """One split of a task: ``labels`` and model-ready batches."""

    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, index_batches: Iterable[torch.Tensor], seed: int | None = None,
                share: tuple[int, int] = (0, 1)) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(images, labels)`` for each batch of positions; ``images`` float ``[B, 3, H, W]``,
        normalized. ``seed`` (training) makes random augmentation, if any, a function of it and
        of each image's place in the batch stream. ``share = (rank, world)`` keeps only this
        process's share of every batch (DDP), with the augmentation of the whole batch's run."""
        raise NotImplementedError

    def in_order(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The whole split, in order (evaluation)."""
        positions = torch.arange(len(self))
        return self.batches(positions[i : i + batch_size] for i in range(0, len(self), batch_size))


class ImageSplit(Split):
    """Generated uint8 images, already at the model's resolution: only normalized."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean: Sequence[float], std: Sequence[float]):
        self.images, self.labels = images, labels
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)

    def batches(self, index_batches, seed=None, share=(0, 1)):
        rank, world = share
        for idx in index_batches:
            idx = idx[rank::world]
            x = self.images[idx].permute(0, 3, 1, 2).float().div_(255.0)
            yield (x - self.mean) / self.std, self.labels[idx]


class DatasetSplit(Split):
    """Images of a dataset on disk, read and transformed by DataLoader workers."""

    def __init__(self, samples: Samples, index: torch.Tensor, labels: torch.Tensor, transform, workers: int):
        self.labels = labels
        self.images = _Images(samples, index.numpy(), transform)
        self.workers = workers

    def batches(self, index_batches, seed=None, share=(0, 1)):
        rank, world = share
        items = _seeded(index_batches, seed) if seed is not None else ([int(p) for p in idx] for idx in index_batches)
        # one seed per image drawn: augmentation independent of the workers and of the processes
        loader = torch.utils.data.DataLoader(
            self.images, batch_sampler=(batch[rank::world] for batch in items), num_workers=self.workers,
            pin_memory=torch.cuda.is_available(), collate_fn=_collate,
            generator=torch.Generator().manual_seed(0),  # workers' seeds: never from the global RNG
        )
        for x, idx in loader:
            yield x, self.labels[idx]


class _Images(torch.utils.data.Dataset):
    def __init__(self, samples: Samples, index: np.ndarray, transform):
        self.samples, self.index, self.transform = samples, index, transform

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item):
        position, seed = item if isinstance(item, tuple) else (item, None)
        image = self.samples.image(int(self.index[position]))
        if seed is None:
            return self.transform(image), position
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.transform(image), position


def _seeded(index_batches, seed: int):
    drawn = 0
    for idx in index_batches:
        yield [(int(p), seed * 1_000_003 + drawn + k) for k, p in enumerate(idx)]
        drawn += len(idx)


def _collate(items):
    return torch.stack([x for x, _ in items]), torch.tensor([p for _, p in items])


class TaskData:
    """An opened task data file (see the module docstring)."""

    def __init__(self, path: str | os.PathLike, root: str | os.PathLike | None = None):
        self.path = Path(path)
        self.tensors, meta = load_tensors(path)
        try:
            self.task, self.classnames, self.templates = meta["task"], tuple(meta["classnames"]), tuple(meta["templates"])
        except (KeyError, TypeError):
            raise TallmergeError(f"{path}: not a task data file (no task, classnames and templates in its metadata)") from None
        self.sizes = meta.get("sizes")
        self.root = root
        self._official: dict[str, Samples] = {}

    def split(self, name: str, model: nn.Module, train: bool = False, workers: int = 0) -> Split:
        """Split ``name`` as ``model`` expects its images (its open_clip transform, with the
        training augmentation when ``train``); datasets are read by ``workers`` processes."""
        labels = self._tensor(f"{name}.labels", torch.int64, 1)
        if f"{name}.images" in self.tensors:
            images = self._tensor(f"{name}.images", torch.uint8, 4)
            if images.shape[:1] != labels.shape:
                raise TallmergeError(f"{self.path}: split '{name}' has {len(images)} images and {len(labels)} labels")
            size = model.visual.image_size
            size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
            if tuple(images.shape[1:3]) != size:
                raise TallmergeError(
                    f"{self.path}: task '{self.task}' has generated {images.shape[1]} x {images.shape[2]} px images, "
                    f"the model takes {size[0]} x {size[1]} (generated tasks need a pocket arch)"
                )
            return ImageSplit(images, labels, *image_stats(model))
        index = self._tensor(f"{name}.index", torch.int64, 1)
        samples = self._samples(SOURCE.get(name, name))
        if index.shape != labels.shape or (len(index) and int(index.max()) >= len(samples)) or not torch.equal(
            torch.from_numpy(samples.labels[index.numpy()]), labels
        ):
            raise TallmergeError(
                f"{self.path}: the {self.task} images under data.root {self.root} no longer match this index; "
                f"rerun `dvc repro --force prepare@{self.task}`"
            )
        return DatasetSplit(samples, index, labels, image_transform(model, train), workers)

    def _samples(self, official: str) -> Samples:
        if official not in self._official:
            from tallmerge.tasks import get_task

            if self.root is None:
                raise TallmergeError(f"{self.path}: task '{self.task}' reads a dataset; set data.root to the folder holding it")
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
            raise TallmergeError(f"{self.path}: tensor '{key}' is malformed ({tensor.dtype}, shape {tuple(tensor.shape)})")
        return tensor
