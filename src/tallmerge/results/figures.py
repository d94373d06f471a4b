"""The report's figures as PNG files (matplotlib), so that a reader of the repository sees them
without running `dvc plots show`: the storage-vs-accuracy frontier, the alpha and lambda
selection curves, and the overlap of the selected TALL masks. Drawn from the same frames as the
plot files under plots/ (:mod:`tallmerge.results.report`)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import pandas as pd  # noqa: E402

from tallmerge.formats.files import atomic_write  # noqa: E402

_MARKERS = {"fine-tuned": "*", "store": "o", "one model": "s"}
_METADATA = {"Software": None}  # no version string: the same figure gives the same bytes


def _save(figure, path: str | os.PathLike) -> None:
    with atomic_write(Path(path)) as tmp:
        figure.savefig(tmp, format="png", dpi=110, metadata=_METADATA, bbox_inches="tight")
    plt.close(figure)


def frontier(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Storage (MB, log scale) against average normalized test accuracy, one labelled point each
    (labels of points that nearly coincide, such as the single merged models, are stacked)."""
    figure, axes = plt.subplots(figsize=(9, 6))
    placed: list[tuple[float, float]] = []
    for kind, group in frame.groupby("kind", sort=False):
        axes.scatter(
            group.megabytes, group.avg_normalized_test, marker=_MARKERS.get(kind, "o"), label=kind, s=40
        )
        for row in group.sort_values("avg_normalized_test").itertuples():
            near = sum(
                1
                for x, y in placed
                if abs(x / row.megabytes - 1) < 0.04 and abs(y - row.avg_normalized_test) < 2.5
            )
            placed.append((row.megabytes, row.avg_normalized_test))
            axes.annotate(
                row.storage.split(": ", 1)[-1],
                (row.megabytes, row.avg_normalized_test),
                fontsize=7,
                xytext=(5, 2 + 9 * near),
                textcoords="offset points",
            )
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes.set_xlabel("bytes on disk for all tasks' models (MB, log scale)")
    axes.set_ylabel("average normalized test accuracy (%)")
    axes.set_title("Storage against accuracy")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower right")
    _save(figure, path)


def curves(frame: pd.DataFrame, x: str, path: str | os.PathLike, title: str, ylabel: str) -> None:
    """One line per non-empty column of ``frame`` against column ``x``."""
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for column in frame.columns:
        if column != x and frame[column].notna().any():
            data = frame[[x, column]].dropna()
            axes.plot(data[x], data[column], marker="o", markersize=3, label=column)
    axes.set_xlabel(x)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=7)
    _save(figure, path)


def lambda_panels(by_task: dict[str, pd.DataFrame], path: str | os.PathLike) -> None:
    """Each task's TALL validation top-1 against lambda, one small panel per task."""
    tasks = list(by_task)
    columns = min(4, len(tasks))
    rows = -(-len(tasks) // columns)
    figure, grid = plt.subplots(
        rows, columns, figsize=(3.2 * columns, 2.6 * rows), squeeze=False, layout="constrained"
    )
    for axes, task in zip(grid.flat, tasks):
        frame = by_task[task]
        for column in frame.columns[1:]:
            if frame[column].notna().any():
                axes.plot(frame["lambda"], frame[column], marker="o", markersize=3, label=column)
        axes.set_title(task, fontsize=9)
        axes.grid(True, alpha=0.3)
    for axes in list(grid.flat)[len(tasks) :]:
        axes.axis("off")
    grid.flat[0].legend(fontsize=6)
    figure.suptitle("TALL reconstruction: validation top-1 (%) against lambda")
    _save(figure, path)
