"""The paper's 20 image-classification tasks, read from local copies of the public datasets.

Registered in the paper's order, so the first 8, 14 and 20 are its three benchmarks
(:data:`PRESETS`). Each task names its prompt templates (CLIP's published ones, as the
task-vectors literature uses them) and its reader: ``tasks/arrays.py`` for datasets shipped as
arrays (MNIST's idx files, CIFAR's pickles, SVHN's .mat, ...), ``tasks/folders.py`` for
datasets shipped as image files with split lists. Each reader's docstring documents its
layout under ``data.root`` and which official files form train and test; class names come from
the dataset's files where it has them. ``val`` is held out of train by :mod:`tallmerge.tasks.datafile`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from tallmerge.tasks.registry import register_task
from tallmerge.tasks.samples import Samples

PHOTO = ("a photo of a {}.", "a photo of the {}.")
NUMBER = ('a photo of the number: "{}".',)
CIFAR = tuple(
    f"a {look}photo of {the} {size}{{}}."
    for the in ("a", "the")
    for look, size in [
        ("", ""),
        ("blurry ", ""),
        ("black and white ", ""),
        ("low contrast ", ""),
        ("high contrast ", ""),
        ("bad ", ""),
        ("good ", ""),
        ("", "small "),
        ("", "big "),
    ]
)
TEMPLATES = {
    "Cars": (
        "a photo of a {}.",
        "a photo of the {}.",
        "a photo of my {}.",
        "i love my {}!",
        "a photo of my dirty {}.",
        "a photo of my clean {}.",
        "a photo of my new {}.",
        "a photo of my old {}.",
    ),
    "DTD": tuple(
        f"a photo of {the} {{}} {what}."
        for the in ("a", "the")
        for what in ("texture", "pattern", "thing", "object")
    ),
    "EuroSAT": tuple(f"a centered satellite photo of {the}{{}}." for the in ("", "a ", "the ")),
    "GTSRB": tuple(
        f'a {how} photo of a "{{}}" traffic sign.' for how in ("zoomed in", "centered", "close up")
    ),
    "MNIST": NUMBER,
    "RESISC45": tuple(
        f"{kind} {what} of {the}{{}}."
        for the in ("", "a ", "the ")
        for what in ("imagery", "photo", "view")
        for kind in ("satellite", "aerial")
    ),
    "SVHN": NUMBER,
    "SUN397": PHOTO,
    "STL10": PHOTO,
    "OxfordIIITPet": ("a photo of a {}, a type of pet.",),
    "Flowers102": ("a photo of a {}, a type of flower.",),
    "CIFAR100": CIFAR,
    "PCAM": ("this is a photo of {}",),
    "FER2013": (
        "a photo of a {} looking face.",
        "a photo of a face showing the emotion: {}.",
        "a photo of a face looking {}.",
        "a face that looks {}.",
        "they look {}.",
        "look at how {} they are.",
    ),
    "CIFAR10": CIFAR,
    "Food101": ("a photo of {}, a type of food.",),
    "FashionMNIST": PHOTO,
    "RenderedSST2": ("a {} review of a movie.",),
    "EMNIST": NUMBER,
    "KMNIST": ("a photo of the character {}.",),
}
"""Prompt templates per task, in the paper's task order."""

READER_MODULE = {
    name: "arrays"
    for name in (
        "MNIST",
        "SVHN",
        "STL10",
        "CIFAR100",
        "PCAM",
        "FER2013",
        "CIFAR10",
        "FashionMNIST",
        "EMNIST",
        "KMNIST",
    )
}
READER_MODULE.update(
    {
        name: "folders"
        for name in (
            "Cars",
            "DTD",
            "EuroSAT",
            "GTSRB",
            "RESISC45",
            "SUN397",
            "OxfordIIITPet",
            "Flowers102",
            "Food101",
            "RenderedSST2",
        )
    }
)

ORDER = tuple(TEMPLATES)
PRESETS = {"paper-8": ORDER[:8], "paper-14": ORDER[:14], "paper-20": ORDER}
"""The paper's three benchmarks: its first 8, 14 and 20 tasks."""


@dataclass(frozen=True)
class DatasetTask:
    """A task whose images come from a dataset under ``data.root`` (its class names too)."""

    name: str
    templates: tuple[str, ...]
    module: str  # tallmerge.tasks.<module> holds the reader (imported on first use)

    def read(self, root: Path, split: str) -> Samples:
        """The dataset's official ``train`` or ``test`` split under ``root`` (the reader checks ``split``)."""
        return self._module().READERS[self.name](Path(root), split)

    @property
    def layout(self) -> str:
        """Where the dataset's files are expected under ``data.root`` (one line)."""
        return self._module().LAYOUTS[self.name]

    def _module(self):
        return importlib.import_module(f"tallmerge.tasks.{self.module}")


for _name in ORDER:
    register_task(DatasetTask(_name, TEMPLATES[_name], READER_MODULE[_name]))
