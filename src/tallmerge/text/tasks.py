"""Text tasks: every example is an input text, its answer choices and the index of the right one.

A model is scored by **rank classification** (as T0 and TIES-Merging evaluate): each choice is
scored as the target text given the input, and the best-scored choice is the prediction. Training
uses the right choice as the target. Tasks are registered by name, like the image tasks; each
names the paper's task it is (a dataset task) or stands for (a pocket task), and the paper's
three suites (:data:`SUITES`) are lists of those paper tasks.

A task's data file (``data/text/<task>.json``, written by the ``text-prepare`` stage) holds its
prompted examples per split, so every later stage reads the same examples whatever the source
(generated, or a dataset's files)::

    {"task": ..., "paper_task": ..., "splits": {"train": [{"input", "choices", "label"}, ...],
                                                 "val": [...], "test": [...]}}
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tallmerge.errors import TallmergeError
from tallmerge.formats.files import read_json, write_json

SPLITS = ("train", "val", "test")
"""``val`` is for selection (alpha, lambda), ``test`` is what the tables report."""

PAPER_TASKS = (
    "paws",
    "qasc",
    "quartz",
    "story-cloze",
    "wiki-qa",
    "winogrande",
    "wsc",
    "cosmos-qa",
    "social-iqa",
    "quail",
    "ropes",
)
"""The paper's 11 text tasks (the union of its two suites)."""

SUITES = {
    "nlp7": ("paws", "qasc", "quartz", "story-cloze", "wiki-qa", "winogrande", "wsc"),
    "qa8": ("cosmos-qa", "social-iqa", "paws", "quail", "wiki-qa", "quartz", "qasc", "ropes"),
    "all11": PAPER_TASKS,
}
"""The paper's suites: the 7 NLP tasks of TIES-Merging, the 8 QA tasks of MaTS, and all 11."""


@dataclass(frozen=True)
class Example:
    """One prompted example: the model reads ``input`` and the answer is ``choices[label]``."""

    input: str
    choices: tuple[str, ...]
    label: int

    def __post_init__(self):
        if not self.choices:
            raise TallmergeError(f"an example has no answer choices: {self.input[:60]!r}")
        if not 0 <= self.label < len(self.choices):
            raise TallmergeError(
                f"an example's label {self.label} is not one of its {len(self.choices)} choices: {self.input[:60]!r}"
            )

    def to_json(self) -> dict:
        return {"input": self.input, "choices": list(self.choices), "label": self.label}

    @classmethod
    def from_json(cls, row: dict) -> Example:
        return cls(str(row["input"]), tuple(str(c) for c in row["choices"]), int(row["label"]))


class TextTask(Protocol):
    name: str
    paper_task: str  # the entry of PAPER_TASKS this task is or stands for

    def examples(self, split: str, n: int | None, seed: int, root: Path | None = None) -> list[Example]:
        """The split's prompted examples, deterministic in ``(split, n, seed)`` and the files.

        ``n``: how many (``None``: all the split has; a dataset task takes a seeded sample when
        asked for fewer than it has). ``root``: the folder holding the datasets (dataset tasks
        only). Different splits never share an example.
        """
        ...


_TASKS: dict[str, TextTask] = {}


def register_text_task(task: TextTask) -> TextTask:
    if task.name in _TASKS:
        raise ValueError(f"text task {task.name!r} is registered twice")
    if task.paper_task not in PAPER_TASKS:
        raise ValueError(f"text task {task.name!r} stands for {task.paper_task!r}, not a paper task")
    _TASKS[task.name] = task
    return task


def get_text_task(name: str) -> TextTask:
    _register_all()
    try:
        return _TASKS[name]
    except KeyError:
        raise TallmergeError(f"unknown text task {name!r}; available: {', '.join(_TASKS)}") from None


def available_text_tasks() -> list[str]:
    _register_all()
    return list(_TASKS)


def suite_tasks(suite: str, tasks) -> list[str]:
    """The tasks of ``tasks`` (names) that stand for the paper tasks of ``suite``, in order."""
    if suite not in SUITES:
        raise TallmergeError(f"unknown suite {suite!r}; the paper's suites: {', '.join(SUITES)}")
    return [t for t in tasks if get_text_task(t).paper_task in SUITES[suite]]


def _register_all() -> None:
    from tallmerge.text import datasets, pocket  # noqa: F401  (each registers its tasks on import)


def write_task_data(task: TextTask, sizes: dict, seed: int, root, path: str | os.PathLike) -> dict:
    """Draw every split of ``task`` and write its data file; returns the examples per split."""
    splits = {s: task.examples(s, sizes[s], seed, root) for s in SPLITS}
    for split, examples in splits.items():
        if not examples:
            raise TallmergeError(f"text task '{task.name}': its {split} split has no examples")
    write_json(
        {
            "task": task.name,
            "paper_task": task.paper_task,
            "splits": {s: [e.to_json() for e in ex] for s, ex in splits.items()},
        },
        path,
    )
    return splits


def read_split(path: str | os.PathLike, split: str) -> list[Example]:
    """One split's examples from a task's data file; a malformed file fails naming it."""
    return read_splits(path, (split,))[split]


def read_splits(path: str | os.PathLike, splits) -> dict[str, list[Example]]:
    """Several splits' examples from one reading of a task's data file."""
    data = read_json(path)
    out = {}
    for split in splits:
        try:
            out[split] = [Example.from_json(row) for row in data["splits"][split]]
        except TallmergeError as e:
            raise TallmergeError(f"{path}: {e}") from None
        except (KeyError, TypeError, ValueError):
            raise TallmergeError(f"{path}: not a text task data file (no valid '{split}' split)") from None
    return out
