"""Evaluating T5 weights on the text benchmark: every task's validation and test examples,
tokenized once, scored by rank classification (:mod:`tallmerge.text.rank`) with one T5 into
which candidate weights are loaded. The selection rules that use it live in
:mod:`tallmerge.results.selection`."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch

from tallmerge.results.selection import SPLITS, Scored, State
from tallmerge.text import t5
from tallmerge.text.rank import accuracy, choice_scores
from tallmerge.text.tasks import read_splits
from tallmerge.text.tokenizer import load_tokenizer
from tallmerge.text.train import encode_examples


class TextBenchmark(Scored):
    """Every task's validation and test examples, tokenized once, and one T5 of the pipeline's
    architecture into which candidate weights are loaded."""

    def __init__(
        self,
        model_folder: str | os.PathLike,
        tasks: Sequence[str],
        data: Callable[[str], os.PathLike],
        batch_size: int,
        length_norm: bool,
        max_input: int,
    ):
        self.tasks = list(tasks)
        self.batch_size, self.length_norm = batch_size, length_norm
        self.tokenizer = load_tokenizer(model_folder)
        self.model = t5.create_t5(t5.load_config(model_folder)).to(t5.device())
        self.encoded = {}
        for task in self.tasks:
            for split, examples in read_splits(data(task), SPLITS).items():
                inputs, choices = encode_examples(self.tokenizer, examples, max_input)
                self.encoded[task, split] = (inputs, choices, [e.label for e in examples])

    @classmethod
    def from_params(cls, params, tasks: Sequence[str] | None = None) -> TextBenchmark:
        """The pipeline's text benchmark (params.yaml's ``text`` section), on ``tasks`` (default: all)."""
        from tallmerge import layout

        cfg = params.evaluate
        return cls(
            layout.TEXT_MODEL,
            params.tasks if tasks is None else tasks,
            layout.text_data,
            cfg.batch_size,
            cfg.length_norm,
            cfg.max_input,
        )

    def load(self, path: str | os.PathLike) -> dict[str, torch.Tensor]:
        from tallmerge.formats.files import load_tensors

        state, _ = load_tensors(path)
        t5.load_weights(self.model, state, path)
        return state

    def top1(self, state: State, task: str, split: str) -> float:
        t5.load_weights(self.model, state, "merged weights")
        inputs, choices, labels = self.encoded[task, split]
        scores = choice_scores(
            self.model, inputs, choices, self.tokenizer.pad_token_id, self.length_norm, self.batch_size
        )
        return accuracy(scores, labels)
