"""Sentence-level tasks: PAWS, WikiQA, WSC, Winogrande and Story Cloze.

Each task's prompt is the first promptsource (0.2.3) template of its dataset that the TIES-Merging
and MaTS readers keep (original-task templates scored by accuracy, in the file's order): the
template TIES-Merging's T5-large config trains and evaluates with (``train_template_idx`` and
``eval_template_idx`` 0); MaTS trains on all of them and evaluates on one per example in turn.
"""

from __future__ import annotations

import csv
from pathlib import Path

from tallmerge.errors import TallmergeError, one_line
from tallmerge.text.datasets._base import (
    DatasetTextTask,
    Rendered,
    Row,
    choice_list,
    jsonl_rows,
    table_rows,
    var,
)

YES_NO = ("No", "Yes")


# --- PAWS ------------------------------------------------------------------------------------


def _paws_row(record: dict) -> dict:
    label = record["label"]
    return {
        "id": int(record["id"]),
        "sentence1": record["sentence1"],
        "sentence2": record["sentence2"],
        "label": int(label) if label in ("0", "1") else -1,  # the hub's loader marks others -1
    }


def read_paws(path: Path) -> list[Row]:
    """A PAWS-Wiki ``final/*.tsv``: a header ``id sentence1 sentence2 label``, tab-separated."""
    return table_rows(path, _paws_row, delimiter="\t")


def render_paws(row: dict) -> Rendered:
    text = (
        "Determine if the following two sentences paraphrase each other or not.\n"
        f"Sent 1: {var(row['sentence1'])}\nSent 2: {var(row['sentence2'])}"
    )
    return text.strip(), YES_NO, int(row["label"])


PAWS = DatasetTextTask(
    name="paws",
    title="PAWS",
    hub="paws (labeled_final)",
    release="final/{train,dev}.tsv (the PAWS-Wiki labeled_final release)",
    files={"train": "final/train.tsv", "validation": "final/dev.tsv"},
    parse=read_paws,
    template="task_description-no-label (promptsource paws/labeled_final)",
    render=render_paws,
    holdout=1000,
)
"""PAWS-Wiki (labeled final), paraphrase or not.

Layout: ``<root>/paws/final/train.tsv`` and ``<root>/paws/final/dev.tsv`` as
``paws_wiki_labeled_final.tar.gz`` unpacks (``test.tsv`` is not read), or a save_to_disk folder
of the hub's ``paws`` ``labeled_final`` (fields ``id``, ``sentence1``, ``sentence2``, ``label``).
Template ``task_description-no-label``; choices ``No``/``Yes`` (label 1: paraphrase).
Splits: train = train.tsv less its last 1000 rows, val = those 1000, test = dev.tsv.
"""


# --- WikiQA ----------------------------------------------------------------------------------


def _wiki_qa_row(record: dict) -> dict:
    return {
        "question_id": record["QuestionID"],
        "question": record["Question"],
        "document_title": record["DocumentTitle"],
        "answer": record["Sentence"],
        "label": int(record["Label"]),
    }


def read_wiki_qa(path: Path) -> list[Row]:
    """A ``WikiQA-*.tsv``: header ``QuestionID Question DocumentID DocumentTitle SentenceID
    Sentence Label``, tab-separated, no quoting."""
    return table_rows(path, _wiki_qa_row, delimiter="\t", quoting=csv.QUOTE_NONE)


def render_wiki_qa(row: dict) -> Rendered:
    text = f'Question: {var(row["question"])}?\nWould "{var(row["answer"])}" be a reasonable answer?'
    return text.strip(), YES_NO, int(row["label"])


WIKI_QA = DatasetTextTask(
    name="wiki-qa",
    title="WikiQA",
    hub="wiki_qa",
    release="WikiQACorpus/WikiQA-{train,dev}.tsv (WikiQACorpus.zip)",
    files={"train": "WikiQACorpus/WikiQA-train.tsv", "validation": "WikiQACorpus/WikiQA-dev.tsv"},
    parse=read_wiki_qa,
    template="Is This True? (promptsource wiki_qa)",
    render=render_wiki_qa,
    holdout=1000,
)
"""WikiQA, is this sentence an answer to the question.

Layout: ``<root>/wiki-qa/WikiQACorpus/WikiQA-train.tsv`` and ``WikiQA-dev.tsv`` as
``WikiQACorpus.zip`` unpacks, or a save_to_disk folder of the hub's ``wiki_qa`` (fields
``question_id``, ``question``, ``document_title``, ``answer``, ``label``). Template ``Is This True?``;
choices ``No``/``Yes``. Splits: train = WikiQA-train less its last 1000 rows, val = those 1000,
test = WikiQA-dev.
"""


# --- WSC (SuperGLUE, wsc.fixed) --------------------------------------------------------------

_UNFIXABLE_SPANS = ("Kamenev and Zinoviev", "Kamenev, Zinoviev, and Stalin")


def fix_wsc_spans(row: dict) -> dict:
    """The hub's ``wsc.fixed`` repair of span texts that are not substrings of the text: the
    first letter takes the case of the word at the span's index, a final ``.`` goes and a
    newline becomes a space (two spans cannot be repaired and stay)."""
    for span in ("span1", "span2"):
        text, index = row[f"{span}_text"], row[f"{span}_index"]
        if text in row["text"] or text in _UNFIXABLE_SPANS:
            continue
        if "theyscold" in text:
            row["span2_index"] = 10
        first = row["text"].split()[index]
        text = (text[0].lower() if first[0].islower() else text[0].upper()) + text[1:]
        row[f"{span}_text"] = text.rstrip(".").replace("\n", " ")
    return row


def _wsc_row(record: dict) -> dict:
    target = record["target"]
    row = {
        "text": record["text"],
        "span1_index": int(target["span1_index"]),
        "span2_index": int(target["span2_index"]),
        "span1_text": target["span1_text"],
        "span2_text": target["span2_text"],
        "idx": int(record["idx"]),
        "label": int(bool(record["label"])) if "label" in record else -1,
    }
    return fix_wsc_spans(row)


def read_wsc(path: Path) -> list[Row]:
    """A SuperGLUE ``WSC/*.jsonl``: ``text``, ``target`` (``span1_index``, ``span1_text``,
    ``span2_index``, ``span2_text``), ``idx`` and a boolean ``label``."""
    return jsonl_rows(path, _wsc_row)


def render_wsc(row: dict) -> Rendered:
    text = (
        f'{var(row["text"])} In the previous sentence, does the pronoun "{var(row["span2_text"].lower())}" '
        f"refer to {var(row['span1_text'])}? Yes or no?"
    )
    return text.strip(), YES_NO, int(row["label"])


WSC = DatasetTextTask(
    name="wsc",
    title="WSC",
    hub="super_glue (wsc.fixed)",
    release="WSC/{train,val}.jsonl (SuperGLUE WSC.zip)",
    files={"train": "WSC/train.jsonl", "validation": "WSC/val.jsonl"},
    parse=read_wsc,
    template="does the pronoun refer to (promptsource super_glue/wsc.fixed)",
    render=render_wsc,
    holdout=100,
)
"""WSC (SuperGLUE, the hub's ``wsc.fixed``), does the pronoun refer to this noun phrase.

Layout: ``<root>/wsc/WSC/train.jsonl`` and ``<root>/wsc/WSC/val.jsonl`` as SuperGLUE's
``WSC.zip`` unpacks (span texts repaired as the hub's ``wsc.fixed`` does), or a save_to_disk
folder of ``super_glue`` ``wsc.fixed`` (fields ``text``, ``span1_index``, ``span2_index``,
``span1_text``, ``span2_text``, ``idx``, ``label``). Template ``does the pronoun refer to``;
choices ``No``/``Yes``. Splits: train = train.jsonl less its last 100 rows, val = those 100,
test = val.jsonl.
"""


# --- Winogrande ------------------------------------------------------------------------------


def _winogrande_row(record: dict) -> dict:
    return {
        "sentence": record["sentence"],
        "option1": record["option1"],
        "option2": record["option2"],
        "answer": str(record["answer"]),
    }


def read_winogrande(path: Path) -> list[Row]:
    """A ``winogrande_1.1/*.jsonl``: ``qID``, ``sentence``, ``option1``, ``option2``,
    ``answer`` (``"1"`` or ``"2"``; the ``*-labels.lst`` files repeat it and are not read)."""
    return jsonl_rows(path, _winogrande_row)


def render_winogrande(row: dict) -> Rendered:
    text = (
        f"{var(row['sentence'])} In the previous sentence, does _ refer to {var(row['option1'])} or  "
        f"{var(row['option2'])}?"
    )
    return text.strip(), choice_list(row["option1"], row["option2"]), int(row["answer"]) - 1


WINOGRANDE = DatasetTextTask(
    name="winogrande",
    title="Winogrande",
    hub="winogrande (winogrande_xl)",
    release="winogrande_1.1/{train_xl,dev}.jsonl (winogrande_1.1.zip)",
    files={"train": "winogrande_1.1/train_xl.jsonl", "validation": "winogrande_1.1/dev.jsonl"},
    parse=read_winogrande,
    template="does underscore refer to (promptsource winogrande/winogrande_xl)",
    render=render_winogrande,
    holdout=1000,
)
"""Winogrande (XL), which option the blank ``_`` stands for.

Layout: ``<root>/winogrande/winogrande_1.1/train_xl.jsonl`` and ``.../dev.jsonl`` as
``winogrande_1.1.zip`` unpacks, or a save_to_disk folder of ``winogrande`` ``winogrande_xl``
(fields ``sentence``, ``option1``, ``option2``, ``answer``). Template ``does underscore refer to``
(its two spaces before the second option kept); choices the two options. Splits: train =
train_xl less its last 1000 rows, val = those 1000, test = dev.
"""


# --- Story Cloze (2016) ----------------------------------------------------------------------

STORY_CLOZE_FILES = {
    "validation": "cloze_test_val__spring2016 - cloze_test_ALL_val.csv",
    "test": "cloze_test_test__spring2016 - cloze_test_ALL_test.csv",
}
_STORY_FIELDS = (
    "story_id",
    "input_sentence_1",
    "input_sentence_2",
    "input_sentence_3",
    "input_sentence_4",
    "sentence_quiz1",
    "sentence_quiz2",
    "answer_right_ending",
)


def read_story_cloze(path: Path) -> list[Row]:
    """A Story Cloze 2016 CSV: a header, then ``InputStoryid``, four ``InputSentence``s, two
    ``RandomFifthSentenceQuiz``es and ``AnswerRightEnding`` (1 or 2); read by position, as the
    hub's loader does (rows without 8 fields are skipped)."""
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, quotechar='"', delimiter=",", quoting=csv.QUOTE_ALL, skipinitialspace=True)
        try:
            next(reader, None)  # the header
            for record in reader:
                if len(record) != len(_STORY_FIELDS):
                    continue
                row = dict(zip(_STORY_FIELDS, record))
                row["answer_right_ending"] = int(row["answer_right_ending"])
                rows.append((f"{path}:{reader.line_num}", row))
        except UnicodeDecodeError:
            raise TallmergeError(f"{path}: not a UTF-8 text file") from None
        except (csv.Error, ValueError) as e:
            raise TallmergeError(f"{path}:{reader.line_num}: malformed row ({one_line(e)})") from None
    return rows


def render_story_cloze(row: dict) -> Rendered:
    choices = choice_list(row["sentence_quiz1"], row["sentence_quiz2"])
    story = " ".join(var(row[f"input_sentence_{i}"]) for i in range(1, 5))
    options = var("\n- ".join(choices))
    text = f"{story} What is a possible continuation for the story given the following options ? - {options}"
    return text.strip(), choices, int(row["answer_right_ending"]) - 1


STORY_CLOZE = DatasetTextTask(
    name="story-cloze",
    title="Story Cloze",
    hub="story_cloze (2016)",
    release="'cloze_test_val__spring2016 - cloze_test_ALL_val.csv' and "
    "'cloze_test_test__spring2016 - cloze_test_ALL_test.csv' (the Story Cloze Test 2016 files)",
    files=STORY_CLOZE_FILES,
    parse=read_story_cloze,
    template="Answer Given options (promptsource story_cloze/2016)",
    render=render_story_cloze,
    holdout=1000,
    train_from="validation",
    test_from="test",
)
"""Story Cloze Test (spring 2016), the right ending of a four-sentence story.

Layout: ``<root>/story-cloze/cloze_test_val__spring2016 - cloze_test_ALL_val.csv`` and
``<root>/story-cloze/cloze_test_test__spring2016 - cloze_test_ALL_test.csv`` (the files the
dataset's request form hands out, which the hub's ``story_cloze`` ``2016`` reads from a manual
folder), or a save_to_disk folder with its fields (``story_id``, ``input_sentence_1`` .. ``_4``,
``sentence_quiz1``, ``sentence_quiz2``, ``answer_right_ending``) and splits ``validation`` and
``test``. Template ``Answer Given options``; choices the two endings. Splits (there is no train
file; as in GPT-3 and the MaTS code): train = the 2016 validation file less its last 1000 rows,
val = those 1000, test = the 2016 test file (labeled).
"""

TASKS = (PAWS, WIKI_QA, WSC, WINOGRANDE, STORY_CLOZE)
