"""The task registry: every task the pipeline can run is looked up here by name.

A task knows its prompt templates (for the zero-shot head) and where its labelled images come
from. Pocket tasks (:class:`Task`) know their class names and generate images from a seed; the
paper's dataset tasks (:class:`tallmerge.tasks.paper.DatasetTask`) read a dataset's official
splits, class names included, from a local folder. Everything else in tallmerge goes through
:func:`get_task`, so adding a dataset means registering one object, nothing more.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from tallmerge.errors import TallmergeError

SPLITS = ("train", "val", "test")
"""Evaluation-facing splits. ``val`` is held out from the same distribution as ``train``."""

WEB_SPLIT = "web"
"""The pre-training variant of a pocket task: the same concepts as seen in a generic, captioned
pre-training mix (cleaner, differently distributed), never used for fine-tuning or evaluation."""


class Task(Protocol):
    """A generated task."""

    name: str
    classnames: tuple[str, ...]
    templates: tuple[str, ...]  # each has one "{}" where the class name goes

    def generate(self, split: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(images, labels)``: uint8 ``[n, H, W, 3]`` and int64 ``[n]``.

        Deterministic in ``(split, n, seed)``; labels are class-balanced (counts differ by at
        most one); different splits never share an image.
        """
        ...


_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    if task.name in _TASKS:
        raise ValueError(f"task {task.name!r} is registered twice")
    _TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    try:
        return _TASKS[name]
    except KeyError:
        alike = [t for t in _TASKS if t.lower() == str(name).lower()]
        hint = f" (did you mean {alike[0]!r}?)" if alike else ""
        raise TallmergeError(f"unknown task {name!r}{hint}; available: {', '.join(_TASKS)}") from None


def available_tasks() -> list[str]:
    """Registered task names: the pocket tasks, then the paper's, each in registration order."""
    return list(_TASKS)
