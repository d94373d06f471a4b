"""Grade-school science tasks released by AI2 as ARC-style jsonl: QASC and QuaRTz.

Each line carries ``question`` (``stem`` and ``choices``, a list of ``text``/``label``) and the
``answerKey`` label; the hub's rows flatten ``question.stem`` to ``question`` and the choices to
a ``choices`` struct of ``text`` and ``label`` lists. Templates as in :mod:`.sentences` (the first
kept promptsource 0.2.3 template); the choices are the question's, in their order.
"""

from __future__ import annotations

from pathlib import Path

from tallmerge.text.datasets._base import DatasetTextTask, Rendered, Row, jsonl_rows, keyed_choices, var


def _arc_question(record: dict) -> dict:
    question = record["question"]
    choices = question["choices"]
    return {
        "id": record["id"],
        "question": question["stem"],
        "choices": {"text": [c["text"] for c in choices], "label": [c["label"] for c in choices]},
        "answerKey": record.get("answerKey", ""),
    }


# --- QASC ------------------------------------------------------------------------------------


def _qasc_row(record: dict) -> dict:
    row = _arc_question(record)
    for key in ("fact1", "fact2", "combinedfact", "formatted_question"):
        row[key] = record.get(key, "")
    return row


def read_qasc(path: Path) -> list[Row]:
    """A ``QASC_Dataset/*.jsonl`` (``id``, ``question``, ``answerKey``, ``fact1``, ``fact2``, ...)."""
    return jsonl_rows(path, _qasc_row)


def _sentence_tail(text: str) -> str:
    return text.strip().strip(".")


def render_qasc(row: dict) -> Rendered:
    choices, label = keyed_choices(row["choices"], row["answerKey"])
    fact1, fact2, question = row["fact1"], row["fact2"], row["question"]
    options = var("\n - ".join(choices))
    text = (
        f"{var(fact1[:1].capitalize())}{var(_sentence_tail(fact1[1:]))}, and "
        f"{var(fact2[:1].lower())}{var(_sentence_tail(fact2[1:]))}. Given these facts, "
        f"{var(question[:1].lower())}{var(question[1:].strip('?'))} among the following options:\n- {options}"
    )
    return text.strip(), choices, label


QASC = DatasetTextTask(
    name="qasc",
    title="QASC",
    hub="qasc",
    release="QASC_Dataset/{train,dev}.jsonl (qasc_dataset.tar.gz)",
    files={"train": "QASC_Dataset/train.jsonl", "validation": "QASC_Dataset/dev.jsonl"},
    parse=read_qasc,
    template="qa_with_separated_facts_1 (promptsource qasc)",
    render=render_qasc,
    holdout=500,
)
"""QASC, 8-way multiple-choice science questions with their two supporting facts.

Layout: ``<root>/qasc/QASC_Dataset/train.jsonl`` and ``.../dev.jsonl`` as ``qasc_dataset.tar.gz``
unpacks (``test.jsonl`` has no answers and is not read), or a save_to_disk folder of the hub's
``qasc`` (fields ``id``, ``question``, ``choices``, ``answerKey``, ``fact1``, ``fact2``, ...).
Template ``qa_with_separated_facts_1``; choices the 8 answer texts. Splits: train = train.jsonl
less its last 500 rows, val = those 500, test = dev.jsonl. (The MaTS code reads QASC's ``test``
as its ``val``, the same 500 rows; here test is the labeled dev file, so no row is in two splits.)
"""


# --- QuaRTz ----------------------------------------------------------------------------------


def _quartz_row(record: dict) -> dict:
    row = _arc_question(record)
    row["para"] = record["para"]
    row["para_id"] = record.get("para_id", "")
    return row


def read_quartz(path: Path) -> list[Row]:
    """A ``quartz-dataset-v1-aug2019/*.jsonl`` (``id``, ``question``, ``answerKey``, ``para``, ...)."""
    return jsonl_rows(path, _quartz_row)


def render_quartz(row: dict) -> Rendered:
    choices, label = keyed_choices(row["choices"], row["answerKey"])
    question = row["question"].strip(".?!")
    either = " or ".join(choices)
    if "_____" in row["question"]:
        asked = var(question.replace("_____", either))
    else:
        asked = f"{var(question)} {var(either)}"
    text = (
        "Use information from the paragraph to answer the question.\n\nQuestion:\n\n\n"
        f"{asked}? \n\n\nParagraph :\n\n{var(row['para'])}"
    )
    return text.strip(), choices, label


QUARTZ = DatasetTextTask(
    name="quartz",
    title="QuaRTz",
    hub="quartz",
    release="quartz-dataset-v1-aug2019/{train,dev}.jsonl (quartz-dataset-v1-aug2019.zip)",
    files={
        "train": "quartz-dataset-v1-aug2019/train.jsonl",
        "validation": "quartz-dataset-v1-aug2019/dev.jsonl",
    },
    parse=read_quartz,
    template="use_info_from_question_paragraph (promptsource quartz)",
    render=render_quartz,
    holdout=200,
)
"""QuaRTz, two-way qualitative-relationship questions about a background paragraph.

Layout: ``<root>/quartz/quartz-dataset-v1-aug2019/train.jsonl`` and ``.../dev.jsonl`` as
``quartz-dataset-v1-aug2019.zip`` unpacks, or a save_to_disk folder of the hub's ``quartz``
(fields ``id``, ``question``, ``choices``, ``answerKey``, ``para``, ...). Template
``use_info_from_question_paragraph``; choices the two answer texts. Splits: train = train.jsonl
less its last 200 rows, val = those 200, test = dev.jsonl.
"""

TASKS = (QASC, QUARTZ)
