"""Tests of the 11 generated pocket text tasks, their corpus and vocabulary (tallmerge.text.pocket)."""

from __future__ import annotations

import collections
import functools
import random

import pytest

from tallmerge.errors import TallmergeError
from tallmerge.text import pocket
from tallmerge.text.pocket.common import DEFAULT_N, tokens
from tallmerge.text.tasks import PAPER_TASKS, SPLITS, Example, register_text_task

EXPECTED = {  # name: (paper task, choices per example)
    "paraphrase-id": ("paws", 2), "fact-chain": ("qasc", 8), "more-or-less": ("quartz", 2),
    "story-end": ("story-cloze", 2), "answer-sentence": ("wiki-qa", 2), "blank-fill": ("winogrande", 2),
    "pronoun-ref": ("wsc", 2), "commonsense-read": ("cosmos-qa", 4), "social-sense": ("social-iqa", 3),
    "passage-qa": ("quail", 4), "rule-apply": ("ropes", 2),
}  # fmt: skip
YES_NO = {"paraphrase-id", "answer-sentence", "pronoun-ref"}
TASKS = {task.name: task for task in pocket.TASKS}
N = 1000  # examples per split for the statistical checks


@functools.cache
def examples(name: str, split: str = "test", n: int = N, seed: int = 0) -> tuple[Example, ...]:
    return tuple(TASKS[name].examples(split, n, seed))


@functools.cache
def corpus_tokens(n: int = 10_000, seed: int = 0) -> collections.Counter:
    return collections.Counter(t for text in pocket.corpus(n, seed) for t in tokens(text))


def test_one_registered_task_per_paper_task():
    assert [t.paper_task for t in pocket.TASKS] == list(PAPER_TASKS)
    assert {t.name: (t.paper_task, t.k) for t in pocket.TASKS} == EXPECTED
    for task in pocket.TASKS:
        assert task.__doc__ and task.paper_task.split("-")[0] in task.__doc__.lower().replace(" ", "")
        with pytest.raises(ValueError, match="registered twice"):
            register_text_task(task)  # it is registered already


@pytest.mark.parametrize("name", EXPECTED)
def test_deterministic_prefix_and_seeded(name):
    task = TASKS[name]
    first = task.examples("train", 40, 7)
    assert first == task.examples("train", 40, 7)
    assert first[:25] == task.examples("train", 25, 7)
    assert first != task.examples("train", 40, 8)
    assert task.examples("val", 0, 7) == []


@pytest.mark.parametrize("name", EXPECTED)
def test_splits_are_disjoint(name):
    inputs = {split: {e.input for e in examples(name, split)} for split in SPLITS}
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            assert not inputs[a] & inputs[b], (a, b)
    assert len(inputs["test"]) > 0.9 * N  # a large space: inputs rarely repeat within a split


@pytest.mark.parametrize("name", EXPECTED)
def test_choices_labels_and_lengths(name):
    k = EXPECTED[name][1]
    exs = examples(name)
    counts = collections.Counter(e.label for e in exs)
    assert sorted(counts) == list(range(k)) and max(counts.values()) - min(counts.values()) <= 1
    for e in exs:
        assert len(e.choices) == k == len(set(e.choices))
        assert e.input == e.input.strip().lower() and all(c == c.strip().lower() and c for c in e.choices)
        assert len(tokens(e.input)) <= 90 and all(1 <= len(tokens(c)) <= 16 for c in e.choices)
        if name in YES_NO:
            assert e.choices == ("yes", "no")


def test_task_specific_structure():
    for e in examples("blank-fill"):  # one blank; both options named in the sentence
        assert tokens(e.input).count("_") == 2 and all(c in tokens(e.input) for c in e.choices)
    for e in examples("pronoun-ref"):  # the quoted pronoun is in the sentence
        pronoun = e.input.split('" ')[1].split(" ")[0]
        assert pronoun in ("he", "she") and tokens(e.input).count(pronoun) >= 2
    for e in examples("passage-qa"):
        assert "not enough information" in e.choices
    for name in ("fact-chain", "commonsense-read", "social-sense"):  # options listed in the prompt
        for e in examples(name)[:200]:
            assert all(f"- {c}" in e.input for c in e.choices) or "- " not in e.input
    for e in examples("rule-apply"):  # the answer is one of the two people of the situation
        assert all(c in tokens(e.input) for c in e.choices)
    for e in examples("paraphrase-id"):  # the two sentences hold the same names, paraphrase or not
        s1, s2 = e.input.split("sentence 1 : ")[1].split(" sentence 2 : ")
        s2 = s2.split(" question")[0]
        names = set(pocket.world.MALE + pocket.world.FEMALE)
        assert {t for t in tokens(s1) if t in names} == {t for t in tokens(s2) if t in names}


def _baselines(e: Example, rng: random.Random) -> dict[str, int]:
    """Picks that use no understanding: by length, position or word overlap with the input."""
    k = len(e.choices)
    in_counts = collections.Counter(tokens(e.input))
    length = [len(tokens(c)) + rng.random() for c in e.choices]  # random tie-breaks
    overlap = [sum(in_counts[t] for t in tokens(c)) / len(tokens(c)) + rng.random() / 10 for c in e.choices]
    return dict(longest=length.index(max(length)), shortest=length.index(min(length)), first=0, last=k - 1,
                most_overlap=overlap.index(max(overlap)), least_overlap=overlap.index(min(overlap)))  # fmt: skip


@pytest.mark.parametrize("name", EXPECTED)
def test_no_label_leak_to_trivial_baselines(name):
    k = EXPECTED[name][1]
    rng = random.Random(0)
    hits = collections.Counter()
    for e in examples(name):
        for baseline, pick in _baselines(e, rng).items():
            hits[baseline] += pick == e.label
    for baseline, h in hits.items():
        assert h / N <= 1 / k + 0.06, (baseline, h / N)
    # nor does the input's length tell the label: the majority label per length, fit on train
    by_length = collections.defaultdict(collections.Counter)
    for e in examples(name, "train"):
        by_length[len(tokens(e.input))][e.label] += 1
    guess = {n: c.most_common(1)[0][0] for n, c in by_length.items()}
    assert sum(guess.get(len(tokens(e.input)), 0) == e.label for e in examples(name)) / N <= 1 / k + 0.06


def test_vocabulary_holds_every_token():
    vocab = pocket.vocabulary()
    assert vocab == sorted(set(vocab)) and all(t == t.lower() for t in vocab)
    assert 300 <= len(vocab) <= 1500
    words = set(vocab)
    for name in EXPECTED:
        for e in examples(name) + examples(name, "train"):
            assert set(tokens(e.input)) <= words and all(set(tokens(c)) <= words for c in e.choices)
    assert set(corpus_tokens()) <= words
    assert pocket.FORMAT_TOKENS <= words


def test_corpus_covers_the_words_without_the_prompt_formats():
    texts = pocket.corpus(3000, 5)
    assert texts == pocket.corpus(3000, 5) and texts != pocket.corpus(3000, 6)
    assert len(texts) == 3000 and all(t == t.strip().lower() and t for t in texts)
    assert pocket.corpus(12_000, 5)[:3000] == texts  # a prefix: what a size covers, any larger one does
    assert pocket.CORPUS_SIZE >= 10_000
    assert not pocket.FORMAT_TOKENS & set(corpus_tokens())
    for text in texts:
        assert not any(marker in text for marker in pocket.PROMPT_MARKERS), text
    for seed in (0, 3):  # 10,000 texts (a fifth of the recommended size) cover every word of the tasks
        assert not set(pocket.vocabulary()) - pocket.FORMAT_TOKENS - set(corpus_tokens(10_000, seed))


def test_bad_arguments_and_default_size():
    task = TASKS["blank-fill"]
    with pytest.raises(TallmergeError, match="split"):
        task.examples("dev", 5, 0)
    with pytest.raises(TallmergeError, match="seed"):
        task.examples("train", 5, -1)
    with pytest.raises(TallmergeError, match="non-negative"):
        task.examples("train", -2, 0)
    assert len(task.examples("val", None, 0)) == DEFAULT_N["val"]
