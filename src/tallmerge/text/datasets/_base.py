"""What every dataset text task shares: the two layouts, the splits, sampling and errors.

A task reads its rows in the field names of its Hugging Face hub dataset, from either layout
under ``<root>/<task>/``: a ``DatasetDict.save_to_disk`` folder (``dataset_dict.json`` and one
subfolder per split; it wins where both are present) or the files of the public release, which
the task's reader turns into the same rows (as the hub's loading script does). Each row is then
rendered by the task's prompt template into an :class:`~tallmerge.text.tasks.Example`.

Splits follow the MaTS code (github r-three/mats, ``src/data/dataset_readers.py``), which
evaluates T5-large-LM-adapt on both of the paper's suites: ``train`` is the source's training
split less its last ``holdout`` rows, ``val`` those last ``holdout`` rows, ``test`` the source's
validation split (the public test splits are unlabeled or unused). Rows keep the order of their
file; a sample of ``n`` keeps it too.
"""

from __future__ import annotations

import csv
import json
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tallmerge.errors import TallmergeError, one_line
from tallmerge.text.tasks import SPLITS, Example

SAVED_MARKER = "dataset_dict.json"

Row = tuple[str, dict]
"""Where a row comes from (``file:line`` or ``folder row i``, for errors) and its fields."""

Rendered = tuple[str, tuple[str, ...], int]
"""A rendered row: the input text, its answer choices and the index of the right one."""

# --- promptsource's rendering ----------------------------------------------------------------

TEXT_VAR_LENGTH = 2048
"""promptsource 0.2.3 passes every ``{{ ... }}`` of a prompt through ``truncate(2048)``."""
_LEEWAY = 5  # Jinja's default truncate leeway
_ELLIPSIS = "..."


def var(value) -> str:
    """A template variable as promptsource renders it: ``| string | truncate(2048)``.

    Text up to 2048 + 5 characters stays whole; longer text is cut to its first 2045
    characters, less the last (partial) word, and ends in ``...`` (Jinja's ``truncate``).
    """
    text = str(value)
    if len(text) <= TEXT_VAR_LENGTH + _LEEWAY:
        return text
    return text[: TEXT_VAR_LENGTH - len(_ELLIPSIS)].rsplit(" ", 1)[0] + _ELLIPSIS


def choice_list(*choices) -> tuple[str, ...]:
    """Answer choices as promptsource lists them: each one stripped of surrounding whitespace."""
    return tuple(str(c).strip() for c in choices)


# --- the task --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetTextTask:
    """One of the paper's text tasks, read from local files under ``<root>/<name>/``.

    ``files`` maps the source splits the task uses (hub names: ``train``, ``validation``) to
    the release's file, relative to ``<root>/<name>/``, and ``companions`` to a second file the
    reader needs beside it (a labels file); ``parse`` reads one such file into hub rows. ``train_from``/``test_from`` name the source splits of :data:`SPLITS` and
    ``holdout`` how many rows at the end of ``train_from`` form ``val``. ``render`` is the
    prompt template (None: the row has no rank-classification form and is left out).
    """

    name: str
    title: str
    hub: str  # the Hugging Face hub dataset (and config) whose fields the rows carry
    release: str  # the release's layout under <root>/<name>/, as errors name it
    files: dict[str, str]
    parse: Callable[[Path], list[Row]]
    template: str  # promptsource template name (and dataset), documentation only
    render: Callable[[dict], Rendered | None]
    holdout: int
    train_from: str = "train"
    test_from: str = "validation"
    companions: dict[str, str] = field(default_factory=dict)

    @property
    def paper_task(self) -> str:
        return self.name

    def layout(self, root: Path | str = "<root>") -> str:
        """Both accepted layouts, on one line."""
        return f"{self.title} expects {root}/{self.name}/{self.release} or a save_to_disk folder {root}/{self.name}/"

    def source_rows(self, root: Path, source: str) -> list[Row]:
        """The hub rows of source split ``source`` (``train`` or ``validation``) under ``root``."""
        folder = Path(root) / self.name
        if (folder / SAVED_MARKER).is_file():
            return read_saved(folder, source, self)
        path = folder / self.files[source]
        for needed in (path, folder / self.companions.get(source, self.files[source])):
            if not needed.is_file():
                raise TallmergeError(f"{needed}: missing; {self.layout(root)}")
        return self.parse(path)

    def split_rows(self, root: Path, split: str) -> list[Row]:
        """The source rows that form ``split`` (``train``, ``val`` or ``test``)."""
        if split == "test":
            return self.source_rows(root, self.test_from)
        rows = self.source_rows(root, self.train_from)
        cut = max(len(rows) - self.holdout, 0)
        return rows[:cut] if split == "train" else rows[cut:]

    def examples(self, split: str, n: int | None, seed: int, root: Path | None = None) -> list[Example]:
        """The prompted examples of ``split``: all of them (``n=None``) or a seeded sample of
        ``n`` in file order, drawn by ``numpy.random.default_rng([seed, crc32(name)])``."""
        if split not in SPLITS:
            raise TallmergeError(
                f"{self.name}: unknown split {split!r} (text tasks have {', '.join(SPLITS)})"
            )
        if root is None:
            raise TallmergeError(
                f"{self.name}: a dataset task needs the data root (data.root); {self.layout()}"
            )
        if n is not None and n < 0:
            raise TallmergeError(f"{self.name}: cannot take {n} examples")
        if seed < 0:
            raise TallmergeError(f"{self.name}: the seed must be >= 0, not {seed}")
        examples = [ex for ex in (self._example(row) for row in self.split_rows(Path(root), split)) if ex]
        if n is None or n >= len(examples):
            return examples
        rng = np.random.default_rng([seed, zlib.crc32(self.name.encode())])
        return [examples[i] for i in np.sort(rng.choice(len(examples), size=n, replace=False))]

    def _example(self, row: Row) -> Example | None:
        where, fields = row
        try:
            rendered = self.render(fields)
            return None if rendered is None else Example(*rendered)
        except TallmergeError as e:
            raise TallmergeError(f"{where}: {e}") from None
        except KeyError as e:
            raise TallmergeError(
                f"{where}: no field {e.args[0]!r} ({self.title} rows carry the fields of {self.hub})"
            ) from None
        except (ValueError, TypeError, IndexError, AttributeError) as e:
            raise TallmergeError(f"{where}: malformed {self.title} row ({one_line(e)})") from None


# --- the save_to_disk layout -----------------------------------------------------------------


def read_saved(folder: Path, split: str, task: DatasetTextTask) -> list[Row]:
    """The rows of split ``split`` of a ``DatasetDict.save_to_disk`` folder (needs ``datasets``)."""
    marker = folder / SAVED_MARKER
    try:
        splits = json.loads(marker.read_text(encoding="utf-8"))["splits"]
        splits = [str(s) for s in splits]
    except (ValueError, KeyError, TypeError) as e:
        raise TallmergeError(f"{marker}: not a save_to_disk dataset_dict.json ({one_line(e)})") from None
    if split not in splits:
        raise TallmergeError(
            f"{folder / split}: missing; the save_to_disk folder {folder} has splits {', '.join(splits) or 'none'} "
            f"and {task.title} needs {', '.join(sorted(task.files))} (from {task.hub})"
        )
    try:
        import datasets as hf_datasets  # the Hugging Face package, only for these folders
    except ImportError:
        raise TallmergeError(
            f"{folder}: reading a save_to_disk folder needs the `datasets` package"
        ) from None
    try:
        table = hf_datasets.Dataset.load_from_disk(str(folder / split))
        rows = table.to_list()
    except Exception as e:  # whatever the arrow reader raises, the folder is unusable
        raise TallmergeError(f"{folder / split}: not a readable save_to_disk split ({one_line(e)})") from None
    return [(f"{folder / split} row {i}", row) for i, row in enumerate(rows)]


# --- release files ---------------------------------------------------------------------------


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TallmergeError(f"{path}: not a UTF-8 text file") from None


def _converted(path: Path, items: Iterable[tuple[int, object]], convert: Callable) -> list[Row]:
    rows = []
    for line, item in items:
        try:
            rows.append((f"{path}:{line}", convert(item)))
        except KeyError as e:
            raise TallmergeError(f"{path}:{line}: no field {e.args[0]!r}") from None
        except (ValueError, TypeError, IndexError, AttributeError) as e:
            raise TallmergeError(f"{path}:{line}: malformed row ({one_line(e)})") from None
    return rows


def jsonl_rows(path: Path, convert: Callable[[dict], dict]) -> list[Row]:
    """One row per non-blank JSON line of ``path``; a malformed line names its number."""
    return _converted(path, _json_lines(path), convert)


def _json_lines(path: Path) -> Iterator[tuple[int, dict]]:
    for i, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as e:
            raise TallmergeError(f"{path}:{i}: not valid JSON ({one_line(e)})") from None
        if not isinstance(item, dict):
            raise TallmergeError(f"{path}:{i}: expected a JSON object, found {type(item).__name__}")
        yield i, item


def json_document(path: Path) -> object:
    """A whole-file JSON document."""
    try:
        return json.loads(read_text(path))
    except ValueError as e:
        raise TallmergeError(f"{path}: not valid JSON ({one_line(e)})") from None


def table_rows(path: Path, convert: Callable[[dict], dict], **csv_options) -> list[Row]:
    """One row per record of a headed CSV/TSV file (``csv.DictReader`` options as given);
    rows are numbered by the line they end on."""
    with open(path, encoding="utf-8", newline="") as f:
        try:
            reader = csv.DictReader(f, **csv_options)
            items = [(reader.line_num, record) for record in reader]
        except UnicodeDecodeError:
            raise TallmergeError(f"{path}: not a UTF-8 text file") from None
        except csv.Error as e:
            raise TallmergeError(f"{path}:{reader.line_num}: malformed row ({one_line(e)})") from None
    if reader.fieldnames is None:
        raise TallmergeError(f"{path}: empty file (expected a header line)")
    return _converted(path, items, convert)


def labels_file(path: Path, count: int) -> list[str]:
    """The lines of a ``*-labels.lst`` file, which must number ``count``."""
    if not path.is_file():
        raise TallmergeError(f"{path}: missing (the labels of {path.name.split('-labels')[0]}.jsonl)")
    labels = [line.strip() for line in read_text(path).splitlines() if line.strip()]
    if len(labels) != count:
        raise TallmergeError(f"{path}: {len(labels)} labels for {count} rows")
    return labels


def keyed_choices(choices: dict, answer_key: str) -> tuple[tuple[str, ...], int]:
    """A hub ``choices`` struct (``text`` and ``label`` lists) and the ``answerKey``: the
    choices as promptsource lists them and the index of the key among the labels."""
    labels = list(choices["label"])
    if answer_key not in labels:
        raise TallmergeError(f"answerKey {answer_key!r} is not one of the choice labels {labels}")
    return choice_list(*choices["text"]), labels.index(answer_key)
