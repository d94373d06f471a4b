"""Model-ready batches of a task's data: :func:`split_for` turns a split of a task data file
(:mod:`tallmerge.tasks.datafile`) into a :class:`Split` for a given model, whose ``batches``
yield ``(images, labels)`` float batches, preprocessed as that model expects, for any sequence
of index batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from tallmerge.clip.models import image_stats, image_transform
from tallmerge.errors import TallmergeError
from tallmerge.tasks.datafile import GeneratedSplit, TaskData
from tallmerge.tasks.samples import Samples


def split_for(data: TaskData, name: str, model: nn.Module, train: bool = False, workers: int = 0) -> Split:
    """Split ``name`` of ``data`` as ``model`` expects its images (its open_clip transform, with
    the training augmentation when ``train``); datasets are read by ``workers`` processes."""
    stored = data.read_split(name)
    if isinstance(stored, GeneratedSplit):
        images = stored.images
        size = model.visual.image_size
        size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        if tuple(images.shape[1:3]) != size:
            raise TallmergeError(
                f"{data.path}: task '{data.task}' has generated {images.shape[1]} x {images.shape[2]} px images, "
                f"the model takes {size[0]} x {size[1]} (generated tasks need a pocket arch)"
            )
        return ImageSplit(images, stored.labels, *image_stats(model))
    return DatasetSplit(stored.samples, stored.index, stored.labels, image_transform(model, train), workers)


class Split:
    """One split of a task: ``labels`` and model-ready batches."""

    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def batches(
        self, index_batches: Iterable[torch.Tensor], seed: int | None = None, share: tuple[int, int] = (0, 1)
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
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

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, mean: Sequence[float], std: Sequence[float]
    ):
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
        items = (
            _seeded(index_batches, seed)
            if seed is not None
            else ([int(p) for p in idx] for idx in index_batches)
        )
        # one seed per image drawn: augmentation independent of the workers and of the processes
        loader = torch.utils.data.DataLoader(
            self.images,
            batch_sampler=(batch[rank::world] for batch in items),
            num_workers=self.workers,
            pin_memory=torch.cuda.is_available(),
            collate_fn=_collate,
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
