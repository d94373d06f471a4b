"""What a merge-side stage works on: the vision benchmark, or one suite of the text benchmark.

The merge, TALL-mask, consensus, magnitude and store stages are the same for both halves of the
paper; only these differ: the tasks, the pre-trained and fine-tuned checkpoints, where results go,
and how weights are evaluated (a CLIP image encoder under frozen heads, or a T5 by rank
classification). A stage run as ``python stages/merge.py ties`` works on the vision benchmark;
with ``--suite nlp7`` (or ``qa8``, ``all11``) on that suite of the text benchmark.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from tallmerge import layout
from tallmerge.formats.files import save_tensors
from tallmerge.params import Params


@dataclass
class Setting:
    params: Params  # the vision params, or the text benchmark's (TextParams)
    suite: str | None  # None: the vision benchmark
    tasks: list[str]
    base: Path  # theta_0
    finetuned: dict[str, Path]
    layout: layout.Layout  # where this setting's merges, masks, stores and results go
    reference: Path  # the fine-tuned models' results, which normalize accuracy
    projections: list[tuple[str, int]]  # the paper's (model, tasks) whose store sizes are projected

    @classmethod
    def load(cls, suite: str | None = None) -> Setting:
        params = Params.load()
        if suite is None:
            return cls(
                params,
                None,
                params.tasks,
                layout.PRETRAINED_VISUAL,
                layout.finetuned_checkpoints(params.tasks),
                layout.VISION,
                layout.method_metrics_path("finetuned"),
                [("ViT-B-32", 20), ("ViT-L-14", 20)],
            )
        from tallmerge.text_params import TextParams

        text = TextParams(params.raw, params.source)
        tasks = text.suite(suite)
        return cls(
            text,
            suite,
            tasks,
            layout.TEXT_PRETRAINED,
            {t: layout.text_finetuned(t) for t in tasks},
            layout.text_suite(suite),
            layout.TEXT_RESULTS.method_metrics_path("finetuned"),
            [("T5-large-lm-adapt", len(tasks))],
        )

    def checkpoints(self, **options):
        from tallmerge.merging.checkpoints import Checkpoints

        return Checkpoints(self.base, self.finetuned, **options)

    def benchmark(self):
        """This setting's evaluator (``top1``, ``rows``), built on first use."""
        if self.suite is None:
            from tallmerge.results.evaluation import Benchmark

            return Benchmark.from_params(self.params)
        from tallmerge.results.text_evaluation import TextBenchmark

        return TextBenchmark.from_params(self.params, self.tasks)

    def save(self, state, path: Path, **metadata) -> None:
        """Write merged weights with what made them."""
        if self.suite is None:
            from tallmerge.clip.models import save_visual

            save_visual(state, self.params.arch, path, **metadata)
        else:
            save_tensors(state, path, metadata={"arch": self.params.arch, "suite": self.suite, **metadata})


def suite_option(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--suite`` (a text suite; absent: the vision benchmark) to a stage's arguments."""
    from tallmerge.text.tasks import SUITES

    parser.add_argument(
        "--suite", choices=list(SUITES), default=None, help="a text suite (default: the vision benchmark)"
    )
    return parser
