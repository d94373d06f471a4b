"""Tests of the paper's 11 text tasks read from local files (tallmerge.text.datasets).

Every task gets small fake files of both layouts in the real field names (``fakes_text.py``). Both
must give the same examples; one known row's prompt is checked against the text its promptsource
template renders.
"""

from __future__ import annotations

import dataclasses
import json

import datasets as hf_datasets
import pytest

from fakes_text import SPLIT_PLAN, _jsonl, hub_row, hub_rows, sources, write_layouts, write_release
from fakes_text import counts as fake_counts
from tallmerge.errors import TallmergeError
from tallmerge.text import datasets as text_datasets
from tallmerge.text import tasks
from tallmerge.text.datasets import DATASET_TASKS
from tallmerge.text.datasets.reading import ropes_options
from tallmerge.text.datasets.sentences import fix_wsc_spans
from tallmerge.text.tasks import Example

TRAIN_ROWS, TEST_ROWS, HOLDOUT = 5, 3, 2  # small tasks: train 3, val 2, test 3


EXPECTED_PROMPTS = {  # row 0 of the test source, rendered by the task's promptsource template
    "paws": (
        "Determine if the following two sentences paraphrase each other or not.\n"
        "Sent 1: The cat va0 sat .\nSent 2: A cat va0 sat .",
        ("No", "Yes"), 0,
    ),
    "qasc": (
        "Plants need light va0, and light comes from the sun. Given these facts, what do plants va0 need among "
        "the following options:\n- light va0\n - sand\n - noise\n - salt\n - ice\n - rock\n - wind\n - oil",
        ("light va0", "sand", "noise", "salt", "ice", "rock", "wind", "oil"), 0,
    ),
    "quartz": (
        "Use information from the paragraph to answer the question.\n\nQuestion:\n\n\n"
        "Will a heavier ball va0 roll faster faster or slower? \n\n\nParagraph :\n\nHeavier things va0 roll faster.",
        ("faster", "slower"), 1,
    ),
    "story-cloze": (
        "Sentence 1 of te0. Sentence 2 of te0. Sentence 3 of te0. Sentence 4 of te0. What is a possible "
        "continuation for the story given the following options ? - Good end te0.\n- Bad end te0.",
        ("Good end te0.", "Bad end te0."), 0,
    ),
    "wiki-qa": ('Question: how tall is va0?\nWould "It is va0 metres tall ." be a reasonable answer?', ("No", "Yes"), 0),
    "winogrande": (
        "Ann gave Bo va0 a book because _ was kind. In the previous sentence, does _ refer to Ann or  Bo?",
        ("Ann", "Bo"), 0,
    ),
    "wsc": (
        'Mark va0 told Pete lies because he was bad. In the previous sentence, does the pronoun "he" refer to '
        "Mark? Yes or no?",
        ("No", "Yes"), 0,
    ),
    "cosmos-qa": (
        "Read the following context and choose the best option to answer the question.\nContext: I went out va0 ."
        "\nQuestion: Why did I go ?\nOptions: \n- Reason 0 va0\n - Reason 1 va0\n - Reason 2 va0\n - Reason 3 va0",
        ("Reason 0 va0", "Reason 1 va0", "Reason 2 va0", "Reason 3 va0"), 0,
    ),
    "social-iqa": (
        "I heard that Jo helped va0 a friend.\n\nAnd I was wondering Why did Jo do this?",
        ("to be kind", "to win va0", "to leave"), 0,
    ),
    "quail": (
        "Candy va0 waited.\nQuestion: Who waited?\nOptions:\n\nA. Candy\n\nB. Larry\n\nC. Bo\n\n"
        "D. not enough information\n\n===\nThe correct answer is",
        ("A", "B", "C", "D"), 0,
    ),
    "ropes": (
        "Please answer correctly the following question related to the paragraph below. \n\n"
        "Which group va0 has sicker fish, group A or group B?\n\nGroup A lives by acid.\n\nHint: Acid harms fish va0.",
        ("group A", "group B"), 0,
    ),
}  # fmt: skip

TEMPLATES = {
    "paws": "task_description-no-label",
    "qasc": "qa_with_separated_facts_1",
    "quartz": "use_info_from_question_paragraph",
    "story-cloze": "Answer Given options",
    "wiki-qa": "Is This True?",
    "winogrande": "does underscore refer to",
    "wsc": "does the pronoun refer to",
    "cosmos-qa": "description_context_question_answer_text",
    "social-iqa": "I was wondering",
    "quail": "context_question_answer_description_id",
    "ropes": "prompt_beginning",
}


def small(task: str):
    """The task with a holdout small enough for a few fake rows."""
    return dataclasses.replace(DATASET_TASKS[task], holdout=HOLDOUT)


def counts(task: str, train: int = TRAIN_ROWS, test: int = TEST_ROWS) -> dict[str, int]:
    return fake_counts(task, train, test)


# --- registry, templates and splits -----------------------------------------------------------


def test_the_eleven_tasks_are_registered_under_their_paper_names():
    assert tuple(DATASET_TASKS) == tasks.PAPER_TASKS
    for name, task in DATASET_TASKS.items():
        assert task.name == task.paper_task == name
        assert tasks._TASKS[name] is task
    assert set(text_datasets.LAYOUTS) == set(tasks.PAPER_TASKS)


@pytest.mark.parametrize("name", tasks.PAPER_TASKS)
def test_template_and_splits_are_the_documented_ones(name):
    task = DATASET_TASKS[name]
    assert task.template.startswith(TEMPLATES[name] + " (promptsource ")
    assert (task.train_from, task.holdout, task.test_from) == SPLIT_PLAN[name]


@pytest.mark.parametrize("name", tasks.PAPER_TASKS)
def test_both_layouts_give_the_same_examples_and_the_known_prompt(tmp_path, name):
    release, saved = write_layouts(tmp_path, name, counts(name))
    task = small(name)
    for split, size in (("train", TRAIN_ROWS - HOLDOUT), ("val", HOLDOUT), ("test", TEST_ROWS)):
        from_release = task.examples(split, None, 0, release)
        from_saved = task.examples(split, None, 0, saved)
        assert from_release == from_saved
        assert len(from_release) == size
        assert all(isinstance(ex, Example) for ex in from_release)
    assert task.examples("test", None, 0, release)[0] == Example(*EXPECTED_PROMPTS[name])


@pytest.mark.parametrize("name", tasks.PAPER_TASKS)
def test_splits_come_from_the_documented_sources(tmp_path, name):
    release, _ = write_layouts(tmp_path, name, counts(name))
    train_from, test_from = sources(name)
    task = small(name)
    source_train = [task.render(hub_row(name, i, train_from)) for i in range(TRAIN_ROWS)]
    source_test = [task.render(hub_row(name, i, test_from)) for i in range(TEST_ROWS)]
    as_tuples = [(ex.input, ex.choices, ex.label) for ex in task.examples("train", None, 0, release)]
    assert as_tuples == source_train[: TRAIN_ROWS - HOLDOUT]
    as_tuples = [(ex.input, ex.choices, ex.label) for ex in task.examples("val", None, 0, release)]
    assert as_tuples == source_train[TRAIN_ROWS - HOLDOUT :]
    as_tuples = [(ex.input, ex.choices, ex.label) for ex in task.examples("test", None, 0, release)]
    assert as_tuples == source_test


@pytest.mark.parametrize("name", ["wsc", "story-cloze"])
def test_the_real_holdout_is_the_last_rows_of_the_train_source(tmp_path, name):
    task = DATASET_TASKS[name]
    release, _ = write_layouts(tmp_path, name, counts(name, train=task.holdout + 3, test=2))
    train, val = task.examples("train", None, 0, release), task.examples("val", None, 0, release)
    assert (len(train), len(val)) == (3, task.holdout)
    train_from, _ = sources(name)
    assert val[0].input == task.render(hub_row(name, 3, train_from))[0]
    assert not {ex.input for ex in train} & {ex.input for ex in val}


def test_seeded_samples_are_deterministic_and_in_file_order(tmp_path):
    release, saved = write_layouts(tmp_path, "paws", {"train": 4, "validation": 40})
    task = DATASET_TASKS["paws"]
    everything = task.examples("test", None, 0, release)
    sample = task.examples("test", 10, 3, release)
    assert sample == task.examples("test", 10, 3, release) == task.examples("test", 10, 3, saved)
    assert len(sample) == 10 and len(set(sample)) == 10
    positions = [everything.index(ex) for ex in sample]
    assert positions == sorted(positions)
    assert task.examples("test", 10, 4, release) != sample
    assert task.examples("test", 40, 3, release) == everything == task.examples("test", 99, 3, release)
    assert task.examples("test", 0, 3, release) == []


def test_wsc_span_texts_are_repaired_as_the_hub_does():
    row = {"text": "The trophy would not fit in the case.", "span1_index": 0, "span2_index": 6,
           "span1_text": "the trophy.", "span2_text": "case"}  # fmt: skip
    assert fix_wsc_spans(dict(row))["span1_text"] == "The trophy"
    assert fix_wsc_spans(dict(row))["span2_text"] == "case"


def test_wsc_release_rows_are_repaired_before_rendering(tmp_path):
    folder = tmp_path / "wsc" / "WSC"
    record = {"text": "Mark told Pete lies because he was bad.", "idx": 0, "label": True,
              "target": {"span1_index": 0, "span1_text": "mark.", "span2_index": 4, "span2_text": "He"}}  # fmt: skip
    _jsonl(folder / "train.jsonl", [record])
    _jsonl(folder / "val.jsonl", [record])
    (example,) = DATASET_TASKS["wsc"].examples("test", None, 0, tmp_path)
    assert example.input.endswith('does the pronoun "he" refer to Mark? Yes or no?') and example.label == 1


@pytest.mark.parametrize(
    "question, answer, expected",
    [
        ("Which group has sicker fish, group A or group B?", "group B", (("group A", "group B"), 1)),
        ("Which group has sicker fish, group A or group B?", "Group A", (("group A", "group B"), 0)),
        ("Will the pressure increase or decrease?", "increase", (("increase", "decrease"), 0)),
        ("Who ran more, Tim or Bob?", "Bob", (("Tim", "Bob"), 1)),
        ("Who ran more, Tim or Bob?", "Tom", None),
        ("Who ran more, Tim or Bob?", "im", None),  # not a whole word
        ("Which city is larger?", "Paris", None),
    ],
)
def test_ropes_choices_are_the_two_options_of_the_question(question, answer, expected):
    assert ropes_options(question, answer) == expected


def test_ropes_questions_without_two_options_are_left_out(tmp_path):
    release, _ = write_layouts(tmp_path, "ropes", {"train": 2, "validation": 2})
    path = release / "ropes/ropes-train-dev-v1.0/dev-v1.0.json"
    document = json.loads(path.read_text())
    document["data"][0]["paragraphs"][0]["qas"][0]["question"] = "How sick are the fish?"
    path.write_text(json.dumps(document))
    (example,) = DATASET_TASKS["ropes"].examples("test", None, 0, release)
    assert "va1" in example.input


def test_text_over_2053_characters_is_cut_as_jinja_truncate_cuts_it():
    from tallmerge.text.datasets._base import var

    assert var("a" * 2053) == "a" * 2053  # within Jinja's leeway of 5
    assert var("ab " * 700) == ("ab " * 681).rstrip() + "..."  # 2100 characters: cut before a word
    assert var("a" * 2054) == "a" * 2045 + "..."  # no space: cut inside the word
    assert var(1234) == "1234"


def test_long_text_is_cut_as_promptsource_cuts_it():
    row = hub_row("paws", 0, "validation")
    row["sentence1"] = "word " * 1000  # 5000 characters
    text = DATASET_TASKS["paws"].render(row)[0]
    first = text.split("\nSent 1: ")[1].split("\nSent 2: ")[0]
    assert first.endswith("word...") and len(first) <= 2048 and first.count("word") == 409


# --- bad input -----------------------------------------------------------------------------


def raises_naming(path, *fragments, match_path=True):
    """A pytest.raises context that checks a one-line TallmergeError naming ``path``."""

    class _Check:
        def __enter__(self):
            self._ctx = pytest.raises(TallmergeError)
            self.info = self._ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            handled = self._ctx.__exit__(*exc)
            message = str(self.info.value)
            assert "\n" not in message
            if match_path:
                assert str(path) in message, message
            for fragment in fragments:
                assert fragment in message, message
            return handled

    return _Check()


@pytest.mark.parametrize("name", tasks.PAPER_TASKS)
def test_a_missing_folder_names_the_expected_files_and_both_layouts(tmp_path, name):
    task = DATASET_TASKS[name]
    expected = tmp_path / name / task.files[task.train_from]
    with raises_naming(
        expected, "missing", f"{task.title} expects {tmp_path}/{name}/", "save_to_disk folder"
    ):
        task.examples("train", None, 0, tmp_path)


def test_a_missing_test_file_is_named_when_train_is_there(tmp_path):
    write_release("paws", tmp_path / "paws", "train", hub_rows("paws", {"train": 3})["train"])
    with raises_naming(tmp_path / "paws/final/dev.tsv", "PAWS-Wiki"):
        DATASET_TASKS["paws"].examples("test", None, 0, tmp_path)


def test_a_missing_labels_file_is_named(tmp_path):
    write_release(
        "social-iqa", tmp_path / "social-iqa", "train", hub_rows("social-iqa", {"train": 3})["train"]
    )
    (tmp_path / "social-iqa/socialiqa-train-dev/train-labels.lst").unlink()
    with raises_naming(tmp_path / "social-iqa/socialiqa-train-dev/train-labels.lst", "missing"):
        DATASET_TASKS["social-iqa"].examples("train", None, 0, tmp_path)


def test_a_labels_file_of_the_wrong_length_is_named(tmp_path):
    write_release(
        "social-iqa", tmp_path / "social-iqa", "train", hub_rows("social-iqa", {"train": 3})["train"]
    )
    (tmp_path / "social-iqa/socialiqa-train-dev/train-labels.lst").write_text("1\n2\n")
    with raises_naming(tmp_path / "social-iqa/socialiqa-train-dev/train-labels.lst", "2 labels for 3 rows"):
        DATASET_TASKS["social-iqa"].examples("train", None, 0, tmp_path)


@pytest.mark.parametrize("name", ["qasc", "winogrande", "wsc", "social-iqa"])
def test_a_malformed_json_line_names_the_file_and_line(tmp_path, name):
    task = DATASET_TASKS[name]
    release, _ = write_layouts(tmp_path, name, counts(name))
    path = release / name / task.files["train"]
    lines = path.read_text().splitlines()
    lines[2] = '{"sentence": "cut off'
    path.write_text("\n".join(lines) + "\n")
    with raises_naming(f"{path}:3", "not valid JSON"):
        task.examples("train", None, 0, release)


def test_a_row_without_a_field_names_the_file_and_line(tmp_path):
    release, _ = write_layouts(tmp_path, "winogrande", counts("winogrande"))
    path = release / "winogrande/winogrande_1.1/dev.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = json.dumps({"sentence": "x _ y", "option1": "a", "answer": "1"})
    path.write_text("\n".join(lines) + "\n")
    with raises_naming(f"{path}:2", "'option2'"):
        DATASET_TASKS["winogrande"].examples("test", None, 0, release)


@pytest.mark.parametrize(
    "name, source, field, value",
    [
        ("paws", "validation", "label", 7),
        ("wiki-qa", "validation", "label", 2),
        ("winogrande", "validation", "answer", "3"),
        ("story-cloze", "test", "answer_right_ending", 3),
        ("cosmos-qa", "validation", "label", 4),
        ("social-iqa", "validation", "label", "0"),
        ("qasc", "validation", "answerKey", "Z"),
        ("quail", "validation", "correct_answer_id", 9),
    ],
)
def test_a_label_out_of_range_names_the_file_in_both_layouts(tmp_path, name, source, field, value):
    rows = hub_rows(name, counts(name))
    rows[source][1][field] = value
    release, saved = tmp_path / "release", tmp_path / "saved"
    for s, split_rows in rows.items():
        write_release(name, release / name, s, split_rows)
    hf_datasets.DatasetDict({s: hf_datasets.Dataset.from_list(r) for s, r in rows.items()}).save_to_disk(
        str(saved / name)
    )
    task = DATASET_TASKS[name]
    with raises_naming(release / name / task.files[source]):
        task.examples("test", None, 0, release)
    with raises_naming(saved / name / source, "row 1"):
        task.examples("test", None, 0, saved)


def test_a_question_without_choices_names_the_file(tmp_path):
    release, saved = write_layouts(tmp_path, "qasc", counts("qasc"))
    path = release / "qasc/QASC_Dataset/dev.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    records[0]["question"]["choices"] = []
    records[0]["answerKey"] = ""
    _jsonl(path, records)
    with raises_naming(f"{path}:1"):
        DATASET_TASKS["qasc"].examples("test", None, 0, release)


def test_an_empty_choice_list_names_the_file(tmp_path):
    task = dataclasses.replace(DATASET_TASKS["paws"], render=lambda row: ("text", (), 0))
    release, _ = write_layouts(tmp_path, "paws", counts("paws"))
    with raises_naming(release / "paws/final/dev.tsv", "no answer choices"):
        task.examples("test", None, 0, release)


def test_a_save_to_disk_folder_without_the_split_is_named(tmp_path):
    hf_datasets.DatasetDict(
        {"train": hf_datasets.Dataset.from_list([hub_row("paws", 0, "train")])}
    ).save_to_disk(str(tmp_path / "paws"))
    with raises_naming(tmp_path / "paws" / "validation", "missing", "has splits train"):
        DATASET_TASKS["paws"].examples("test", None, 0, tmp_path)


def test_a_broken_save_to_disk_folder_is_named(tmp_path):
    release, saved = write_layouts(tmp_path, "paws", counts("paws"))
    for arrow in (saved / "paws/validation").glob("*.arrow"):
        arrow.write_bytes(b"not arrow")
    with raises_naming(saved / "paws/validation", "not a readable save_to_disk split"):
        DATASET_TASKS["paws"].examples("test", None, 0, saved)
    (saved / "paws/dataset_dict.json").write_text("{")
    with raises_naming(saved / "paws/dataset_dict.json"):
        DATASET_TASKS["paws"].examples("test", None, 0, saved)


def test_a_save_to_disk_row_without_a_field_names_the_folder(tmp_path):
    row = {k: v for k, v in hub_row("wiki-qa", 0, "validation").items() if k != "answer"}
    hf_datasets.DatasetDict({"validation": hf_datasets.Dataset.from_list([row])}).save_to_disk(
        str(tmp_path / "wiki-qa")
    )
    with raises_naming(tmp_path / "wiki-qa" / "validation", "row 0", "no field 'answer'"):
        DATASET_TASKS["wiki-qa"].examples("test", None, 0, tmp_path)


def test_broken_xml_and_json_documents_are_named(tmp_path):
    release, _ = write_layouts(tmp_path, "quail", counts("quail"))
    path = release / "quail/quail_v1.2/xml/ordered/quail_1.2_dev.xml"
    path.write_text("<data><text id='x'>")
    with raises_naming(path, "not valid XML"):
        DATASET_TASKS["quail"].examples("test", None, 0, release)
    release, _ = write_layouts(tmp_path / "r", "ropes", counts("ropes"))
    path = release / "ropes/ropes-train-dev-v1.0/dev-v1.0.json"
    path.write_text('{"data": [{"paragraphs": [{"background": "b"}]}]}')
    with raises_naming(path, "'situation'"):
        DATASET_TASKS["ropes"].examples("test", None, 0, release)


def test_a_malformed_table_row_names_the_file(tmp_path):
    release, _ = write_layouts(tmp_path, "cosmos-qa", counts("cosmos-qa"))
    path = release / "cosmos-qa/data/valid.csv"
    path.write_bytes(path.read_bytes().replace(b",0\r\n", b",zero\r\n", 1))
    with raises_naming(f"{path}:2", "malformed row"):
        DATASET_TASKS["cosmos-qa"].examples("test", None, 0, release)


def test_bad_arguments_are_refused(tmp_path):
    task = DATASET_TASKS["paws"]
    with pytest.raises(TallmergeError, match="unknown split 'dev'"):
        task.examples("dev", None, 0, tmp_path)
    with pytest.raises(TallmergeError, match="needs the data root"):
        task.examples("test", None, 0, None)
    with pytest.raises(TallmergeError, match="cannot take -1"):
        task.examples("test", -1, 0, tmp_path)
