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
from tallmerge.merging.recipes import VECTOR_FORMATS  # noqa: E402

_MARKERS = {"fine-tuned": "*", "store": "o", "one model": "s"}
_METADATA = {"Software": None}  # no version string: the same figure gives the same bytes


def _save(figure, path: str | os.PathLike) -> None:
    with atomic_write(Path(path)) as tmp:
        figure.savefig(tmp, format="png", dpi=110, metadata=_METADATA, bbox_inches="tight")
    plt.close(figure)


def frontier(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Storage (MB, log scale) against average normalized test accuracy. Stores of one scheme
    that differ only in their vector dtype and rebuild the same accuracy share one label; the
    single merged models (all one model's size) are labelled in a column beside their points."""
    figure, axes = plt.subplots(figsize=(9, 6))
    for kind, group in frame.groupby("kind", sort=False):
        axes.scatter(
            group.megabytes, group.avg_normalized_test, marker=_MARKERS.get(kind, "o"), label=kind, s=40
        )
    labels: dict[tuple, list] = {}
    for row in frame[frame.kind != "one model"].itertuples():
        name = row.storage.split(": ", 1)[-1]
        scheme, _, dtype = name.rpartition(" ") if name.endswith(VECTOR_FORMATS) else (name, "", "")
        labels.setdefault((scheme, round(row.avg_normalized_test, 1)), []).append((row.megabytes, dtype))
    for (scheme, accuracy), points in labels.items():
        dtypes = ", ".join(d for _, d in sorted(points, key=lambda p: p[1]) if d)
        axes.annotate(
            f"{scheme} ({dtypes})" if dtypes else scheme,
            (min(x for x, _ in points), accuracy),
            fontsize=7,
            xytext=(-4, 6),
            textcoords="offset points",
        )
    singles = frame[frame.kind == "one model"].sort_values("avg_normalized_test")
    if len(singles):
        low, high = singles.avg_normalized_test.min(), singles.avg_normalized_test.max()
        step = max(2.2, (high - low) / max(len(singles) - 1, 1))
        for i, row in enumerate(singles.itertuples()):
            axes.annotate(
                f"{row.storage.split(': ', 1)[-1]} {row.avg_normalized_test:.1f}",
                (row.megabytes, row.avg_normalized_test),
                xytext=(row.megabytes * 1.35, low - 2 + i * step),
                fontsize=7,
                arrowprops={"arrowstyle": "-", "linewidth": 0.4, "color": "grey"},
            )
        axes.set_ylim(bottom=min(axes.get_ylim()[0], low - 4))
    axes.set_xscale("log")
    axes.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
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
