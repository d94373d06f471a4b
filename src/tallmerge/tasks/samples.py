"""Labelled images of a real dataset's official split, read from a local folder.

A reader (``tasks/arrays.py``, ``tasks/folders.py``) turns one dataset's on-disk layout (the one
torchvision writes, or the one its public distribution unpacks to) into a :class:`Samples`:
the class names, one int64 label per image, and random access to each image as an RGB PIL
image. Readers never hold a large dataset's pixels in memory: folders keep file paths, big
array files are memory-mapped or opened lazily, and a :class:`Samples` pickles cheaply, so
DataLoader workers can share it.

Order is part of the contract: the same files give the same samples in the same order on any
machine (lists are sorted, never taken from directory-listing order), because the pipeline
stores split indices into it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from tallmerge.errors import TallmergeError

OFFICIAL_SPLITS = ("train", "test")
"""The splits a reader serves; ``val`` is held out from ``train`` by the pipeline."""


class Samples:
    """A dataset split: ``classnames``, ``labels`` (int64 ``[N]``, values in
    ``range(len(classnames))``) and ``image(i)`` (an RGB ``PIL.Image``)."""

    classnames: tuple[str, ...]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, i: int) -> Image.Image:
        raise NotImplementedError


class FileSamples(Samples):
    """Images stored one per file (any format Pillow reads)."""

    def __init__(self, paths: Sequence[str | Path], labels, classnames: Sequence[str]):
        self.paths = [str(p) for p in paths]
        self.labels = _labels(labels, len(self.paths), classnames)
        self.classnames = tuple(classnames)

    def image(self, i: int) -> Image.Image:
        path = self.paths[i]
        try:
            with Image.open(path) as img:
                return img.convert("RGB")
        except (OSError, ValueError) as e:
            raise TallmergeError(f"{path}: not a readable image ({e})") from None


class ArraySamples(Samples):
    """Images in one array (in memory or memory-mapped): uint8 ``[N, H, W]`` (grey) or
    ``[N, H, W, 3]`` (RGB). ``pixels(i)`` may be overridden for other storage orders."""

    def __init__(self, images: np.ndarray, labels, classnames: Sequence[str]):
        self.images = images
        self.labels = _labels(labels, len(images), classnames)
        self.classnames = tuple(classnames)

    def pixels(self, i: int) -> np.ndarray:
        return np.asarray(self.images[i])

    def image(self, i: int) -> Image.Image:
        return Image.fromarray(np.ascontiguousarray(self.pixels(i), dtype=np.uint8)).convert("RGB")


class LazySamples(Samples):
    """Images from a source opened on first use in each process (e.g. an HDF5 file, whose
    handles must not cross a fork): ``open_source()`` returns ``fetch(i) -> uint8 array``."""

    def __init__(
        self, open_source: Callable[[], Callable[[int], np.ndarray]], labels, classnames: Sequence[str]
    ):
        self.open_source = open_source
        self.labels = _labels(labels, len(labels), classnames)
        self.classnames = tuple(classnames)
        self._fetch = None

    def __getstate__(self):
        return {**self.__dict__, "_fetch": None}

    def image(self, i: int) -> Image.Image:
        if self._fetch is None:
            self._fetch = self.open_source()
        return Image.fromarray(np.ascontiguousarray(self._fetch(i), dtype=np.uint8)).convert("RGB")


def _labels(labels, n: int, classnames: Sequence[str]) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(labels) != n:
        raise TallmergeError(f"{len(labels)} labels for {n} images")
    if n and (labels.min() < 0 or labels.max() >= len(classnames)):
        raise TallmergeError(f"labels outside 0..{len(classnames) - 1}")
    return labels


def require(path: Path, dataset: str, layout: str) -> Path:
    """``path`` if it exists; otherwise a one-line error naming the dataset's expected layout."""
    if not path.exists():
        raise TallmergeError(f"{dataset}: {path} not found; expected {layout}")
    return path


def check_split(dataset: str, split: str) -> None:
    if split not in OFFICIAL_SPLITS:
        raise TallmergeError(
            f"{dataset}: unknown split {split!r} (readers serve {', '.join(OFFICIAL_SPLITS)})"
        )
