"""Fake files of the paper's 11 text datasets, in both accepted layouts and the real field names:
each public release's own files (writers that restate each release's format) and a Hugging Face
``save_to_disk`` folder of hub rows (made with the ``datasets`` package)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import datasets as hf_datasets

hf_datasets.disable_progress_bars()


def hub_row(task: str, i: int, source: str) -> dict:
    """Row ``i`` of source split ``source`` in the hub's fields; every task's row 0 of
    ``validation`` (Story Cloze: ``test``) is the one whose prompt is checked."""
    tag = f"{source[:2]}{i}"
    if task == "paws":
        return {
            "id": i + 1,
            "sentence1": f"The cat {tag} sat .",
            "sentence2": f"A cat {tag} sat .",
            "label": i % 2,
        }
    if task == "qasc":
        return {
            "id": f"q{tag}",
            "question": f"What do plants {tag} need?",
            "choices": {"text": [f"light {tag}", "sand", "noise", "salt", "ice", "rock", "wind", "oil"],
                        "label": list("ABCDEFGH")},
            "answerKey": "A" if i % 2 == 0 else "C",
            "fact1": f"plants need light {tag}.",
            "fact2": "Light comes from the sun.",
            "combinedfact": "plants need the sun",
            "formatted_question": "What do plants need?",
        }  # fmt: skip
    if task == "quartz":
        question = (
            f"A heavier {tag} ball rolls _____." if i % 2 else f"Will a heavier ball {tag} roll faster?"
        )
        return {
            "id": f"z{tag}",
            "question": question,
            "choices": {"text": ["faster", "slower"], "label": ["A", "B"]},
            "answerKey": "A" if i % 3 else "B",
            "para": f"Heavier things {tag} roll faster.",
            "para_id": "p1",
        }
    if task == "story-cloze":
        return {
            "story_id": f"s{tag}",
            **{f"input_sentence_{k}": f"Sentence {k} of {tag}." for k in range(1, 5)},
            "sentence_quiz1": f"Good end {tag}.",
            "sentence_quiz2": f"Bad end {tag}.",
            "answer_right_ending": 1 + i % 2,
        }
    if task == "wiki-qa":
        return {"question_id": f"Q{i}", "question": f"how tall is {tag}", "document_title": "Tower",
                "answer": f"It is {tag} metres tall .", "label": i % 2}  # fmt: skip
    if task == "winogrande":
        return {"sentence": f"Ann gave Bo {tag} a book because _ was kind.", "option1": "Ann", "option2": "Bo",
                "answer": str(1 + i % 2)}  # fmt: skip
    if task == "wsc":
        return {"text": f"Mark {tag} told Pete lies because he was bad.", "span1_index": 0, "span2_index": 6,
                "span1_text": "Mark", "span2_text": "He", "idx": i, "label": i % 2}  # fmt: skip
    if task == "cosmos-qa":
        return {"id": f"c{tag}", "context": f"I went out {tag} .", "question": "Why did I go ?",
                **{f"answer{k}": f"Reason {k} {tag}" for k in range(4)}, "label": i % 4}  # fmt: skip
    if task == "social-iqa":
        return {"context": f"Jo helped {tag} a friend.", "question": "Why did Jo do this?",
                "answerA": "to be kind", "answerB": f"to win {tag}", "answerC": "to leave", "label": str(1 + i % 3)}  # fmt: skip
    if task == "quail":
        return {"id": f"f{i}_{i + 1}", "context_id": f"f{i}", "question_id": str(i + 1), "domain": "fiction",
                "context": f"Candy {tag} waited.", "question": "Who waited?",
                "answers": ["Candy", "Larry", "Bo", "not enough information"], "correct_answer_id": i % 4,
                "question_type": "Factual"}  # fmt: skip
    if task == "ropes":
        answer = "group A" if i % 2 == 0 else "group B"
        return {"id": f"r{tag}", "background": f"Acid harms fish {tag}.", "situation": "Group A lives by acid.",
                "question": f"Which group {tag} has sicker fish, group A or group B?",
                "answers": {"text": [answer]}}  # fmt: skip
    raise AssertionError(task)


SPLIT_PLAN = {  # task: (source of train and val, rows held out of it for val, source of test)
    "paws": ("train", 1000, "validation"),
    "qasc": ("train", 500, "validation"),
    "quartz": ("train", 200, "validation"),
    "story-cloze": ("validation", 1000, "test"),
    "wiki-qa": ("train", 1000, "validation"),
    "winogrande": ("train", 1000, "validation"),
    "wsc": ("train", 100, "validation"),
    "cosmos-qa": ("train", 1000, "validation"),
    "social-iqa": ("train", 1000, "validation"),
    "quail": ("train", 1000, "validation"),
    "ropes": ("train", 1000, "validation"),
}


def sources(task: str) -> tuple[str, str]:
    train_from, _, test_from = SPLIT_PLAN[task]
    return train_from, test_from


def hub_rows(task: str, counts: dict[str, int]) -> dict[str, list[dict]]:
    return {source: [hub_row(task, i, source) for i in range(n)] for source, n in counts.items()}


# --- release writers (each release's own format, restated) ----------------------------------


def _jsonl(path: Path, records) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def _table(path: Path, header, records, **options) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, **options)
        writer.writerow(header)
        writer.writerows(records)


def _arc(row: dict) -> dict:
    choices = [{"text": t, "label": lab} for t, lab in zip(row["choices"]["text"], row["choices"]["label"])]
    return {
        "id": row["id"],
        "question": {"stem": row["question"], "choices": choices},
        "answerKey": row["answerKey"],
    }


def write_release(task: str, folder: Path, source: str, rows: list[dict]) -> None:
    """Write ``rows`` (hub fields) as the release file of ``source`` under ``folder`` (= <root>/<task>)."""
    name = {"train": "train", "validation": "dev", "test": "test"}[source]
    if task == "paws":
        records = [(r["id"], r["sentence1"], r["sentence2"], r["label"]) for r in rows]
        _table(
            folder / f"final/{name}.tsv", ("id", "sentence1", "sentence2", "label"), records, delimiter="\t"
        )
    elif task == "qasc":
        _jsonl(folder / f"QASC_Dataset/{name}.jsonl",
               [{**_arc(r), "fact1": r["fact1"], "fact2": r["fact2"], "combinedfact": r["combinedfact"],
                 "formatted_question": r["formatted_question"]} for r in rows])  # fmt: skip
    elif task == "quartz":
        _jsonl(folder / f"quartz-dataset-v1-aug2019/{name}.jsonl",
               [{**_arc(r), "para": r["para"], "para_id": r["para_id"], "para_anno": {}, "question_anno": {}}
                for r in rows])  # fmt: skip
    elif task == "story-cloze":
        kind = {"validation": "val", "test": "test"}[source]
        header = ("InputStoryid", "InputSentence1", "InputSentence2", "InputSentence3", "InputSentence4",
                  "RandomFifthSentenceQuiz1", "RandomFifthSentenceQuiz2", "AnswerRightEnding")  # fmt: skip
        records = [(r["story_id"], *(r[f"input_sentence_{k}"] for k in range(1, 5)), r["sentence_quiz1"],
                    r["sentence_quiz2"], r["answer_right_ending"]) for r in rows]  # fmt: skip
        _table(folder / f"cloze_test_{kind}__spring2016 - cloze_test_ALL_{kind}.csv", header, records,
               quoting=csv.QUOTE_ALL)  # fmt: skip
    elif task == "wiki-qa":
        header = ("QuestionID", "Question", "DocumentID", "DocumentTitle", "SentenceID", "Sentence", "Label")
        records = [(r["question_id"], r["question"], "D1", r["document_title"], f"{r['question_id']}-0",
                    r["answer"], r["label"]) for r in rows]  # fmt: skip
        _table(folder / f"WikiQACorpus/WikiQA-{name}.tsv", header, records, delimiter="\t",
               quoting=csv.QUOTE_NONE)  # fmt: skip
    elif task == "winogrande":
        file = {"train": "train_xl", "validation": "dev"}[source]
        _jsonl(folder / f"winogrande_1.1/{file}.jsonl",
               [{"qID": f"w{i}", **{k: r[k] for k in ("sentence", "option1", "option2", "answer")}}
                for i, r in enumerate(rows)])  # fmt: skip
    elif task == "wsc":
        file = {"train": "train", "validation": "val"}[source]
        keys = ("span1_index", "span2_index", "span1_text", "span2_text")
        _jsonl(folder / f"WSC/{file}.jsonl",
               [{"text": r["text"], "target": {k: r[k] for k in keys}, "idx": r["idx"], "label": bool(r["label"])}
                for r in rows])  # fmt: skip
    elif task == "cosmos-qa":
        file = {"train": "train", "validation": "valid"}[source]
        header = ("id", "context", "question", "answer0", "answer1", "answer2", "answer3", "label")
        _table(folder / f"data/{file}.csv", header, [[r[k] for k in header] for r in rows])
    elif task == "social-iqa":
        keys = ("context", "question", "answerA", "answerB", "answerC")
        _jsonl(folder / f"socialiqa-train-dev/{name}.jsonl", [{k: r[k] for k in keys} for r in rows])
        labels = "".join(f"{r['label']}\n" for r in rows)
        (folder / f"socialiqa-train-dev/{name}-labels.lst").write_text(labels, encoding="utf-8")
    elif task == "quail":
        texts = []
        for r in rows:
            answers = "".join(
                f'<a id="{k + 1}" correct="{k == r["correct_answer_id"]}">\n  {a}\n  </a>'
                for k, a in enumerate(r["answers"])
            )
            texts.append(
                f'<text domain="{r["domain"]}" id="{r["context_id"]}"><metadata><author> A </author><title> T </title>'
                f"<url> u </url></metadata><text_body>\n   {r['context']}\n  </text_body><questions>"
                f'<q id="{r["question_id"]}" type="{r["question_type"]}">\n {r["question"]}\n {answers}</q>'
                "</questions></text>"
            )
        path = folder / f"quail_v1.2/xml/ordered/quail_1.2_{name}.xml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("<data>" + "".join(texts) + "</data>", encoding="utf-8")
    elif task == "ropes":
        paragraphs = [
            {"background": r["background"] + " ", "situation": " " + r["situation"],
             "qas": [{"question": r["question"], "id": r["id"],
                      "answers": [{"text": t, "answer_start": 0} for t in r["answers"]["text"]]}]}
            for r in rows
        ]  # fmt: skip
        path = folder / f"ropes-train-dev-v1.0/{name}-v1.0.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"version": "1.0", "data": [{"title": "t", "paragraphs": paragraphs}]}))
    else:
        raise AssertionError(task)


def write_layouts(tmp_path: Path, task: str, counts: dict[str, int]) -> tuple[Path, Path]:
    """Both layouts of the same hub rows: the release under ``release/``, save_to_disk under ``saved/``."""
    rows = hub_rows(task, counts)
    release, saved = tmp_path / "release", tmp_path / "saved"
    for source, split_rows in rows.items():
        write_release(task, release / task, source, split_rows)
    hf_datasets.DatasetDict({s: hf_datasets.Dataset.from_list(r) for s, r in rows.items()}).save_to_disk(
        str(saved / task)
    )
    return release, saved


def counts(task: str, train: int, test: int) -> dict[str, int]:
    """Rows per source split of ``task``: ``train`` in the one train and val come from, ``test`` in the reported one."""
    train_from, test_from = sources(task)
    return {train_from: train, test_from: test}
