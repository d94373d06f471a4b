"""Evaluating image-encoder weights on the vision benchmark: every task's frozen zero-shot head
and evaluation splits, one encoder into which candidate weights are loaded. The selection rules
that use it live in :mod:`tallmerge.results.selection`."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch

from tallmerge import layout
from tallmerge.clip import runtime
from tallmerge.clip.batches import split_for
from tallmerge.clip.heads import Classifier, load_head
from tallmerge.clip.models import create_clip, load_strict
from tallmerge.clip.train import accuracy
from tallmerge.formats.files import load_tensors
from tallmerge.results.selection import SPLITS, Scored, State
from tallmerge.tasks.datafile import TaskData


class Benchmark(Scored):
    """Every task's frozen head and evaluation splits, and one image encoder, on the runtime's
    device (a GPU when there is one; float32 throughout), into which candidate weights are
    loaded."""

    def __init__(
        self,
        arch: str,
        tasks: Sequence[str],
        heads: Callable[[str], os.PathLike],
        data: Callable[[str], os.PathLike],
        batch_size: int,
        root: str | None = None,
        workers: int = 0,
    ):
        self.tasks = list(tasks)
        self.batch_size = batch_size
        model = create_clip(arch)
        device = runtime.current().device
        self.encoder = model.visual.eval().to(device)
        self.heads = {t: load_head(heads(t)).to(device) for t in self.tasks}
        self.splits = {}
        for t in self.tasks:
            task_data = TaskData(data(t), root)
            self.splits[t] = {s: split_for(task_data, s, model, workers=workers) for s in SPLITS}

    @classmethod
    def from_params(cls, params) -> Benchmark:
        """The pipeline's benchmark: params.yaml's tasks, heads and data."""
        data = params.data
        return cls(
            params.arch,
            params.tasks,
            layout.head,
            layout.task_data,
            params.eval_batch_size,
            data.root,
            data.workers,
        )

    def load(self, path: str | os.PathLike) -> dict[str, torch.Tensor]:
        """Read image-encoder weights, checked against this architecture."""
        state, _ = load_tensors(path)
        load_strict(self.encoder, state, path)
        return state

    def top1(self, state: State, task: str, split: str) -> float:
        self.encoder.load_state_dict(state)
        classifier = Classifier(self.encoder, self.heads[task])
        return accuracy(classifier, self.splits[task][split], self.batch_size)
