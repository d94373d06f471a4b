"""Reading-comprehension tasks of the MaTS suite: CosmosQA, SocialIQA, QuAIL and ROPES.

Templates as in :mod:`.sentences`: the first promptsource (0.2.3) template the MaTS and
TIES-Merging readers keep for the dataset (SocialIQA's reader also drops ``Check if a random
answer is valid or not``; ROPES keeps its templates scored by SQuAD metrics).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from tallmerge.errors import TallmergeError, one_line
from tallmerge.text.datasets._base import (
    DatasetTextTask,
    Rendered,
    Row,
    choice_list,
    json_document,
    jsonl_rows,
    labels_file,
    table_rows,
    var,
)

# --- CosmosQA --------------------------------------------------------------------------------


def _cosmos_row(record: dict) -> dict:
    row = {
        key: record[key] for key in ("id", "context", "question", "answer0", "answer1", "answer2", "answer3")
    }
    row["label"] = int(record["label"])
    return row


def read_cosmos_qa(path: Path) -> list[Row]:
    """A CosmosQA ``data/*.csv``: header ``id,context,question,answer0,answer1,answer2,answer3,label``."""
    return table_rows(path, _cosmos_row)


def render_cosmos_qa(row: dict) -> Rendered:
    choices = choice_list(*(row[f"answer{i}"] for i in range(4)))
    options = var("\n - ".join(choices))
    text = (
        "Read the following context and choose the best option to answer the question.\n"
        f"Context: {var(row['context'])}\nQuestion: {var(row['question'])}\nOptions: \n- {options}"
    )
    return text.strip(), choices, int(row["label"])


COSMOS_QA = DatasetTextTask(
    name="cosmos-qa",
    title="CosmosQA",
    hub="cosmos_qa",
    release="data/{train,valid}.csv (the data folder of github.com/wilburOne/cosmosqa)",
    files={"train": "data/train.csv", "validation": "data/valid.csv"},
    parse=read_cosmos_qa,
    template="description_context_question_answer_text (promptsource cosmos_qa)",
    render=render_cosmos_qa,
    holdout=1000,
)
"""CosmosQA, 4-way commonsense questions about a short narrative.

Layout: ``<root>/cosmos-qa/data/train.csv`` and ``<root>/cosmos-qa/data/valid.csv`` (the files the
hub's loader downloads from the dataset's repository; ``test.jsonl`` has no labels and is not
read), or a save_to_disk folder of the hub's ``cosmos_qa`` (fields ``id``, ``context``,
``question``, ``answer0`` .. ``answer3``, ``label``). Template
``description_context_question_answer_text``; choices the four answers. Splits: train =
train.csv less its last 1000 rows, val = those 1000, test = valid.csv.
"""


# --- SocialIQA -------------------------------------------------------------------------------

SOCIAL_IQA_FIELDS = ("context", "question", "answerA", "answerB", "answerC")


def read_social_iqa(path: Path) -> list[Row]:
    """A ``socialiqa-train-dev/*.jsonl`` (``context``, ``question``, ``answerA`` .. ``answerC``)
    and, line by line, its ``*-labels.lst`` (``1``, ``2`` or ``3``)."""
    rows = jsonl_rows(path, lambda record: {key: record[key] for key in SOCIAL_IQA_FIELDS})
    labels = labels_file(path.with_name(f"{path.stem}-labels.lst"), len(rows))
    for (_, row), label in zip(rows, labels):
        row["label"] = label
    return rows


def render_social_iqa(row: dict) -> Rendered:
    choices = choice_list(row["answerA"], row["answerB"], row["answerC"])
    text = f"I heard that {var(row['context'])}\n\nAnd I was wondering {var(row['question'])}"
    return text.strip(), choices, int(row["label"]) - 1


SOCIAL_IQA = DatasetTextTask(
    name="social-iqa",
    title="SocialIQA",
    hub="social_i_qa",
    release="socialiqa-train-dev/{train,dev}.jsonl with {train,dev}-labels.lst (socialiqa-train-dev.zip)",
    files={"train": "socialiqa-train-dev/train.jsonl", "validation": "socialiqa-train-dev/dev.jsonl"},
    companions={
        "train": "socialiqa-train-dev/train-labels.lst",
        "validation": "socialiqa-train-dev/dev-labels.lst",
    },
    parse=read_social_iqa,
    template="I was wondering (promptsource social_i_qa)",
    render=render_social_iqa,
    holdout=1000,
)
"""SocialIQA, 3-way questions about people's motivations and reactions.

Layout: ``<root>/social-iqa/socialiqa-train-dev/{train,dev}.jsonl`` and
``.../{train,dev}-labels.lst`` as ``socialiqa-train-dev.zip`` unpacks, or a save_to_disk folder of
the hub's ``social_i_qa`` (fields ``context``, ``question``, ``answerA`` .. ``answerC`` and
``label``, the string ``"1"`` .. ``"3"``). Template ``I was wondering``; choices the three
answers. Splits: train = train.jsonl less its last 1000 rows, val = those 1000, test = dev.jsonl.
"""


# --- QuAIL -----------------------------------------------------------------------------------

QUAIL_LETTERS = ("A", "B", "C", "D")


def _stripped(element: ET.Element | None, what: str) -> str:
    if element is None or element.text is None:
        raise ValueError(f"no {what}")
    return element.text.strip()


def read_quail(path: Path) -> list[Row]:
    """A QuAIL XML file: ``<text id domain>`` elements, each with ``metadata``, ``text_body`` and
    ``questions`` of ``<q id type>`` whose ``<a>`` answers mark the right one ``correct="True"``."""
    try:
        texts = ET.parse(path).getroot().iterfind("text")
        rows = []
        for text in texts:
            text_id, body = text.get("id"), text.find("text_body")
            for q in text.find("questions").iterfind("q"):
                where = f"{path} text {text_id} question {q.get('id')}"
                answers = [_stripped(a, "answer text") for a in q.iterfind("a")]
                correct = [i for i, a in enumerate(q.iterfind("a")) if a.get("correct") == "True"]
                row = {
                    "id": f"{text_id}_{q.get('id')}",
                    "context_id": text_id,
                    "question_id": q.get("id"),
                    "domain": text.get("domain"),
                    "context": _stripped(body, "text_body"),
                    "question": _stripped(q, "question text"),
                    "question_type": q.get("type"),
                    "answers": answers,
                    "correct_answer_id": correct[-1] if correct else None,
                }
                rows.append((where, row))
    except ET.ParseError as e:
        raise TallmergeError(f"{path}: not valid XML ({one_line(e)})") from None
    except (ValueError, AttributeError) as e:
        raise TallmergeError(f"{path}: not a QuAIL XML file ({one_line(e)})") from None
    return rows


def render_quail(row: dict) -> Rendered:
    answers = list(row["answers"])
    if len(answers) > len(QUAIL_LETTERS):
        raise TallmergeError(f"a QuAIL question has {len(answers)} answers, the template letters 4")
    if row["correct_answer_id"] is None:
        raise TallmergeError("a QuAIL question has no answer marked correct")
    listed = "".join(f"\n{var(f'{letter}. {answer}')}\n" for letter, answer in zip(QUAIL_LETTERS, answers))
    text = f"{var(row['context'])}\nQuestion: {var(row['question'])}\nOptions:\n{listed}\n===\nThe correct answer is"
    return text.strip(), QUAIL_LETTERS, int(row["correct_answer_id"])


QUAIL = DatasetTextTask(
    name="quail",
    title="QuAIL",
    hub="quail",
    release="quail_v1.2/xml/ordered/quail_1.2_{train,dev}.xml (github.com/text-machine-lab/quail)",
    files={
        "train": "quail_v1.2/xml/ordered/quail_1.2_train.xml",
        "validation": "quail_v1.2/xml/ordered/quail_1.2_dev.xml",
    },
    parse=read_quail,
    template="context_question_answer_description_id (promptsource quail)",
    render=render_quail,
    holdout=1000,
)
"""QuAIL 1.2, 4-way reading comprehension over 300-350-word texts.

Layout: ``<root>/quail/quail_v1.2/xml/ordered/quail_1.2_train.xml`` and ``..._dev.xml`` (the
files of the dataset's repository that the hub's loader reads; the challenge set is not
read), or a save_to_disk folder of the hub's ``quail`` (fields ``id``, ``context``, ``question``,
``answers``, ``correct_answer_id``, ...). Template ``context_question_answer_description_id``:
the answers are listed as ``A. ...`` .. ``D. ...`` and the choices are the letters ``A`` .. ``D``.
Splits: train = train less its last 1000 questions, val = those 1000, test = dev (TIES-Merging's
reader reports the ``challenge`` split instead).
"""


# --- ROPES -----------------------------------------------------------------------------------

_EDGE_PUNCTUATION = " \t\n,.;:!?\"'()"


def _is_word_edge(text: str, i: int) -> bool:
    return i <= 0 or i >= len(text) or not text[i].isalnum() or not text[i - 1].isalnum()


def ropes_options(question: str, answer: str) -> tuple[tuple[str, str], int] | None:
    """The two options a ROPES question offers (``..., A or B?``) and which is ``answer``.

    The answer must occur in the question, as whole words and in any case, next to ``or``; the
    other option is as many words on the far side of that ``or``, trimmed of punctuation. Both
    are spelled as the question spells them, in its order. None: no such pair.
    """
    answer = answer.strip()
    if not answer:
        return None
    width = len(answer.split())
    for m in re.finditer(re.escape(answer.lower()), question.lower()):
        start, end = m.span()
        if not (_is_word_edge(question, start) and _is_word_edge(question, end)):
            continue
        own = question[start:end]
        after, before = question[end:], question[:start]
        if after.lower().startswith(" or "):
            other = " ".join(after[4:].split()[:width]).strip(_EDGE_PUNCTUATION)
            if other and other.lower() != own.lower():
                return (own, other), 0
        if before.lower().endswith(" or "):
            other = " ".join(before[:-4].split()[-width:]).strip(_EDGE_PUNCTUATION)
            if other and other.lower() != own.lower():
                return (other, own), 1
    return None


def read_ropes(path: Path) -> list[Row]:
    """A ROPES ``*-v1.0.json``: SQuAD-style ``data`` -> ``paragraphs`` (``background``,
    ``situation``, ``qas`` of ``question``, ``id``, ``answers`` of ``text``)."""
    document = json_document(path)
    rows = []
    try:
        for article in document["data"]:
            for paragraph in article["paragraphs"]:
                background, situation = paragraph["background"].strip(), paragraph["situation"].strip()
                for qa in paragraph["qas"]:
                    row = {
                        "id": qa["id"],
                        "background": background,
                        "situation": situation,
                        "question": qa["question"].strip(),
                        "answers": {"text": [a["text"].strip() for a in qa["answers"]]},
                    }
                    rows.append((f"{path} question {qa['id']}", row))
    except KeyError as e:
        raise TallmergeError(f"{path}: no field {e.args[0]!r} (expected SQuAD-style ROPES json)") from None
    except (TypeError, AttributeError) as e:
        raise TallmergeError(f"{path}: not SQuAD-style ROPES json ({one_line(e)})") from None
    return rows


def render_ropes(row: dict) -> Rendered | None:
    answers = list(row["answers"]["text"])
    options = ropes_options(row["question"], answers[0]) if answers else None
    if options is None:
        return None
    text = (
        "Please answer correctly the following question related to the paragraph below. \n\n"
        f"{var(row['question'])}\n\n{var(row['situation'])}\n\nHint: {var(row['background'])}"
    )
    choices, label = options
    return text.strip(), choices, label


ROPES = DatasetTextTask(
    name="ropes",
    title="ROPES",
    hub="ropes",
    release="ropes-train-dev-v1.0/{train,dev}-v1.0.json (ropes-train-dev-v1.0.tar.gz)",
    files={
        "train": "ropes-train-dev-v1.0/train-v1.0.json",
        "validation": "ropes-train-dev-v1.0/dev-v1.0.json",
    },
    parse=read_ropes,
    template="prompt_beginning (promptsource ropes)",
    render=render_ropes,
    holdout=1000,
)
"""ROPES, questions about a situation that apply a background paragraph.

Layout: ``<root>/ropes/ropes-train-dev-v1.0/train-v1.0.json`` and ``.../dev-v1.0.json`` as
``ropes-train-dev-v1.0.tar.gz`` unpacks, or a save_to_disk folder of the hub's ``ropes`` (fields
``id``, ``background``, ``situation``, ``question``, ``answers`` with its ``text`` list). Template
``prompt_beginning``. ROPES is extractive QA: promptsource gives it no answer choices and the MaTS
code scores it by generation (SQuAD exact match and F1). For rank classification the choices
here are the two options the question offers around ``or`` (:func:`ropes_options`, e.g. "Which
group ..., group A or group B?"), label the one that is the (first) answer; questions that
offer no such pair are left out. Splits: train = train less its last 1000 questions (before
leaving any out), val = those 1000, test = dev.
"""

TASKS = (COSMOS_QA, SOCIAL_IQA, QUAIL, ROPES)
